package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// Limits bound what the decoder accepts, checked from the header before
// any pixel is decoded.
type Limits struct {
	// MaxBytes is the largest file read (default 64 MiB).
	MaxBytes int64
	// MaxSide is the largest width or height (default 16384).
	MaxSide int
	// MaxPixels is the largest width*height (default 40 million).
	MaxPixels int
}

// DefaultLimits returns the limits used when a field is zero.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 64 << 20, MaxSide: 16384, MaxPixels: 40_000_000}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxSide <= 0 {
		l.MaxSide = d.MaxSide
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = d.MaxPixels
	}
	return l
}

// DecodeError is a file that could not be turned into pixels; Kind says
// which of the skip reasons applies.
type DecodeError struct {
	// Kind is the skip reason; Err the underlying error.
	Kind SkipKind
	Err  error
}

// Error returns the underlying error's text.
func (e *DecodeError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(kind SkipKind, format string, args ...any) error {
	return &DecodeError{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// Sniff names an image format from the first bytes of a file, whatever its
// extension says: "jpeg", "png", "gif", "webp", "bmp", "tiff", or "" when
// the bytes are none of these.
func Sniff(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif"
	case len(b) >= 12 && bytes.Equal(b[:4], []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WEBP")):
		return "webp"
	case len(b) >= 14 && b[0] == 'B' && b[1] == 'M':
		return "bmp"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "tiff"
	}
	return ""
}

type codec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

func codecFor(format string) (codec, bool) {
	switch format {
	case "jpeg":
		return codec{jpeg.DecodeConfig, jpeg.Decode}, true
	case "png":
		return codec{png.DecodeConfig, png.Decode}, true
	case "gif":
		return codec{gif.DecodeConfig, gif.Decode}, true
	case "webp":
		return codec{webp.DecodeConfig, webp.Decode}, true
	case "bmp":
		return codec{bmp.DecodeConfig, bmp.Decode}, true
	case "tiff":
		return codec{tiff.DecodeConfig, tiff.Decode}, true
	}
	return codec{}, false
}

// DecodeBytes decodes an image by its content. The header is read first and
// an image whose dimensions exceed the limits is refused before its pixels
// are decoded. Errors are *DecodeError values. Decoders that panic on
// hostile input are contained and reported as corrupt.
func DecodeBytes(b []byte, lim Limits) (img image.Image, format string, err error) {
	lim = lim.withDefaults()
	if len(b) == 0 {
		return nil, "", decodeErr(SkipEmpty, "empty file")
	}
	if int64(len(b)) > lim.MaxBytes {
		return nil, "", decodeErr(SkipTooLarge, "%d bytes, over the limit of %d", len(b), lim.MaxBytes)
	}
	format = Sniff(b)
	c, ok := codecFor(format)
	if !ok {
		return nil, "", decodeErr(SkipFormat, "not a JPEG, PNG, GIF, WebP, BMP or TIFF image (starts with % x)", b[:min(len(b), 8)])
	}
	defer func() {
		if r := recover(); r != nil {
			img = nil
			err = decodeErr(SkipCorrupt, "%s decoder failed: %v", format, r)
		}
	}()
	cfg, err := c.config(bytes.NewReader(b))
	if err != nil {
		return nil, format, decodeErr(SkipCorrupt, "%s header: %v", format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, format, decodeErr(SkipCorrupt, "%s header: size %dx%d", format, cfg.Width, cfg.Height)
	}
	if cfg.Width > lim.MaxSide || cfg.Height > lim.MaxSide || cfg.Width*cfg.Height > lim.MaxPixels {
		return nil, format, decodeErr(SkipTooLarge, "%s of %dx%d pixels, over the limits (side %d, %d pixels)", format, cfg.Width, cfg.Height, lim.MaxSide, lim.MaxPixels)
	}
	img, err = c.decode(bytes.NewReader(b))
	if err != nil {
		if strings.HasPrefix(err.Error(), format+":") {
			return nil, format, decodeErr(SkipCorrupt, "%v", err) // the decoder named its format
		}
		return nil, format, decodeErr(SkipCorrupt, "%s: %v", format, err)
	}
	if r := img.Bounds(); r.Dx() <= 0 || r.Dy() <= 0 {
		return nil, format, decodeErr(SkipCorrupt, "%s: decoded to an empty image", format)
	}
	if format == "webp" {
		img = webpToNRGBA(img)
	}
	return img, format, nil
}

// openFile opens a file for reading; tests replace it to simulate files
// that cannot be read (root reads files of any mode).
var openFile = os.Open

// DecodeFile reads and decodes one file, refusing files over the byte limit
// before reading them.
func DecodeFile(path string, lim Limits) (image.Image, string, error) {
	lim = lim.withDefaults()
	f, err := openFile(path)
	if err != nil {
		return nil, "", &DecodeError{Kind: SkipUnreadable, Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", &DecodeError{Kind: SkipUnreadable, Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, "", decodeErr(SkipUnreadable, "not a regular file")
	}
	if st.Size() > lim.MaxBytes {
		return nil, "", decodeErr(SkipTooLarge, "%d bytes, over the limit of %d", st.Size(), lim.MaxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, lim.MaxBytes+1))
	if err != nil {
		return nil, "", &DecodeError{Kind: SkipUnreadable, Err: err}
	}
	return DecodeBytes(b, lim)
}

// rgbSampler reads straight (not premultiplied) RGB from any decoded image,
// with fast paths for the types the standard decoders return. Alpha is
// dropped without compositing, as PIL's convert("RGB") does.
type rgbSampler struct {
	img     image.Image
	minX    int
	minY    int
	gray    *image.Gray
	ycc     *image.YCbCr
	nrgba   *image.NRGBA
	rgba    *image.RGBA
	pal     *image.Paletted
	palRGB  [][3]uint8
	isGrayP bool
}

func newRGBSampler(img image.Image) *rgbSampler {
	b := img.Bounds()
	s := &rgbSampler{img: img, minX: b.Min.X, minY: b.Min.Y}
	switch m := img.(type) {
	case *image.Gray:
		s.gray = m
	case *image.YCbCr:
		s.ycc = m
	case *image.NYCbCrA:
		s.ycc = &m.YCbCr
	case *image.NRGBA:
		s.nrgba = m
	case *image.RGBA:
		s.rgba = m
	case *image.Paletted:
		s.pal = m
		s.palRGB = make([][3]uint8, len(m.Palette))
		for i, c := range m.Palette {
			s.palRGB[i] = straightRGB(c)
		}
	}
	return s
}

// isGray reports whether the source is a single-channel format.
func (s *rgbSampler) isGray() bool {
	if s.gray != nil {
		return true
	}
	switch s.img.(type) {
	case *image.Gray16:
		return true
	}
	return false
}

func straightRGB(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.Gray:
		return [3]uint8{v.Y, v.Y, v.Y}
	case color.RGBA:
		if v.A == 255 || v.A == 0 {
			return [3]uint8{v.R, v.G, v.B}
		}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// at returns the RGB of pixel (x, y), counted from the image's top-left
// corner.
func (s *rgbSampler) at(x, y int) (r, g, b uint8) {
	switch {
	case s.gray != nil:
		v := s.gray.Pix[y*s.gray.Stride+x]
		return v, v, v
	case s.ycc != nil:
		return s.yccAt(x, y)
	case s.nrgba != nil:
		i := y*s.nrgba.Stride + x*4
		p := s.nrgba.Pix[i : i+3 : i+3]
		return p[0], p[1], p[2]
	case s.rgba != nil:
		i := y*s.rgba.Stride + x*4
		p := s.rgba.Pix[i : i+4 : i+4]
		if a := p[3]; a != 255 && a != 0 {
			c := straightRGB(color.RGBA{p[0], p[1], p[2], a})
			return c[0], c[1], c[2]
		}
		return p[0], p[1], p[2]
	case s.pal != nil:
		idx := int(s.pal.Pix[y*s.pal.Stride+x])
		if idx < len(s.palRGB) {
			c := s.palRGB[idx]
			return c[0], c[1], c[2]
		}
		return 0, 0, 0
	}
	c := straightRGB(s.img.At(x+s.minX, y+s.minY))
	return c[0], c[1], c[2]
}

// grayAt returns the luminance of a single-channel source.
func (s *rgbSampler) grayAt(x, y int) uint8 {
	if s.gray != nil {
		return s.gray.Pix[y*s.gray.Stride+x]
	}
	c := color.GrayModel.Convert(s.img.At(x+s.minX, y+s.minY)).(color.Gray)
	return c.Y
}

// yccAt converts one pixel of a JPEG's YCbCr planes to RGB the way libjpeg
// (and so PIL) does: chroma subsampled 2x2 or 2x1 is brought to full
// resolution with libjpeg's "fancy" triangle filter (3/4 nearest sample, 1/4
// the next one, per axis, with its rounding), then converted with libjpeg's
// fixed-point JFIF equations.
func (s *rgbSampler) yccAt(x, y int) (r, g, b uint8) {
	m := s.ycc
	px, py := x+s.minX, y+s.minY
	yv := int32(m.Y[m.YOffset(px, py)])
	var cb, cr int32
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio420:
		cb, cr = fancy420(m, px, py)
	case image.YCbCrSubsampleRatio422:
		cb, cr = fancy422(m, px, py)
	default:
		ci := m.COffset(px, py)
		cb, cr = int32(m.Cb[ci]), int32(m.Cr[ci])
	}
	return jfifToRGB(yv, cb, cr)
}

// jfifToRGB is libjpeg's ycc_rgb_convert.
func jfifToRGB(y, cb, cr int32) (uint8, uint8, uint8) {
	const half = 1 << 15
	cb -= 128
	cr -= 128
	r := y + ((91881*cr + half) >> 16)
	g := y + ((-22554*cb - 46802*cr + half) >> 16)
	b := y + ((116130*cb + half) >> 16)
	return clamp8(r), clamp8(g), clamp8(b)
}

func clamp8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// chromaGrid describes a subsampled chroma plane in chroma-sample units.
func chromaGrid(m *image.YCbCr, sx, sy int) (x0, y0, cw, ch int) {
	x0, y0 = m.Rect.Min.X/sx, m.Rect.Min.Y/sy
	cw = (m.Rect.Max.X+sx-1)/sx - x0
	ch = (m.Rect.Max.Y+sy-1)/sy - y0
	return
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// fancy420 is libjpeg's h2v2_fancy_upsample for one output pixel: the
// nearer chroma row weighs 3, the farther 1, then the same across columns,
// with a rounding bias of 8 on even columns and 7 on odd ones. Edges
// replicate the last sample.
func fancy420(m *image.YCbCr, px, py int) (int32, int32) {
	x0, y0, cw, ch := chromaGrid(m, 2, 2)
	cx, cy := px/2-x0, py/2-y0
	fy := cy - 1
	if py%2 == 1 {
		fy = cy + 1
	}
	fx, bias := cx-1, int32(8)
	if px%2 == 1 {
		fx, bias = cx+1, 7
	}
	fy = clampInt(fy, 0, ch-1)
	fx = clampInt(fx, 0, cw-1)
	at := func(p []uint8, x, y int) int32 { return int32(p[y*m.CStride+x]) }
	f := func(p []uint8) int32 {
		near := 3*at(p, cx, cy) + at(p, cx, fy)
		far := 3*at(p, fx, cy) + at(p, fx, fy)
		return (3*near + far + bias) >> 4
	}
	return f(m.Cb), f(m.Cr)
}

// fancy422 is libjpeg's h2v1_fancy_upsample: 3/4 nearest, 1/4 the next
// column, bias 1 on even columns and 2 on odd ones; edges replicate.
func fancy422(m *image.YCbCr, px, py int) (int32, int32) {
	x0, _, cw, _ := chromaGrid(m, 2, 1)
	cx := px/2 - x0
	row := (py - m.Rect.Min.Y) * m.CStride
	fx, bias := cx-1, int32(1)
	if px%2 == 1 {
		fx, bias = cx+1, 2
	}
	if fx < 0 || fx >= cw {
		return int32(m.Cb[row+cx]), int32(m.Cr[row+cx])
	}
	f := func(p []uint8) int32 { return (3*int32(p[row+cx]) + int32(p[row+fx]) + bias) >> 2 }
	return f(m.Cb), f(m.Cr)
}

// webpToNRGBA converts a lossy WebP's YUV 4:2:0 planes to RGB as libwebp
// does: limited-range BT.601 equations in libwebp's fixed point, with its
// "fancy" upsampling of the chroma. Other images are returned unchanged.
func webpToNRGBA(img image.Image) image.Image {
	var m *image.YCbCr
	switch v := img.(type) {
	case *image.YCbCr:
		m = v
	case *image.NYCbCrA:
		m = &v.YCbCr
	default:
		return img
	}
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return img
	}
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	x0, y0, cw, ch := chromaGrid(m, 2, 2)
	var alpha *image.NYCbCrA
	if a, ok := img.(*image.NYCbCrA); ok {
		alpha = a
	}
	for y := 0; y < h; y++ {
		py := y + b.Min.Y
		cy := py/2 - y0
		fy := cy - 1
		if py%2 == 1 {
			fy = cy + 1
		}
		fy = clampInt(fy, 0, ch-1)
		for x := 0; x < w; x++ {
			px := x + b.Min.X
			cx := px/2 - x0
			fx := cx - 1
			if px%2 == 1 {
				fx = cx + 1
			}
			edge := fx < 0 || fx >= cw
			fx = clampInt(fx, 0, cw-1)
			up := func(p []uint8) int {
				n := int(p[cy*m.CStride+cx])
				v := int(p[fy*m.CStride+cx])
				if edge {
					return (3*n + v + 2) >> 2
				}
				hz := int(p[cy*m.CStride+fx])
				d := int(p[fy*m.CStride+fx])
				diag := (n + hz + v + d + 8 + 2*(hz+v)) >> 3
				return (diag + n) >> 1
			}
			u, v := up(m.Cb), up(m.Cr)
			yy := int(m.Y[m.YOffset(px, py)])
			i := y*out.Stride + 4*x
			out.Pix[i] = webpClip(mulHi(yy, 19077) + mulHi(v, 26149) - 14234)
			out.Pix[i+1] = webpClip(mulHi(yy, 19077) - mulHi(u, 6419) - mulHi(v, 13320) + 8708)
			out.Pix[i+2] = webpClip(mulHi(yy, 19077) + mulHi(u, 33050) - 17685)
			out.Pix[i+3] = 255
			if alpha != nil {
				out.Pix[i+3] = alpha.A[alpha.AOffset(px, py)]
			}
		}
	}
	return out
}

func mulHi(v, c int) int { return (v * c) >> 8 }

func webpClip(v int) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}
