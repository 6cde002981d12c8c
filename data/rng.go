package data

import "math/rand/v2"

// Stream tags keep the random streams drawn from one seed independent.
const (
	streamOrder   = 0x6f72646572 // epoch shuffle
	streamSampler = 0x73616d706c // oversampling draws
	streamAugment = 0x6175676d   // per-sample augmentation
	streamSplit   = 0x73706c6974 // train/valid/test split
)

// splitmix64 is a bijective mixer used to turn (seed, tags) into
// well-spread generator states.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// rng is a PCG generator seeded from a seed and three integers, so that a
// sample's randomness depends only on (seed, epoch, position).
type rng struct {
	pcg rand.PCG
}

func newRNG(seed, tag, a, b uint64) rng {
	hi := splitmix64(seed ^ splitmix64(tag))
	lo := splitmix64(hi ^ splitmix64(a+0x632be59bd9b4e019))
	lo = splitmix64(lo ^ splitmix64(b+0x8cb92ba72f3d8dd7))
	var r rng
	r.pcg.Seed(hi, lo)
	return r
}

// Float64 is uniform in [0, 1) with 53 random bits.
func (r *rng) Float64() float64 { return float64(r.pcg.Uint64()>>11) * 0x1p-53 }

// IntN is uniform in [0, n) without modulo bias (Lemire's method).
func (r *rng) IntN(n int) int {
	if n <= 1 {
		return 0
	}
	un := uint64(n)
	for {
		hi, lo := mul64(r.pcg.Uint64(), un)
		if lo >= un || lo >= (-un)%un {
			return int(hi)
		}
	}
}

func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1 := t&mask32 + a0*b1
	hi = a1*b1 + t>>32 + w1>>32
	lo = a * b
	return
}

// Perm returns a uniformly random permutation of [0, n) (Fisher-Yates).
func (r *rng) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r.Shuffle(p)
	return p
}

// Shuffle permutes p uniformly at random.
func (r *rng) Shuffle(p []int) {
	for i := len(p) - 1; i > 0; i-- {
		j := r.IntN(i + 1)
		p[i], p[j] = p[j], p[i]
	}
}
