package tensorfile

import "fmt"

// DType is the element type of an entry.
type DType uint8

// The element types a weight file may hold. The zero value is invalid.
const (
	Float32 DType = iota + 1
	Float64
	Float16
	BFloat16
	Int64
	Int32
	Uint8
	Int8
	Bool
)

type dtypeInfo struct {
	name        string // PyTorch's name
	size        int    // bytes per element
	safetensors string // safetensors' dtype code
	storage     string // torch.*Storage class of the .pth format
}

var dtypes = [...]dtypeInfo{
	Float32:  {"float32", 4, "F32", "FloatStorage"},
	Float64:  {"float64", 8, "F64", "DoubleStorage"},
	Float16:  {"float16", 2, "F16", "HalfStorage"},
	BFloat16: {"bfloat16", 2, "BF16", "BFloat16Storage"},
	Int64:    {"int64", 8, "I64", "LongStorage"},
	Int32:    {"int32", 4, "I32", "IntStorage"},
	Uint8:    {"uint8", 1, "U8", "ByteStorage"},
	Int8:     {"int8", 1, "I8", "CharStorage"},
	Bool:     {"bool", 1, "BOOL", "BoolStorage"},
}

// DTypes lists every supported element type.
func DTypes() []DType {
	return []DType{Float32, Float64, Float16, BFloat16, Int64, Int32, Uint8, Int8, Bool}
}

// Valid reports whether d is one of the supported element types.
func (d DType) Valid() bool {
	return d >= Float32 && int(d) < len(dtypes)
}

// String is PyTorch's name of the type ("float32", "bfloat16", ...).
func (d DType) String() string {
	if !d.Valid() {
		return fmt.Sprintf("dtype(%d)", uint8(d))
	}
	return dtypes[d].name
}

// Size is the size of one element in bytes, or 0 for an invalid type.
func (d DType) Size() int {
	if !d.Valid() {
		return 0
	}
	return dtypes[d].size
}

// Safetensors is the type's code in a safetensors header ("F32", "BF16",
// ...), or "" for an invalid type.
func (d DType) Safetensors() string {
	if !d.Valid() {
		return ""
	}
	return dtypes[d].safetensors
}

// ParseDType reads PyTorch's name of an element type ("float32", "int64",
// ...) or a safetensors code ("F32", "I64", ...).
func ParseDType(s string) (DType, error) {
	for _, d := range DTypes() {
		if s == dtypes[d].name || s == dtypes[d].safetensors {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown dtype %q (want float32, float64, float16, bfloat16, int64, int32, uint8, int8 or bool)", s)
}

// dtypeFromSafetensors maps a safetensors dtype code to a DType.
func dtypeFromSafetensors(code string) (DType, bool) {
	for _, d := range DTypes() {
		if code == dtypes[d].safetensors {
			return d, true
		}
	}
	return 0, false
}

// dtypeFromStorage maps a torch.*Storage class name to a DType.
func dtypeFromStorage(class string) (DType, bool) {
	for _, d := range DTypes() {
		if class == dtypes[d].storage {
			return d, true
		}
	}
	return 0, false
}
