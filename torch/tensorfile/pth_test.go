package tensorfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// viewCases are tensors over one float32 storage of 12 elements and one
// int64 storage of 6, with the layouts PyTorch produces.
var viewCases = []fakeTensor{
	{name: "full", key: "0", dtype: Float32, numel: 12, shape: []int{3, 4}, stride: []int{4, 1}},
	{name: "transposed", key: "0", dtype: Float32, numel: 12, shape: []int{4, 3}, stride: []int{1, 4}},
	{name: "offset", key: "0", dtype: Float32, numel: 12, offset: 5, shape: []int{4}, stride: []int{1}},
	{name: "slice2d", key: "0", dtype: Float32, numel: 12, offset: 5, shape: []int{2, 2}, stride: []int{4, 2}},
	{name: "expanded", key: "0", dtype: Float32, numel: 12, offset: 1, shape: []int{3, 2}, stride: []int{0, 1}},
	{name: "scalar", key: "0", dtype: Float32, numel: 12, offset: 11, shape: []int{}, stride: []int{}},
	{name: "empty", key: "0", dtype: Float32, numel: 12, offset: 12, shape: []int{0, 3}, stride: []int{3, 1}},
	{name: "ones", key: "0", dtype: Float32, numel: 12, offset: 2, shape: []int{1, 3, 1}, stride: []int{99, 1, 7}},
	{name: "v1", key: "0", dtype: Float32, numel: 12, shape: []int{2, 6}, stride: []int{6, 1}, v1: true},
	{name: "param", key: "0", dtype: Float32, numel: 12, shape: []int{12}, stride: []int{1}, param: true},
	{name: "ids", key: "1", dtype: Int64, numel: 6, offset: 1, shape: []int{2, 2}, stride: []int{1, 2}},
}

func viewStorages() (f32, i64 []byte) {
	f32 = f32bytes(arange(12)...)
	e, _ := NewEntry("", []int64{6}, []int64{-3, -2, -1, 0, 1, 2})
	return f32, e.Data
}

// craftedFiles returns the view cases as a zip and a legacy file.
func craftedFiles(t testing.TB, tensors []fakeTensor) map[string][]byte {
	f32, i64 := viewStorages()
	return map[string][]byte{
		"zip": makeZipPTH(t, statePickle(tensors, false), map[string][]byte{"0": f32, "1": i64}),
		"legacy": makeLegacyPTH(statePickle(tensors, true), []fakeStorage{
			{"0", Float32, f32}, {"1", Int64, i64}}),
	}
}

func readBytes(t testing.TB, data []byte, opts PTHOptions) (*File, error) {
	t.Helper()
	return ReadPTH(bytes.NewReader(data), int64(len(data)), opts)
}

