package synth

import "math"

// rng is a small splitmix64 generator. It is defined here rather than taken
// from math/rand so that a seed gives the same dataset, byte for byte, on
// every Go version.
type rng struct {
	s uint64
	// spread narrows uniform draws about their middle (Options.Variation);
	// 0 means the full range.
	spread float64
}

// newRNG returns a generator for one independent stream of a seed, such as
// "image 17" or "subject 3".
func newRNG(seed uint64, stream ...uint64) *rng {
	r := &rng{s: seed ^ 0x6a09e667f3bcc909}
	for _, s := range stream {
		r.s ^= s + 0x9e3779b97f4a7c15
		r.s = r.next()
	}
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// uniform returns a value in [lo, hi), or in the middle part of it that
// the generator's spread keeps.
func (r *rng) uniform(lo, hi float64) float64 {
	if r.spread == 0 {
		return lo + (hi-lo)*r.float()
	}
	return (lo+hi)/2 + (hi-lo)*(r.float()-0.5)*r.spread
}

// jitter returns v plus a uniform offset in [-d, d).
func (r *rng) jitter(v, d float64) float64 { return v + r.uniform(-d, d) }

// intn returns a value in [0, n); n must be positive.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// chance reports true with probability p.
func (r *rng) chance(p float64) bool { return r.float() < p }

// sign returns -1 or +1 with equal probability.
func (r *rng) sign() float64 {
	if r.next()&1 == 0 {
		return -1
	}
	return 1
}

// norm returns a standard normal value (Box-Muller).
func (r *rng) norm() float64 {
	u := 1 - r.float() // (0, 1]
	v := r.float()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}

// shuffle permutes n items with swap (Fisher-Yates).
func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}
