package data

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixtureDataset writes a few images of different kinds, plus broken files,
// and opens them as a directory layout.
func fixtureDataset(t *testing.T) (*Dataset, string) {
	t.Helper()
	root := t.TempDir()
	files := map[string][]byte{
		"anger/a_0001.png":     encode(t, "png", pattern(60, 40, false, 1)),
		"anger/a_0002.jpg":     encode(t, "jpeg", pattern(350, 350, true, 2)),
		"anger/broken.jpg":     encode(t, "jpeg", pattern(50, 50, false, 3))[:200],
		"happiness/h_0001.gif": encode(t, "gif", pattern(30, 30, false, 4)),
		"happiness/h_0002.bmp": encode(t, "bmp", pattern(224, 224, false, 5)),
		"happiness/empty.png":  {},
		"happiness/text.jpg":   []byte("not an image at all"),
		"happiness/big.png":    pngHeaderOnly(60000, 60000),
	}
	webpData, err := os.ReadFile("testdata/tiny_lossless.webp")
	if err != nil {
		t.Fatal(err)
	}
	files["happiness/webp_named.jpg"] = webpData
	for name, b := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := OpenDir(root, DirOptions{Extensions: append(KerasExtensions(), "gif")})
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

func TestDecodeDatasetSkipsAndCaches(t *testing.T) {
	d, root := fixtureDataset(t)
	if d.Len() != 9 {
		t.Fatalf("%d samples listed, want 9", d.Len())
	}
	cache := filepath.Join(t.TempDir(), "train.cache")
	opt := DecodeOptions{Height: 32, Width: 24, Workers: 3, CacheFile: cache}
	var calls int
	opt.Progress = func(done, total int) {
		calls++
		if total != 9 || done < 1 || done > 9 {
			t.Errorf("progress %d/%d", done, total)
		}
	}
	dd, st, err := d.Decode(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 9 {
		t.Errorf("progress called %d times", calls)
	}
	if st.Decoded != 9 || st.Cached != 0 || st.Skipped != 4 || !st.CacheWritten || st.CacheError != "" {
		t.Fatalf("stats %+v", st)
	}
	var skipped []string
	for _, s := range dd.Skipped {
		rel, _ := filepath.Rel(root, s.Path)
		skipped = append(skipped, rel+" "+string(s.Kind))
	}
	want := []string{"anger/broken.jpg corrupt", "happiness/big.png too-large", "happiness/empty.png empty", "happiness/text.jpg format"}
	if !reflect.DeepEqual(skipped, want) {
		t.Fatalf("skipped %v\nwant %v", skipped, want)
	}
	var kept []string
	for i, s := range dd.Samples {
		kept = append(kept, s.Name)
		im, ok := dd.Image(i)
		if !ok || im.H != 32 || im.W != 24 || im.check() != nil {
			t.Fatalf("%s: image %+v", s.Name, im)
		}
	}
	if want := []string{"a_0001.png", "a_0002.jpg", "h_0001.gif", "h_0002.bmp", "webp_named.jpg"}; !reflect.DeepEqual(kept, want) {
		t.Fatalf("kept %v", kept)
	}
	if im, _ := dd.Image(1); im.C != 1 {
		t.Errorf("grayscale JPEG stored with %d channels", im.C)
	}
	if h, w := dd.Size(); h != 32 || w != 24 {
		t.Errorf("size %dx%d", h, w)
	}

	// A second run reads everything from the cache, with identical pixels.
	dd2, st2, err := d.Decode(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Decoded != 0 || st2.Cached != 9 || st2.CacheWritten || st2.CacheError != "" {
		t.Fatalf("cached run stats %+v", st2)
	}
	if !reflect.DeepEqual(dd2.images, dd.images) || !reflect.DeepEqual(dd2.Skipped, dd.Skipped) {
		t.Fatal("cached pixels or skips differ")
	}

	// A changed file is decoded again; the rest still comes from the cache.
	p := filepath.Join(root, "anger", "a_0001.png")
	if err := os.WriteFile(p, encode(t, "png", pattern(60, 40, false, 77)), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	os.Chtimes(p, future, future)
	dd3, st3, err := d.Decode(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if st3.Decoded != 1 || st3.Cached != 8 || !st3.CacheWritten {
		t.Fatalf("after a change: %+v", st3)
	}
	if im3, _ := dd3.Image(0); bytes.Equal(im3.Pix, dd.images[0].Pix) {
		t.Fatal("changed file kept its old pixels")
	}

	// Another size ignores the cache; a damaged cache is rebuilt.
	opt2 := opt
	opt2.Height = 16
	if _, st4, err := d.Decode(context.Background(), opt2); err != nil || st4.Cached != 0 || st4.Decoded != 9 {
		t.Fatalf("other size: %+v %v", st4, err)
	}
	raw, _ := os.ReadFile(cache)
	raw[len(raw)/2] ^= 0xff
	os.WriteFile(cache, raw[:len(raw)-100], 0o644)
	_, st5, err := d.Decode(context.Background(), opt2)
	if err != nil {
		t.Fatal(err)
	}
	if st5.Decoded == 0 || !st5.CacheWritten || !strings.Contains(st5.CacheError, "cache "+cache+": record") {
		t.Fatalf("damaged cache: %+v", st5)
	}
}

func TestDecodeCanceled(t *testing.T) {
	d, _ := fixtureDataset(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := d.Decode(ctx, DecodeOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func FuzzParseCache(f *testing.F) {
	var b bytes.Buffer
	b.WriteString(cacheMagic)
	b.Write([]byte{4, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _ := parseCache(bytes.NewReader(data), "fuzz", 4, 4, ResizeNearest)
		for _, e := range m {
			if e.kind == "" && e.img.check() != nil {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

// TestDecodeKeepCache: with KeepCache, Decode reads a cache file but never
// writes one, neither a missing one nor an outdated one.
func TestDecodeKeepCache(t *testing.T) {
	d, _ := fixtureDataset(t)
	cache := filepath.Join(t.TempDir(), "train.cache")
	keep := DecodeOptions{Height: 32, Width: 24, Workers: 2, CacheFile: cache, KeepCache: true}
	_, st, err := d.Decode(context.Background(), keep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) || st.CacheWritten || st.Decoded != 9 {
		t.Fatalf("KeepCache without a cache file: stat %v, written %v, %d decoded", err, st.CacheWritten, st.Decoded)
	}
	write := keep
	write.KeepCache = false
	if _, _, err := d.Decode(context.Background(), write); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	_, st, err = d.Decode(context.Background(), keep)
	if err != nil || st.Cached != 9 || st.Decoded != 0 || st.CacheWritten {
		t.Fatalf("KeepCache with the cache: %+v, %v", st, err)
	}
	// An outdated cache (one image fewer) is read and left as it was.
	d.Samples = d.Samples[1:]
	if _, st, err = d.Decode(context.Background(), keep); err != nil || st.CacheWritten || st.Cached != 8 {
		t.Fatalf("KeepCache with a changed dataset: %+v, %v", st, err)
	}
	if after, _ := os.ReadFile(cache); !bytes.Equal(before, after) {
		t.Error("KeepCache rewrote the cache file")
	}
}