func TestPTHViewsMatchReferenceGather(t *testing.T) {
	f32, i64 := viewStorages()
	for format, data := range craftedFiles(t, viewCases) {
		t.Run(format, func(t *testing.T) {
			f, err := readBytes(t, data, PTHOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(f.Entries), len(viewCases); got != want {
				t.Fatalf("%d entries, want %d", got, want)
			}
			for i, c := range viewCases {
				e := f.Entries[i]
				src, es := f32, 4
				if c.dtype == Int64 {
					src, es = i64, 8
				}
				want := gather(src, es, c.offset, c.shape, c.stride)
				wantShape := make([]int64, len(c.shape))
				for j, s := range c.shape {
					wantShape[j] = int64(s)
				}
				if e.Name != c.name || e.DType != c.dtype || !reflect.DeepEqual(e.Shape, wantShape) {
					t.Errorf("entry %d: %s %v %v, want %s %v %v", i, e.Name, e.DType, e.Shape, c.name, c.dtype, wantShape)
				}
				if !bytes.Equal(e.Data, want) {
					t.Errorf("%s: data %v, want %v", c.name, e.Data, want)
				}
				if err := e.Validate(); err != nil {
					t.Error(err)
				}
			}
			// Spot-check values through the typed helpers.
			tr, _ := f.Get("transposed")
			v, err := tr.Float32s()
			if err != nil || !reflect.DeepEqual(v, []float32{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}) {
				t.Errorf("transposed = %v, %v", v, err)
			}
			ids, _ := f.Get("ids")
			iv, err := ids.Int64s()
			if err != nil || !reflect.DeepEqual(iv, []int64{-2, 0, -1, 1}) {
				t.Errorf("ids = %v, %v", iv, err)
			}
		})
	}
}

// Contiguous views must share the storage's memory instead of copying it,
// and must not be able to grow into a neighbour's bytes.
func TestPTHContiguousViewsShareMemory(t *testing.T) {
	for format, data := range craftedFiles(t, viewCases) {
		f, err := readBytes(t, data, PTHOptions{})
		if err != nil {
			t.Fatal(err)
		}
		full, _ := f.Get("full")
		off, _ := f.Get("offset")
		tr, _ := f.Get("transposed")
		if unsafe.Pointer(&off.Data[0]) != unsafe.Pointer(&full.Data[5*4]) {
			t.Errorf("%s: the offset view does not share the storage's memory", format)
		}
		if unsafe.Pointer(&tr.Data[0]) == unsafe.Pointer(&full.Data[0]) {
			t.Errorf("%s: the transposed view was not copied", format)
		}
		if cap(off.Data) != len(off.Data) {
			t.Errorf("%s: view has capacity %d beyond its %d bytes", format, cap(off.Data), len(off.Data))
		}
	}
}

func TestPTHLegacyStorageView(t *testing.T) {
	f32 := f32bytes(arange(12)...)
	tensors := []fakeTensor{
		{name: "tail", key: "0", dtype: Float32, numel: 12, offset: 1, shape: []int{3}, stride: []int{1}, view: []any{"v", 8, 4}, v1: true},
	}
	data := makeLegacyPTH(statePickle(tensors, true), []fakeStorage{{"0", Float32, f32}})
	f, err := readBytes(t, data, PTHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Entries[0].Float32s()
	if !reflect.DeepEqual(v, []float32{9, 10, 11}) {
		t.Errorf("tail = %v, want [9 10 11]", v)
	}
	// Old legacy files may leave the view metadata out.
	five := makeLegacyPTH(statePickle(viewCases[:1], false), []fakeStorage{{"0", Float32, f32}})
	if f, err := readBytes(t, five, PTHOptions{}); err != nil || !bytes.Equal(f.Entries[0].Data, f32) {
		t.Errorf("5-element persistent IDs: %v", err)
	}
	six := makeZipPTH(t, statePickle(viewCases[:1], true), map[string][]byte{"0": f32})
	if _, err := readBytes(t, six, PTHOptions{}); err == nil || !strings.Contains(err.Error(), "storage persistent ID has 6 elements, want 5 (or 6 in a legacy file)") {
		t.Errorf("6-element persistent ID in a zip file: %v", err)
	}
	// A view reaching past the storage is refused.
	tensors[0].view = []any{"v", 10, 4}
	data = makeLegacyPTH(statePickle(tensors, true), []fakeStorage{{"0", Float32, f32}})
	if _, err := readBytes(t, data, PTHOptions{}); err == nil || !strings.Contains(err.Error(), "view [10, 10+4) lies outside its 12 elements") {
		t.Errorf("err = %v", err)
	}
}

func TestPTHOutOfBoundsViewsAreRefused(t *testing.T) {
	cases := []struct {
		t    fakeTensor
		want string
	}{
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, offset: 10, shape: []int{3}, stride: []int{1}}, `reach element 12 of storage "0", which has 12`},
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, shape: []int{3, 4}, stride: []int{5, 1}}, "reach element 13"},
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, shape: []int{3}, stride: []int{1, 1}}, "differ in length"},
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, shape: []int{-1}, stride: []int{1}}, "size -1 is negative"},
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, offset: -1, shape: []int{1}, stride: []int{1}}, "storage offset -1 is negative"},
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, shape: []int{1 << 30, 1 << 30, 1 << 30}, stride: []int{0, 0, 0}}, "element count overflows int64"},
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, shape: []int{1 << 30, 1 << 30, 4}, stride: []int{0, 0, 0}}, "size [1073741824 1073741824 4] of float32 is too large"},
		// A stride-0 view of billions of elements would need gigabytes.
		{fakeTensor{name: "x", key: "0", dtype: Float32, numel: 12, shape: []int{1 << 20, 1 << 10}, stride: []int{0, 0}}, "more than the file's storages justify"},
	}
	f32, i64 := viewStorages()
	for _, c := range cases {
		for _, legacy := range []bool{false, true} {
			var data []byte
			if legacy {
				data = makeLegacyPTH(statePickle([]fakeTensor{c.t}, true), []fakeStorage{{"0", Float32, f32}})
			} else {
				data = makeZipPTH(t, statePickle([]fakeTensor{c.t}, false), map[string][]byte{"0": f32, "1": i64})
			}
			_, err := readBytes(t, data, PTHOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("legacy=%v %v: err = %v, want %q", legacy, c.t, err, c.want)
			}
		}
	}
}

