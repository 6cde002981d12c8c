package torch

/*
#include "fertorch.h"
*/
import "C"

// result finishes an operation: it converts the error or wraps the handle,
// which joins the scope of the first scoped input.
func result(op string, msg *C.char, out C.fer_tensor, inputs ...named) (*Tensor, error) {
	if err := takeError(op, msg, inputs...); err != nil {
		return nil, err
	}
	ts := make([]*Tensor, len(inputs))
	for i, in := range inputs {
		ts[i] = in.t
	}
	return wrap(out, ts...), nil
}

// ---- conversions --------------------------------------------------------------

// To returns the tensor converted to dtype on dev (a new handle to the same
// tensor when nothing changes). nonBlocking makes a copy from pinned memory
// to a GPU asynchronous.
func (t *Tensor) To(dev Device, dtype DType, nonBlocking bool) (*Tensor, error) {
	in := named{"tensor", t}
	if err := live("to", in); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_to(t.h, C.int(dtype), C.int(dev.Type), C.int(dev.Index), cbool(nonBlocking), &out)
	return result("to", msg, out, in)
}

// ToDevice moves the tensor to dev, keeping its dtype.
func (t *Tensor) ToDevice(dev Device) (*Tensor, error) {
	in := named{"tensor", t}
	if err := live("to", in); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_to(t.h, -1, C.int(dev.Type), C.int(dev.Index), 0, &out)
	return result("to", msg, out, in)
}

// ToDType converts the elements to dtype, keeping the device.
func (t *Tensor) ToDType(dtype DType) (*Tensor, error) {
	in := named{"tensor", t}
	if err := live("to", in); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_to(t.h, C.int(dtype), -1, 0, 0, &out)
	return result("to", msg, out, in)
}

type unaryFn func(C.fer_tensor, *C.fer_tensor) *C.char

func (t *Tensor) unaryCall(op string, f unaryFn) (*Tensor, error) {
	in := named{"tensor", t}
	if err := live(op, in); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := f(t.h, &out)
	return result(op, msg, out, in)
}

// Clone copies the tensor (autograd records the copy).
func (t *Tensor) Clone() (*Tensor, error) {
	return t.unaryCall("clone", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_clone(h, o) })
}

// Detach is the same data outside the autograd graph.
func (t *Tensor) Detach() (*Tensor, error) {
	return t.unaryCall("detach", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_detach(h, o) })
}

// Share is a second handle to the same tensor (same storage, same autograd
// identity), released independently.
func (t *Tensor) Share() (*Tensor, error) {
	return t.unaryCall("share", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_share(h, o) })
}

// Contiguous returns the tensor in row-major (NCHW) memory order.
func (t *Tensor) Contiguous() (*Tensor, error) {
	return t.unaryCall("contiguous", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_contiguous(h, 0, o) })
}

// ChannelsLast returns a 4-D tensor in NHWC memory order (same logical shape).
func (t *Tensor) ChannelsLast() (*Tensor, error) {
	return t.unaryCall("channels_last", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_contiguous(h, 1, o) })
}

// ---- shapes and indexing ---------------------------------------------------------

// Reshape returns the elements in a new shape (a view when possible); one
// dimension may be -1.
func (t *Tensor) Reshape(shape ...int64) (*Tensor, error) {
	return t.unaryCall("reshape", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		sp, nd := shapePtr(shape)
		return C.fer_reshape(h, sp, nd, o)
	})
}

// View is Reshape that never copies (an error when strides do not allow it).
func (t *Tensor) View(shape ...int64) (*Tensor, error) {
	return t.unaryCall("view", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		sp, nd := shapePtr(shape)
		return C.fer_view(h, sp, nd, o)
	})
}

// Flatten merges dimensions start..end (inclusive; negative from the end).
func (t *Tensor) Flatten(start, end int64) (*Tensor, error) {
	return t.unaryCall("flatten", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		return C.fer_flatten(h, C.int64_t(start), C.int64_t(end), o)
	})
}

// Permute reorders the dimensions.
func (t *Tensor) Permute(dims ...int64) (*Tensor, error) {
	return t.unaryCall("permute", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		sp, nd := shapePtr(dims)
		return C.fer_permute(h, sp, nd, o)
	})
}

