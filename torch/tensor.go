package torch

/*
#include <stdlib.h>
#include "fertorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Tensor is a handle to a libtorch tensor. It is released by Free or by the
// Scope that owns it; a Tensor must not be used after it is released.
// A Tensor is not safe for concurrent Free; concurrent read-only use is.
type Tensor struct {
	h C.fer_tensor
	// scope owns the handle (slot is its index there); nil when unscoped.
	scope *Scope
	slot  int
	// cleanup frees an unscoped handle that was never freed explicitly.
	cleanup    runtime.Cleanup
	hasCleanup bool
}

// errFreed is returned when a released (or nil) tensor is used.
var errFreed = errors.New("tensor is nil or already released")

// wrap takes ownership of a new shim handle. The result joins the scope of
// the first input that has an open one; otherwise a cleanup frees it if it
// becomes unreachable without Free.
func wrap(h C.fer_tensor, inputs ...*Tensor) *Tensor {
	t := &Tensor{h: h}
	for _, in := range inputs {
		if in != nil && in.scope != nil && in.scope.attach(t) {
			return t
		}
	}
	t.addCleanup()
	return t
}

func (t *Tensor) addCleanup() {
	t.cleanup = runtime.AddCleanup(t, func(h C.fer_tensor) { C.fer_tensor_free(h) }, t.h)
	t.hasCleanup = true
}

func (t *Tensor) stopCleanup() {
	if t.hasCleanup {
		t.cleanup.Stop()
		t.hasCleanup = false
	}
}

// Free releases the tensor now. It is safe to call more than once and on
// nil. A tensor owned by a scope may be freed early.
func (t *Tensor) Free() {
	if t == nil || t.h == nil {
		return
	}
	if t.scope != nil {
		if h := t.scope.detach(t); h != nil {
			C.fer_tensor_free(h)
		}
	} else {
		t.stopCleanup()
		C.fer_tensor_free(t.h)
	}
	t.h = nil
	t.scope = nil
}

// Released reports whether the tensor has been freed, directly or by its
// scope (or is nil).
func (t *Tensor) Released() bool { return t.handle() == nil }

// handle returns the shim handle, or nil for a released tensor.
func (t *Tensor) handle() C.fer_tensor {
	if t == nil || (t.scope != nil && t.scope.closed.Load()) {
		return nil
	}
	return t.h
}

// live checks that every tensor is usable, naming the operation otherwise.
func live(op string, ts ...named) error {
	for _, n := range ts {
		if n.t.handle() == nil {
			return &Error{Op: op, Msg: n.role + " " + errFreed.Error()}
		}
	}
	return nil
}

// Scope owns the tensors created in it and releases them all on Close.
// Operation results join the scope of their first scoped input; Own adds a
// tensor explicitly and Keep takes one out so that it outlives the scope.
// Scoped tensors carry no per-tensor cleanup, which keeps operations cheap;
// a scope that is dropped without Close still releases its tensors once it
// and all of them are unreachable. A Scope is safe for use by several
// goroutines.
type Scope struct {
	closed atomic.Bool
	owned  *scopeHandles
}

// scopeHandles is the scope's list of handles, kept apart from the Scope so
// that the scope's cleanup can free them without keeping the Scope alive.
type scopeHandles struct {
	mu      sync.Mutex
	handles []C.fer_tensor
}

func (o *scopeHandles) freeAll() {
	o.mu.Lock()
	hs := o.handles
	o.handles = nil
	o.mu.Unlock()
	for _, h := range hs {
		if h != nil {
			C.fer_tensor_free(h)
		}
	}
}

// NewScope opens an empty scope.
func NewScope() *Scope {
	s := &Scope{owned: &scopeHandles{}}
	runtime.AddCleanup(s, (*scopeHandles).freeAll, s.owned)
	return s
}

// attach makes s the owner of t's handle; false when s is closed.
func (s *Scope) attach(t *Tensor) bool {
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	t.scope = s
	t.slot = len(s.owned.handles)
	s.owned.handles = append(s.owned.handles, t.h)
	return true
}

// detach removes t's handle from s and returns it (nil if s already freed it).
func (s *Scope) detach(t *Tensor) C.fer_tensor {
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	if t.slot >= len(s.owned.handles) {
		return nil
	}
	h := s.owned.handles[t.slot]
	s.owned.handles[t.slot] = nil
	return h
}

// Own adds t to the scope and returns its arguments unchanged, so it can
// wrap a constructor: x, err := scope.Own(torch.FromFloat32s(data, shape)).
func (s *Scope) Own(t *Tensor, err error) (*Tensor, error) {
	if t.handle() == nil || t.scope == s {
		return t, err
	}
	if t.scope != nil {
		t.scope.detach(t)
		t.scope = nil
	}
	if s.attach(t) {
		t.stopCleanup()
	} else if !t.hasCleanup {
		t.addCleanup()
	}
	return t, err
}

// Keep takes tensors out of the scope: they survive Close and the caller
// becomes responsible for freeing them.
func (s *Scope) Keep(ts ...*Tensor) {
	for _, t := range ts {
		if t.handle() == nil || t.scope != s {
			continue
		}
		if s.detach(t) != nil {
			t.scope = nil
			t.addCleanup()
		}
	}
}

// Len is the number of tensors the scope still owns.
func (s *Scope) Len() int {
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	n := 0
	for _, h := range s.owned.handles {
		if h != nil {
			n++
		}
	}
	return n
}

// Close frees every tensor the scope still owns; they report Released.
// Tensors computed from them afterwards belong to no scope.
func (s *Scope) Close() {
	s.owned.mu.Lock()
	s.closed.Store(true)
	s.owned.mu.Unlock()
	s.owned.freeAll()
}

// ---- metadata --------------------------------------------------------------

// Dim is the number of dimensions (0 for a released tensor).
func (t *Tensor) Dim() int { return int(C.fer_dim(t.handle())) }

// Shape is the size of each dimension.
func (t *Tensor) Shape() []int64 {
	h := t.handle()
	if h == nil {
		return nil
	}
	n := int(C.fer_dim(h))
	shape := make([]int64, n)
	if n > 0 {
		C.fer_shape(h, (*C.int64_t)(unsafe.Pointer(&shape[0])))
	}
	return shape
}

// Size is the size of dimension dim (negative counts from the end).
func (t *Tensor) Size(dim int) int64 {
	shape := t.Shape()
	if dim < 0 {
		dim += len(shape)
	}
	if dim < 0 || dim >= len(shape) {
		return 0
	}
	return shape[dim]
}

// Numel is the number of elements.
func (t *Tensor) Numel() int64 { return int64(C.fer_numel(t.handle())) }

// DType is the element type.
func (t *Tensor) DType() DType { return DType(C.fer_dtype(t.handle())) }

// Device is where the tensor's memory lives.
func (t *Tensor) Device() Device {
	var typ, idx C.int
	C.fer_device(t.handle(), &typ, &idx)
	return Device{Type: DeviceType(typ), Index: int(idx)}
}

// IsContiguous reports whether the elements are in row-major order.
func (t *Tensor) IsContiguous() bool { return C.fer_is_contiguous(t.handle()) != 0 }

// IsPinned reports whether a CPU tensor is in page-locked memory.
func (t *Tensor) IsPinned() bool { return C.fer_is_pinned(t.handle()) != 0 }

// String describes the tensor briefly: shape, dtype and device.
func (t *Tensor) String() string { return "Tensor(" + t.describe() + ")" }

func (t *Tensor) describe() string {
	if t.Released() {
		return "<released>"
	}
	s := fmt.Sprint(t.Shape()) + " " + t.DType().String()
	if d := t.Device(); d.Type != DeviceCPU {
		s += " " + d.String()
	}
	return s
}

// ---- creation ---------------------------------------------------------------

// Options selects the element type and device of a new tensor; the zero
// value means float32 on the CPU.
type Options struct {
	DType  DType
	Device Device
	// Pinned allocates page-locked host memory (CPU tensors, Empty only),
	// which makes non-blocking copies to a GPU possible.
	Pinned bool
}

func shapePtr(shape []int64) (*C.int64_t, C.int) {
	if len(shape) == 0 {
		return nil, 0
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0])), C.int(len(shape))
}

func numelOf(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		n *= d
	}
	return n, nil
}

// fromData copies raw element bytes into a new tensor.
func fromData(op string, ptr unsafe.Pointer, nbytes int, count int, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	want, err := numelOf(shape)
	if err != nil {
		return nil, &Error{Op: op, Msg: err.Error()}
	}
	if int64(count) != want {
		return nil, &Error{Op: op, Msg: fmt.Sprintf("%d values do not fill shape %v (%d elements)", count, shape, want)}
	}
	sp, nd := shapePtr(shape)
	var out C.fer_tensor
	msg := C.fer_from_data(ptr, C.int64_t(nbytes), sp, nd, C.int(dtype), C.int(dev.Type), C.int(dev.Index), &out)
	if err := takeError(op, msg); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

func slicePtr[E any](s []E) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// FromFloat32s copies data into a new float32 CPU tensor of the given shape.
func FromFloat32s(data []float32, shape ...int64) (*Tensor, error) {
	return fromData("from_float32s", slicePtr(data), 4*len(data), len(data), shape, Float32, CPU())
}

// FromFloat64s copies data into a new float64 CPU tensor.
func FromFloat64s(data []float64, shape ...int64) (*Tensor, error) {
	return fromData("from_float64s", slicePtr(data), 8*len(data), len(data), shape, Float64, CPU())
}

// FromInt64s copies data into a new int64 CPU tensor.
func FromInt64s(data []int64, shape ...int64) (*Tensor, error) {
	return fromData("from_int64s", slicePtr(data), 8*len(data), len(data), shape, Int64, CPU())
}

// FromUint8s copies data into a new uint8 CPU tensor.
func FromUint8s(data []uint8, shape ...int64) (*Tensor, error) {
	return fromData("from_uint8s", slicePtr(data), len(data), len(data), shape, Uint8, CPU())
}

// FromBools copies data into a new bool CPU tensor.
func FromBools(data []bool, shape ...int64) (*Tensor, error) {
	return fromData("from_bools", slicePtr(data), len(data), len(data), shape, Bool, CPU())
}

// FromBytes copies raw little-endian element bytes of the given dtype into a
// new tensor on dev.
func FromBytes(data []byte, dtype DType, dev Device, shape ...int64) (*Tensor, error) {
	size := dtype.Size()
	if size == 0 {
		return nil, &Error{Op: "from_bytes", Msg: "unknown dtype " + dtype.String()}
	}
	if len(data)%size != 0 {
		return nil, &Error{Op: "from_bytes", Msg: fmt.Sprintf("%d bytes is not a whole number of %s elements", len(data), dtype)}
	}
	return fromData("from_bytes", slicePtr(data), len(data), len(data)/size, shape, dtype, dev)
}

// Empty is an uninitialised tensor.
func Empty(shape []int64, opts Options) (*Tensor, error) {
	sp, nd := shapePtr(shape)
	var out C.fer_tensor
	pin := 0
	if opts.Pinned {
		pin = 1
	}
	msg := C.fer_empty(sp, nd, C.int(opts.DType), C.int(opts.Device.Type), C.int(opts.Device.Index), C.int(pin), &out)
	if err := takeError("empty", msg); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

// Full is a tensor with every element set to value.
func Full(shape []int64, value float64, opts Options) (*Tensor, error) {
	sp, nd := shapePtr(shape)
	var out C.fer_tensor
	msg := C.fer_full(sp, nd, C.double(value), C.int(opts.DType), C.int(opts.Device.Type), C.int(opts.Device.Index), &out)
	if err := takeError("full", msg); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

// Zeros is a tensor of zeros.
func Zeros(shape []int64, opts Options) (*Tensor, error) { return Full(shape, 0, opts) }

// Ones is a tensor of ones.
func Ones(shape []int64, opts Options) (*Tensor, error) { return Full(shape, 1, opts) }

func random(op string, normal int, shape []int64, opts Options) (*Tensor, error) {
	sp, nd := shapePtr(shape)
	var out C.fer_tensor
	msg := C.fer_rand(sp, nd, C.int(normal), C.int(opts.DType), C.int(opts.Device.Type), C.int(opts.Device.Index), &out)
	if err := takeError(op, msg); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

// Rand is uniform noise in [0, 1) from libtorch's generator (see ManualSeed).
func Rand(shape []int64, opts Options) (*Tensor, error) { return random("rand", 0, shape, opts) }

// Randn is standard normal noise from libtorch's generator.
func Randn(shape []int64, opts Options) (*Tensor, error) { return random("randn", 1, shape, opts) }

// Arange is 0, 1, ..., n-1.
func Arange(n int64, opts Options) (*Tensor, error) {
	var out C.fer_tensor
	msg := C.fer_arange(C.int64_t(n), C.int(opts.DType), C.int(opts.Device.Type), C.int(opts.Device.Index), &out)
	if err := takeError("arange", msg); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

// ---- copying data out and in -------------------------------------------------

func (t *Tensor) copyOut(op string, want DType, ptr unsafe.Pointer, nbytes int) error {
	if err := live(op, named{"tensor", t}); err != nil {
		return err
	}
	if got := t.DType(); got != want {
		return &Error{Op: op, Inputs: []string{"tensor " + t.describe()}, Msg: "dtype is " + got.String() + ", not " + want.String() + " (convert with To first)"}
	}
	return takeError(op, C.fer_copy_to_host(t.h, ptr, C.int64_t(nbytes)), named{"tensor", t})
}

// Float32s copies a float32 tensor's elements (any device) into a new slice.
func (t *Tensor) Float32s() ([]float32, error) {
	out := make([]float32, t.Numel())
	return out, t.copyOut("float32s", Float32, slicePtr(out), 4*len(out))
}

// Float64s copies a float64 tensor's elements into a new slice.
func (t *Tensor) Float64s() ([]float64, error) {
	out := make([]float64, t.Numel())
	return out, t.copyOut("float64s", Float64, slicePtr(out), 8*len(out))
}

// Int64s copies an int64 tensor's elements into a new slice.
func (t *Tensor) Int64s() ([]int64, error) {
	out := make([]int64, t.Numel())
	return out, t.copyOut("int64s", Int64, slicePtr(out), 8*len(out))
}

// Uint8s copies a uint8 tensor's elements into a new slice.
func (t *Tensor) Uint8s() ([]uint8, error) {
	out := make([]uint8, t.Numel())
	return out, t.copyOut("uint8s", Uint8, slicePtr(out), len(out))
}

// Bools copies a bool tensor's elements into a new slice.
func (t *Tensor) Bools() ([]bool, error) {
	out := make([]bool, t.Numel())
	return out, t.copyOut("bools", Bool, slicePtr(out), len(out))
}

// Bytes copies the raw little-endian element bytes (any dtype, any device).
func (t *Tensor) Bytes() ([]byte, error) {
	out := make([]byte, int(t.Numel())*t.DType().Size())
	return out, t.copyOut("bytes", t.DType(), slicePtr(out), len(out))
}

// CopyFloat32s overwrites a float32 tensor (any device) with src, which must
// hold exactly Numel values.
func (t *Tensor) CopyFloat32s(src []float32) error {
	return t.copyIn("copy_float32s", Float32, slicePtr(src), 4*len(src))
}

// CopyInt64s overwrites an int64 tensor with src.
func (t *Tensor) CopyInt64s(src []int64) error {
	return t.copyIn("copy_int64s", Int64, slicePtr(src), 8*len(src))
}

func (t *Tensor) copyIn(op string, want DType, ptr unsafe.Pointer, nbytes int) error {
	if err := live(op, named{"tensor", t}); err != nil {
		return err
	}
	if got := t.DType(); got != want {
		return &Error{Op: op, Inputs: []string{"tensor " + t.describe()}, Msg: "dtype is " + got.String() + ", not " + want.String()}
	}
	return takeError(op, C.fer_copy_from_host(t.h, ptr, C.int64_t(nbytes)), named{"tensor", t})
}

// HostFloat32s exposes the memory of a contiguous float32 CPU tensor as a Go
// slice without copying (for filling pinned staging buffers). The slice is
// valid only while the tensor is alive.
func (t *Tensor) HostFloat32s() ([]float32, error) {
	return hostSlice[float32](t, "host_float32s", Float32)
}

// HostInt64s is HostFloat32s for an int64 tensor.
func (t *Tensor) HostInt64s() ([]int64, error) { return hostSlice[int64](t, "host_int64s", Int64) }

func hostSlice[E any](t *Tensor, op string, want DType) ([]E, error) {
	if err := live(op, named{"tensor", t}); err != nil {
		return nil, err
	}
	if t.DType() != want {
		return nil, &Error{Op: op, Inputs: []string{"tensor " + t.describe()}, Msg: "not " + want.String()}
	}
	p := C.fer_data_ptr(t.h)
	if p == nil {
		return nil, &Error{Op: op, Inputs: []string{"tensor " + t.describe()}, Msg: "not a contiguous CPU tensor"}
	}
	return unsafe.Slice((*E)(p), t.Numel()), nil
}

// Item is the value of a one-element tensor as a float64.
func (t *Tensor) Item() (float64, error) {
	if err := live("item", named{"tensor", t}); err != nil {
		return 0, err
	}
	var v C.double
	if err := takeError("item", C.fer_item(t.h, &v), named{"tensor", t}); err != nil {
		return 0, err
	}
	return float64(v), nil
}