func TestPTHStorageSizeChecks(t *testing.T) {
	one := []fakeTensor{{name: "w", key: "0", dtype: Float32, numel: 4, shape: []int{4}, stride: []int{1}}}
	pklZip, pklLegacy := statePickle(one, false), statePickle(one, true)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"zip record too short", makeZipPTH(t, pklZip, map[string][]byte{"0": make([]byte, 12)}),
			`storage "0": record archive/data/0 holds 12 bytes, but 4 elements of float32 need 16`},
		{"zip record too long", makeZipPTH(t, pklZip, map[string][]byte{"0": make([]byte, 20)}),
			"holds 20 bytes"},
		{"zip record missing", makeZipPTH(t, pklZip, map[string][]byte{"7": make([]byte, 16)}),
			`storage "0": the archive has no record archive/data/0`},
		{"legacy count mismatch", makeLegacyPTH(pklLegacy, []fakeStorage{{"0", Float32, make([]byte, 20)}}),
			`storage "0": the file holds 5 elements, the pickle declares 4`},
		{"legacy data truncated", makeLegacyPTH(pklLegacy, []fakeStorage{{"0", Float32, make([]byte, 16)}})[:0], ""},
		{"legacy storage unused", makeLegacyPTH(pklLegacy, []fakeStorage{{"0", Float32, make([]byte, 16)}, {"9", Float32, make([]byte, 4)}}),
			`lists storage "9", which no tensor uses`},
		{"legacy storage missing", makeLegacyPTH(pklLegacy, nil), `storage "0" is used by a tensor but has no data`},
	}
	// Truncate the legacy file inside its storage bytes.
	full := makeLegacyPTH(pklLegacy, []fakeStorage{{"0", Float32, make([]byte, 16)}})
	cases[4].data, cases[4].want = full[:len(full)-3], "run past the end of the"
	for _, c := range cases {
		_, err := readBytes(t, c.data, PTHOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}

	// Absurd declared sizes are refused before anything is allocated.
	huge := []fakeTensor{{name: "w", key: "0", dtype: Float64, numel: 1 << 30, shape: []int{4}, stride: []int{1}}}
	for _, data := range [][]byte{
		makeZipPTH(t, statePickle(huge, false), map[string][]byte{"0": make([]byte, 16)}),
		makeLegacyPTH(statePickle(huge, true), nil),
	} {
		_, err := readBytes(t, data, PTHOptions{})
		if err == nil || !strings.Contains(err.Error(), "1073741824 elements of float64 do not fit in a file of") {
			t.Errorf("err = %v", err)
		}
	}
	// A legacy element count that disagrees with the pickle, and one that
	// claims more bytes than the file holds.
	data := makeLegacyPTH(pklLegacy, []fakeStorage{{"0", Float32, make([]byte, 16)}})
	countAt := len(data) - 16 - 8
	binary.LittleEndian.PutUint64(data[countAt:], 1<<61)
	if _, err := readBytes(t, data, PTHOptions{}); err == nil || !strings.Contains(err.Error(), "the file holds 2305843009213693952 elements") {
		t.Errorf("err = %v", err)
	}
}

