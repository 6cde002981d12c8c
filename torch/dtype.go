package torch

/*
#include "fertorch.h"
*/
import "C"

import "fmt"

// DType is a tensor element type.
type DType int

// The element types fertorch uses. Values match the shim's FER_* codes.
const (
	Float32  DType = C.FER_FLOAT32
	Float64  DType = C.FER_FLOAT64
	Float16  DType = C.FER_FLOAT16
	BFloat16 DType = C.FER_BFLOAT16
	Int64    DType = C.FER_INT64
	Int32    DType = C.FER_INT32
	Uint8    DType = C.FER_UINT8
	Int8     DType = C.FER_INT8
	Bool     DType = C.FER_BOOL
)

var dtypeNames = [...]string{"float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "int8", "bool"}
var dtypeSizes = [...]int{4, 8, 2, 2, 8, 4, 1, 1, 1}

// String is the PyTorch name of the type ("float32", "bfloat16", ...).
func (d DType) String() string {
	if d < 0 || int(d) >= len(dtypeNames) {
		return fmt.Sprintf("dtype(%d)", int(d))
	}
	return dtypeNames[d]
}

// Size is the size of one element in bytes (0 for an unknown type).
func (d DType) Size() int {
	if d < 0 || int(d) >= len(dtypeSizes) {
		return 0
	}
	return dtypeSizes[d]
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == Float32 || d == Float64 || d == Float16 || d == BFloat16
}

// ParseDType reads a PyTorch dtype name ("float32", "bf16", "fp16", ...).
func ParseDType(s string) (DType, error) {
	switch s {
	case "float32", "float", "fp32", "f32":
		return Float32, nil
	case "float64", "double", "fp64", "f64":
		return Float64, nil
	case "float16", "half", "fp16", "f16":
		return Float16, nil
	case "bfloat16", "bf16":
		return BFloat16, nil
	case "int64", "long":
		return Int64, nil
	case "int32", "int":
		return Int32, nil
	case "uint8":
		return Uint8, nil
	case "int8":
		return Int8, nil
	case "bool":
		return Bool, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want float32, float16, bfloat16, float64, int64, int32, uint8, int8 or bool)", s)
}
