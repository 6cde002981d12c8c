package tensorfile

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// pthArchive is the top-level directory of the zip archives WritePTH
// writes, as in torch.save since PyTorch 2.
const pthArchive = "archive/"

// pthAlign is the alignment of tensor data in the archive, as torch.save
// writes it.
const pthAlign = 64

// WritePTH writes f as a PyTorch .pth file in the zip format, an
// OrderedDict of tensors in f's order that torch.load reads (with
// weights_only=True as well) in PyTorch 1.6 and later. Each tensor gets its
// own storage, stored uncompressed and 64-byte aligned. Metadata is not
// written (a state dict has no place for it). It returns the number of
// bytes written; writing to a temporary file and renaming it is the
// caller's business.
func (f *File) WritePTH(w io.Writer) (int64, error) {
	if err := f.Validate(); err != nil {
		return 0, fmt.Errorf("pth: %w", err)
	}
	for i := range f.Entries {
		if !utf8.ValidString(f.Entries[i].Name) {
			return 0, fmt.Errorf("pth: tensor name %q is not valid UTF-8", f.Entries[i].Name)
		}
	}
	cw := &countWriter{w: w}
	zw := zip.NewWriter(cw)
	var offset int64 // bytes of the archive so far
	add := func(name string, data []byte) error {
		fh := &zip.FileHeader{
			Name:               name,
			Method:             zip.Store,
			CRC32:              crc32.ChecksumIEEE(data),
			CompressedSize64:   uint64(len(data)),
			UncompressedSize64: uint64(len(data)),
		}
		// Pad the local header with an extra field so the data is aligned.
		start := offset + 30 + int64(len(name))
		if pad := (pthAlign - start%pthAlign) % pthAlign; pad != 0 {
			if pad < 4 {
				pad += pthAlign
			}
			fh.Extra = make([]byte, pad)
			copy(fh.Extra, "FB")
			binary.LittleEndian.PutUint16(fh.Extra[2:], uint16(pad-4))
		}
		fw, err := zw.CreateRaw(fh)
		if err != nil {
			return err
		}
		if _, err := fw.Write(data); err != nil {
			return err
		}
		offset = start + int64(len(fh.Extra)) + int64(len(data))
		return nil
	}
	if err := add(pthArchive+"data.pkl", statePickleFor(f)); err != nil {
		return cw.n, fmt.Errorf("pth: writing data.pkl: %w", err)
	}
	if err := add(pthArchive+"byteorder", []byte("little")); err != nil {
		return cw.n, fmt.Errorf("pth: %w", err)
	}
	for i := range f.Entries {
		if err := add(pthArchive+"data/"+strconv.Itoa(i), f.Entries[i].Data); err != nil {
			return cw.n, fmt.Errorf("pth: writing tensor %q: %w", f.Entries[i].Name, err)
		}
	}
	if err := add(pthArchive+"version", []byte("3\n")); err != nil {
		return cw.n, fmt.Errorf("pth: %w", err)
	}
	if err := zw.Close(); err != nil {
		return cw.n, fmt.Errorf("pth: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// statePickleFor is the protocol-2 pickle of f as torch.save writes a state
// dict: OrderedDict([(name, _rebuild_tensor_v2(storage, 0, size, stride,
// False, OrderedDict())), ...]), storage i being the persistent ID
// ('storage', torch.<Type>Storage, "i", "cpu", numel).
func statePickleFor(f *File) []byte {
	p := &pickleWriter{}
	p.b = append(p.b, opProto, 2)
	p.global("collections", "OrderedDict")
	p.b = append(p.b, opEmptyTuple, opReduce)
	if len(f.Entries) > 0 {
		p.b = append(p.b, opMark)
	}
	for i := range f.Entries {
		e := &f.Entries[i]
		p.str(e.Name)
		p.global("torch._utils", rebuildTensorV2)
		p.b = append(p.b, opMark, opMark)
		p.str("storage")
		p.global("torch", dtypes[e.DType].storage)
		p.str(strconv.Itoa(i))
		p.str("cpu")
		p.int(e.NumElements())
		p.b = append(p.b, opTuple, opBinPersID)
		p.int(0)
		p.ints(e.Shape)
		p.ints(contiguousStrides(e.Shape))
		p.b = append(p.b, opNewFalse)
		p.global("collections", "OrderedDict")
		p.b = append(p.b, opEmptyTuple, opReduce, opTuple, opReduce)
	}
	if len(f.Entries) > 0 {
		p.b = append(p.b, opSetItems)
	}
	return append(p.b, opStop)
}

// contiguousStrides are PyTorch's strides of a contiguous tensor.
func contiguousStrides(shape []int64) []int64 {
	strides := make([]int64, len(shape))
	s := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= max(shape[i], 1)
	}
	return strides
}

// pickleWriter emits the few pickle opcodes a state dict needs, memoizing
// globals so that each is named once.
type pickleWriter struct {
	b    []byte
	memo map[string]int
}

func (p *pickleWriter) global(module, name string) {
	key := module + "\n" + name + "\n"
	if i, ok := p.memo[key]; ok {
		p.b = append(p.b, opLongBinGet)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(i))
		return
	}
	if p.memo == nil {
		p.memo = map[string]int{}
	}
	i := len(p.memo)
	p.memo[key] = i
	p.b = append(p.b, opGlobal)
	p.b = append(p.b, key...)
	p.b = append(p.b, opLongBinPut)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(i))
}

func (p *pickleWriter) str(s string) {
	p.b = append(p.b, opBinUnicode)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
}

func (p *pickleWriter) int(v int64) {
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		p.b = append(p.b, opBinInt)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(v)))
		return
	}
	// LONG1: 8 bytes of two's complement, little-endian.
	p.b = append(p.b, opLong1, 8)
	p.b = binary.LittleEndian.AppendUint64(p.b, uint64(v))
}

func (p *pickleWriter) ints(v []int64) {
	if len(v) == 0 {
		p.b = append(p.b, opEmptyTuple)
		return
	}
	p.b = append(p.b, opMark)
	for _, x := range v {
		p.int(x)
	}
	p.b = append(p.b, opTuple)
}
