package data

import (
	"errors"
	"fmt"
	"math"
)

// FillMode says what a warp writes where the source coordinate falls outside
// the image, with scipy.ndimage's meaning of the Keras fill_mode names.
type FillMode int

const (
	// FillConstant writes Cval wherever either source coordinate is outside
	// [0, n-1]: strictly, with no blending at the edge (scipy mode='constant').
	FillConstant FillMode = iota
	// FillNearest repeats the edge pixel (scipy mode='nearest').
	FillNearest
	// FillReflect mirrors about the pixel edge, d c b a | a b c d (scipy
	// mode='reflect').
	FillReflect
	// FillWrap wraps around with scipy's period of n-1 (mode='wrap'), where
	// the first and last samples coincide.
	FillWrap
)

// Semantics selects which Keras version's affine conventions are used.
type Semantics int

const (
	// Legacy is keras-preprocessing <= 1.1.2 (standalone Keras 2.2-2.4, tf.keras
	// up to TF 2.8): pivot at (H/2+0.5, W/2+0.5) and the first matrix axis is
	// the row axis.
	Legacy Semantics = iota
	// Fixed is Keras >= 2.9 and Keras 3: pivot at the true centre and the
	// x/y axes swapped.
	Fixed
)

// AugmentConfig holds ImageDataGenerator's random-transform options, with the
// same units and meanings as Keras.
type AugmentConfig struct {
	// RotationRange is the maximum rotation in degrees; theta ~ U(-r, r).
	RotationRange float64 `yaml:"rotation_range"`
	// WidthShiftRange and HeightShiftRange are fractions of the width/height
	// when below 1 and pixels otherwise; the shift ~ U(-r, r), not rounded.
	WidthShiftRange  float64 `yaml:"width_shift_range"`
	HeightShiftRange float64 `yaml:"height_shift_range"`
	// ShearRange is the maximum shear angle in degrees.
	ShearRange float64 `yaml:"shear_range"`
	// ZoomRange is [lo, hi] for the two independent inverse scale factors
	// (a factor above 1 shrinks the content). {0, 0} and {1, 1} disable zoom;
	// ZoomRangeOf(z) gives Keras' [1-z, 1+z] for a scalar zoom_range, which
	// is also how a single number in YAML or a flag reads.
	ZoomRange ZoomRange `yaml:"zoom_range"`
	// HorizontalFlip and VerticalFlip (each a separate option) flip with probability 1/2, after the warp.
	HorizontalFlip bool `yaml:"horizontal_flip"`
	VerticalFlip   bool `yaml:"vertical_flip"`
	// FillMode and Cval say what fills the area outside the source. Cval is in
	// pixel units (0..255), like Keras' cval on the un-rescaled array.
	FillMode FillMode `yaml:"fill_mode"`
	Cval     float64  `yaml:"cval"`
	// Semantics selects the legacy (default) or fixed Keras conventions.
	Semantics Semantics `yaml:"semantics"`
	// Precise makes the warp follow scipy's arithmetic step by step (float64
	// coordinates and sums, per-pixel rounding to float32 before
	// normalization) instead of the fast float32 kernel. Both agree to about
	// 1e-5 of the pixel range; Precise reproduces Keras' output bit for bit in
	// nearly every value and costs a little more time.
	Precise bool `yaml:"precise"`
}

// ZoomRangeOf converts a Keras scalar zoom_range z into [1-z, 1+z].
func ZoomRangeOf(z float64) ZoomRange { return ZoomRange{1 - z, 1 + z} }

// KerasTutorialAugment returns the augmentation of the Keras VGG16
// facial-expression tutorial: rotation 20, width/height shift 0.1, shear
// 0.01, zoom 0.1, horizontal flip, constant fill with 0.
func KerasTutorialAugment() *AugmentConfig {
	return &AugmentConfig{
		RotationRange:    20,
		WidthShiftRange:  0.1,
		HeightShiftRange: 0.1,
		ShearRange:       0.01,
		ZoomRange:        ZoomRangeOf(0.1),
		HorizontalFlip:   true,
		FillMode:         FillConstant,
	}
}

