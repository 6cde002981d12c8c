package tensorfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"sort"
	"testing"
)

// pk builds pickle streams by hand, opcode by opcode.
type pk struct{ b []byte }

func (p *pk) raw(b ...byte) *pk { p.b = append(p.b, b...); return p }
func (p *pk) proto(v byte) *pk  { return p.raw(opProto, v) }
func (p *pk) global(module, name string) *pk {
	p.raw(opGlobal)
	p.b = append(p.b, module+"\n"+name+"\n"...)
	return p
}
func (p *pk) str(s string) *pk {
	p.raw(opBinUnicode)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
	return p
}
func (p *pk) shortStr(s string) *pk {
	p.raw(opShortBinUni, byte(len(s)))
	p.b = append(p.b, s...)
	return p
}
func (p *pk) int(v int) *pk {
	p.raw(opBinInt)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(v)))
	return p
}
func (p *pk) ints(v ...int) *pk {
	p.raw(opMark)
	for _, x := range v {
		p.int(x)
	}
	return p.raw(opTuple)
}
func (p *pk) none() *pk     { return p.raw(opNone) }
func (p *pk) mark() *pk     { return p.raw(opMark) }
func (p *pk) tuple() *pk    { return p.raw(opTuple) }
func (p *pk) reduce() *pk   { return p.raw(opReduce) }
func (p *pk) stop() *pk     { return p.raw(opStop) }
func (p *pk) bytes() []byte { return append([]byte{}, p.b...) }
func (p *pk) emptyOrdered() *pk {
	return p.global("collections", "OrderedDict").raw(opEmptyTuple, opReduce)
}

// fakeTensor describes one tensor of a crafted state dict.
type fakeTensor struct {
	name          string
	key           string // storage key
	dtype         DType
	numel         int // storage elements
	offset        int
	shape, stride []int
	v1            bool  // use _rebuild_tensor instead of _rebuild_tensor_v2
	view          []any // legacy view metadata (view_key, offset, size), or nil
	param         bool  // wrap in _rebuild_parameter
}

// tensorPickle appends the pickle of one tensor value.
func (p *pk) tensor(t fakeTensor, legacy bool) *pk {
	if t.param {
		p.global("torch._utils", "_rebuild_parameter").mark()
	}
	if t.v1 {
		p.global("torch._utils", "_rebuild_tensor")
	} else {
		p.global("torch._utils", "_rebuild_tensor_v2")
	}
	p.mark()
	p.mark().str("storage").global("torch", dtypes[t.dtype].storage).str(t.key).str("cpu").int(t.numel)
	if legacy {
		if t.view != nil {
			p.mark().str(t.view[0].(string)).int(t.view[1].(int)).int(t.view[2].(int)).tuple()
		} else {
			p.none()
		}
	}
	p.tuple().raw(opBinPersID)
	p.int(t.offset).ints(t.shape...).ints(t.stride...)
	if !t.v1 {
		p.raw(opNewFalse).emptyOrdered()
	}
	p.tuple().reduce()
	if t.param {
		p.raw(opNewTrue).emptyOrdered().tuple().reduce()
	}
	return p
}

// statePickle is a protocol-2 pickle of an OrderedDict of tensors.
func statePickle(tensors []fakeTensor, legacy bool) []byte {
	p := (&pk{}).proto(2).emptyOrdered().mark()
	for _, t := range tensors {
		p.str(t.name).tensor(t, legacy)
	}
	return p.raw(opSetItems).stop().bytes()
}

// makeZipPTH builds a zip-format .pth file.
func makeZipPTH(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("archive/data.pkl", pkl)
	keys := make([]string, 0, len(storages))
	for k := range storages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add("archive/data/"+k, storages[k])
	}
	add("archive/version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// legacyHeader is the magic number, protocol version and system info
// pickles of a legacy .pth file.
func legacyHeader() []byte {
	var b []byte
	b = append(b, legacyPrefix...)
	b = append(b, opStop)
	b = append(b, (&pk{}).proto(2).raw(opBinInt2, 0xe9, 0x03).stop().b...)
	b = append(b, (&pk{}).proto(2).raw(opEmptyDict).str("little_endian").raw(opNewTrue, opSetItem).stop().b...)
	return b
}

// fakeStorage is one storage of a crafted legacy file.
type fakeStorage struct {
	key   string
	dtype DType
	data  []byte
}

// makeLegacyPTH builds a legacy-format .pth file.
func makeLegacyPTH(pkl []byte, storages []fakeStorage) []byte {
	b := legacyHeader()
	b = append(b, pkl...)
	keys := (&pk{}).proto(2).raw(opEmptyList).mark()
	for _, s := range storages {
		keys.str(s.key)
	}
	b = append(b, keys.raw(opAppends).stop().b...)
	for _, s := range storages {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(s.data)/s.dtype.Size()))
		b = append(b, s.data...)
	}
	return b
}

// f32bytes encodes float32 values.
func f32bytes(v ...float32) []byte {
	e, err := NewEntry("", []int64{int64(len(v))}, v)
	if err != nil {
		panic(err)
	}
	return e.Data
}

// arange returns float32 0, 1, ..., n-1.
func arange(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	return v
}

// gather is a reference strided gather: element by element, by index.
func gather(src []byte, es int, offset int, shape, stride []int) []byte {
	n := 1
	for _, s := range shape {
		n *= s
	}
	out := make([]byte, 0, n*es)
	idx := make([]int, len(shape))
	for i := 0; i < n; i++ {
		rem := i
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d] = rem % shape[d]
			rem /= shape[d]
		}
		pos := offset
		for d := range shape {
			pos += idx[d] * stride[d]
		}
		out = append(out, src[pos*es:(pos+1)*es]...)
	}
	return out
}

func newZipWriter(w *bytes.Buffer) *zip.Writer { return zip.NewWriter(w) }