func TestPTHForbiddenGlobals(t *testing.T) {
	// payload builds a dict {"w": <value>} around a value pickle.
	evalCall := func(p *pk) { p.str("__import__('os').system('touch /nonexistent')").raw(opTuple1).reduce() }
	cases := []struct {
		name         string
		pkl          []byte
		module, attr string
	}{
		{"GLOBAL builtins eval (protocol 2 name)", func() []byte {
			p := (&pk{}).proto(2).global("__builtin__", "eval")
			evalCall(p)
			return p.stop().bytes()
		}(), "__builtin__", "eval"},
		{"STACK_GLOBAL builtins eval", func() []byte {
			p := (&pk{}).proto(4).shortStr("builtins").raw(opMemoize).shortStr("eval").raw(opMemoize, opStackGlobal)
			evalCall(p)
			return p.stop().bytes()
		}(), "builtins", "eval"},
		{"STACK_GLOBAL through the memo", func() []byte {
			p := (&pk{}).proto(4).shortStr("posix").raw(opBinPut, 3).shortStr("system").raw(opBinPut, 4, opPop, opPop)
			p.raw(opBinGet, 3, opBinGet, 4, opStackGlobal).shortStr("true").raw(opTuple1).reduce()
			return p.stop().bytes()
		}(), "posix", "system"},
		{"os.system in a state dict", func() []byte {
			p := (&pk{}).proto(2).emptyOrdered().mark().str("x").global("posix", "system").str("touch /x").raw(opTuple1).reduce().raw(opSetItems)
			return p.stop().bytes()
		}(), "posix", "system"},
		{"subprocess.Popen", (&pk{}).proto(2).global("subprocess", "Popen").mark().str("true").tuple().reduce().stop().bytes(), "subprocess", "Popen"},
		// gopickle resolves these two itself; they must be refused before.
		{"copy_reg._reconstructor", (&pk{}).proto(2).global("copy_reg", "_reconstructor").stop().bytes(), "copy_reg", "_reconstructor"},
		{"__builtin__.object", (&pk{}).proto(4).shortStr("__builtin__").shortStr("object").raw(opStackGlobal).stop().bytes(), "__builtin__", "object"},
		{"torch function outside the list", (&pk{}).proto(2).global("torch._utils", "_rebuild_qtensor").stop().bytes(), "torch._utils", "_rebuild_qtensor"},
		{"torch.load", (&pk{}).proto(2).global("torch", "load").stop().bytes(), "torch", "load"},
	}
	for _, c := range cases {
		for format, data := range map[string][]byte{
			"zip":    makeZipPTH(t, c.pkl, nil),
			"legacy": makeLegacyPTH(c.pkl, nil),
		} {
			path := filepath.Join(t.TempDir(), "evil.pth")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadPTHFile(path, PTHOptions{})
			var fg *ForbiddenGlobalError
			if !errors.As(err, &fg) || fg.Module != c.module || fg.Name != c.attr {
				t.Errorf("%s (%s): err = %v, want a ForbiddenGlobalError for %s.%s", c.name, format, err, c.module, c.attr)
				continue
			}
			msg := err.Error()
			for _, want := range []string{path, "forbidden global " + c.module + "." + c.attr} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s (%s): error %q does not contain %q", c.name, format, msg, want)
				}
			}
		}
	}
}

