package tensorfile

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestDTypes(t *testing.T) {
	want := []struct {
		name, st string
		size     int
	}{
		{"float32", "F32", 4}, {"float64", "F64", 8}, {"float16", "F16", 2}, {"bfloat16", "BF16", 2},
		{"int64", "I64", 8}, {"int32", "I32", 4}, {"uint8", "U8", 1}, {"int8", "I8", 1}, {"bool", "BOOL", 1},
	}
	ds := DTypes()
	if len(ds) != len(want) {
		t.Fatalf("%d dtypes", len(ds))
	}
	for i, d := range ds {
		if d.String() != want[i].name || d.Safetensors() != want[i].st || d.Size() != want[i].size || !d.Valid() {
			t.Errorf("%d: %s %s %d", i, d, d.Safetensors(), d.Size())
		}
		for _, s := range []string{want[i].name, want[i].st} {
			if p, err := ParseDType(s); err != nil || p != d {
				t.Errorf("ParseDType(%q) = %v, %v", s, p, err)
			}
		}
	}
	var bad DType
	if bad.Valid() || bad.Size() != 0 || bad.String() != "dtype(0)" || DType(200).Safetensors() != "" {
		t.Error("the zero DType is not invalid")
	}
	if _, err := ParseDType("complex64"); err == nil || !strings.Contains(err.Error(), `unknown dtype "complex64"`) {
		t.Errorf("err = %v", err)
	}
}

func TestNewEntryAndValues(t *testing.T) {
	e, err := NewEntry("w", []int64{2, 2}, []float32{1, -2, 3.5, float32(math.Inf(-1))})
	if err != nil {
		t.Fatal(err)
	}
	if e.DType != Float32 || e.NumElements() != 4 || len(e.Data) != 16 {
		t.Fatalf("%+v", e)
	}
	// Little-endian bytes of 1.0f and -2.0f.
	if got := e.Data[:8]; !reflect.DeepEqual(got, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}) {
		t.Errorf("data % x", got)
	}
	v, err := e.Float32s()
	if err != nil || !reflect.DeepEqual(v, []float32{1, -2, 3.5, float32(math.Inf(-1))}) {
		t.Errorf("Float32s = %v, %v", v, err)
	}
	if _, err := e.Int64s(); err == nil || err.Error() != `tensor "w" is float32, not int64` {
		t.Errorf("err = %v", err)
	}
	if _, err := NewEntry("x", []int64{3}, []int8{1, 2}); err == nil || err.Error() != `tensor "x": shape [3] holds 3 elements, got 2 values` {
		t.Errorf("err = %v", err)
	}
	if _, err := NewEntry("x", []int64{-1}, []int8{}); err == nil || !strings.Contains(err.Error(), "negative size") {
		t.Errorf("err = %v", err)
	}

	type myFloat float32
	m, err := NewEntry("m", nil, []myFloat{2.5})
	if err != nil || m.DType != Float32 || m.NumElements() != 1 {
		t.Errorf("named type: %+v, %v", m, err)
	}
	if got, err := Values[myFloat](&m); err != nil || got[0] != 2.5 {
		t.Errorf("Values[myFloat] = %v, %v", got, err)
	}

	for _, c := range []struct {
		e    Entry
		want any
	}{
		{mustEntry(t, "a", []int64{2}, []float64{math.Pi, -0.0}), []float64{math.Pi, math.Copysign(0, -1)}},
		{mustEntry(t, "b", []int64{2}, []int64{math.MinInt64, 7}), []int64{math.MinInt64, 7}},
		{mustEntry(t, "c", []int64{2}, []int32{math.MinInt32, 7}), []int32{math.MinInt32, 7}},
		{mustEntry(t, "d", []int64{2}, []uint8{255, 0}), []uint8{255, 0}},
		{mustEntry(t, "e", []int64{2}, []int8{-128, 127}), []int8{-128, 127}},
		{mustEntry(t, "f", []int64{3}, []bool{true, false, true}), []bool{true, false, true}},
	} {
		var got any
		var err error
		switch c.e.DType {
		case Float64:
			got, err = c.e.Float64s()
		case Int64:
			got, err = c.e.Int64s()
		case Int32:
			got, err = c.e.Int32s()
		case Uint8:
			got, err = c.e.Uint8s()
		case Int8:
			got, err = c.e.Int8s()
		case Bool:
			got, err = c.e.Bools()
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, %v, want %v", c.e.Name, got, err, c.want)
		}
	}

	// Any non-zero byte reads as true.
	b := Entry{Name: "b", DType: Bool, Shape: []int64{3}, Data: []byte{0, 2, 255}}
	if got, _ := b.Bools(); !reflect.DeepEqual(got, []bool{false, true, true}) {
		t.Errorf("Bools = %v", got)
	}
	// Helpers check the data length.
	short := Entry{Name: "s", DType: Int32, Shape: []int64{2}, Data: []byte{1, 2, 3}}
	if _, err := short.Int32s(); err == nil || err.Error() != `tensor "s": shape [2] of int32 needs 8 bytes, data has 3` {
		t.Errorf("err = %v", err)
	}
}

