package tensorfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"unsafe"
)

// Entry is one named tensor.
type Entry struct {
	// Name is the tensor's key, e.g. "features.0.weight".
	Name string
	// DType is the element type.
	DType DType
	// Shape lists the sizes of the dimensions; it is empty for a 0-dim
	// scalar, which holds one element.
	Shape []int64
	// Data holds the elements: contiguous, row-major, little-endian, exactly
	// NumElements()*DType.Size() bytes. Entries read from one file may share
	// memory (tensors that were views of one storage in a .pth file, or
	// slices of one buffer in a safetensors file), so treat Data as
	// read-only or Clone the entry first.
	Data []byte
}

// File is an ordered list of named tensors, in the order of the file they
// were read from.
type File struct {
	// Entries lists the tensors in file order.
	Entries []Entry
	// Metadata is a safetensors file's "__metadata__" map of strings; it is
	// nil when the file has none, and .pth files never have one.
	Metadata map[string]string
	// Skipped lists, for a .pth file read with PTHOptions.Flatten, the keys
	// of values that are not tensors (numbers, strings, lists) and were left
	// out.
	Skipped []string
}

// Element is the set of Go types that entries convert to and from.
type Element interface {
	~float32 | ~float64 | ~int64 | ~int32 | ~uint8 | ~int8 | ~bool
}

// NumElements returns the product of the entry's shape (1 for a scalar), or
// -1 if a size is negative or the product overflows int64.
func (e *Entry) NumElements() int64 {
	n, err := numElements(e.Shape)
	if err != nil {
		return -1
	}
	return n
}

// Validate checks that the entry has a known type, a valid shape and
// exactly the number of data bytes that its type and shape call for.
func (e *Entry) Validate() error {
	if !e.DType.Valid() {
		return fmt.Errorf("tensor %q: invalid dtype %v", e.Name, e.DType)
	}
	n, err := numElements(e.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", e.Name, err)
	}
	want, ok := mulInt64(n, int64(e.DType.Size()))
	if !ok {
		return fmt.Errorf("tensor %q: shape %v of %v is too large", e.Name, e.Shape, e.DType)
	}
	if int64(len(e.Data)) != want {
		return fmt.Errorf("tensor %q: shape %v of %v needs %d bytes, data has %d", e.Name, e.Shape, e.DType, want, len(e.Data))
	}
	return nil
}

// Clone returns a deep copy of the entry that shares no memory with it.
func (e *Entry) Clone() Entry {
	c := Entry{Name: e.Name, DType: e.DType}
	if e.Shape != nil {
		c.Shape = append([]int64{}, e.Shape...)
	}
	if e.Data != nil {
		c.Data = append([]byte{}, e.Data...)
	}
	return c
}

