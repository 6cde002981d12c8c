package torch

/*
#include "fertorch.h"
*/
import "C"

// AdamHyper are the hyper-parameters of one Adam update.
type AdamHyper struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// Decoupled is AdamW's weight decay.
	Decoupled bool
}

// AdamStep applies one Adam update to param from its gradient, with the
// moment buffers updated in place (maxExpAvgSq non-nil enables AMSGrad);
// step is the 1-based count including this update. It reports false, and
// changes nothing, when param has no gradient.
func AdamStep(param, expAvg, expAvgSq, maxExpAvgSq *Tensor, step int64, h AdamHyper) (bool, error) {
	ins := []named{{"param", param}, {"exp_avg", expAvg}, {"exp_avg_sq", expAvgSq}}
	if maxExpAvgSq != nil {
		ins = append(ins, named{"max_exp_avg_sq", maxExpAvgSq})
	}
	if err := live("adam_step", ins...); err != nil {
		return false, err
	}
	var updated C.int
	msg := C.fer_adam_step(param.h, expAvg.h, expAvgSq.h, maxExpAvgSq.handle(), C.int64_t(step),
		C.double(h.LR), C.double(h.Beta1), C.double(h.Beta2), C.double(h.Eps), C.double(h.WeightDecay),
		cbool(h.Decoupled), &updated)
	if err := takeError("adam_step", msg, ins...); err != nil {
		return false, err
	}
	return updated != 0, nil
}

// SGDHyper are the hyper-parameters of one SGD update.
type SGDHyper struct {
	LR, Momentum, Dampening, WeightDecay float64
	Nesterov                             bool
}

// SGDStep applies one SGD update to param from its gradient. buf is the
// momentum buffer (nil before the first step); a new buffer created by this
// step is returned (nil otherwise) and owned by the caller.
func SGDStep(param, buf *Tensor, h SGDHyper) (*Tensor, error) {
	ins := []named{{"param", param}}
	if buf != nil {
		ins = append(ins, named{"momentum_buffer", buf})
	}
	if err := live("sgd_step", ins...); err != nil {
		return nil, err
	}
	var updated C.int
	var nb C.fer_tensor
	msg := C.fer_sgd_step(param.h, buf.handle(), C.double(h.LR), C.double(h.Momentum), C.double(h.Dampening),
		C.double(h.WeightDecay), cbool(h.Nesterov), &nb, &updated)
	if err := takeError("sgd_step", msg, ins...); err != nil {
		return nil, err
	}
	if nb == nil {
		return nil, nil
	}
	return wrap(nb), nil
}

// UnscaleGrads multiplies the gradients of params by invScale in place, as
// GradScaler.unscale_ does for float16 training, and reports whether any
// gradient is inf or NaN (in which case the optimizer step must be skipped).
func UnscaleGrads(params []*Tensor, invScale float64) (foundInf bool, err error) {
	ins := make([]named, len(params))
	hs := make([]C.fer_tensor, len(params))
	for i, p := range params {
		ins[i] = named{"param", p}
		hs[i] = p.handle()
	}
	if err := live("unscale_grads", ins...); err != nil {
		return false, err
	}
	if len(hs) == 0 {
		return false, nil
	}
	var found C.int
	if err := takeError("unscale_grads", C.fer_unscale_grads(&hs[0], C.int(len(hs)), C.double(invScale), &found)); err != nil {
		return false, err
	}
	return found != 0, nil
}
