package data

import (
	"fmt"
	"math"
)

// Augment writes one augmented, normalized image into dst, three planes of
// H*W float32 (CHW). The image is warped with t's matrix (one bilinear
// resample for all channels), then flipped, then normalized, in Keras'
// order. A grayscale image is treated as R=G=B.
func Augment(dst []float32, src Image, t Transform, cfg *AugmentConfig, norm Normalization) error {
	if err := src.check(); err != nil {
		return err
	}
	if len(dst) != 3*src.H*src.W {
		return fmt.Errorf("augment: destination has %d values, want 3*%d*%d", len(dst), src.H, src.W)
	}
	w := warper{norm: newNormTable(norm)}
	if cfg == nil {
		w.copy(dst, src, false, false)
		return nil
	}
	w.warp(dst, src, t.Matrix(src.H, src.W, cfg.Semantics), t.FlipH, t.FlipV, cfg.FillMode, cfg.Cval, cfg.Precise)
	return nil
}

// warper holds what the kernels share across samples.
type warper struct {
	norm *normTable
}

// fillValues is cval normalized for each channel.
func (w *warper) fillValues(cval float64) [3]float32 {
	var f [3]float32
	for k := range f {
		f[k] = w.norm.kind.apply(k, float32(cval))
	}
	return f
}

// warp dispatches to the right kernel. src must be valid and dst 3*H*W long.
func (w *warper) warp(dst []float32, src Image, a Affine, flipH, flipV bool, mode FillMode, cval float64, precise bool) {
	if a.Identity {
		w.copy(dst, src, flipH, flipV)
		return
	}
	fill := w.fillValues(cval)
	if mode == FillConstant && !precise {
		a = foldFlips(a, src.H, src.W, flipH, flipV)
		if src.C == 1 {
			w.constGray(dst, src, a, fill)
		} else {
			w.constRGB(dst, src, a, fill)
		}
		return
	}
	if mode == FillConstant {
		w.preciseConst(dst, src, a, flipH, flipV, cval)
		return
	}
	w.precise(dst, src, a, flipH, flipV, mode, cval)
}

// copy writes the image unchanged except for flips and normalization (what
// Keras does when every random factor is the identity).
func (w *warper) copy(dst []float32, src Image, flipH, flipV bool) {
	h, wd := src.H, src.W
	plane := h * wd
	lut := &w.norm.lut
	for r := 0; r < h; r++ {
		sr := r
		if flipV {
			sr = h - 1 - r
		}
		row := src.Pix[sr*wd*src.C : (sr+1)*wd*src.C]
		for k := 0; k < 3; k++ {
			out := dst[k*plane+r*wd : k*plane+(r+1)*wd]
			l := &lut[k]
			for c := range out {
				sc := c
				if flipH {
					sc = wd - 1 - c
				}
				if src.C == 1 {
					out[c] = l[row[sc]]
				} else {
					out[c] = l[row[sc*3+k]]
				}
			}
		}
	}
}

// foldFlips turns "warp, then flip" into one pull map on the output grid:
// the flipped output pixel (r', c') reads the warped pixel (r, c).
func foldFlips(a Affine, h, w int, flipH, flipV bool) Affine {
	if flipV {
		t := float64(h - 1)
		a.B[0] += a.A[0][0] * t
		a.B[1] += a.A[1][0] * t
		a.A[0][0], a.A[1][0] = -a.A[0][0], -a.A[1][0]
	}
	if flipH {
		t := float64(w - 1)
		a.B[0] += a.A[0][1] * t
		a.B[1] += a.A[1][1] * t
		a.A[0][1], a.A[1][1] = -a.A[0][1], -a.A[1][1]
	}
	return a
}