// Transpose swaps two dimensions.
func (t *Tensor) Transpose(dim0, dim1 int64) (*Tensor, error) {
	return t.unaryCall("transpose", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		return C.fer_transpose(h, C.int64_t(dim0), C.int64_t(dim1), o)
	})
}

// Squeeze removes dimension dim if its size is 1.
func (t *Tensor) Squeeze(dim int64) (*Tensor, error) {
	return t.unaryCall("squeeze", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_squeeze(h, C.int64_t(dim), o) })
}

// Unsqueeze inserts a dimension of size 1 at dim.
func (t *Tensor) Unsqueeze(dim int64) (*Tensor, error) {
	return t.unaryCall("unsqueeze", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_unsqueeze(h, C.int64_t(dim), o) })
}

// Narrow is the view of length elements of dim starting at start; on
// dimension 0 it selects a range of samples of a batch.
func (t *Tensor) Narrow(dim, start, length int64) (*Tensor, error) {
	return t.unaryCall("narrow", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		return C.fer_narrow(h, C.int64_t(dim), C.int64_t(start), C.int64_t(length), o)
	})
}

// Select is the view at index of dim, with that dimension removed.
func (t *Tensor) Select(dim, index int64) (*Tensor, error) {
	return t.unaryCall("select", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		return C.fer_select(h, C.int64_t(dim), C.int64_t(index), o)
	})
}

// IndexSelect gathers the entries of dim listed in index (an int64 tensor).
func (t *Tensor) IndexSelect(dim int64, index *Tensor) (*Tensor, error) {
	ins := []named{{"tensor", t}, {"index", index}}
	if err := live("index_select", ins...); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_index_select(t.h, C.int64_t(dim), index.h, &out)
	return result("index_select", msg, out, ins...)
}

// Flip reverses the order of elements along dims (e.g. 3 flips NCHW images
// horizontally).
func (t *Tensor) Flip(dims ...int64) (*Tensor, error) {
	return t.unaryCall("flip", func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		sp, nd := shapePtr(dims)
		return C.fer_flip(h, sp, nd, o)
	})
}

func listCall(op string, ts []*Tensor, f func(*C.fer_tensor, C.int, *C.fer_tensor) *C.char) (*Tensor, error) {
	ins := make([]named, len(ts))
	hs := make([]C.fer_tensor, len(ts))
	for i, t := range ts {
		ins[i] = named{"tensor", t}
		hs[i] = t.handle()
	}
	if err := live(op, ins...); err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, &Error{Op: op, Msg: "no tensors given"}
	}
	var out C.fer_tensor
	msg := f(&hs[0], C.int(len(hs)), &out) // C pointers only: allowed by cgo's rules
	return result(op, msg, out, ins...)
}

// Cat concatenates tensors along dim.
func Cat(ts []*Tensor, dim int64) (*Tensor, error) {
	return listCall("cat", ts, func(a *C.fer_tensor, n C.int, o *C.fer_tensor) *C.char { return C.fer_cat(a, n, C.int64_t(dim), o) })
}

// Stack joins same-shaped tensors along a new dimension dim.
func Stack(ts []*Tensor, dim int64) (*Tensor, error) {
	return listCall("stack", ts, func(a *C.fer_tensor, n C.int, o *C.fer_tensor) *C.char { return C.fer_stack(a, n, C.int64_t(dim), o) })
}

// ---- element-wise math ---------------------------------------------------------------

func (t *Tensor) unary(op string, code C.int) (*Tensor, error) {
	return t.unaryCall(op, func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_unary(code, h, o) })
}

// Relu is max(x, 0).
func (t *Tensor) Relu() (*Tensor, error) { return t.unary("relu", C.FER_RELU) }

// ReluInPlace overwrites t with max(t, 0) and returns a new handle to it,
// as F.relu(inplace=True): it saves a buffer when nothing else needs t's
// old values (autograd reports an error at backward if something does).
func (t *Tensor) ReluInPlace() (*Tensor, error) {
	return t.unaryCall("relu_", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_unary_(C.FER_RELU, h, o) })
}

// Neg is -x.
func (t *Tensor) Neg() (*Tensor, error) { return t.unary("neg", C.FER_NEG) }

// Exp is e^x.
func (t *Tensor) Exp() (*Tensor, error) { return t.unary("exp", C.FER_EXP) }

// Log is the natural logarithm.
func (t *Tensor) Log() (*Tensor, error) { return t.unary("log", C.FER_LOG) }

