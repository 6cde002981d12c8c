package tensorfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
)

// sampleFile has every dtype, a scalar, an empty tensor and metadata, in an
// order that is neither sorted nor grouped by element size.
func sampleFile(t testing.TB) *File {
	t.Helper()
	f := &File{Metadata: map[string]string{"format": "pt", "quote\"<&>": "ünïcode \n value"}}
	add := func(e Entry, err error) {
		if err != nil {
			t.Fatal(err)
		}
		f.Entries = append(f.Entries, e)
	}
	add(NewEntry("features.0.weight", []int64{2, 3}, []float32{1.5, -2, float32(math.Inf(1)), 0, 3.25, -0.125}))
	add(NewEntry("mask", []int64{3}, []bool{true, false, true}))
	add(NewEntry("ids", []int64{2}, []int64{math.MinInt64, math.MaxInt64}))
	add(Entry{Name: "half", DType: Float16, Shape: []int64{2}, Data: []byte{0x00, 0x3c, 0x00, 0xc0}}, nil) // 1, -2
	add(NewEntry("i32", []int64{1, 2}, []int32{-7, 1 << 30}))
	add(Entry{Name: "bf16", DType: BFloat16, Shape: []int64{1}, Data: []byte{0x80, 0x3f}}, nil) // 1
	add(NewEntry("u8", []int64{3}, []uint8{0, 128, 255}))
	add(NewEntry("i8", []int64{2}, []int8{-128, 127}))
	add(NewEntry("scalar", []int64{}, []float64{math.Pi}))
	add(NewEntry("empty", []int64{0, 5}, []float32{}))
	add(NewEntry("ünïcode name", []int64{1}, []float32{7}))
	return f
}

