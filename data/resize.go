package data

import (
	"image"

	"github.com/disintegration/gift"
)

// ResizeMethod is how images are brought to the model's input size.
type ResizeMethod int

const (
	// ResizeNearest is PIL's NEAREST resize, which Keras' load_img uses by
	// default: source index floor((dst+0.5)*in/out), computed with PIL's
	// running sum so that every index matches.
	ResizeNearest ResizeMethod = iota
	// ResizeBilinear is an antialiased bilinear (triangle filter) resize.
	ResizeBilinear
	// ResizeArea averages the source pixels each output pixel covers (box
	// filter), the usual choice for strong downscaling.
	ResizeArea
)

// NearestIndex returns, for each of out destination positions, the source
// index PIL's NEAREST resize reads from a line of in pixels: a running sum
// of in/out starting at half a step, truncated.
func NearestIndex(in, out int) []int {
	idx := make([]int, out)
	a := float64(in) / float64(out)
	xo := a * 0.5
	for i := range idx {
		v := int(xo)
		if v >= in {
			v = in - 1
		}
		idx[i] = v
		xo += a
	}
	return idx
}

// ToImage converts a decoded image to h x w pixels with the given method:
// grayscale sources keep one channel, colour sources get three (alpha
// dropped), and a colour image whose channels are all equal is stored as
// grayscale, which changes no value. An image already h x w is copied
// without resampling, as PIL does.
func ToImage(img image.Image, h, w int, m ResizeMethod) Image {
	b := img.Bounds()
	ih, iw := b.Dy(), b.Dx()
	s := newRGBSampler(img)
	if m != ResizeNearest && (ih != h || iw != w) {
		return resizeGift(img, s.isGray(), h, w, m)
	}
	ys := NearestIndex(ih, h)
	xs := NearestIndex(iw, w)
	if s.isGray() {
		out := Image{H: h, W: w, C: 1, Pix: make([]uint8, h*w)}
		for r, sy := range ys {
			row := out.Pix[r*w : (r+1)*w]
			for c, sx := range xs {
				row[c] = s.grayAt(sx, sy)
			}
		}
		return out
	}
	out := Image{H: h, W: w, C: 3, Pix: make([]uint8, h*w*3)}
	for r, sy := range ys {
		row := out.Pix[r*w*3 : (r+1)*w*3]
		for c, sx := range xs {
			row[3*c], row[3*c+1], row[3*c+2] = s.at(sx, sy)
		}
	}
	return collapseGray(out)
}

// collapseGray stores an RGB image whose three channels agree everywhere as
// one channel.
func collapseGray(im Image) Image {
	if im.C != 3 {
		return im
	}
	p := im.Pix
	for i := 0; i+2 < len(p); i += 3 {
		if p[i] != p[i+1] || p[i] != p[i+2] {
			return im
		}
	}
	g := make([]uint8, im.H*im.W)
	for i := range g {
		g[i] = p[3*i]
	}
	return Image{H: im.H, W: im.W, C: 1, Pix: g}
}

func resizeGift(img image.Image, gray bool, h, w int, m ResizeMethod) Image {
	res := gift.LinearResampling
	if m == ResizeArea {
		res = gift.BoxResampling
	}
	g := gift.New(gift.Resize(w, h, res))
	if gray {
		dst := image.NewGray(image.Rect(0, 0, w, h))
		g.Draw(dst, img)
		out := Image{H: h, W: w, C: 1, Pix: make([]uint8, h*w)}
		for r := 0; r < h; r++ {
			copy(out.Pix[r*w:(r+1)*w], dst.Pix[r*dst.Stride:r*dst.Stride+w])
		}
		return out
	}
	// Alpha is dropped, not composited: resample the opaque colour planes.
	src := image.NewNRGBA(image.Rect(0, 0, img.Bounds().Dx(), img.Bounds().Dy()))
	s := newRGBSampler(img)
	for y := 0; y < src.Rect.Dy(); y++ {
		for x := 0; x < src.Rect.Dx(); x++ {
			i := y*src.Stride + 4*x
			src.Pix[i], src.Pix[i+1], src.Pix[i+2] = s.at(x, y)
			src.Pix[i+3] = 255
		}
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	g.Draw(dst, src)
	out := Image{H: h, W: w, C: 3, Pix: make([]uint8, h*w*3)}
	for r := 0; r < h; r++ {
		for c := 0; c < w; c++ {
			i := r*dst.Stride + 4*c
			copy(out.Pix[(r*w+c)*3:(r*w+c)*3+3], dst.Pix[i:i+3])
		}
	}
	return collapseGray(out)
}
