package data

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/fertorch/fertorch/internal/atomicfile"
)

// DecodeOptions controls Dataset.Decode.
type DecodeOptions struct {
	// Height and Width are the model input size (default 224 x 224).
	Height, Width int
	// Resize is the resize method (default ResizeNearest, as Keras).
	Resize ResizeMethod
	// Workers is the number of decoding goroutines (default GOMAXPROCS).
	Workers int
	// Limits bound file size and dimensions (zero fields take defaults).
	Limits Limits
	// CacheFile, when set, is an on-disk pixel cache for this dataset: entries
	// whose file has the same size and modification time are reused, and the
	// file is rewritten (atomically) when anything changed. Use one cache
	// file per dataset (per split).
	CacheFile string
	// KeepCache reads CacheFile but never writes it: for the processes of a
	// distributed run other than rank 0, which share rank 0's cache file.
	KeepCache bool
	// Progress, when set, is called after each image with the number done;
	// calls are serialized but come from worker goroutines.
	Progress func(done, total int)
}

// DecodeStats says where a decoded dataset's pixels came from.
type DecodeStats struct {
	// Decoded images were read and resized in this run; Cached ones came from
	// the cache file; Skipped ones could not be used.
	Decoded, Cached, Skipped int
	// CacheWritten is set when the cache file was (re)written; CacheError is
	// why reading or writing it failed, if it did (the cache is optional, so
	// this is not an error of Decode).
	CacheWritten bool
	CacheError   string
}

