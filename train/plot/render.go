package plot

import (
	"fmt"
	"image"
	"image/png"
	"io"

	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Limits on picture sizes, in pixels, and resolution.
const (
	minPixels = 64
	maxPixels = 8192
	maxDPI    = 1200
)

// canvasSize applies defaults to a requested size and resolution and
// checks them.
func canvasSize(w, h, dpi, defW, defH int) (int, int, int, error) {
	if w == 0 {
		w = defW
	}
	if h == 0 {
		h = defH
	}
	if dpi == 0 {
		dpi = 96
	}
	if w < minPixels || h < minPixels || w > maxPixels || h > maxPixels {
		return 0, 0, 0, fmt.Errorf("size %dx%d pixels is outside %d..%d", w, h, minPixels, maxPixels)
	}
	if dpi < 1 || dpi > maxDPI {
		return 0, 0, 0, fmt.Errorf("dpi %d is outside 1..%d", dpi, maxDPI)
	}
	return w, h, dpi, nil
}

// render draws onto a white w x h pixel image at dpi. The plotting library
// panics on some inputs it considers programming errors; render turns such
// a panic into an error so a bad picture never takes the program down.
func render(w, h, dpi int, drawFn func(draw.Canvas)) (img image.Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("render %dx%d picture: %v", w, h, r)
		}
	}()
	c := vgimg.NewWith(vgimg.UseImage(image.NewRGBA(image.Rect(0, 0, w, h))), vgimg.UseDPI(dpi))
	drawFn(draw.New(c))
	return c.Image(), nil
}

func encodePNG(w io.Writer, img image.Image, what string) error {
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("%s: encode PNG: %w", what, err)
	}
	return nil
}
