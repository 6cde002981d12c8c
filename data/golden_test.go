package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"
)

// The golden values in this file come from running keras-preprocessing
// 1.1.2 (legacy) and its later "fixed" code with numpy 1.24 and scipy 1.10.

func TestMT19937MatchesNumpy(t *testing.T) {
	m := newMT19937(1234)
	wantU32 := []uint32{822569775, 2137449171, 2671936806, 3512589365}
	for i, w := range wantU32 {
		if g := m.uint32(); g != w {
			t.Fatalf("u32[%d] = %d, want %d", i, g, w)
		}
	}
	m = newMT19937(1234)
	want := []float64{0.1915194503788923, 0.6221087710398319, 0.4377277390071145, 0.7853585837137692,
		0.7799758081188035, 0.2725926052826416, 0.2764642551430967, 0.8018721775350193}
	for i, w := range want {
		if g := m.Float64(); g != w {
			t.Fatalf("random_sample[%d] = %v, want %v", i, g, w)
		}
	}
	p := newMT19937(0).permutation(10)
	wantP := []int{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}
	for i := range wantP {
		if p[i] != wantP[i] {
			t.Fatalf("permutation(10) = %v, want %v", p, wantP)
		}
	}
}

func TestGoldenParameterDraw(t *testing.T) {
	cfg := KerasTutorialAugment()
	if n := cfg.NumDraws(); n != 8 {
		t.Fatalf("NumDraws = %d, want 8", n)
	}
	tr := cfg.Draw(224, 224, newMT19937(1234))
	want := Transform{Theta: -12.339221984844308, Tx: 5.4704729425844665, Ty: -2.7897972924812713,
		Shear: 0.005707171674275384, Zx: 1.0559951616237608, Zy: 0.9545185210565283, FlipH: true}
	if tr != want {
		t.Fatalf("Draw(seed 1234) = %+v\nwant %+v", tr, want)
	}
	// The second image's draws start after all 8 of the first (the vflip draw
	// is consumed even though vertical_flip is off): seed 2024 is checked in
	// TestGoldenFullImage, and here the draw count itself.
	cfg2 := &AugmentConfig{RotationRange: 5}
	if n := cfg2.NumDraws(); n != 3 {
		t.Fatalf("NumDraws(rotation only) = %d, want 3", n)
	}

	legacy := tr.Matrix(224, 224, Legacy)
	checkAffine(t, "legacy", legacy,
		[2][2]float64{{1.031601161208054, 0.20388693778804948}, {-0.22566529544213798, 0.9324889938435489}},
		[2]float64{-21.744486154160768, 29.087946750138897})
	fixed := tr.Matrix(224, 224, Fixed)
	checkAffine(t, "fixed", fixed,
		[2][2]float64{{0.9324889938435489, -0.22566529544213798}, {0.20388693778804948, 1.031601161208054}},
		[2]float64{28.794770448540305, -21.508998055164653})
}

func checkAffine(t *testing.T, name string, got Affine, a [2][2]float64, b [2]float64) {
	t.Helper()
	for i := 0; i < 2; i++ {
		for j := 0; j < 2; j++ {
			if d := math.Abs(got.A[i][j] - a[i][j]); d > 1e-14*math.Max(1, math.Abs(a[i][j])) {
				t.Errorf("%s A[%d][%d] = %.17g, want %.17g", name, i, j, got.A[i][j], a[i][j])
			}
		}
		if d := math.Abs(got.B[i] - b[i]); d > 1e-12 {
			t.Errorf("%s b[%d] = %.17g, want %.17g", name, i, got.B[i], b[i])
		}
	}
}

// goldenInput is x[r,c,k] = (7r + 13c + 50k) % 256.
func goldenInput(h, w int) Image {
	im := Image{H: h, W: w, C: 3, Pix: make([]uint8, h*w*3)}
	for r := 0; r < h; r++ {
		for c := 0; c < w; c++ {
			for k := 0; k < 3; k++ {
				im.Pix[(r*w+c)*3+k] = uint8((7*r + 13*c + 50*k) % 256)
			}
		}
	}
	return im
}

type goldenImage struct {
	seed       uint32
	sem        Semantics
	p111, p112 [3]float64
	sum        float64
	zeros      int
	sha        string
}

