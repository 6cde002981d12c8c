package tensorfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"
)

// maxSafetensorsHeader is the largest header accepted, the same limit as the
// reference implementation.
const maxSafetensorsHeader = 100_000_000

// metadataKey is the reserved header key holding the string-to-string
// metadata map.
const metadataKey = "__metadata__"

// ReadSafetensorsFile reads a safetensors file. Errors name the file.
func ReadSafetensorsFile(path string) (*File, error) {
	return readPath(path, ReadSafetensors)
}

// stTensor is one tensor of a safetensors header, as found in the file.
type stTensor struct {
	name       string
	dtype      DType
	shape      []int64
	begin, end int64
}

// stHeaderEntry is the JSON form of one tensor in a safetensors header.
type stHeaderEntry struct {
	DType       *string   `json:"dtype"`
	Shape       *[]uint64 `json:"shape"`
	DataOffsets *[]uint64 `json:"data_offsets"`
}

// ReadSafetensors reads a safetensors file of size bytes from r. The header
// is validated the way the reference implementation does it: a JSON object
// of at most 100 MB; every tensor with a known dtype, a shape, and
// data_offsets [begin, end] whose length matches the shape; the tensors
// covering the byte buffer exactly, without gaps or overlaps. Entries keep
// the header's order and share one buffer that is read with a single read.
// size must be the true size of the data: allocations are bounded by it.
func ReadSafetensors(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("safetensors: file of %d bytes is too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxSafetensorsHeader {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the limit of %d bytes", n, maxSafetensorsHeader)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the %d bytes after the length field (truncated file?)", n, size-8)
	}
	header := make([]byte, n)
	if _, err := r.ReadAt(header, 8); err != nil {
		return nil, fmt.Errorf("safetensors: reading %d-byte header: %w", n, err)
	}
	bufLen := size - 8 - int64(n)
	tensors, meta, err := parseSafetensorsHeader(header, bufLen)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	buf := make([]byte, bufLen)
	if bufLen > 0 {
		if _, err := r.ReadAt(buf, 8+int64(n)); err != nil {
			return nil, fmt.Errorf("safetensors: reading %d-byte data buffer: %w", bufLen, err)
		}
	}
	f := &File{Metadata: meta, Entries: make([]Entry, len(tensors))}
	for i, t := range tensors {
		f.Entries[i] = Entry{Name: t.name, DType: t.dtype, Shape: t.shape, Data: buf[t.begin:t.end:t.end]}
	}
	return f, nil
}

// parseSafetensorsHeader decodes and validates a header for a data buffer of
// bufLen bytes.
func parseSafetensorsHeader(header []byte, bufLen int64) ([]stTensor, map[string]string, error) {
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, errors.New("header does not start with '{'")
	}
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("header JSON: %w", jsonErr(err))
	}
	var (
		tensors []stTensor
		meta    map[string]string
		seen    = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("header JSON: %w", jsonErr(err))
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("header JSON: unexpected %v", tok)
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("header lists %q twice", name)
		}
		seen[name] = true
		if name == metadataKey {
			var raw map[string]any
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, fmt.Errorf("header %s: %w", metadataKey, jsonErr(err))
			}
			if raw == nil {
				return nil, nil, fmt.Errorf("header %s is not an object", metadataKey)
			}
			meta = make(map[string]string, len(raw))
			for k, v := range raw {
				s, ok := v.(string)
				if !ok {
					return nil, nil, fmt.Errorf("header %s[%q] is not a string", metadataKey, k)
				}
				meta[k] = s
			}
			continue
		}
		var he stHeaderEntry
		if err := dec.Decode(&he); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, jsonErr(err))
		}
		t, err := he.tensor(name)
		if err != nil {
			return nil, nil, err
		}
		tensors = append(tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, nil, fmt.Errorf("header JSON: %w", jsonErr(err))
	}
	if rest := header[dec.InputOffset():]; len(bytes.Trim(rest, " \t\r\n")) != 0 {
		return nil, nil, fmt.Errorf("header has %d bytes of trailing data after the JSON object", len(rest))
	}

	// The tensors must tile the buffer exactly, in offset order.
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ta, tb := tensors[order[a]], tensors[order[b]]
		if ta.begin != tb.begin {
			return ta.begin < tb.begin
		}
		return ta.end < tb.end
	})
	var next int64
	for _, i := range order {
		t := tensors[i]
		if t.begin != next {
			if t.begin < next {
				return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap the previous tensor, which ends at %d", t.name, t.begin, t.end, next)
			}
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap after byte %d", t.name, t.begin, t.end, next)
		}
		next = t.end
	}
	if next != bufLen {
		return nil, nil, fmt.Errorf("tensors cover %d bytes but the data buffer has %d", next, bufLen)
	}
	return tensors, meta, nil
}

// jsonErr turns the decoder's end-of-input errors into a clear message.
func jsonErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("the header JSON ends early")
	}
	return err
}