func TestPTHRefusedPickles(t *testing.T) {
	cases := []struct {
		name string
		pkl  []byte
		want string
	}{
		{"STACK_GLOBAL from computed values", (&pk{}).proto(4).shortStr("posix").raw(opDup, opStackGlobal).stop().bytes(),
			"STACK_GLOBAL at byte 10 does not take its module and name from string literals"},
		{"NEWOBJ", (&pk{}).proto(2).emptyOrdered().raw(opEmptyTuple, opNewObj).stop().bytes(), "opcode NEWOBJ at byte"},
		{"INST", (&pk{}).proto(0).mark().raw(opInst).raw([]byte("os\nsystem\n")...).stop().bytes(), "opcode INST at byte 3 is not allowed"},
		{"OBJ", (&pk{}).proto(1).mark().raw(opObj).stop().bytes(), "opcode OBJ"},
		{"EXT1", (&pk{}).proto(2).raw(opExt1, 1).stop().bytes(), "opcode EXT1"},
		{"text PERSID", (&pk{}).proto(0).raw(opPersID).raw([]byte("0\n")...).stop().bytes(), "opcode PERSID"},
		{"unknown opcode", (&pk{}).proto(2).raw(0xff).stop().bytes(), "unknown opcode 0xff at byte 2"},
		{"protocol 6", (&pk{}).proto(6).stop().bytes(), "unsupported pickle protocol 6"},
		{"huge BINBYTES8", (&pk{}).proto(4).raw(opBinBytes8, 0, 0, 0, 0, 0, 0, 0, 0x10).stop().bytes(), "BINBYTES8 at byte 2 declares 1152921504606846976 bytes"},
		{"huge FRAME", (&pk{}).proto(4).raw(opFrame, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0).stop().bytes(), "FRAME at byte 2 declares 16777215 bytes, more than remain"},
		{"negative BINSTRING", (&pk{}).proto(2).raw(opBinString, 0xff, 0xff, 0xff, 0xff).stop().bytes(), "BINSTRING at byte 2 has a negative length"},
		{"empty LONG1", (&pk{}).proto(2).raw(opLong1, 0).stop().bytes(), "LONG1 at byte 2 has an empty payload"},
		{"huge LONG4", append((&pk{}).proto(2).raw(opLong4, 0, 0, 1, 0).bytes(), make([]byte, 65536)...), "LONG4 at byte 2 has a 65536-byte number, more than 256"},
		{"huge text INT", (&pk{}).proto(0).raw(opInt).raw(bytes.Repeat([]byte("9"), 300)...).raw('\n').stop().bytes(), "INT at byte 2 has a 300-byte argument"},
		{"unset memo", (&pk{}).proto(2).raw(opBinGet, 7).stop().bytes(), "BINGET at byte 2 reads memo slot 7 before it is set"},
		{"no STOP", (&pk{}).proto(2).raw(opEmptyDict).bytes(), "truncated: the stream ends before the pickle's STOP opcode"},
		{"odd DICT", (&pk{}).proto(2).mark().int(1).raw(opDict).stop().bytes(), "malformed pickle"},
		{"unhashable key", (&pk{}).proto(3).emptyOrdered().raw(opShortBinBytes, 1, 'k').int(1).raw(opSetItem).stop().bytes(), "malformed pickle"},
		{"nn.Module", (&pk{}).proto(2).mark().str("module").tuple().raw(opBinPersID).stop().bytes(), "pickled nn.Module"},
		{"short storage", (&pk{}).proto(2).global("torch", "ShortStorage").stop().bytes(), "unsupported tensor type torch.ShortStorage"},
	}
	for _, c := range cases {
		for format, data := range map[string][]byte{"zip": makeZipPTH(t, c.pkl, nil), "legacy": makeLegacyPTH(c.pkl, nil)} {
			_, err := readBytes(t, data, PTHOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s (%s): err = %v, want %q", c.name, format, err, c.want)
			}
		}
	}
}

// nestedPickle is {"epoch": 3, "state_dict": {"w": t, "b": t},
// "opt": {"state": {0: {"m": t}}, "lr": [0.1]}}.
func nestedPickle(legacy bool) []byte {
	w := fakeTensor{key: "0", dtype: Float32, numel: 12, shape: []int{3, 4}, stride: []int{4, 1}}
	b := fakeTensor{key: "0", dtype: Float32, numel: 12, offset: 4, shape: []int{4}, stride: []int{1}}
	m := fakeTensor{key: "0", dtype: Float32, numel: 12, shape: []int{2}, stride: []int{1}}
	p := (&pk{}).proto(2).raw(opEmptyDict).mark()
	p.str("epoch").int(3)
	p.str("state_dict").emptyOrdered().mark().str("w").tensor(w, legacy).str("b").tensor(b, legacy).raw(opSetItems)
	p.str("opt").raw(opEmptyDict).mark()
	p.str("state").raw(opEmptyDict).int(0).raw(opEmptyDict).str("m").tensor(m, legacy).raw(opSetItem, opSetItem)
	p.str("lr").raw(opEmptyList).raw(opBinFloat, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a, opAppend)
	p.raw(opSetItems, opSetItems)
	return p.stop().bytes()
}

