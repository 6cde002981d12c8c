package tensorfile

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzReadSafetensors checks that no input makes the safetensors reader
// panic, and that whatever it accepts is valid and survives a write and a
// second read unchanged.
func FuzzReadSafetensors(f *testing.F) {
	f.Add(writeSafetensors(f, sampleFile(f)))
	f.Add(writeSafetensors(f, &File{}))
	f.Add(stFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"a":"b"}}`, make([]byte, 8)))
	f.Add(stFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"BOOL","shape":[],"data_offsets":[0,1]}}`, []byte{1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ReadSafetensors(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("accepted an invalid file: %v", err)
		}
		var buf bytes.Buffer
		if _, err := file.WriteTo(&buf); err != nil {
			t.Fatalf("cannot write back what was read: %v", err)
		}
		again, err := ReadSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("cannot read back what was written: %v", err)
		}
		if len(again.Entries) != len(file.Entries) {
			t.Fatalf("%d entries after a round trip, want %d", len(again.Entries), len(file.Entries))
		}
		for i := range file.Entries {
			a, b := &file.Entries[i], &again.Entries[i]
			if a.Name != b.Name || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("entry %d changed in a round trip", i)
			}
		}
		if len(file.Metadata) > 0 && !reflect.DeepEqual(file.Metadata, again.Metadata) {
			t.Fatalf("metadata changed in a round trip: %v, then %v", file.Metadata, again.Metadata)
		}
	})
}

// FuzzReadPTH checks that no input makes the .pth reader panic, hang or
// allocate out of proportion, and that whatever it accepts is valid.
func FuzzReadPTH(f *testing.F) {
	for _, data := range craftedFiles(f, viewCases) {
		f.Add(data)
	}
	f32 := f32bytes(arange(12)...)
	f.Add(makeZipPTH(f, nestedPickle(false), map[string][]byte{"0": f32}))
	f.Add(makeLegacyPTH(nestedPickle(true), []fakeStorage{{"0", Float32, f32}}))
	views := []fakeTensor{{name: "tail", key: "0", dtype: Float32, numel: 12, offset: 1, shape: []int{3}, stride: []int{1}, view: []any{"v", 8, 4}, v1: true}}
	f.Add(makeLegacyPTH(statePickle(views, true), []fakeStorage{{"0", Float32, f32}}))
	f.Add(makeLegacyPTH((&pk{}).proto(4).shortStr("builtins").raw(opMemoize).shortStr("eval").raw(opMemoize, opStackGlobal).stop().bytes(), nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []PTHOptions{{}, {Flatten: true}} {
			file, err := ReadPTH(bytes.NewReader(data), int64(len(data)), opts)
			if err != nil {
				continue
			}
			if err := file.Validate(); err != nil {
				t.Fatalf("accepted an invalid file: %v", err)
			}
			// Copies of non-contiguous views are bounded by the file size.
			if n := file.NumBytes(); n > 3*int64(len(data))+copySlack {
				t.Fatalf("%d bytes of tensors from a %d-byte file", n, len(data))
			}
		}
	})
}