var goldenImages = []goldenImage{
	{1234, Legacy, [3]float64{0.6721659898757935, 0.8682444095611572, 0.06040125712752342}, [3]float64{0.6358444094657898, 0.8319228887557983, 0.4158955514431}, 67523.17935530166, 15498, "cae783662fe4860bd0a7072f710d4c19a9b1ad84dd5f0e4e91f00bdca0b0571f"},
	{1234, Fixed, [3]float64{0.8540741801261902, 0.046231046319007874, 0.24230949580669403}, [3]float64{0.8436695337295532, 0.17164300382137299, 0.2319047600030899}, 67460.3914900414, 15567, "c09a5537d4d7c6ab685558c84dd03824b4576a1bd65804f5ec4b1a41e0368e94"},
	{2024, Legacy, [3]float64{0.2660592496395111, 0.46213769912719727, 0.6582161784172058}, [3]float64{0.34011462330818176, 0.5361930131912231, 0.7322714924812317}, 72033.82430661726, 6384, "228357638cd9745a22b2228a4d12bada6f5e1f8ee3a820d65366735bda5557e1"},
	{2024, Fixed, [3]float64{0.8076843023300171, 0.4978960454463959, 0.19591960310935974}, [3]float64{0.8795170783996582, 0.07167387008666992, 0.2677523195743561}, 72117.52638784703, 6333, "eecc3926205ffc389cec927197f258e80fcefd1efd49ddfab8d1be9a19bd356e"},
}

// hwcBytes returns a CHW float32 image as the float32-LE bytes of the HWC
// array Keras produces.
func hwcBytes(chw []float32, h, w int) []byte {
	out := make([]byte, 0, len(chw)*4)
	plane := h * w
	for i := 0; i < plane; i++ {
		for k := 0; k < 3; k++ {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(chw[k*plane+i]))
		}
	}
	return out
}

func TestGoldenFullImage(t *testing.T) {
	const h, w = 224, 224
	src := goldenInput(h, w)
	for _, g := range goldenImages {
		for _, precise := range []bool{true, false} {
			cfg := KerasTutorialAugment()
			cfg.Semantics = g.sem
			cfg.Precise = precise
			tr := cfg.Draw(h, w, newMT19937(g.seed))
			dst := make([]float32, 3*h*w)
			if err := Augment(dst, src, tr, cfg, NormRescale); err != nil {
				t.Fatal(err)
			}
			name := g.sem.String()
			if precise {
				name += "/precise"
			} else {
				name += "/fast"
			}
			// Fast kernel: float32 arithmetic, agreement to a few ulps of the
			// 0..1 range; precise kernel: exact.
			tol := 0.0
			if !precise {
				tol = 2e-6
			}
			for k := 0; k < 3; k++ {
				if d := math.Abs(float64(dst[k*h*w+111*w+111]) - g.p111[k]); d > tol {
					t.Errorf("seed %d %s: y[111,111,%d] = %.17g, want %.17g", g.seed, name, k, dst[k*h*w+111*w+111], g.p111[k])
				}
				if d := math.Abs(float64(dst[k*h*w+112*w+112]) - g.p112[k]); d > tol {
					t.Errorf("seed %d %s: y[112,112,%d] = %.17g, want %.17g", g.seed, name, k, dst[k*h*w+112*w+112], g.p112[k])
				}
			}
			sum, zeros := 0.0, 0
			for i := 0; i < h*w; i++ {
				for k := 0; k < 3; k++ {
					v := dst[k*h*w+i]
					sum += float64(v)
					if v == 0 {
						zeros++
					}
				}
			}
			if zeros != g.zeros {
				t.Errorf("seed %d %s: %d exact zeros, want %d", g.seed, name, zeros, g.zeros)
			}
			sumTol := 1e-9
			if !precise {
				sumTol = 0.05
			}
			if math.Abs(sum-g.sum) > sumTol {
				t.Errorf("seed %d %s: sum %.17g, want %.17g", g.seed, name, sum, g.sum)
			}
			if precise {
				sh := sha256.Sum256(hwcBytes(dst, h, w))
				if got := hex.EncodeToString(sh[:]); got != g.sha {
					t.Errorf("seed %d %s: sha256 %s, want %s", g.seed, name, got, g.sha)
				}
			}
		}
	}
}