// tensor validates one header entry.
func (he *stHeaderEntry) tensor(name string) (stTensor, error) {
	t := stTensor{name: name}
	if he.DType == nil || he.Shape == nil || he.DataOffsets == nil {
		return t, fmt.Errorf("tensor %q: header entry needs dtype, shape and data_offsets", name)
	}
	d, ok := dtypeFromSafetensors(*he.DType)
	if !ok {
		return t, fmt.Errorf("tensor %q: unsupported dtype %q (want F32, F64, F16, BF16, I64, I32, U8, I8 or BOOL)", name, *he.DType)
	}
	t.dtype = d
	t.shape = make([]int64, len(*he.Shape))
	for i, s := range *he.Shape {
		if s > 1<<62 {
			return t, fmt.Errorf("tensor %q: shape %v has a size that is too large", name, *he.Shape)
		}
		t.shape[i] = int64(s)
	}
	numel, err := numElements(t.shape)
	if err != nil {
		return t, fmt.Errorf("tensor %q: %w", name, err)
	}
	nbytes, ok := mulInt64(numel, int64(d.Size()))
	if !ok {
		return t, fmt.Errorf("tensor %q: shape %v of %v is too large", name, t.shape, d)
	}
	offs := *he.DataOffsets
	if len(offs) != 2 {
		return t, fmt.Errorf("tensor %q: data_offsets has %d values, want [begin, end]", name, len(offs))
	}
	if offs[0] > offs[1] || offs[1] > 1<<62 {
		return t, fmt.Errorf("tensor %q: invalid data_offsets [%d, %d]", name, offs[0], offs[1])
	}
	t.begin, t.end = int64(offs[0]), int64(offs[1])
	if t.end-t.begin != nbytes {
		return t, fmt.Errorf("tensor %q: data_offsets [%d, %d] span %d bytes but shape %v of %v needs %d", name, t.begin, t.end, t.end-t.begin, t.shape, d, nbytes)
	}
	return t, nil
}

// WriteTo writes f in the safetensors format; it implements io.WriterTo.
// See WriteSafetensors.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	return f.WriteSafetensors(w)
}

// WriteSafetensors writes f in the safetensors format and returns the
// number of bytes written. The header lists the tensors in f's order, then
// "__metadata__" if f.Metadata is not empty; the data is laid out with the
// widest element types first so that every tensor starts at a multiple of
// its element size (the header is padded with spaces to a multiple of 8).
// Writing to a temporary file and renaming it is the caller's business.
func (f *File) WriteSafetensors(w io.Writer) (int64, error) {
	if err := f.Validate(); err != nil {
		return 0, fmt.Errorf("safetensors: %w", err)
	}
	for i := range f.Entries {
		switch name := f.Entries[i].Name; {
		case name == metadataKey:
			return 0, fmt.Errorf("safetensors: %q is reserved and cannot name a tensor", metadataKey)
		case !utf8.ValidString(name):
			return 0, fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", name)
		}
	}
	for k, v := range f.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return 0, fmt.Errorf("safetensors: metadata %q: %q is not valid UTF-8", k, v)
		}
	}
	// Data layout: stable by decreasing element size.
	layout := make([]int, len(f.Entries))
	for i := range layout {
		layout[i] = i
	}
	sort.SliceStable(layout, func(a, b int) bool {
		return f.Entries[layout[a]].DType.Size() > f.Entries[layout[b]].DType.Size()
	})
	offsets := make([][2]int64, len(f.Entries))
	var pos int64
	for _, i := range layout {
		n := int64(len(f.Entries[i].Data))
		offsets[i] = [2]int64{pos, pos + n}
		pos += n
	}

	var h bytes.Buffer
	h.WriteByte('{')
	for i := range f.Entries {
		e := &f.Entries[i]
		if i > 0 {
			h.WriteByte(',')
		}
		writeJSONString(&h, e.Name)
		fmt.Fprintf(&h, `:{"dtype":"%s","shape":[`, e.DType.Safetensors())
		for j, s := range e.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			fmt.Fprintf(&h, "%d", s)
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offsets[i][0], offsets[i][1])
	}
	if len(f.Metadata) > 0 {
		if len(f.Entries) > 0 {
			h.WriteByte(',')
		}
		writeJSONString(&h, metadataKey)
		h.WriteString(":{")
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for j, k := range keys {
			if j > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, f.Metadata[k])
		}
		h.WriteByte('}')
	}
	h.WriteByte('}')
	for (8+h.Len())%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > maxSafetensorsHeader {
		return 0, fmt.Errorf("safetensors: header of %d bytes exceeds the limit of %d", h.Len(), maxSafetensorsHeader)
	}

	var total int64
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(h.Len()))
	for _, chunk := range [][]byte{lenBuf[:], h.Bytes()} {
		n, err := w.Write(chunk)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("safetensors: writing header: %w", err)
		}
	}
	for _, i := range layout {
		n, err := w.Write(f.Entries[i].Data)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("safetensors: writing tensor %q: %w", f.Entries[i].Name, err)
		}
	}
	return total, nil
}

// writeJSONString writes s as a JSON string without HTML escaping.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends a newline
}