// constRGB is the fast kernel for fill_mode='constant' on an RGB source: the
// source coordinate is stepped along each row once for all three channels,
// the four neighbours' normalized values come from a lookup table (so the
// normalization costs nothing), and the weighted sum is written straight
// into the three output planes. Outside [0, H-1] x [0, W-1] the output is
// exactly the normalized cval, as in scipy's strict constant mode.
func (w *warper) constRGB(dst []float32, src Image, a Affine, fill [3]float32) {
	h, wd := src.H, src.W
	plane := h * wd
	hm1, wm1 := float64(h-1), float64(wd-1)
	stride := wd * 3
	pix := src.Pix
	l0, l1, l2 := &w.norm.lut[0], &w.norm.lut[1], &w.norm.lut[2]
	for r := 0; r < h; r++ {
		fr := float64(r)
		y := a.A[0][0]*fr + a.B[0]
		x := a.A[1][0]*fr + a.B[1]
		dy, dx := a.A[0][1], a.A[1][1]
		o := r * wd
		d0 := dst[o : o+wd]
		d1 := dst[plane+o : plane+o+wd]
		d2 := dst[2*plane+o : 2*plane+o+wd]
		d1 = d1[:len(d0)]
		d2 = d2[:len(d0)]
		for c := range d0 {
			if y >= 0 && y <= hm1 && x >= 0 && x <= wm1 {
				yi, xi := int(y), int(x)
				fy, fx := float32(y-float64(yi)), float32(x-float64(xi))
				i := yi*stride + xi*3
				ox, oy := 3, stride
				if xi == wd-1 {
					ox = 0
				}
				if yi == h-1 {
					oy = 0
				}
				p00 := (*[3]uint8)(pix[i : i+3])
				p01 := (*[3]uint8)(pix[i+ox : i+ox+3])
				p10 := (*[3]uint8)(pix[i+oy : i+oy+3])
				p11 := (*[3]uint8)(pix[i+oy+ox : i+oy+ox+3])
				w11 := fy * fx
				w10 := fy - w11
				w01 := fx - w11
				w00 := 1 - fy - w01
				d0[c] = l0[p00[0]]*w00 + l0[p01[0]]*w01 + l0[p10[0]]*w10 + l0[p11[0]]*w11
				d1[c] = l1[p00[1]]*w00 + l1[p01[1]]*w01 + l1[p10[1]]*w10 + l1[p11[1]]*w11
				d2[c] = l2[p00[2]]*w00 + l2[p01[2]]*w01 + l2[p10[2]]*w10 + l2[p11[2]]*w11
			} else {
				d0[c], d1[c], d2[c] = fill[0], fill[1], fill[2]
			}
			y += dy
			x += dx
		}
	}
}

// constGray is constRGB for a grayscale source: one interpolation per pixel,
// then the per-channel normalization.
func (w *warper) constGray(dst []float32, src Image, a Affine, fill [3]float32) {
	h, wd := src.H, src.W
	plane := h * wd
	hm1, wm1 := float64(h-1), float64(wd-1)
	pix := src.Pix
	raw := &w.norm.raw
	m0, m1, m2 := w.norm.mul[0], w.norm.mul[1], w.norm.mul[2]
	a0, a1, a2 := w.norm.add[0], w.norm.add[1], w.norm.add[2]
	for r := 0; r < h; r++ {
		fr := float64(r)
		y := a.A[0][0]*fr + a.B[0]
		x := a.A[1][0]*fr + a.B[1]
		dy, dx := a.A[0][1], a.A[1][1]
		o := r * wd
		d0 := dst[o : o+wd]
		d1 := dst[plane+o : plane+o+wd]
		d2 := dst[2*plane+o : 2*plane+o+wd]
		d1 = d1[:len(d0)]
		d2 = d2[:len(d0)]
		for c := range d0 {
			if y >= 0 && y <= hm1 && x >= 0 && x <= wm1 {
				yi, xi := int(y), int(x)
				fy, fx := float32(y-float64(yi)), float32(x-float64(xi))
				i := yi*wd + xi
				ox, oy := 1, wd
				if xi == wd-1 {
					ox = 0
				}
				if yi == h-1 {
					oy = 0
				}
				p := pix[i : i+oy+ox+1]
				w11 := fy * fx
				w10 := fy - w11
				w01 := fx - w11
				w00 := 1 - fy - w01
				v := raw[p[0]]*w00 + raw[p[ox]]*w01 + raw[p[oy]]*w10 + raw[p[oy+ox]]*w11
				d0[c] = v*m0 + a0
				d1[c] = v*m1 + a1
				d2[c] = v*m2 + a2
			} else {
				d0[c], d1[c], d2[c] = fill[0], fill[1], fill[2]
			}
			y += dy
			x += dx
		}
	}
}

