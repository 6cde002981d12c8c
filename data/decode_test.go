package data

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// pattern fills an image with a deterministic colour pattern.
func pattern(w, h int, gray bool, seed int) image.Image {
	r := newRNG(uint64(seed), 9, uint64(w), uint64(h))
	if gray {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i := range g.Pix {
			g.Pix[i] = uint8((i*7 + i/w*3 + r.IntN(40)) % 256)
		}
		return g
	}
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*m.Stride + 4*x
			m.Pix[i] = uint8((x*5 + r.IntN(30)) % 256)
			m.Pix[i+1] = uint8((y*3 + x + r.IntN(30)) % 256)
			m.Pix[i+2] = uint8((x*y + r.IntN(30)) % 256)
			m.Pix[i+3] = 255
		}
	}
	return m
}

func encode(t testing.TB, format string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "jpeg":
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	case "gif":
		err = gif.Encode(&b, img, nil)
	case "bmp":
		err = bmp.Encode(&b, img)
	case "tiff":
		err = tiff.Encode(&b, img, nil)
	default:
		t.Fatalf("unknown format %s", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSniffAndDecodeEveryFormat(t *testing.T) {
	src := pattern(13, 9, false, 1)
	for _, f := range []string{"png", "jpeg", "gif", "bmp", "tiff"} {
		b := encode(t, f, src)
		if got := Sniff(b); got != f {
			t.Errorf("Sniff(%s) = %q", f, got)
		}
		img, format, err := DecodeBytes(b, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if format != f || img.Bounds().Dx() != 13 || img.Bounds().Dy() != 9 {
			t.Errorf("%s: decoded as %s %v", f, format, img.Bounds())
		}
		if f == "png" || f == "bmp" || f == "tiff" {
			im := ToImage(img, 9, 13, ResizeNearest)
			want := ToImage(src, 9, 13, ResizeNearest)
			if !reflect.DeepEqual(im, want) {
				t.Errorf("%s: lossless round trip changed pixels", f)
			}
		}
	}
	webpData, err := os.ReadFile("testdata/tiny_lossless.webp")
	if err != nil {
		t.Fatal(err)
	}
	if got := Sniff(webpData); got != "webp" {
		t.Fatalf("Sniff(webp) = %q", got)
	}
}

// TestDecodeWebPByContent checks a lossless WebP (written by PIL) decodes
// to PIL's pixels exactly, whatever the file is called.
func TestDecodeWebPByContent(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/tiny_lossless.webp")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "looks_like_a.jpg")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	img, format, err := DecodeFile(p, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if format != "webp" {
		t.Fatalf("format %q, want webp", format)
	}
	im := ToImage(img, 4, 5, ResizeNearest)
	if im.C != 3 {
		t.Fatalf("channels %d, want 3", im.C)
	}
	for r := 0; r < 4; r++ {
		for c := 0; c < 5; c++ {
			want := [3]uint8{uint8(r * 60 % 256), uint8((c*50 + 20) % 256), uint8((r*c*30 + 7) % 256)}
			got := [3]uint8(im.Pix[(r*5+c)*3 : (r*5+c)*3+3])
			if got != want {
				t.Errorf("pixel (%d,%d) = %v, want %v", r, c, got, want)
			}
		}
	}
}

// pngHeaderOnly is a PNG signature and IHDR chunk claiming w x h pixels,
// with no image data.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestDecodeRejects(t *testing.T) {
	jpg := encode(t, "jpeg", pattern(40, 30, false, 2))
	for _, tc := range []struct {
		name string
		data []byte
		lim  Limits
		kind SkipKind
		msg  string
	}{
		{"empty", nil, Limits{}, SkipEmpty, "empty file"},
		{"text", []byte("hello, this is not an image"), Limits{}, SkipFormat, "not a JPEG, PNG, GIF, WebP, BMP or TIFF image (starts with 68 65 6c 6c 6f 2c 20 74)"},
		{"truncated jpeg", jpg[:len(jpg)/2], Limits{}, SkipCorrupt, "jpeg: "},
		{"bad png", []byte("\x89PNG\r\n\x1a\nrubbish"), Limits{}, SkipCorrupt, "png header:"},
		{"huge png", pngHeaderOnly(100000, 100000), Limits{}, SkipTooLarge, "png of 100000x100000 pixels, over the limits (side 16384, 40000000 pixels)"},
		{"too many pixels", pngHeaderOnly(9000, 9000), Limits{}, SkipTooLarge, "png of 9000x9000 pixels, over the limits"},
		{"zero size", pngHeaderOnly(0, 10), Limits{}, SkipCorrupt, "png header:"},
		{"bytes", jpg, Limits{MaxBytes: 100}, SkipTooLarge, fmt.Sprintf("%d bytes, over the limit of 100", len(jpg))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeBytes(tc.data, tc.lim)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v, want a *DecodeError", err)
			}
			if de.Kind != tc.kind || !strings.HasPrefix(de.Error(), tc.msg) {
				t.Fatalf("got %s %q, want %s %q", de.Kind, de.Error(), tc.kind, tc.msg)
			}
		})
	}
}

