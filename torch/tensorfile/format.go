package tensorfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Format is a weight-file format.
type Format int

// The formats DetectFormat tells apart.
const (
	FormatUnknown     Format = iota
	FormatPTHZip             // torch.save since PyTorch 1.6
	FormatPTHLegacy          // torch.save before 1.6, or with _use_new_zipfile_serialization=False
	FormatSafetensors        // safetensors
)

// String names the format.
func (f Format) String() string {
	switch f {
	case FormatPTHZip:
		return "pth (zip)"
	case FormatPTHLegacy:
		return "pth (legacy)"
	case FormatSafetensors:
		return "safetensors"
	}
	return "unknown"
}

// legacyPrefix starts a legacy .pth file: PROTO 2, then LONG1 with the
// 10-byte magic number.
var legacyPrefix = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// DetectFormat tells the format of a file from its first bytes (16 are
// enough).
func DetectFormat(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return FormatPTHZip
	case bytes.HasPrefix(head, legacyPrefix):
		return FormatPTHLegacy
	case len(head) >= 9 && head[8] == '{' && binary.LittleEndian.Uint64(head) <= maxSafetensorsHeader:
		return FormatSafetensors
	}
	return FormatUnknown
}

// DetectFileFormat tells the format of the file at path from its first
// bytes.
func DetectFileFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return FormatUnknown, err
	}
	defer f.Close()
	var head [16]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return FormatUnknown, err
	}
	return DetectFormat(head[:n]), nil
}

// ReadFile reads a weight file in any supported format, telling the format
// from the file's content rather than its name. .pth files are read with
// the zero PTHOptions: they must hold a flat dict of tensors.
func ReadFile(path string) (*File, error) {
	return readPath(path, func(r io.ReaderAt, size int64) (*File, error) {
		var head [16]byte
		n, err := r.ReadAt(head[:], 0)
		if err != nil && err != io.EOF {
			return nil, err
		}
		switch DetectFormat(head[:n]) {
		case FormatPTHZip, FormatPTHLegacy:
			return ReadPTH(r, size, PTHOptions{})
		case FormatSafetensors:
			return ReadSafetensors(r, size)
		}
		return nil, fmt.Errorf("unknown weight file format (not a PyTorch .pth or a safetensors file)")
	})
}

// readPath opens the file at path and hands it and its size to read; the
// errors read returns are prefixed with the path.
func readPath(path string, read func(r io.ReaderAt, size int64) (*File, error)) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	file, err := read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return file, nil
}
