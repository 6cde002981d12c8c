package tensorfile

import (
	"bytes"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, cut := range []int{0, 1, 7, 8, 1000, 4999, 5000} {
		a, b := data[:cut], data[cut:]
		got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b)))
		if want := crc32.ChecksumIEEE(data); got != want {
			t.Errorf("cut %d: %08x, want %08x", cut, got, want)
		}
	}
}

func TestReadSpans(t *testing.T) {
	// Spans of several chunks, read in parallel, with their CRCs checked.
	rng := rand.New(rand.NewPCG(3, 4))
	file := make([]byte, 2*readChunk+12345)
	for i := range file {
		file[i] = byte(rng.Uint32())
	}
	r := bytes.NewReader(file)
	spans := []span{
		{what: "a", off: 10, buf: make([]byte, readChunk+77), checkCRC: true, crc: crc32.ChecksumIEEE(file[10 : 10+readChunk+77])},
		{what: "b", off: readChunk + 100, buf: make([]byte, readChunk+5000)},
		{what: "empty", off: 3, buf: []byte{}, checkCRC: true, crc: 0},
	}
	if err := readSpans(r, spans); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spans[0].buf, file[10:10+readChunk+77]) || !bytes.Equal(spans[1].buf, file[readChunk+100:2*readChunk+5100]) {
		t.Fatal("spans read the wrong bytes")
	}
	spans[0].crc ^= 1
	if err := readSpans(r, spans); err == nil || !strings.Contains(err.Error(), "a: checksum error") {
		t.Errorf("err = %v", err)
	}
	past := []span{{what: "tail", off: int64(len(file)) - 10, buf: make([]byte, 20)}}
	if err := readSpans(r, past); err == nil || !strings.Contains(err.Error(), "tail: reading 20 bytes at byte") {
		t.Errorf("err = %v", err)
	}
}