func writeSafetensors(t testing.TB, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := f.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestSafetensorsRoundTrip(t *testing.T) {
	want := sampleFile(t)
	data := writeSafetensors(t, want)

	hlen := binary.LittleEndian.Uint64(data)
	if (8+hlen)%8 != 0 {
		t.Errorf("header ends at byte %d, not a multiple of 8", 8+hlen)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+hlen], &header); err != nil {
		t.Fatal(err)
	}
	for i := range want.Entries {
		e := &want.Entries[i]
		var info struct {
			DType       string  `json:"dtype"`
			Shape       []int64 `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(header[e.Name], &info); err != nil {
			t.Fatal(err)
		}
		if info.DType != e.DType.Safetensors() || info.DataOffsets[0]%int64(e.DType.Size()) != 0 {
			t.Errorf("%s: header %+v: wrong dtype or unaligned", e.Name, info)
		}
	}

	got, err := ReadSafetensors(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("metadata %v, want %v", got.Metadata, want.Metadata)
	}
	if !reflect.DeepEqual(got.Names(), want.Names()) {
		t.Errorf("names %v, want %v", got.Names(), want.Names())
	}
	for i := range want.Entries {
		g, w := got.Entries[i], want.Entries[i]
		if g.DType != w.DType || !reflect.DeepEqual(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: got %v %v %x, want %v %v %x", w.Name, g.DType, g.Shape, g.Data, w.DType, w.Shape, w.Data)
		}
	}
	// Writing what was read gives the same bytes.
	if again := writeSafetensors(t, got); !bytes.Equal(again, data) {
		t.Error("writing a file read back does not reproduce it")
	}
	// A file with no tensors and no metadata.
	empty := writeSafetensors(t, &File{})
	if string(empty[8:]) != "{}      " {
		t.Errorf("empty file header %q", empty[8:])
	}
	if f, err := ReadSafetensors(bytes.NewReader(empty), int64(len(empty))); err != nil || len(f.Entries) != 0 || f.Metadata != nil {
		t.Errorf("empty file: %v, %v", f, err)
	}
}

func TestSafetensorsWriteRefusesInvalidFiles(t *testing.T) {
	ok := mustEntry(t, "w", []int64{2}, []float32{1, 2})
	cases := []struct {
		f    *File
		want string
	}{
		{&File{Entries: []Entry{ok, ok}}, `duplicate tensor name "w"`},
		{&File{Entries: []Entry{{Name: "x", DType: Float32, Shape: []int64{3}, Data: make([]byte, 8)}}}, `tensor "x": shape [3] of float32 needs 12 bytes, data has 8`},
		{&File{Entries: []Entry{{Name: "x", Shape: []int64{1}, Data: make([]byte, 1)}}}, `tensor "x": invalid dtype dtype(0)`},
		{&File{Entries: []Entry{{Name: "x", DType: Int8, Shape: []int64{-1}}}}, "negative size"},
		{&File{Entries: []Entry{{Name: "__metadata__", DType: Int8, Shape: []int64{0}, Data: []byte{}}}}, `"__metadata__" is reserved`},
		{&File{Entries: []Entry{{Name: "\xff", DType: Int8, Shape: []int64{0}, Data: []byte{}}}}, "not valid UTF-8"},
	}
	for _, c := range cases {
		_, err := c.f.WriteTo(&bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
}

// stFile assembles a safetensors file from a header string and a buffer.
func stFile(header string, buf []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), buf...)
}

func TestSafetensorsRejectsCorruptFiles(t *testing.T) {
	buf8 := make([]byte, 8)
	w := `"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"too short", []byte{1, 2, 3}, "file of 3 bytes is too short"},
		{"header past the end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "header length 100 exceeds the 2 bytes after the length field"},
		{"header over the limit", binary.LittleEndian.AppendUint64(nil, 200_000_000), "header length 200000000 exceeds the limit of 100000000 bytes"},
		{"not an object", stFile(`["x"]`, nil), "header does not start with '{'"},
		{"bad json", stFile(`{"w":{"dtype":"F32",}}`, nil), `tensor "w": invalid character '}'`},
		{"truncated json", stFile(`{"w":`, nil), `tensor "w": the header JSON ends early`},
		{"invalid utf-8", stFile("{\"\xff\":1}", nil), "not valid UTF-8"},
		{"trailing data", stFile(`{`+w+`}xx`, buf8), "2 bytes of trailing data"},
		{"missing field", stFile(`{"w":{"dtype":"F32","shape":[2]}}`, nil), `tensor "w": header entry needs dtype, shape and data_offsets`},
		{"unknown dtype", stFile(`{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}`, buf8[:2]), `tensor "w": unsupported dtype "F8_E4M3"`},
		{"negative shape", stFile(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, buf8), `tensor "w": json: cannot unmarshal number -2`},
		{"float offset", stFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}}`, buf8), `tensor "w": json: cannot unmarshal number 8.5`},
		{"three offsets", stFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, buf8), "data_offsets has 3 values"},
		{"end before begin", stFile(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, buf8), "invalid data_offsets [8, 0]"},
		{"size mismatch", stFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, buf8), `tensor "w": data_offsets [0, 8] span 8 bytes but shape [3] of float32 needs 12`},
		{"shape overflow", stFile(`{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, buf8), "element count overflows"},
		{"huge size", stFile(`{"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}}`, buf8), "too large"},
		{"gap", stFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, buf8), `tensor "w": data_offsets [4, 8] leave a gap after byte 0`},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, buf8), `tensor "b": data_offsets [4, 8] overlap the previous tensor, which ends at 8`},
		{"buffer too long", stFile(`{`+w+`}`, make([]byte, 12)), "tensors cover 8 bytes but the data buffer has 12"},
		{"buffer too short", stFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, buf8[:6]), "tensors cover 8 bytes but the data buffer has 6"},
		{"offsets past the buffer", stFile(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, buf8), "tensors cover 16 bytes but the data buffer has 8"},
		{"duplicate name", stFile(`{`+w+`,`+w+`}`, buf8), `header lists "w" twice`},
		{"metadata not strings", stFile(`{"__metadata__":{"epoch":3}}`, nil), `header __metadata__["epoch"] is not a string`},
		{"metadata not an object", stFile(`{"__metadata__":[1]}`, nil), "__metadata__: json: cannot unmarshal array"},
		{"tensor not an object", stFile(`{"w":5}`, nil), `tensor "w": json: cannot unmarshal number`},
	}
	for _, c := range cases {
		_, err := ReadSafetensors(bytes.NewReader(c.data), int64(len(c.data)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}

	// Errors from a file name it.
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(path, stFile(`{`+w+`}`, buf8[:4]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSafetensorsFile(path); err == nil || !strings.HasPrefix(err.Error(), path+": safetensors: ") {
		t.Errorf("err = %v", err)
	}
}

func TestSafetensorsTruncated(t *testing.T) {
	data := writeSafetensors(t, sampleFile(t))
	for n := 0; n < len(data); n++ {
		if _, err := ReadSafetensors(bytes.NewReader(data[:n]), int64(n)); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(data))
		}
	}
}

// TestSafetensorsPythonInterop checks files both ways against a small
// independent reader and writer in Python (json, struct, torch.frombuffer).
func TestSafetensorsPythonInterop(t *testing.T) {
	py := pyref.Require(t, "torch")
	dir := t.TempDir()

	t.Run("go writes, python reads", func(t *testing.T) {
		f := sampleFile(t)
		path := filepath.Join(dir, "go.safetensors")
		if err := os.WriteFile(path, writeSafetensors(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
		listing := runInterop(t, py, "read", path)
		if !reflect.DeepEqual(listing.Metadata, f.Metadata) {
			t.Errorf("python reads metadata %v, want %v", listing.Metadata, f.Metadata)
		}
		if len(listing.Tensors) != len(f.Entries) {
			t.Fatalf("python reads %d tensors, want %d", len(listing.Tensors), len(f.Entries))
		}
		for i, pt := range listing.Tensors {
			compareInterop(t, &f.Entries[i], pt)
			if !pt.Aligned {
				t.Errorf("%s is not aligned to its element size", pt.Name)
			}
		}
	})

	t.Run("python writes, go reads", func(t *testing.T) {
		path := filepath.Join(dir, "py.safetensors")
		listing := runInterop(t, py, "write", path)
		f, err := ReadSafetensorsFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.Metadata, listing.Metadata) {
			t.Errorf("metadata %v, python wrote %v", f.Metadata, listing.Metadata)
		}
		if len(listing.Tensors) != len(f.Entries) {
			t.Fatalf("%d tensors, python wrote %d", len(f.Entries), len(listing.Tensors))
		}
		for i, pt := range listing.Tensors {
			compareInterop(t, &f.Entries[i], pt)
		}
	})
}

type interopTensor struct {
	Name    string        `json:"name"`
	DType   string        `json:"dtype"`
	Shape   []int64       `json:"shape"`
	Values  []json.Number `json:"-"`
	Raw     []any         `json:"values"`
	Aligned bool          `json:"aligned"`
}

type interopListing struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  []interopTensor   `json:"tensors"`
}

func runInterop(t *testing.T, py, cmd, path string) interopListing {
	t.Helper()
	out, err := pyref.Run(py, "testdata/st_interop.py", cmd, path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var l interopListing
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return l
}

// compareInterop checks that Python's values of a tensor are exactly the
// entry's.
func compareInterop(t *testing.T, e *Entry, pt interopTensor) {
	t.Helper()
	shape := pt.Shape
	if shape == nil {
		shape = []int64{}
	}
	if pt.Name != e.Name || pt.DType != e.DType.String() || !reflect.DeepEqual(shape, append([]int64{}, e.Shape...)) {
		t.Errorf("python has %s %s %v, go has %s %v %v", pt.Name, pt.DType, pt.Shape, e.Name, e.DType, e.Shape)
		return
	}
	var got []string
	switch e.DType {
	case Float32, Float16, BFloat16:
		v, err := e.ToFloat32()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			got = append(got, fmtFloat(float64(x)))
		}
	case Float64:
		v, _ := e.Float64s()
		for _, x := range v {
			got = append(got, fmtFloat(x))
		}
	case Int64:
		v, _ := e.Int64s()
		for _, x := range v {
			got = append(got, strconv.FormatInt(x, 10))
		}
	case Int32:
		v, _ := e.Int32s()
		for _, x := range v {
			got = append(got, strconv.FormatInt(int64(x), 10))
		}
	case Uint8:
		v, _ := e.Uint8s()
		for _, x := range v {
			got = append(got, strconv.Itoa(int(x)))
		}
	case Int8:
		v, _ := e.Int8s()
		for _, x := range v {
			got = append(got, strconv.Itoa(int(x)))
		}
	case Bool:
		v, _ := e.Bools()
		for _, x := range v {
			got = append(got, strconv.FormatBool(x))
		}
	}
	var want []string
	for _, r := range pt.Raw {
		switch v := r.(type) {
		case json.Number:
			if e.DType == Float32 || e.DType == Float64 || e.DType == Float16 || e.DType == BFloat16 {
				f, err := v.Float64()
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, fmtFloat(f))
			} else {
				want = append(want, v.String())
			}
		case string: // "nan", "inf", "-inf"
			f, _ := strconv.ParseFloat(v, 64)
			want = append(want, fmtFloat(f))
		default:
			want = append(want, fmt.Sprint(v))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: go values %v, python values %v", e.Name, got, want)
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