// Validate reports options Keras would reject or that make no sense.
func (c *AugmentConfig) Validate() error {
	var errs []error
	check := func(name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			errs = append(errs, fmt.Errorf("augment: %s must be a finite number >= 0, got %v", name, v))
		}
	}
	check("rotation_range", c.RotationRange)
	check("width_shift_range", c.WidthShiftRange)
	check("height_shift_range", c.HeightShiftRange)
	check("shear_range", c.ShearRange)
	check("cval", c.Cval)
	lo, hi := c.ZoomRange[0], c.ZoomRange[1]
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) || lo < 0 || hi < lo {
		errs = append(errs, fmt.Errorf("augment: zoom_range must be [lo, hi] with 0 <= lo <= hi, got %v", c.ZoomRange))
	} else if hi > 0 && lo == 0 {
		errs = append(errs, fmt.Errorf("augment: zoom_range lower bound must be > 0 (a zero factor collapses the image), got %v", c.ZoomRange))
	}
	if c.FillMode < FillConstant || c.FillMode > FillWrap {
		errs = append(errs, fmt.Errorf("augment: unknown fill mode %d", int(c.FillMode)))
	}
	if c.Semantics != Legacy && c.Semantics != Fixed {
		errs = append(errs, fmt.Errorf("augment: unknown semantics %d", int(c.Semantics)))
	}
	return errors.Join(errs...)
}

func (c *AugmentConfig) zoomEnabled() bool {
	z := c.ZoomRange
	return !(z[0] == 1 && z[1] == 1) && !(z[0] == 0 && z[1] == 0)
}

// NumDraws is the number of uniform draws Keras' get_random_transform makes
// per image for this configuration (the two flip draws are always made).
func (c *AugmentConfig) NumDraws() int {
	n := 2
	if c.RotationRange != 0 {
		n++
	}
	if c.HeightShiftRange != 0 {
		n++
	}
	if c.WidthShiftRange != 0 {
		n++
	}
	if c.ShearRange != 0 {
		n++
	}
	if c.zoomEnabled() {
		n += 2
	}
	return n
}

// Transform is one sample's random parameters, in Keras' units: Theta and
// Shear in degrees, Tx (rows) and Ty (columns) in pixels, Zx and Zy inverse
// scale factors.
type Transform struct {
	// Theta is the rotation and Shear the shear angle, in degrees.
	Theta, Shear float64
	// Tx and Ty are the shifts along rows and columns, in pixels.
	Tx, Ty float64
	// Zx and Zy are the inverse zoom factors along rows and columns.
	Zx, Zy float64
	// FlipH and FlipV flip columns and rows after the warp.
	FlipH, FlipV bool
}

// Uniform is a source of uniform float64 values in [0, 1).
type Uniform interface {
	Float64() float64
}

// Draw makes one image's parameters from src in the order and with the
// arithmetic of Keras' get_random_transform, for an h x w image. Driven by a
// model of numpy's legacy RandomState it reproduces Keras' draws exactly.
func (c *AugmentConfig) Draw(h, w int, src Uniform) Transform {
	var u [8]float64
	n := c.NumDraws()
	for i := 0; i < n; i++ {
		u[i] = src.Float64()
	}
	return c.fromUniforms(h, w, &u)
}

// uniform is numpy's uniform(lo, hi) given one random_sample value.
func uniform(lo, hi, u float64) float64 { return lo + (hi-lo)*u }

