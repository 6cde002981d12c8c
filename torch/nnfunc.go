package torch

/*
#include "fertorch.h"
*/
import "C"

import "fmt"

// Conv2dOptions are conv2d's hyper-parameters; zero values mean stride 1,
// padding 0, dilation 1, groups 1.
type Conv2dOptions struct {
	Stride   [2]int64
	Padding  [2]int64
	Dilation [2]int64
	Groups   int64
}

func orOne(v [2]int64) [2]int64 {
	for i := range v {
		if v[i] == 0 {
			v[i] = 1
		}
	}
	return v
}

// Conv2d is a 2-D convolution of an NCHW input with weight [out, in/groups,
// kh, kw] and an optional bias [out] (nil for none).
func (t *Tensor) Conv2d(weight, bias *Tensor, opts Conv2dOptions) (*Tensor, error) {
	ins := []named{{"input", t}, {"weight", weight}}
	if bias != nil {
		ins = append(ins, named{"bias", bias})
	}
	if err := live("conv2d", ins...); err != nil {
		return nil, err
	}
	stride, dilation := orOne(opts.Stride), orOne(opts.Dilation)
	padding := opts.Padding
	groups := opts.Groups
	if groups == 0 {
		groups = 1
	}
	var out C.fer_tensor
	msg := C.fer_conv2d(t.h, weight.h, bias.handle(),
		(*C.int64_t)(&stride[0]), (*C.int64_t)(&padding[0]), (*C.int64_t)(&dilation[0]),
		C.int64_t(groups), &out)
	return result("conv2d", msg, out, ins...)
}

// MaxPool2dOptions are max_pool2d's hyper-parameters. A zero Stride means
// the kernel size (PyTorch's default); zero Dilation means 1.
type MaxPool2dOptions struct {
	Kernel   [2]int64
	Stride   [2]int64
	Padding  [2]int64
	Dilation [2]int64
	CeilMode bool
}

// MaxPool2d is 2-D max pooling of an NCHW input.
func (t *Tensor) MaxPool2d(opts MaxPool2dOptions) (*Tensor, error) {
	in := named{"input", t}
	if err := live("max_pool2d", in); err != nil {
		return nil, err
	}
	stride := opts.Stride
	if stride == [2]int64{} {
		stride = opts.Kernel
	}
	kernel, padding, dilation := opts.Kernel, opts.Padding, orOne(opts.Dilation)
	var out C.fer_tensor
	msg := C.fer_max_pool2d(t.h, (*C.int64_t)(&kernel[0]), (*C.int64_t)(&stride[0]),
		(*C.int64_t)(&padding[0]), (*C.int64_t)(&dilation[0]), cbool(opts.CeilMode), &out)
	return result("max_pool2d", msg, out, in)
}

// AdaptiveAvgPool2d averages an NCHW input down to h x w cells.
func (t *Tensor) AdaptiveAvgPool2d(h, w int64) (*Tensor, error) {
	in := named{"input", t}
	if err := live("adaptive_avg_pool2d", in); err != nil {
		return nil, err
	}
	size := [2]int64{h, w}
	var out C.fer_tensor
	msg := C.fer_adaptive_avg_pool2d(t.h, (*C.int64_t)(&size[0]), &out)
	return result("adaptive_avg_pool2d", msg, out, in)
}

// Linear is x·weightᵀ + bias with weight [out, in] and bias [out] or nil.
func (t *Tensor) Linear(weight, bias *Tensor) (*Tensor, error) {
	ins := []named{{"input", t}, {"weight", weight}}
	if bias != nil {
		ins = append(ins, named{"bias", bias})
	}
	if err := live("linear", ins...); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_linear(t.h, weight.h, bias.handle(), &out)
	return result("linear", msg, out, ins...)
}

// Dropout zeroes each element with probability p and scales the rest by
// 1/(1-p) when train is true; it is the identity otherwise.
func (t *Tensor) Dropout(p float64, train bool) (*Tensor, error) {
	in := named{"input", t}
	if err := live("dropout", in); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_dropout(t.h, C.double(p), cbool(train), &out)
	return result("dropout", msg, out, in)
}

// Reduction says how a loss combines its per-sample values.
type Reduction int

// Loss reductions, as in PyTorch.
const (
	// ReductionMean is PyTorch's default: with class weights it divides by
	// the sum of the weights of the targets, sum(w_i*l_i)/sum(w_i).
	ReductionMean Reduction = iota
	// ReductionSum adds the (weighted) per-sample losses.
	ReductionSum
	// ReductionNone returns one (weighted) loss per sample.
	ReductionNone
)

func (r Reduction) code() (C.int, error) {
	switch r {
	case ReductionMean:
		return C.FER_REDUCTION_MEAN, nil
	case ReductionSum:
		return C.FER_REDUCTION_SUM, nil
	case ReductionNone:
		return C.FER_REDUCTION_NONE, nil
	}
	return 0, fmt.Errorf("unknown reduction %d", int(r))
}

// CrossEntropyOptions configure CrossEntropy. The zero value is PyTorch's
// default: no class weights, mean reduction, no label smoothing.
type CrossEntropyOptions struct {
	// Weight is an optional float tensor [C] of per-class weights.
	Weight *Tensor
	// Reduction combines the per-sample losses.
	Reduction Reduction
	// LabelSmoothing in [0, 1).
	LabelSmoothing float64
}

// CrossEntropy is PyTorch's F.cross_entropy of logits [N, C] against int64
// class indices target [N].
func (t *Tensor) CrossEntropy(target *Tensor, opts CrossEntropyOptions) (*Tensor, error) {
	ins := []named{{"logits", t}, {"target", target}}
	if opts.Weight != nil {
		ins = append(ins, named{"weight", opts.Weight})
	}
	if err := live("cross_entropy", ins...); err != nil {
		return nil, err
	}
	red, err := opts.Reduction.code()
	if err != nil {
		return nil, &Error{Op: "cross_entropy", Msg: err.Error()}
	}
	var out C.fer_tensor
	msg := C.fer_cross_entropy(t.h, target.h, opts.Weight.handle(), red, -100, C.double(opts.LabelSmoothing), &out)
	return result("cross_entropy", msg, out, ins...)
}

// BatchNormOptions are batch_norm's settings.
type BatchNormOptions struct {
	// Training normalises with the batch's statistics and updates the
	// running ones; otherwise the running statistics are used.
	Training bool
	Momentum float64
	Eps      float64
}

// BatchNorm is F.batch_norm of an N,C,... input with per-channel weight,
// bias, runningMean and runningVar (any may be nil).
func (t *Tensor) BatchNorm(weight, bias, runningMean, runningVar *Tensor, opts BatchNormOptions) (*Tensor, error) {
	ins := []named{{"input", t}}
	for _, n := range []named{{"weight", weight}, {"bias", bias}, {"running_mean", runningMean}, {"running_var", runningVar}} {
		if n.t != nil {
			ins = append(ins, n)
		}
	}
	if err := live("batch_norm", ins...); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_batch_norm(t.h, weight.handle(), bias.handle(), runningMean.handle(), runningVar.handle(),
		cbool(opts.Training), C.double(opts.Momentum), C.double(opts.Eps), &out)
	return result("batch_norm", msg, out, ins...)
}