func TestGoldenSeed2024Params(t *testing.T) {
	tr := KerasTutorialAugment().Draw(224, 224, newMT19937(2024))
	want := Transform{Theta: 3.5205807558159172, Tx: 8.920071896134898, Ty: -13.970792190274933,
		Shear: -0.009123828725062705, Zx: 0.9410037904788577, Zy: 0.9212125748952532}
	if tr != want {
		t.Fatalf("Draw(seed 2024) = %+v\nwant %+v", tr, want)
	}
	src := goldenInput(224, 224)
	cfg := KerasTutorialAugment()
	cfg.Precise = true
	dst := make([]float32, 3*224*224)
	if err := Augment(dst, src, tr, cfg, NormRescale); err != nil {
		t.Fatal(err)
	}
	at := func(r, c int) [3]float64 {
		var v [3]float64
		for k := range v {
			v[k] = float64(dst[k*224*224+r*224+c])
		}
		return v
	}
	if g, w := at(10, 200), [3]float64{0.3946308493614197, 0.5907092690467834, 0.786787748336792}; g != w {
		t.Errorf("y[10,200] = %v, want %v", g, w)
	}
	if g, w := at(223, 223), [3]float64{0.5288854837417603, 0.724963903427124, 0.9210423231124878}; g != w {
		t.Errorf("y[223,223] = %v, want %v", g, w)
	}
}

func TestGoldenSmall(t *testing.T) {
	src := Image{H: 8, W: 8, C: 1, Pix: make([]uint8, 64)}
	for i := range src.Pix {
		src.Pix[i] = uint8(4 * i)
	}
	tr := Transform{Theta: 10, Tx: 1.5, Ty: -0.75, Shear: 0.01, Zx: 0.95, Zy: 1.05, FlipH: true}
	legacy := [8][8]float64{
		{69.574, 71.2783, 72.9826, 74.6869, 76.3911, 78.0954, 0, 0},
		{100.172, 101.8763, 103.5806, 105.2849, 106.9892, 108.6935, 0, 0},
		{130.77, 132.4743, 134.1786, 135.8829, 137.5872, 139.2915, 0, 0},
		{161.368, 163.0723, 164.7766, 166.4809, 168.1852, 169.8895, 171.5938, 0},
		{191.9661, 193.6703, 195.3746, 197.0789, 198.7832, 200.4875, 202.1918, 0},
		{222.5641, 224.2684, 225.9727, 227.6769, 229.3812, 0, 0, 0},
		{0, 0, 0, 0, 0, 0, 0, 0},
		{0, 0, 0, 0, 0, 0, 0, 0},
	}
	fixed := [8][8]float64{
		{0, 0, 0, 0, 0, 0, 0, 0},
		{0, 0, 49.7651, 40.7439, 31.7227, 22.7016, 13.6804, 0},
		{0, 0, 82.1236, 73.1024, 64.0812, 55.06, 46.0389, 37.0177},
		{0, 0, 114.482, 105.4609, 96.4397, 87.4185, 78.3973, 69.3762},
		{0, 0, 146.8405, 137.8193, 128.7982, 119.777, 110.7558, 101.7346},
		{0, 0, 179.199, 170.1778, 161.1566, 152.1355, 143.1143, 134.0931},
		{0, 220.5786, 211.5575, 202.5363, 193.5151, 184.494, 175.4728, 166.4516},
		{0, 0, 243.916, 234.8948, 225.8736, 216.8524, 207.8313, 198.8101},
	}
	for _, tc := range []struct {
		sem  Semantics
		want [8][8]float64
		y34  uint32
	}{{Legacy, legacy, 0x43282f69}, {Fixed, fixed, 0x42c0e11f}} {
		for _, precise := range []bool{true, false} {
			cfg := &AugmentConfig{Semantics: tc.sem, Precise: precise}
			dst := make([]float32, 3*64)
			if err := Augment(dst, src, tr, cfg, NormNone); err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 3; k++ {
				for r := 0; r < 8; r++ {
					for c := 0; c < 8; c++ {
						g := float64(dst[k*64+r*8+c])
						w := tc.want[r][c]
						if (w == 0) != (g == 0) || math.Abs(g-w) > 6e-5 {
							t.Errorf("%v precise=%v: y[%d,%d,%d] = %.6g, want %.6g", tc.sem, precise, r, c, k, g, w)
						}
					}
				}
			}
			g := math.Float32bits(dst[3*8+4])
			if precise && g != tc.y34 {
				t.Errorf("%v precise: y[3,4] bits %#x, want %#x", tc.sem, g, tc.y34)
			}
			if !precise && math.Abs(float64(dst[3*8+4])-float64(math.Float32frombits(tc.y34))) > 2e-5 {
				t.Errorf("%v fast: y[3,4] = %v, want %v", tc.sem, dst[3*8+4], math.Float32frombits(tc.y34))
			}
		}
	}
}