func (c *AugmentConfig) fromUniforms(h, w int, u *[8]float64) Transform {
	t := Transform{Zx: 1, Zy: 1}
	i := 0
	next := func() float64 { v := u[i]; i++; return v }
	if r := c.RotationRange; r != 0 {
		t.Theta = uniform(-r, r, next())
	}
	if r := c.HeightShiftRange; r != 0 {
		t.Tx = uniform(-r, r, next())
		if r < 1 {
			t.Tx *= float64(h)
		}
	}
	if r := c.WidthShiftRange; r != 0 {
		t.Ty = uniform(-r, r, next())
		if r < 1 {
			t.Ty *= float64(w)
		}
	}
	if r := c.ShearRange; r != 0 {
		t.Shear = uniform(-r, r, next())
	}
	if c.zoomEnabled() {
		t.Zx = uniform(c.ZoomRange[0], c.ZoomRange[1], next())
		t.Zy = uniform(c.ZoomRange[0], c.ZoomRange[1], next())
	}
	t.FlipH = next() < 0.5 && c.HorizontalFlip
	t.FlipV = next() < 0.5 && c.VerticalFlip
	return t
}

// Affine is the pull map of a warp in (row, col) array-index coordinates:
// the output pixel (r, c) samples the input at A·(r, c) + B.
type Affine struct {
	// A is the linear part, B the offset.
	A [2][2]float64
	B [2]float64
	// Identity is set when Keras would skip the resample altogether (no
	// rotation, shift, shear or zoom).
	Identity bool
}

type mat3 [3][3]float64

func (p *mat3) mul(q *mat3) mat3 {
	var r mat3
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			s := float64(p[i][0] * q[0][j])
			s = s + float64(p[i][1]*q[1][j])
			s = s + float64(p[i][2]*q[2][j])
			r[i][j] = s
		}
	}
	return r
}

// Matrix composes Keras' transform matrix for an h x w image: rotation,
// shift, shear and zoom, each included only when it is not the identity,
// multiplied left to right and moved to the pivot. It returns the pull map
// that scipy's affine_transform receives.
func (t Transform) Matrix(h, w int, sem Semantics) Affine {
	var m mat3
	have := false
	apply := func(s mat3) {
		if !have {
			m, have = s, true
			return
		}
		m = m.mul(&s)
	}
	if t.Theta != 0 {
		th := t.Theta * (math.Pi / 180)
		sn, cs := math.Sin(th), math.Cos(th)
		apply(mat3{{cs, -sn, 0}, {sn, cs, 0}, {0, 0, 1}})
	}
	if t.Tx != 0 || t.Ty != 0 {
		apply(mat3{{1, 0, t.Tx}, {0, 1, t.Ty}, {0, 0, 1}})
	}
	if t.Shear != 0 {
		s := t.Shear * (math.Pi / 180)
		apply(mat3{{1, -math.Sin(s), 0}, {0, math.Cos(s), 0}, {0, 0, 1}})
	}
	if t.Zx != 1 || t.Zy != 1 {
		apply(mat3{{t.Zx, 0, 0}, {0, t.Zy, 0}, {0, 0, 1}})
	}
	if !have {
		return Affine{A: [2][2]float64{{1, 0}, {0, 1}}, Identity: true}
	}
	ox, oy := float64(h)/2+0.5, float64(w)/2+0.5
	if sem == Fixed {
		ox, oy = float64(h)/2-0.5, float64(w)/2-0.5
	}
	off := mat3{{1, 0, ox}, {0, 1, oy}, {0, 0, 1}}
	reset := mat3{{1, 0, -ox}, {0, 1, -oy}, {0, 0, 1}}
	f1 := off.mul(&m)
	f := f1.mul(&reset)
	if sem == Fixed {
		return Affine{A: [2][2]float64{{f[1][1], f[1][0]}, {f[0][1], f[0][0]}}, B: [2]float64{f[1][2], f[0][2]}}
	}
	return Affine{A: [2][2]float64{{f[0][0], f[0][1]}, {f[1][0], f[1][1]}}, B: [2]float64{f[0][2], f[1][2]}}
}