// Decode reads every sample's file once, decodes it by content, converts it
// to RGB (or keeps one channel for grayscale) and resizes it to the input
// size, in parallel. It returns a new dataset holding only the samples that
// decoded, with their pixels, and with every failure added to Skipped
// (empty, corrupt, unsupported or oversized files). The context stops the
// work early with its error.
func (d *Dataset) Decode(ctx context.Context, opt DecodeOptions) (*Dataset, *DecodeStats, error) {
	if opt.Height <= 0 {
		opt.Height = 224
	}
	if opt.Width <= 0 {
		opt.Width = 224
	}
	if opt.Height > 8192 || opt.Width > 8192 {
		return nil, nil, fmt.Errorf("decode: input size %dx%d is too large", opt.Height, opt.Width)
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	stats := &DecodeStats{}
	n := len(d.Samples)
	var cached map[string]cacheEntry
	if opt.CacheFile != "" {
		var err error
		cached, err = readCache(opt.CacheFile, opt.Height, opt.Width, opt.Resize)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			stats.CacheError = err.Error()
		}
	}
	entries := make([]cacheEntry, n)
	fresh := make([]bool, n)
	var next, done atomic.Int64
	var progressMu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < min(opt.Workers, max(n, 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if ctx.Err() != nil {
					return
				}
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				entries[i], fresh[i] = decodeOne(d.Samples[i].Path, cached, opt)
				if opt.Progress != nil {
					k := int(done.Add(1))
					progressMu.Lock()
					opt.Progress(k, n)
					progressMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("decode: %w", err)
	}
	out := &Dataset{
		Classes: append([]string(nil), d.Classes...),
		Skipped: append([]Skip(nil), d.Skipped...),
		Legend:  d.Legend,
		Root:    d.Root,
		images:  make([]Image, 0, n),
		height:  opt.Height,
		width:   opt.Width,
	}
	changed := len(cached) != n
	for i, e := range entries {
		if fresh[i] {
			changed = true
			stats.Decoded++
		} else {
			stats.Cached++
		}
		if e.kind != "" {
			stats.Skipped++
			out.Skipped = append(out.Skipped, Skip{Path: d.Samples[i].Path, Kind: e.kind, Reason: e.reason})
			continue
		}
		out.Samples = append(out.Samples, d.Samples[i])
		out.images = append(out.images, e.img)
	}
	if opt.CacheFile != "" && changed && !opt.KeepCache {
		if err := writeCache(opt.CacheFile, opt.Height, opt.Width, opt.Resize, entries); err != nil {
			stats.CacheError = err.Error()
		} else {
			stats.CacheWritten = true
		}
	}
	return out, stats, nil
}

// cacheEntry is one file's result: pixels, or the reason it was skipped,
// with the file identity that makes the entry reusable.
type cacheEntry struct {
	path        string
	size, mtime int64
	kind        SkipKind
	reason      string
	img         Image
}

func decodeOne(path string, cached map[string]cacheEntry, opt DecodeOptions) (cacheEntry, bool) {
	e := cacheEntry{path: absPath(path)}
	st, err := os.Stat(path)
	if err != nil {
		e.kind, e.reason = SkipUnreadable, err.Error()
		return e, true
	}
	e.size, e.mtime = st.Size(), st.ModTime().UnixNano()
	if c, ok := cached[e.path]; ok && c.size == e.size && c.mtime == e.mtime {
		return c, false
	}
	img, _, err := DecodeFile(path, opt.Limits)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			e.kind = de.Kind
		} else {
			e.kind = SkipCorrupt
		}
		e.reason = err.Error()
		return e, true
	}
	e.img = ToImage(img, opt.Height, opt.Width, opt.Resize)
	return e, true
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// The cache file: a header (magic, version, size, resize method, count),
// then one record per file: path, size, mtime, skip kind and reason,
// channel count, CRC-32C of the pixels, and the pixels.
const cacheMagic = "FERPXC01"

const maxCacheString = 1 << 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func writeCache(path string, h, w int, m ResizeMethod, entries []cacheEntry) error {
	err := atomicfile.Write(path, func(out io.Writer) error {
		return writeCacheTo(out, h, w, m, entries)
	})
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// writeCacheTo encodes the cache file's content.
func writeCacheTo(out io.Writer, h, w int, m ResizeMethod, entries []cacheEntry) error {
	bw := bufio.NewWriterSize(out, 1<<20)
	le := binary.LittleEndian
	var hdr []byte
	hdr = append(hdr, cacheMagic...)
	hdr = le.AppendUint32(hdr, uint32(h))
	hdr = le.AppendUint32(hdr, uint32(w))
	hdr = le.AppendUint32(hdr, uint32(m))
	hdr = le.AppendUint32(hdr, uint32(len(entries)))
	bw.Write(hdr)
	for _, e := range entries {
		var rec []byte
		rec = appendString(rec, e.path)
		rec = le.AppendUint64(rec, uint64(e.size))
		rec = le.AppendUint64(rec, uint64(e.mtime))
		rec = appendString(rec, string(e.kind))
		rec = appendString(rec, e.reason)
		c := 0
		if e.kind == "" {
			c = e.img.C
		}
		rec = append(rec, byte(c))
		var sum uint32
		if c > 0 {
			sum = crc32.Checksum(e.img.Pix, castagnoli)
		}
		rec = le.AppendUint32(rec, sum)
		bw.Write(rec)
		if c > 0 {
			bw.Write(e.img.Pix)
		}
	}
	return bw.Flush()
}

func appendString(b []byte, s string) []byte {
	if len(s) >= maxCacheString {
		s = s[:maxCacheString-1]
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// readCache loads a cache file written for the same size and method. A
// damaged record ends the read; the entries before it are still used, and
// an entry whose pixels fail their checksum is dropped.
func readCache(path string, h, w int, m ResizeMethod) (map[string]cacheEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseCache(bufio.NewReaderSize(f, 1<<20), path, h, w, m)
}

func parseCache(r io.Reader, path string, h, w int, m ResizeMethod) (map[string]cacheEntry, error) {
	le := binary.LittleEndian
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("cache %s: header: %w", path, err)
	}
	if string(hdr[:8]) != cacheMagic {
		return nil, fmt.Errorf("cache %s: not a fertorch pixel cache", path)
	}
	if int(le.Uint32(hdr[8:])) != h || int(le.Uint32(hdr[12:])) != w || ResizeMethod(le.Uint32(hdr[16:])) != m {
		return nil, nil // written for another size or method: start afresh
	}
	n := int(le.Uint32(hdr[20:]))
	out := make(map[string]cacheEntry, min(n, 1<<20))
	readStr := func() (string, error) {
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return "", err
		}
		k := le.Uint32(l[:])
		if k >= maxCacheString {
			return "", fmt.Errorf("string of %d bytes", k)
		}
		b := make([]byte, k)
		_, err := io.ReadFull(r, b)
		return string(b), err
	}
	for i := 0; i < n; i++ {
		var e cacheEntry
		var err error
		fail := func(err error) (map[string]cacheEntry, error) {
			return out, fmt.Errorf("cache %s: record %d: %w", path, i, err)
		}
		if e.path, err = readStr(); err != nil {
			return fail(err)
		}
		var nums [16]byte
		if _, err := io.ReadFull(r, nums[:]); err != nil {
			return fail(err)
		}
		e.size, e.mtime = int64(le.Uint64(nums[:8])), int64(le.Uint64(nums[8:]))
		kind, err := readStr()
		if err != nil {
			return fail(err)
		}
		e.kind = SkipKind(kind)
		if e.reason, err = readStr(); err != nil {
			return fail(err)
		}
		var tail [5]byte
		if _, err := io.ReadFull(r, tail[:]); err != nil {
			return fail(err)
		}
		c := int(tail[0])
		sum := le.Uint32(tail[1:])
		if c != 0 && c != 1 && c != 3 {
			return fail(fmt.Errorf("%d channels", c))
		}
		if (c == 0) != (e.kind != "") {
			return fail(errors.New("record is neither pixels nor a skip"))
		}
		if c > 0 {
			e.img = Image{H: h, W: w, C: c, Pix: make([]uint8, h*w*c)}
			if _, err := io.ReadFull(r, e.img.Pix); err != nil {
				return fail(err)
			}
			if crc32.Checksum(e.img.Pix, castagnoli) != sum {
				continue
			}
		}
		out[e.path] = e
	}
	return out, nil
}
