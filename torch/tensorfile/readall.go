package tensorfile

import (
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// readChunk is the size of one read of storage data. Reading a large file in
// chunks on several goroutines overlaps the kernel's copying and page-fault
// work on several cores.
const readChunk = 8 << 20

// maxReaders bounds the goroutines that read storage data.
const maxReaders = 4

// span is one contiguous range of the file to read into buf, optionally
// checked against a CRC-32 (IEEE).
type span struct {
	what     string // for errors
	off      int64
	buf      []byte
	checkCRC bool
	crc      uint32
}

// readSpans fills every span's buffer from r, in chunks on up to maxReaders
// goroutines (io.ReaderAt allows parallel calls), and verifies CRCs.
func readSpans(r io.ReaderAt, spans []span) error {
	type chunk struct {
		span  int
		start int64 // within the span
		end   int64
		crc   uint32
	}
	var chunks []chunk
	first := make([]int, len(spans)) // index of each span's first chunk
	for i := range spans {
		first[i] = len(chunks)
		n := int64(len(spans[i].buf))
		for s := int64(0); s < n; s += readChunk {
			chunks = append(chunks, chunk{span: i, start: s, end: min(s+readChunk, n)})
		}
	}
	workers := min(runtime.GOMAXPROCS(0), maxReaders, len(chunks))
	var (
		next     atomic.Int64
		failed   atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				c := &chunks[i]
				sp := &spans[c.span]
				buf := sp.buf[c.start:c.end]
				n, err := r.ReadAt(buf, sp.off+c.start)
				if n == len(buf) {
					err = nil
				} else if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("%s: reading %d bytes at byte %d: %w", sp.what, len(buf), sp.off+c.start, err)
					})
					failed.Store(true)
					return
				}
				if sp.checkCRC {
					c.crc = crc32.ChecksumIEEE(buf)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for i := range spans {
		sp := &spans[i]
		if !sp.checkCRC {
			continue
		}
		var crc uint32
		for j := first[i]; j < len(chunks) && chunks[j].span == i; j++ {
			crc = crc32Combine(crc, chunks[j].crc, chunks[j].end-chunks[j].start)
		}
		if crc != sp.crc {
			return fmt.Errorf("%s: checksum error (CRC-32 %08x, the archive says %08x)", sp.what, crc, sp.crc)
		}
	}
	return nil
}

// crc32Combine returns the CRC-32 (IEEE) of A followed by B from crc1 =
// CRC(A), crc2 = CRC(B) and len2 = len(B), by applying len2 zero bytes to
// crc1 as a linear map over GF(2) (the method of zlib's crc32_combine).
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1 ^ crc2
	}
	var even, odd [32]uint32
	odd[0] = crc32.IEEE // the operator for one zero bit
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four zero bits
	for {
		gf2Square(&even, &odd) // one zero byte, then 4, 16, ... bytes
		if len2&1 != 0 {
			crc1 = gf2Times(&even, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
		gf2Square(&odd, &even)
		if len2&1 != 0 {
			crc1 = gf2Times(&odd, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := 0; n < 32; n++ {
		square[n] = gf2Times(mat, mat[n])
	}
}
