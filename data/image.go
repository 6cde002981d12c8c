package data

import (
	"fmt"
)

// Image is an 8-bit picture stored row by row with interleaved channels
// (HWC): C is 1 for grayscale (expanded to R=G=B when it is used) or 3 for RGB.
type Image struct {
	// H, W and C are the height, width and channel count.
	H, W, C int
	// Pix holds H*W*C bytes.
	Pix []uint8
}

// check reports a malformed Image instead of letting a kernel index past it.
func (im Image) check() error {
	if im.H <= 0 || im.W <= 0 || (im.C != 1 && im.C != 3) {
		return fmt.Errorf("image %dx%dx%d: want positive size and 1 or 3 channels", im.H, im.W, im.C)
	}
	if len(im.Pix) != im.H*im.W*im.C {
		return fmt.Errorf("image %dx%dx%d: %d bytes of pixels, want %d", im.H, im.W, im.C, len(im.Pix), im.H*im.W*im.C)
	}
	return nil
}

// Normalization is what happens to pixel values (0..255) after augmentation.
type Normalization int

const (
	// NormRescale multiplies by float32(1/255), as Keras' rescale=1./255.
	NormRescale Normalization = iota
	// NormImageNet divides by 255, then subtracts the ImageNet mean
	// [0.485, 0.456, 0.406] and divides by the std [0.229, 0.224, 0.225] per
	// RGB channel, as torchvision's ToTensor + Normalize (what torchvision's
	// pretrained weights expect).
	NormImageNet
	// NormNone keeps raw pixel values 0..255 as float32.
	NormNone
)

// ImageNetStats returns torchvision's per-channel RGB mean and standard
// deviation, which NormImageNet uses.
func ImageNetStats() (mean, std [3]float32) {
	return [3]float32{0.485, 0.456, 0.406}, [3]float32{0.229, 0.224, 0.225}
}

// apply normalizes one value of channel k the way the reference pipelines
// do it in float32.
func (n Normalization) apply(k int, v float32) float32 {
	switch n {
	case NormRescale:
		return v * float32(1.0/255.0)
	case NormImageNet:
		mean, std := ImageNetStats()
		return (v/255 - mean[k]) / std[k]
	}
	return v
}

// normTable holds, per channel, the normalized value of every byte, and
// the per-channel affine map v*mul+add that normalization is.
type normTable struct {
	kind Normalization
	lut  [3][256]float32
	raw  [256]float32
	mul  [3]float32
	add  [3]float32
}

func newNormTable(n Normalization) *normTable {
	t := &normTable{kind: n}
	for p := 0; p < 256; p++ {
		t.raw[p] = float32(p)
		for k := 0; k < 3; k++ {
			t.lut[k][p] = n.apply(k, float32(p))
		}
	}
	for k := 0; k < 3; k++ {
		switch n {
		case NormRescale:
			t.mul[k] = float32(1.0 / 255.0)
		case NormImageNet:
			mean, std := ImageNetStats()
			t.mul[k] = 1 / (255 * std[k])
			t.add[k] = -mean[k] / std[k]
		default:
			t.mul[k] = 1
		}
	}
	return t
}