// NewEntry builds an entry from Go values, which are copied. The entry's
// DType follows from T: float32, float64, int64, int32, uint8, int8 or bool.
func NewEntry[T Element](name string, shape []int64, values []T) (Entry, error) {
	d := dtypeFor[T]()
	n, err := numElements(shape)
	if err != nil {
		return Entry{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	if n != int64(len(values)) {
		return Entry{}, fmt.Errorf("tensor %q: shape %v holds %d elements, got %d values", name, shape, n, len(values))
	}
	e := Entry{Name: name, DType: d, Shape: append([]int64{}, shape...), Data: make([]byte, len(values)*d.Size())}
	encode(e.Data, values)
	return e, nil
}

// dtypeFor maps a Go element type to its DType.
func dtypeFor[T Element]() DType {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Float32:
		return Float32
	case reflect.Float64:
		return Float64
	case reflect.Int64:
		return Int64
	case reflect.Int32:
		return Int32
	case reflect.Uint8:
		return Uint8
	case reflect.Int8:
		return Int8
	case reflect.Bool:
		return Bool
	}
	return 0
}

// Values returns a copy of the entry's elements as a []T, whose type must
// match the entry's DType exactly (use ToFloat32 to convert between
// floating-point types).
func Values[T Element](e *Entry) ([]T, error) {
	d := dtypeFor[T]()
	if e.DType != d {
		return nil, fmt.Errorf("tensor %q is %v, not %v", e.Name, e.DType, d)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	out := make([]T, len(e.Data)/d.Size())
	decode(out, e.Data)
	return out, nil
}

// Float32s returns a copy of a float32 entry's elements.
func (e *Entry) Float32s() ([]float32, error) { return Values[float32](e) }

// Float64s returns a copy of a float64 entry's elements.
func (e *Entry) Float64s() ([]float64, error) { return Values[float64](e) }

// Int64s returns a copy of an int64 entry's elements.
func (e *Entry) Int64s() ([]int64, error) { return Values[int64](e) }

// Int32s returns a copy of an int32 entry's elements.
func (e *Entry) Int32s() ([]int32, error) { return Values[int32](e) }

// Uint8s returns a copy of a uint8 entry's elements.
func (e *Entry) Uint8s() ([]uint8, error) { return Values[uint8](e) }

// Int8s returns a copy of an int8 entry's elements.
func (e *Entry) Int8s() ([]int8, error) { return Values[int8](e) }

// Bools returns a copy of a bool entry's elements (any non-zero byte is
// true).
func (e *Entry) Bools() ([]bool, error) { return Values[bool](e) }

// Float16Bits returns the raw 16-bit patterns of a float16 or bfloat16
// entry.
func (e *Entry) Float16Bits() ([]uint16, error) {
	if e.DType != Float16 && e.DType != BFloat16 {
		return nil, fmt.Errorf("tensor %q is %v, not float16 or bfloat16", e.Name, e.DType)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	out := make([]uint16, len(e.Data)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(e.Data[2*i:])
	}
	return out, nil
}

// ToFloat32 returns the elements of a floating-point entry (float32,
// float64, float16 or bfloat16) converted to float32.
func (e *Entry) ToFloat32() ([]float32, error) {
	switch e.DType {
	case Float32:
		return e.Float32s()
	case Float64:
		v, err := e.Float64s()
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out, nil
	case Float16, BFloat16:
		b, err := e.Float16Bits()
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(b))
		for i, h := range b {
			if e.DType == BFloat16 {
				out[i] = math.Float32frombits(uint32(h) << 16)
			} else {
				out[i] = halfToFloat32(h)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q is %v, not a floating-point type", e.Name, e.DType)
}

// halfToFloat32 converts an IEEE 754 binary16 value to float32 exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // zero
		return math.Float32frombits(sign)
	}
	// Subnormal: value is mant * 2^-24.
	f := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}

var littleEndianHost = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// decode copies little-endian bytes into out.
func decode[T Element](out []T, data []byte) {
	if len(out) == 0 {
		return
	}
	var zero T
	size := int(unsafe.Sizeof(zero))
	if littleEndianHost || size == 1 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*size), data)
		if reflect.TypeFor[T]().Kind() == reflect.Bool {
			// A Go bool must be 0 or 1.
			b := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out))
			for i, v := range b {
				if v > 1 {
					b[i] = 1
				}
			}
		}
		return
	}
	for i := range out {
		p := unsafe.Pointer(&out[i])
		switch size {
		case 2:
			*(*uint16)(p) = binary.LittleEndian.Uint16(data[i*2:])
		case 4:
			*(*uint32)(p) = binary.LittleEndian.Uint32(data[i*4:])
		case 8:
			*(*uint64)(p) = binary.LittleEndian.Uint64(data[i*8:])
		}
	}
}

// encode copies values into data as little-endian bytes.
func encode[T Element](data []byte, values []T) {
	if len(values) == 0 {
		return
	}
	var zero T
	size := int(unsafe.Sizeof(zero))
	if littleEndianHost || size == 1 {
		copy(data, unsafe.Slice((*byte)(unsafe.Pointer(&values[0])), len(values)*size))
		return
	}
	for i := range values {
		p := unsafe.Pointer(&values[i])
		switch size {
		case 2:
			binary.LittleEndian.PutUint16(data[i*2:], *(*uint16)(p))
		case 4:
			binary.LittleEndian.PutUint32(data[i*4:], *(*uint32)(p))
		case 8:
			binary.LittleEndian.PutUint64(data[i*8:], *(*uint64)(p))
		}
	}
}

// Get returns the entry with the given name.
func (f *File) Get(name string) (*Entry, bool) {
	for i := range f.Entries {
		if f.Entries[i].Name == name {
			return &f.Entries[i], true
		}
	}
	return nil, false
}

// Names returns the entries' names in file order.
func (f *File) Names() []string {
	names := make([]string, len(f.Entries))
	for i := range f.Entries {
		names[i] = f.Entries[i].Name
	}
	return names
}

// NumBytes returns the total size of the entries' data.
func (f *File) NumBytes() int64 {
	var n int64
	for i := range f.Entries {
		n += int64(len(f.Entries[i].Data))
	}
	return n
}

// Validate checks every entry (see Entry.Validate) and that names are
// unique.
func (f *File) Validate() error {
	seen := make(map[string]bool, len(f.Entries))
	for i := range f.Entries {
		e := &f.Entries[i]
		if seen[e.Name] {
			return fmt.Errorf("duplicate tensor name %q", e.Name)
		}
		seen[e.Name] = true
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return nil
}

var errShape = errors.New("invalid shape")

// numElements returns the product of shape, refusing negative sizes and
// overflow.
func numElements(shape []int64) (int64, error) {
	n := int64(1)
	for _, s := range shape {
		if s < 0 {
			return 0, fmt.Errorf("%w %v: negative size", errShape, shape)
		}
		var ok bool
		if n, ok = mulInt64(n, s); !ok {
			return 0, fmt.Errorf("%w %v: element count overflows int64", errShape, shape)
		}
	}
	return n, nil
}

// mulInt64 multiplies two non-negative int64 values, reporting overflow.
func mulInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// addInt64 adds two non-negative int64 values, reporting overflow.
func addInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}