func TestToImageChannels(t *testing.T) {
	g := pattern(30, 20, true, 3).(*image.Gray)
	im := ToImage(g, 20, 30, ResizeNearest)
	if im.C != 1 || !bytes.Equal(im.Pix, g.Pix) {
		t.Fatalf("gray: C=%d, pixels equal %v", im.C, bytes.Equal(im.Pix, g.Pix))
	}
	// RGB whose channels agree is stored as one channel, losslessly.
	rgb := image.NewRGBA(image.Rect(0, 0, 30, 20))
	for i := 0; i < 600; i++ {
		v := g.Pix[i]
		copy(rgb.Pix[4*i:], []uint8{v, v, v, 255})
	}
	if im2 := ToImage(rgb, 20, 30, ResizeNearest); im2.C != 1 || !bytes.Equal(im2.Pix, g.Pix) {
		t.Fatalf("grey RGB: C=%d", im2.C)
	}
	// Alpha is dropped without compositing (PIL convert("RGB")).
	n := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(n.Pix, []uint8{200, 100, 50, 0, 10, 20, 30, 128})
	if im3 := ToImage(n, 1, 2, ResizeNearest); !bytes.Equal(im3.Pix, []uint8{200, 100, 50, 10, 20, 30}) {
		t.Fatalf("NRGBA: %v", im3.Pix)
	}
	// A paletted image with a transparent entry keeps the entry's colour.
	p := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.NRGBA{9, 8, 7, 0}, color.RGBA{1, 2, 3, 255}})
	p.Pix = []uint8{0, 1}
	if im4 := ToImage(p, 1, 2, ResizeNearest); !bytes.Equal(im4.Pix, []uint8{9, 8, 7, 1, 2, 3}) {
		t.Fatalf("paletted: %v", im4.Pix)
	}
}

func TestNearestIndex(t *testing.T) {
	idx := NearestIndex(350, 224)
	if want := []int{0, 2, 3, 5, 7, 8, 10, 11}; !reflect.DeepEqual(idx[:8], want) {
		t.Errorf("350->224 starts %v, want %v", idx[:8], want)
	}
	if want := []int{344, 346, 347, 349}; !reflect.DeepEqual(idx[220:], want) {
		t.Errorf("350->224 ends %v, want %v", idx[220:], want)
	}
	up := NearestIndex(27, 224)
	if up[0] != 0 || up[223] != 26 {
		t.Errorf("27->224 = %v...%v", up[0], up[223])
	}
}

func TestResizeOtherMethods(t *testing.T) {
	flat := image.NewGray(image.Rect(0, 0, 77, 53))
	for i := range flat.Pix {
		flat.Pix[i] = 117
	}
	for _, m := range []ResizeMethod{ResizeBilinear, ResizeArea} {
		im := ToImage(flat, 224, 224, m)
		if im.C != 1 || im.H != 224 || im.W != 224 {
			t.Fatalf("%v: %dx%dx%d", m, im.H, im.W, im.C)
		}
		for _, v := range im.Pix {
			if v != 117 {
				t.Fatalf("%v: a flat image became %d somewhere", m, v)
			}
		}
		// A horizontal ramp stays non-decreasing along rows.
		ramp := image.NewNRGBA(image.Rect(0, 0, 350, 10))
		for y := 0; y < 10; y++ {
			for x := 0; x < 350; x++ {
				i := y*ramp.Stride + 4*x
				ramp.Pix[i], ramp.Pix[i+1], ramp.Pix[i+2], ramp.Pix[i+3] = uint8(x*255/349), 0, uint8(255-x*255/349), 255
			}
		}
		r := ToImage(ramp, 5, 224, m)
		if r.C != 3 {
			t.Fatalf("%v: ramp has %d channels", m, r.C)
		}
		for c := 1; c < 224; c++ {
			if r.Pix[3*c] < r.Pix[3*(c-1)] {
				t.Fatalf("%v: ramp decreases at column %d", m, c)
			}
		}
		if r.Pix[0] > 3 || r.Pix[3*223] < 252 {
			t.Fatalf("%v: ramp ends %d..%d", m, r.Pix[0], r.Pix[3*223])
		}
	}
}