// Sqrt is the square root.
func (t *Tensor) Sqrt() (*Tensor, error) { return t.unary("sqrt", C.FER_SQRT) }

// Abs is |x|.
func (t *Tensor) Abs() (*Tensor, error) { return t.unary("abs", C.FER_ABS) }

// Sigmoid is 1/(1+e^-x).
func (t *Tensor) Sigmoid() (*Tensor, error) { return t.unary("sigmoid", C.FER_SIGMOID) }

// Tanh is the hyperbolic tangent.
func (t *Tensor) Tanh() (*Tensor, error) { return t.unary("tanh", C.FER_TANH) }

// Square is x*x.
func (t *Tensor) Square() (*Tensor, error) { return t.unary("square", C.FER_SQUARE) }

// Reciprocal is 1/x.
func (t *Tensor) Reciprocal() (*Tensor, error) { return t.unary("reciprocal", C.FER_RECIPROCAL) }

func (t *Tensor) binary(op string, code C.int, other *Tensor) (*Tensor, error) {
	ins := []named{{"self", t}, {"other", other}}
	if err := live(op, ins...); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_binary(code, t.h, other.h, &out)
	return result(op, msg, out, ins...)
}

func (t *Tensor) scalar(op string, code C.int, s float64) (*Tensor, error) {
	return t.unaryCall(op, func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_binary_scalar(code, h, C.double(s), o) })
}

// Add is t + other, broadcasting.
func (t *Tensor) Add(other *Tensor) (*Tensor, error) { return t.binary("add", C.FER_ADD, other) }

// Sub is t - other, broadcasting.
func (t *Tensor) Sub(other *Tensor) (*Tensor, error) { return t.binary("sub", C.FER_SUB, other) }

// Mul is t * other element-wise, broadcasting.
func (t *Tensor) Mul(other *Tensor) (*Tensor, error) { return t.binary("mul", C.FER_MUL, other) }

// Div is t / other, broadcasting (true division).
func (t *Tensor) Div(other *Tensor) (*Tensor, error) { return t.binary("div", C.FER_DIV, other) }

// Eq is the bool tensor t == other.
func (t *Tensor) Eq(other *Tensor) (*Tensor, error) { return t.binary("eq", C.FER_EQ, other) }

// Ne is the bool tensor t != other.
func (t *Tensor) Ne(other *Tensor) (*Tensor, error) { return t.binary("ne", C.FER_NE, other) }

// Lt is the bool tensor t < other.
func (t *Tensor) Lt(other *Tensor) (*Tensor, error) { return t.binary("lt", C.FER_LT, other) }

// Gt is the bool tensor t > other.
func (t *Tensor) Gt(other *Tensor) (*Tensor, error) { return t.binary("gt", C.FER_GT, other) }

// Maximum is the element-wise maximum.
func (t *Tensor) Maximum(other *Tensor) (*Tensor, error) {
	return t.binary("maximum", C.FER_MAXIMUM, other)
}

// Minimum is the element-wise minimum.
func (t *Tensor) Minimum(other *Tensor) (*Tensor, error) {
	return t.binary("minimum", C.FER_MINIMUM, other)
}

// Pow is t ** other.
func (t *Tensor) Pow(other *Tensor) (*Tensor, error) { return t.binary("pow", C.FER_POW, other) }

// Matmul is the matrix product with PyTorch's broadcasting rules.
func (t *Tensor) Matmul(other *Tensor) (*Tensor, error) {
	return t.binary("matmul", C.FER_MATMUL, other)
}

// AddScalar is t + s.
func (t *Tensor) AddScalar(s float64) (*Tensor, error) { return t.scalar("add", C.FER_ADD, s) }

// SubScalar is t - s.
func (t *Tensor) SubScalar(s float64) (*Tensor, error) { return t.scalar("sub", C.FER_SUB, s) }

// MulScalar is t * s.
func (t *Tensor) MulScalar(s float64) (*Tensor, error) { return t.scalar("mul", C.FER_MUL, s) }

// DivScalar is t / s.
func (t *Tensor) DivScalar(s float64) (*Tensor, error) { return t.scalar("div", C.FER_DIV, s) }

// PowScalar is t ** s.
func (t *Tensor) PowScalar(s float64) (*Tensor, error) { return t.scalar("pow", C.FER_POW, s) }

