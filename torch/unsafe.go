package torch

/*
#include "fertorch.h"
*/
import "C"

import "unsafe"

// UnsafeHandle is t's shim handle (a fer_tensor), or nil when t is nil or
// released. It is for fertorch's own packages over other units of the shim
// (torch/dist): the handle stays valid only while t is neither freed nor
// closed with its scope, and the caller must keep t reachable
// (runtime.KeepAlive) until the C call that uses it returns. The handle is
// borrowed: never free it.
func UnsafeHandle(t *Tensor) unsafe.Pointer { return unsafe.Pointer(t.handle()) }

// UnsafeWrap takes ownership of a fer_tensor handle that a shim function
// returned, like the results of this package's operations: it joins the
// scope of the first input that has an open one, else a cleanup frees it if
// it is dropped without Free. For fertorch's own packages over other units of
// the shim (torch/dist); p must be a new handle that nothing else owns. A nil
// p gives nil.
func UnsafeWrap(p unsafe.Pointer, inputs ...*Tensor) *Tensor {
	if p == nil {
		return nil
	}
	return wrap(C.fer_tensor(p), inputs...)
}