// mapCoordinate maps a source coordinate that lies outside [0, n-1] back
// inside, following scipy.ndimage's boundary modes; it returns -1 for
// constant mode outside the image.
func mapCoordinate(in float64, n int, mode FillMode) float64 {
	if in < 0 {
		switch mode {
		case FillReflect:
			if n <= 1 {
				return 0
			}
			sz2 := float64(2 * n)
			if in < -sz2 {
				in = sz2*math.Trunc(-in/sz2) + in
			}
			if in < -float64(n) {
				return in + sz2
			}
			return -in - 1
		case FillWrap:
			if n <= 1 {
				return 0
			}
			sz := float64(n - 1)
			return in + sz*(math.Trunc(-in/sz)+1)
		case FillNearest:
			return 0
		default:
			return -1
		}
	}
	if in > float64(n-1) {
		switch mode {
		case FillReflect:
			if n <= 1 {
				return 0
			}
			sz2 := float64(2 * n)
			in -= sz2 * math.Trunc(in/sz2)
			if in >= float64(n) {
				in = sz2 - in - 1
			}
			return in
		case FillWrap:
			if n <= 1 {
				return 0
			}
			sz := float64(n - 1)
			return in - sz*math.Trunc(in/sz)
		case FillNearest:
			return float64(n - 1)
		default:
			return -1
		}
	}
	return in
}

// mirrorIndex maps a neighbour index just outside [0, n-1] back inside the
// way scipy's interpolation does at the edges (whole-sample mirror).
func mirrorIndex(idx, n int) int {
	if n <= 1 {
		return 0
	}
	s2 := 2*n - 2
	if idx < 0 {
		idx = s2*(-idx/s2) + idx
		if idx <= 1-n {
			return idx + s2
		}
		return -idx
	}
	if idx >= n {
		idx -= s2 * (idx / s2)
		if idx >= n {
			idx = s2 - idx
		}
	}
	return idx
}

// reflectIndex maps a neighbour index just outside [0, n-1] back inside by
// half-sample reflection (d c b a | a b c d), as scipy does in reflect mode.
func reflectIndex(idx, n int) int {
	if n <= 1 {
		return 0
	}
	s2 := 2 * n
	if idx < 0 {
		idx = s2*(-idx/s2) + idx
		if idx < -n {
			return idx + s2
		}
		return -idx - 1
	}
	if idx >= n {
		idx -= s2 * (idx / s2)
		if idx >= n {
			idx = s2 - idx - 1
		}
	}
	return idx
}

// axisTaps returns, for one axis, the two neighbour indices and weights of
// a bilinear sample at source coordinate in, or ok=false when the constant
// fill applies.
func axisTaps(in float64, n int, mode FillMode) (i0, i1 int, w0, w1 float64, ok bool) {
	cc := mapCoordinate(in, n, mode)
	// The negated test also sends NaN to the fill.
	if !(cc > -1) || !(cc < float64(n)) {
		return 0, 0, 0, 0, false
	}
	f := math.Floor(cc)
	start := int(f)
	x := cc - f
	w0 = 1 - x
	w1 = 1 - w0
	i0, i1 = start, start+1
	if i0 < 0 || i1 >= n {
		if mode == FillReflect {
			i0, i1 = reflectIndex(i0, n), reflectIndex(i1, n)
		} else {
			i0, i1 = mirrorIndex(i0, n), mirrorIndex(i1, n)
		}
	}
	if i0 < 0 || i0 >= n || i1 < 0 || i1 >= n {
		return 0, 0, 0, 0, false
	}
	return i0, i1, w0, w1, true
}

