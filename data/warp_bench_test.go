package data

import (
	"fmt"
	"testing"
)

func BenchmarkWarp(b *testing.B) {
	const h, w = 224, 224
	for _, c := range []int{1, 3} {
		src := goldenInput(h, w)
		if c == 1 {
			src = Image{H: h, W: w, C: 1, Pix: src.Pix[:h*w]}
		}
		tr := KerasTutorialAugment().Draw(h, w, newMT19937(1234))
		for _, precise := range []bool{false, true} {
			b.Run(fmt.Sprintf("C%d/precise=%v", c, precise), func(b *testing.B) {
				cfg := KerasTutorialAugment()
				cfg.Precise = precise
				wp := warper{norm: newNormTable(NormImageNet)}
				a := tr.Matrix(h, w, Legacy)
				dst := make([]float32, 3*h*w)
				b.SetBytes(int64(h * w))
				for i := 0; i < b.N; i++ {
					wp.warp(dst, src, a, true, false, FillConstant, 0, precise)
				}
			})
		}
	}
}