func TestPTHNestedOptions(t *testing.T) {
	f32 := f32bytes(arange(12)...)
	files := map[string][]byte{
		"zip":    makeZipPTH(t, nestedPickle(false), map[string][]byte{"0": f32}),
		"legacy": makeLegacyPTH(nestedPickle(true), []fakeStorage{{"0", Float32, f32}}),
	}
	for format, data := range files {
		_, err := readBytes(t, data, PTHOptions{})
		want := `the file's top level is not a flat dict of tensors: "epoch" holds an int, "state_dict" holds a nested dict (2 tensors), "opt" holds a nested dict (1 tensors); select a nested dict with PTHOptions.Key (e.g. Key: "state_dict") or read every tensor with PTHOptions.Flatten`
		if err == nil || err.Error() != want {
			t.Errorf("%s: err = %v\nwant %s", format, err, want)
		}

		f, err := readBytes(t, data, PTHOptions{Key: "state_dict"})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Names(); !reflect.DeepEqual(got, []string{"w", "b"}) {
			t.Errorf("%s Key: names %v", format, got)
		}
		if v, _ := f.Entries[1].Float32s(); !reflect.DeepEqual(v, []float32{4, 5, 6, 7}) {
			t.Errorf("%s Key: b = %v", format, v)
		}

		f, err = readBytes(t, data, PTHOptions{Key: "opt/state", Flatten: true})
		if err != nil || !reflect.DeepEqual(f.Names(), []string{"0.m"}) {
			t.Errorf("%s Key opt/state + Flatten: %v, %v", format, f, err)
		}

		f, err = readBytes(t, data, PTHOptions{Flatten: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Names(); !reflect.DeepEqual(got, []string{"state_dict.w", "state_dict.b", "opt.state.0.m"}) {
			t.Errorf("%s Flatten: names %v", format, got)
		}
		if !reflect.DeepEqual(f.Skipped, []string{"epoch", "opt.lr"}) {
			t.Errorf("%s Flatten: skipped %v", format, f.Skipped)
		}

		_, err = readBytes(t, data, PTHOptions{Key: "model"})
		if err == nil || err.Error() != `cannot select key "model": the file's top level has no key "model" (it has "epoch", "state_dict", "opt")` {
			t.Errorf("%s missing key: %v", format, err)
		}
		_, err = readBytes(t, data, PTHOptions{Key: "epoch/x"})
		if err == nil || err.Error() != `cannot select key "epoch/x": key "epoch" is an int, not a dict` {
			t.Errorf("%s key into int: %v", format, err)
		}
		_, err = readBytes(t, data, PTHOptions{Key: "opt"})
		if err == nil || !strings.Contains(err.Error(), `key "opt" is not a flat dict of tensors: "state" holds a nested dict (1 tensors), "lr" holds a list`) {
			t.Errorf("%s Key opt: %v", format, err)
		}
	}
}

func TestPTHTopLevelNotADict(t *testing.T) {
	f32 := f32bytes(arange(12)...)
	tensor := fakeTensor{key: "0", dtype: Float32, numel: 12, shape: []int{12}, stride: []int{1}}
	single := (&pk{}).proto(2).tensor(tensor, false).stop().bytes()
	_, err := readBytes(t, makeZipPTH(t, single, map[string][]byte{"0": f32}), PTHOptions{})
	if err == nil || err.Error() != "the file's top level is a single tensor, not a dict of tensors" {
		t.Errorf("err = %v", err)
	}
	list := (&pk{}).proto(2).raw(opEmptyList).stop().bytes()
	_, err = readBytes(t, makeZipPTH(t, list, nil), PTHOptions{Flatten: true})
	if err == nil || err.Error() != "the file's top level is a list, not a dict of tensors" {
		t.Errorf("err = %v", err)
	}
	// A dict that contains itself cannot be flattened forever.
	cyclic := (&pk{}).proto(2).raw(opEmptyDict, opBinPut, 0).str("self").raw(opBinGet, 0, opSetItem).stop().bytes()
	_, err = readBytes(t, makeZipPTH(t, cyclic, nil), PTHOptions{Flatten: true})
	if err == nil || !strings.Contains(err.Error(), `the dict at "self" appears more than once`) {
		t.Errorf("err = %v", err)
	}
}

func TestPTHArchiveChecks(t *testing.T) {
	pkl := statePickle(nil, false)
	cases := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"no data.pkl", map[string][]byte{"archive/other": {1}}, "no <archive>/data.pkl record"},
		{"two data.pkl", map[string][]byte{"a/data.pkl": pkl, "b/data.pkl": pkl}, "2 data.pkl records (a/data.pkl, b/data.pkl)"},
		{"torchscript", map[string][]byte{"m/data.pkl": pkl, "m/constants.pkl": pkl}, "TorchScript archive"},
		{"big endian", map[string][]byte{"m/data.pkl": pkl, "m/byteorder": []byte("big")}, `record m/byteorder says "big"`},
		{"little endian", map[string][]byte{"m/data.pkl": pkl, "m/byteorder": []byte("little")}, ""},
	}
	for _, c := range cases {
		data := zipOf(t, c.files)
		f, err := readBytes(t, data, PTHOptions{})
		if c.want == "" {
			if err != nil || len(f.Entries) != 0 {
				t.Errorf("%s: %v, %v", c.name, f, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// A corrupted storage record fails its CRC-32.
	f32 := f32bytes(arange(4)...)
	one := []fakeTensor{{name: "w", key: "0", dtype: Float32, numel: 4, shape: []int{4}, stride: []int{1}}}
	data := makeZipPTH(t, statePickle(one, false), map[string][]byte{"0": f32})
	i := bytes.Index(data, f32)
	data[i+3] ^= 0x40
	if _, err := readBytes(t, data, PTHOptions{}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt record: err = %v", err)
	}
}

func zipOf(t testing.TB, files map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := newZipWriter(&buf)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPTHNotAPTH(t *testing.T) {
	cases := map[string][]byte{
		"empty":       nil,
		"text":        []byte("hello, world"),
		"safetensors": append([]byte{2, 0, 0, 0, 0, 0, 0, 0}, "{}"...),
	}
	tarHead := make([]byte, 600)
	copy(tarHead[257:], "ustar")
	cases["tar"] = tarHead
	want := map[string]string{
		"empty":       "not a PyTorch .pth file",
		"text":        "not a PyTorch .pth file",
		"safetensors": "this is a safetensors file",
		"tar":         "tar-based .pth files",
	}
	for name, data := range cases {
		_, err := readBytes(t, data, PTHOptions{})
		if err == nil || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// Every truncation of a valid file is refused with an error, never a panic
// or a partial result.
func TestPTHTruncated(t *testing.T) {
	for format, data := range craftedFiles(t, viewCases) {
		for n := 0; n < len(data); n++ {
			if f, err := readBytes(t, data[:n], PTHOptions{}); err == nil {
				t.Fatalf("%s truncated to %d of %d bytes: no error, %d entries", format, n, len(data), len(f.Entries))
			}
		}
	}
}

func TestReadFileDetectsFormat(t *testing.T) {
	dir := t.TempDir()
	files := craftedFiles(t, []fakeTensor{viewCases[0], viewCases[len(viewCases)-1]})
	st := &File{Entries: []Entry{mustEntry(t, "w", []int64{2}, []float32{1, 2})}}
	var sbuf bytes.Buffer
	if _, err := st.WriteTo(&sbuf); err != nil {
		t.Fatal(err)
	}
	files["safetensors"] = sbuf.Bytes()
	for name, data := range files {
		path := filepath.Join(dir, name+".bin")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := ReadFile(path)
		if err != nil || len(f.Entries) != 1+btoi(name != "safetensors") {
			t.Errorf("%s: %v, %v", name, f, err)
		}
	}
	path := filepath.Join(dir, "junk.pth")
	os.WriteFile(path, []byte("junk junk junk junk"), 0o644)
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), path+": unknown weight file format") {
		t.Errorf("junk: %v", err)
	}
	if got := DetectFormat(files["legacy"]); got != FormatPTHLegacy {
		t.Errorf("DetectFormat(legacy) = %v", got)
	}
}

func mustEntry[T Element](t testing.TB, name string, shape []int64, v []T) Entry {
	t.Helper()
	e, err := NewEntry(name, shape, v)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Dicts that refer to each other many times must not make error messages
// (which count the tensors of nested dicts) take exponential time.
func TestPTHSharedDictsStayFast(t *testing.T) {
	// d0 = {}; d(i+1) = {0: di, 1: di, ..., 49: di}; top = {"x": d8}
	p := (&pk{}).proto(2).raw(opEmptyDict, opBinPut, 0)
	for level := 1; level <= 8; level++ {
		p.raw(opEmptyDict).mark()
		for k := 0; k < 50; k++ {
			p.int(k).raw(opBinGet, byte(level-1))
		}
		p.raw(opSetItems, opBinPut, byte(level))
	}
	p.raw(opEmptyDict).str("x").raw(opBinGet, 8, opSetItem).stop()
	data := makeZipPTH(t, p.bytes(), nil)
	_, err := readBytes(t, data, PTHOptions{})
	if err == nil || !strings.Contains(err.Error(), `"x" holds a nested dict (0 tensors)`) {
		t.Errorf("err = %v", err)
	}
	_, err = readBytes(t, data, PTHOptions{Flatten: true})
	if err == nil || !strings.Contains(err.Error(), "appears more than once") {
		t.Errorf("Flatten: err = %v", err)
	}
}

func TestPTHZipStorageRecordChecks(t *testing.T) {
	two := []fakeTensor{
		{name: "a", key: "0", dtype: Float32, numel: 4, shape: []int{4}, stride: []int{1}},
		{name: "b", key: "1", dtype: Float32, numel: 4, shape: []int{4}, stride: []int{1}},
	}
	f32 := f32bytes(1, 2, 3, 4)
	data := makeZipPTH(t, statePickle(two, false), map[string][]byte{"0": f32, "1": f32})
	if _, err := readBytes(t, data, PTHOptions{}); err != nil {
		t.Fatal(err)
	}
	// Point the central directory entry of data/1 at the bytes of data/0:
	// two storages would then share the file's bytes, so a small file could
	// claim any number of large storages.
	first := bytes.Index(data, []byte("PK\x03\x04")) // data.pkl's local header
	local0 := first + 4 + bytes.Index(data[first+4:], []byte("PK\x03\x04"))
	if !bytes.Contains(data[local0:local0+60], []byte("archive/data/0")) {
		t.Fatalf("could not find data/0's local header")
	}
	central := bytes.Index(data, []byte("PK\x01\x02"))
	for !bytes.HasPrefix(data[central+46:], []byte("archive/data/1")) {
		central = bytes.Index(data[central+4:], []byte("PK\x01\x02")) + central + 4
	}
	binary.LittleEndian.PutUint32(data[central+42:], uint32(local0))
	_, err := readBytes(t, data, PTHOptions{})
	if err == nil || !strings.Contains(err.Error(), `storage "0": record archive/data/0 and storage "1": record archive/data/1 overlap in the file`) {
		t.Errorf("overlap: err = %v", err)
	}

	// Compressed storage records are refused.
	var buf bytes.Buffer
	zw := newZipWriter(&buf)
	for name, content := range map[string][]byte{"archive/data.pkl": statePickle(two[:1], false), "archive/data/0": f32} {
		method := zip.Store
		if name != "archive/data.pkl" {
			method = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content)
	}
	zw.Close()
	_, err = readBytes(t, buf.Bytes(), PTHOptions{})
	if err == nil || !strings.Contains(err.Error(), `storage "0": record archive/data/0 is compressed (zip method 8)`) {
		t.Errorf("compressed: err = %v", err)
	}
}