// TestDecodeResizeMatchesPIL compares decoding plus NEAREST resizing with
// Keras' load_img (PIL) on lossless files of many shapes and kinds: they
// must agree exactly. JPEG decoders' inverse DCTs differ by a level here and
// there (the chroma upsampling and colour equations are libjpeg's); those
// are compared with a tolerance.
func TestDecodeResizeMatchesPIL(t *testing.T) {
	py := pyref.Require(t, "PIL")
	dir := t.TempDir()
	type tc struct {
		Input string `json:"input"`
		H     int    `json:"h"`
		W     int    `json:"w"`
		Out   string `json:"out"`
		lossy bool
	}
	var cases []tc
	addFile := func(name string, data []byte, h, w int, lossy bool) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, tc{Input: name, H: h, W: w, Out: name + ".rgb", lossy: lossy})
	}
	sizes := [][2]int{{350, 350}, {27, 31}, {355, 536}, {224, 224}, {96, 70}, {1, 1}, {300, 100}}
	for i, s := range sizes {
		addFile(fmt.Sprintf("rgb%d.png", i), encode(t, "png", pattern(s[0], s[1], false, i)), 224, 224, false)
		addFile(fmt.Sprintf("gray%d.png", i), encode(t, "png", pattern(s[0], s[1], true, i)), 224, 224, false)
	}
	addFile("odd_target.png", encode(t, "png", pattern(350, 350, false, 9)), 150, 97, false)
	addFile("pal.gif", encode(t, "gif", pattern(64, 48, false, 10)), 224, 224, false)
	addFile("img.bmp", encode(t, "bmp", pattern(64, 48, false, 11)), 224, 224, false)
	addFile("gray.jpg", encode(t, "jpeg", pattern(350, 350, true, 12)), 224, 224, true)
	addFile("color.jpg", encode(t, "jpeg", pattern(350, 350, false, 13)), 224, 224, true)
	webpData, err := os.ReadFile("testdata/tiny_lossless.webp")
	if err != nil {
		t.Fatal(err)
	}
	addFile("tiny.webp.jpg", webpData, 224, 224, false)
	js, _ := json.Marshal(cases)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pyref.Run(py, "testdata/pil_ref.py", dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		want, err := os.ReadFile(filepath.Join(dir, c.Out))
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := DecodeFile(filepath.Join(dir, c.Input), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", c.Input, err)
		}
		im := ToImage(img, c.H, c.W, ResizeNearest)
		got := expandRGB(im)
		if len(got) != len(want) {
			t.Fatalf("%s: %d bytes, PIL %d", c.Input, len(got), len(want))
		}
		var sum, maxd float64
		for i := range got {
			d := math.Abs(float64(got[i]) - float64(want[i]))
			sum += d
			maxd = math.Max(maxd, d)
		}
		mean := sum / float64(len(got))
		if !c.lossy && maxd != 0 {
			t.Errorf("%s: differs from PIL (mean %.3f, max %.0f)", c.Input, mean, maxd)
		}
		if c.lossy {
			t.Logf("%s: JPEG decoders differ by mean %.3f, max %.0f levels", c.Input, mean, maxd)
			if mean > 0.1 || maxd > 4 {
				t.Errorf("%s: mean %.3f max %.0f levels from PIL, want <= 0.1 and 4", c.Input, mean, maxd)
			}
		}
	}
}

// expandRGB returns the HWC RGB bytes of an image, repeating a grey channel.
func expandRGB(im Image) []byte {
	if im.C == 3 {
		return im.Pix
	}
	out := make([]byte, 0, len(im.Pix)*3)
	for _, v := range im.Pix {
		out = append(out, v, v, v)
	}
	return out
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(f, "png", pattern(5, 4, false, 1)))
	f.Add(encode(f, "png", pattern(3, 3, true, 2)))
	f.Add(encode(f, "jpeg", pattern(9, 7, false, 3)))
	f.Add(encode(f, "gif", pattern(4, 4, false, 4)))
	f.Add(encode(f, "bmp", pattern(3, 2, false, 5)))
	f.Add(encode(f, "tiff", pattern(3, 2, false, 6)))
	if b, err := os.ReadFile("testdata/tiny_lossless.webp"); err == nil {
		f.Add(b)
	}
	f.Add(pngHeaderOnly(1<<20, 1<<20))
	lim := Limits{MaxBytes: 1 << 20, MaxSide: 512, MaxPixels: 1 << 16}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, format, err := DecodeBytes(b, lim)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Kind == "" {
				t.Fatalf("error %v is not a classified *DecodeError", err)
			}
			return
		}
		if format != Sniff(b) {
			t.Fatalf("format %q, sniffed %q", format, Sniff(b))
		}
		r := img.Bounds()
		if r.Dx() <= 0 || r.Dy() <= 0 || r.Dx() > lim.MaxSide || r.Dy() > lim.MaxSide {
			t.Fatalf("decoded bounds %v outside the limits", r)
		}
		for _, m := range []ResizeMethod{ResizeNearest, ResizeArea} {
			im := ToImage(img, 6, 5, m)
			if err := im.check(); err != nil || im.H != 6 || im.W != 5 {
				t.Fatalf("ToImage: %v (%dx%d)", err, im.H, im.W)
			}
		}
	})
}
