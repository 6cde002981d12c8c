// Package torch is the Go API over libtorch, through the C shim in cgo/
// (libfertorch.so): tensors, devices and dtypes, the operations that VGG16
// training and evaluation need, autograd, and runtime settings.
//
// # Memory
//
// Tensor memory (on a GPU in particular) cannot wait for Go's garbage
// collector, so release is deterministic. A tensor is freed by Free, or by
// the Scope that owns it when the scope closes. An operation's result joins
// the scope of its first scoped input, so everything computed from a batch
// created in a per-step scope is released when the step ends, while
// parameters (created outside any scope) live until their owner frees them.
// A cleanup attached to each Tensor is only a safety net. LiveTensors counts
// the handles not yet released, so tests can prove a loop leaks nothing.
//
// # Errors
//
// Operations return an error instead of aborting: a bad shape gives an
// *Error naming the operation, its inputs' shapes and libtorch's message.
//
// # Threads
//
// Grad mode and autocast are libtorch thread-local settings. NoGrad and
// Autocast lock the calling goroutine to its OS thread while they run.
package torch

/*
#cgo CFLAGS: -I${SRCDIR}/../cgo
#cgo LDFLAGS: -L${SRCDIR}/../build -lfertorch -Wl,-rpath,${SRCDIR}/../build
#include <stdlib.h>
#include "fertorch.h"
*/
import "C"

import (
	"fmt"
	"strings"
)

// Error is a failure reported by libtorch for one operation.
type Error struct {
	// Op is the operation, e.g. "conv2d".
	Op string
	// Inputs describes the operation's tensor inputs ("input [2 3] float32").
	Inputs []string
	// Msg is libtorch's message without its backtrace.
	Msg string
}

func (e *Error) Error() string {
	if len(e.Inputs) == 0 {
		return fmt.Sprintf("torch: %s: %s", e.Op, e.Msg)
	}
	return fmt.Sprintf("torch: %s(%s): %s", e.Op, strings.Join(e.Inputs, ", "), e.Msg)
}

// named pairs a role ("input", "weight") with a tensor for error messages.
type named struct {
	role string
	t    *Tensor
}

// takeError converts a shim error string (nil for success) into an *Error and
// releases the C string.
func takeError(op string, msg *C.char, inputs ...named) error {
	if msg == nil {
		return nil
	}
	text := C.GoString(msg)
	C.fer_free_string(msg)
	e := &Error{Op: op, Msg: text}
	for _, in := range inputs {
		e.Inputs = append(e.Inputs, in.role+" "+in.t.describe())
	}
	return e
}

// Version is the version of the libtorch the shim was compiled against.
func Version() string { return C.GoString(C.fer_torch_version()) }

// BuiltWithCUDA reports whether libfertorch was compiled against a
// CUDA-enabled libtorch.
func BuiltWithCUDA() bool { return C.fer_built_with_cuda() != 0 }

// LiveTensors is the number of tensor handles created and not yet released.
func LiveTensors() int64 { return int64(C.fer_live_tensors()) }