func TestClone(t *testing.T) {
	e := mustEntry(t, "w", []int64{2}, []int32{1, 2})
	c := e.Clone()
	c.Data[0] = 9
	c.Shape[0] = 5
	if e.Data[0] != 1 || e.Shape[0] != 2 {
		t.Error("Clone shares memory")
	}
}

// halfRef converts binary16 with math.Ldexp, as a reference.
func halfRef(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}

func TestToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got, want := float64(halfToFloat32(uint16(h))), halfRef(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(got) {
				t.Fatalf("half %#04x: %v, want NaN", h, got)
			}
			continue
		}
		if got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("half %#04x: %v, want %v", h, got, want)
		}
	}
	half := Entry{Name: "h", DType: Float16, Shape: []int64{3}, Data: []byte{0x00, 0x3c, 0xff, 0x7b, 0x01, 0x00}}
	if v, err := half.ToFloat32(); err != nil || !reflect.DeepEqual(v, []float32{1, 65504, float32(math.Ldexp(1, -24))}) {
		t.Errorf("float16 = %v, %v", v, err)
	}
	bf := Entry{Name: "b", DType: BFloat16, Shape: []int64{2}, Data: []byte{0x80, 0x3f, 0x49, 0xc0}}
	if v, err := bf.ToFloat32(); err != nil || !reflect.DeepEqual(v, []float32{1, -3.140625}) {
		t.Errorf("bfloat16 = %v, %v", v, err)
	}
	if bits, err := bf.Float16Bits(); err != nil || !reflect.DeepEqual(bits, []uint16{0x3f80, 0xc049}) {
		t.Errorf("Float16Bits = %v, %v", bits, err)
	}
	d := mustEntry(t, "d", []int64{1}, []float64{0.1})
	if v, err := d.ToFloat32(); err != nil || v[0] != float32(0.1) {
		t.Errorf("float64 = %v, %v", v, err)
	}
	i := mustEntry(t, "i", []int64{1}, []int64{1})
	if _, err := i.ToFloat32(); err == nil || err.Error() != `tensor "i" is int64, not a floating-point type` {
		t.Errorf("err = %v", err)
	}
}

func TestFileHelpers(t *testing.T) {
	f := sampleFile(t)
	if e, ok := f.Get("ids"); !ok || e.DType != Int64 {
		t.Errorf("Get(ids) = %v, %v", e, ok)
	}
	if _, ok := f.Get("nope"); ok {
		t.Error("Get(nope) found something")
	}
	var want int64
	for _, e := range f.Entries {
		want += int64(len(e.Data))
	}
	if f.NumBytes() != want || f.NumBytes() != 24+3+16+4+8+2+3+2+8+0+4 {
		t.Errorf("NumBytes = %d", f.NumBytes())
	}
	if err := f.Validate(); err != nil {
		t.Error(err)
	}
}
