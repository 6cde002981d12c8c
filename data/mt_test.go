package data

// mt19937 models numpy's legacy RandomState (MT19937 seeded with
// init_genrand, random_sample as two 32-bit draws), so tests can reproduce
// Keras' random draws exactly.
type mt19937 struct {
	mt  [624]uint32
	idx int
}

func newMT19937(seed uint32) *mt19937 {
	m := &mt19937{}
	m.mt[0] = seed
	for i := 1; i < 624; i++ {
		m.mt[i] = 1812433253*(m.mt[i-1]^(m.mt[i-1]>>30)) + uint32(i)
	}
	m.idx = 624
	return m
}

func (m *mt19937) uint32() uint32 {
	if m.idx >= 624 {
		for i := 0; i < 624; i++ {
			y := (m.mt[i] & 0x80000000) | (m.mt[(i+1)%624] & 0x7fffffff)
			v := m.mt[(i+397)%624] ^ (y >> 1)
			if y&1 != 0 {
				v ^= 0x9908b0df
			}
			m.mt[i] = v
		}
		m.idx = 0
	}
	y := m.mt[m.idx]
	m.idx++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// Float64 is numpy's random_sample.
func (m *mt19937) Float64() float64 {
	a := m.uint32() >> 5
	b := m.uint32() >> 6
	return (float64(a)*67108864.0 + float64(b)) / 9007199254740992.0
}

// permutation is numpy's legacy permutation(n).
func (m *mt19937) permutation(n int) []int {
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	for i := n - 1; i >= 1; i-- {
		mx := uint64(i)
		mask := mx
		for s := uint(1); s <= 32; s <<= 1 {
			mask |= mask >> s
		}
		var v uint64
		for {
			v = uint64(m.uint32()) & mask
			if v <= mx {
				break
			}
		}
		a[i], a[v] = a[v], a[i]
	}
	return a
}