// precise follows scipy.ndimage.affine_transform(order=1) step by step: the
// coordinate of each output pixel is accumulated in float64 in scipy's
// order, boundary modes are mapped as scipy maps them, the four taps are
// summed in float64 in scipy's order, the sum is rounded to float32, and
// only then is the value flipped into place and normalized.
func (w *warper) precise(dst []float32, src Image, a Affine, flipH, flipV bool, mode FillMode, cval float64) {
	h, wd, nc := src.H, src.W, src.C
	plane := h * wd
	pix := src.Pix
	norm := w.norm.kind
	fill := float32(cval)
	for r := 0; r < h; r++ {
		rr := r
		if flipV {
			rr = h - 1 - r
		}
		fr := float64(rr)
		for c := 0; c < wd; c++ {
			cc := c
			if flipH {
				cc = wd - 1 - c
			}
			fc := float64(cc)
			y := 0.0
			y += float64(fr * a.A[0][0])
			y += float64(fc * a.A[0][1])
			y += a.B[0]
			x := 0.0
			x += float64(fr * a.A[1][0])
			x += float64(fc * a.A[1][1])
			x += a.B[1]
			o := r*wd + c
			r0, r1, wr0, wr1, okr := axisTaps(y, h, mode)
			c0, c1, wc0, wc1, okc := axisTaps(x, wd, mode)
			if !okr || !okc {
				for k := 0; k < 3; k++ {
					dst[k*plane+o] = norm.apply(k, fill)
				}
				continue
			}
			var v [3]float32
			for k := 0; k < nc; k++ {
				t := 0.0
				coeff := float64(pix[(r0*wd+c0)*nc+k])
				coeff = float64(coeff * wr0)
				coeff = float64(coeff * wc0)
				t += coeff
				coeff = float64(pix[(r0*wd+c1)*nc+k])
				coeff = float64(coeff * wr0)
				coeff = float64(coeff * wc1)
				t += coeff
				coeff = float64(pix[(r1*wd+c0)*nc+k])
				coeff = float64(coeff * wr1)
				coeff = float64(coeff * wc0)
				t += coeff
				coeff = float64(pix[(r1*wd+c1)*nc+k])
				coeff = float64(coeff * wr1)
				coeff = float64(coeff * wc1)
				t += coeff
				v[k] = float32(t)
			}
			if nc == 1 {
				v[1], v[2] = v[0], v[0]
			}
			for k := 0; k < 3; k++ {
				dst[k*plane+o] = norm.apply(k, v[k])
			}
		}
	}
}

// preciseConst is precise specialized to constant fill (the default): the
// same float64 arithmetic in the same order, with the boundary handling
// inlined.
func (w *warper) preciseConst(dst []float32, src Image, a Affine, flipH, flipV bool, cval float64) {
	h, wd, nc := src.H, src.W, src.C
	plane := h * wd
	pix := src.Pix
	norm := w.norm.kind
	var fill [3]float32
	for k := range fill {
		fill[k] = norm.apply(k, float32(cval))
	}
	hm1, wm1 := float64(h-1), float64(wd-1)
	a00, a01, a10, a11, b0, b1 := a.A[0][0], a.A[0][1], a.A[1][0], a.A[1][1], a.B[0], a.B[1]
	for r := 0; r < h; r++ {
		rr := r
		if flipV {
			rr = h - 1 - r
		}
		fr := float64(rr)
		ry, rx := float64(fr*a00), float64(fr*a10)
		o := r * wd
		d0 := dst[o : o+wd]
		d1 := dst[plane+o : plane+o+wd]
		d2 := dst[2*plane+o : 2*plane+o+wd]
		d1 = d1[:len(d0)]
		d2 = d2[:len(d0)]
		for c := range d0 {
			cc := c
			if flipH {
				cc = wd - 1 - c
			}
			fc := float64(cc)
			y := ry + float64(fc*a01)
			y += b0
			x := rx + float64(fc*a11)
			x += b1
			if !(y >= 0 && y <= hm1 && x >= 0 && x <= wm1) {
				d0[c], d1[c], d2[c] = fill[0], fill[1], fill[2]
				continue
			}
			r0, c0 := int(y), int(x)
			wr0 := 1 - (y - float64(r0))
			wr1 := 1 - wr0
			wc0 := 1 - (x - float64(c0))
			wc1 := 1 - wc0
			r1, c1 := r0+1, c0+1
			if r1 == h {
				r1 = mirrorIndex(r1, h)
			}
			if c1 == wd {
				c1 = mirrorIndex(c1, wd)
			}
			i00, i01 := (r0*wd+c0)*nc, (r0*wd+c1)*nc
			i10, i11 := (r1*wd+c0)*nc, (r1*wd+c1)*nc
			var v [3]float32
			for k := 0; k < nc; k++ {
				// The conversions keep each product rounded (no fused multiply-add),
				// as scipy's C loop computes it.
				t := float64(float64(pix[i00+k]) * wr0 * wc0)
				t += float64(float64(pix[i01+k]) * wr0 * wc1)
				t += float64(float64(pix[i10+k]) * wr1 * wc0)
				t += float64(float64(pix[i11+k]) * wr1 * wc1)
				v[k] = float32(t)
			}
			if nc == 1 {
				v[1], v[2] = v[0], v[0]
			}
			d0[c] = norm.apply(0, v[0])
			d1[c] = norm.apply(1, v[1])
			d2[c] = norm.apply(2, v[2])
		}
	}
}
