package torch

/*
#include "fertorch.h"
*/
import "C"

import "runtime"

// SetRequiresGrad turns gradient tracking on or off for a leaf tensor.
func (t *Tensor) SetRequiresGrad(on bool) error {
	in := named{"tensor", t}
	if err := live("set_requires_grad", in); err != nil {
		return err
	}
	return takeError("set_requires_grad", C.fer_set_requires_grad(t.h, cbool(on)), in)
}

// RequiresGrad reports whether autograd tracks this tensor.
func (t *Tensor) RequiresGrad() bool { return C.fer_requires_grad(t.handle()) != 0 }

// IsLeaf reports whether the tensor was created by the user rather than by
// a tracked operation.
func (t *Tensor) IsLeaf() bool { return C.fer_is_leaf(t.handle()) != 0 }

// Backward computes the gradients of a scalar tensor with respect to every
// leaf that requires grad, accumulating them into their Grad.
func (t *Tensor) Backward() error { return t.BackwardWith(nil, false) }

// BackwardWith is Backward with an explicit output gradient (nil for a
// scalar) and the option to keep the graph for another backward pass.
func (t *Tensor) BackwardWith(grad *Tensor, retainGraph bool) error {
	ins := []named{{"tensor", t}}
	if grad != nil {
		ins = append(ins, named{"grad", grad})
	}
	if err := live("backward", ins...); err != nil {
		return err
	}
	return takeError("backward", C.fer_backward(t.h, grad.handle(), cbool(retainGraph)), ins...)
}

// Grad is the accumulated gradient, or nil when there is none. The result
// is a new handle that joins t's scope, if any; otherwise free it.
func (t *Tensor) Grad() (*Tensor, error) {
	in := named{"tensor", t}
	if err := live("grad", in); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	if err := takeError("grad", C.fer_grad(t.h, &out), in); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, nil
	}
	return wrap(out, t), nil
}

// ZeroGrad drops the accumulated gradient (like PyTorch's set_to_none).
func (t *Tensor) ZeroGrad() error {
	in := named{"tensor", t}
	if err := live("zero_grad", in); err != nil {
		return err
	}
	return takeError("zero_grad", C.fer_zero_grad(t.h, 1), in)
}

// GradEnabled reports whether autograd records operations on the calling
// OS thread.
func GradEnabled() bool { return C.fer_grad_enabled() != 0 }

// NoGrad runs fn with autograd recording off, as torch.no_grad() does. The
// goroutine stays on one OS thread while fn runs, because libtorch's grad
// mode is per thread; tensor work fn starts on other goroutines is not
// covered.
func NoGrad(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := C.fer_grad_enabled()
	C.fer_set_grad_enabled(0)
	defer C.fer_set_grad_enabled(prev)
	return fn()
}

// ---- in-place updates outside autograd ------------------------------------------

// CopyFrom overwrites t's elements with src's (broadcast, converted).
func (t *Tensor) CopyFrom(src *Tensor) error {
	ins := []named{{"self", t}, {"src", src}}
	if err := live("copy_", ins...); err != nil {
		return err
	}
	return takeError("copy_", C.fer_copy_(t.h, src.h), ins...)
}

// AddInPlace does t += alpha*other without recording it for autograd.
func (t *Tensor) AddInPlace(other *Tensor, alpha float64) error {
	ins := []named{{"self", t}, {"other", other}}
	if err := live("add_", ins...); err != nil {
		return err
	}
	return takeError("add_", C.fer_add_(t.h, other.h, C.double(alpha)), ins...)
}

// MulScalarInPlace does t *= s without recording it for autograd.
func (t *Tensor) MulScalarInPlace(s float64) error {
	in := named{"self", t}
	if err := live("mul_", in); err != nil {
		return err
	}
	return takeError("mul_", C.fer_mul_scalar_(t.h, C.double(s)), in)
}

// Init is a parameter initialisation, as in torch.nn.init.
type Init struct {
	kind C.int
	a, b float64
	name string
}

// InitUniform fills with U(lo, hi).
func InitUniform(lo, hi float64) Init {
	return Init{kind: C.FER_INIT_UNIFORM, a: lo, b: hi, name: "uniform_"}
}

// InitNormal fills with N(mean, std²).
func InitNormal(mean, std float64) Init {
	return Init{kind: C.FER_INIT_NORMAL, a: mean, b: std, name: "normal_"}
}

// InitConstant fills with v.
func InitConstant(v float64) Init { return Init{kind: C.FER_INIT_CONSTANT, a: v, name: "constant_"} }

// InitKaimingUniform is kaiming_uniform_(a=negativeSlope, mode=fan_in,
// nonlinearity=leaky_relu): PyTorch's default for Linear and Conv2d weights
// uses negativeSlope = sqrt(5).
func InitKaimingUniform(negativeSlope float64) Init {
	return Init{kind: C.FER_INIT_KAIMING_UNIFORM, a: negativeSlope, name: "kaiming_uniform_"}
}

// InitKaimingNormalFanOut is kaiming_normal_(mode=fan_out,
// nonlinearity=relu), torchvision's VGG convolution initialisation.
func InitKaimingNormalFanOut() Init {
	return Init{kind: C.FER_INIT_KAIMING_NORMAL, name: "kaiming_normal_"}
}

// InitXavierUniform is xavier_uniform_ with the given gain.
func InitXavierUniform(gain float64) Init {
	return Init{kind: C.FER_INIT_XAVIER_UNIFORM, a: gain, name: "xavier_uniform_"}
}

// Initialize overwrites t in place (outside autograd) using libtorch's
// generator.
func (t *Tensor) Initialize(init Init) error {
	in := named{"tensor", t}
	if err := live(init.name, in); err != nil {
		return err
	}
	return takeError(init.name, C.fer_init(t.h, init.kind, C.double(init.a), C.double(init.b)), in)
}