// EqScalar is the bool tensor t == s.
func (t *Tensor) EqScalar(s float64) (*Tensor, error) { return t.scalar("eq", C.FER_EQ, s) }

// Clamp limits every element to [lo, hi].
func (t *Tensor) Clamp(lo, hi float64) (*Tensor, error) {
	return t.unaryCall("clamp", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_clamp(h, C.double(lo), C.double(hi), o) })
}

// ---- reductions ------------------------------------------------------------------------

func (t *Tensor) reduce(op string, code C.int, keepdim bool, dims []int64) (*Tensor, error) {
	return t.unaryCall(op, func(h C.fer_tensor, o *C.fer_tensor) *C.char {
		sp, nd := shapePtr(dims)
		return C.fer_reduce(code, h, sp, nd, cbool(keepdim), o)
	})
}

// Sum adds all elements into a 0-dim tensor.
func (t *Tensor) Sum() (*Tensor, error) { return t.reduce("sum", C.FER_SUM, false, nil) }

// SumDims sums over dims.
func (t *Tensor) SumDims(keepdim bool, dims ...int64) (*Tensor, error) {
	return t.reduce("sum", C.FER_SUM, keepdim, dims)
}

// Mean averages all elements into a 0-dim tensor.
func (t *Tensor) Mean() (*Tensor, error) { return t.reduce("mean", C.FER_MEAN, false, nil) }

// MeanDims averages over dims.
func (t *Tensor) MeanDims(keepdim bool, dims ...int64) (*Tensor, error) {
	return t.reduce("mean", C.FER_MEAN, keepdim, dims)
}

// Max is the largest element (0-dim).
func (t *Tensor) Max() (*Tensor, error) { return t.reduce("amax", C.FER_AMAX, false, nil) }

// MaxDims is the largest element over dims.
func (t *Tensor) MaxDims(keepdim bool, dims ...int64) (*Tensor, error) {
	return t.reduce("amax", C.FER_AMAX, keepdim, dims)
}

// Min is the smallest element (0-dim).
func (t *Tensor) Min() (*Tensor, error) { return t.reduce("amin", C.FER_AMIN, false, nil) }

// Argmax is the int64 index of the largest element along dim.
func (t *Tensor) Argmax(dim int64, keepdim bool) (*Tensor, error) {
	return t.reduce("argmax", C.FER_ARGMAX, keepdim, []int64{dim})
}

// Argmin is the int64 index of the smallest element along dim.
func (t *Tensor) Argmin(dim int64, keepdim bool) (*Tensor, error) {
	return t.reduce("argmin", C.FER_ARGMIN, keepdim, []int64{dim})
}

// Softmax normalises exp(x) along dim.
func (t *Tensor) Softmax(dim int64) (*Tensor, error) {
	return t.unaryCall("softmax", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_softmax(h, C.int64_t(dim), o) })
}

// LogSoftmax is log(softmax(x)) computed stably.
func (t *Tensor) LogSoftmax(dim int64) (*Tensor, error) {
	return t.unaryCall("log_softmax", func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_log_softmax(h, C.int64_t(dim), o) })
}

// TopK returns the k largest values along dim, sorted descending, and their
// int64 indices.
func (t *Tensor) TopK(k, dim int64) (values, indices *Tensor, err error) {
	in := named{"tensor", t}
	if err := live("topk", in); err != nil {
		return nil, nil, err
	}
	var v, i C.fer_tensor
	if err := takeError("topk", C.fer_topk(t.h, C.int64_t(k), C.int64_t(dim), 1, &v, &i), in); err != nil {
		return nil, nil, err
	}
	return wrap(v, t), wrap(i, t), nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// ConvertInPlace replaces the tensor's data by a copy converted to dtype on
// dev (channelsLast: NHWC order for 4-D tensors), keeping requires_grad and
// the handle's identity, so optimizers and modules holding t see the moved
// tensor. It is how a model's parameters are moved to a GPU.
func (t *Tensor) ConvertInPlace(dev Device, dtype DType, channelsLast bool) error {
	in := named{"tensor", t}
	if err := live("convert_", in); err != nil {
		return err
	}
	return takeError("convert_", C.fer_convert_(t.h, C.int(dtype), C.int(dev.Type), C.int(dev.Index), cbool(channelsLast)), in)
}

// NamedTensor is a tensor with its parameter name ("features.0.weight").
type NamedTensor struct {
	Name   string
	Tensor *Tensor
}
