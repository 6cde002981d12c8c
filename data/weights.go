package data

import "math"

// DefaultWeightCap is the tutorial's cap on class weights.
const DefaultWeightCap = 3.0

// ClassWeights returns min(max_count/count, cap) per class, the tutorial's
// class_weight. A class with no samples gets the cap;
// maxWeight <= 0 means no cap (and then an empty class gets 0, as it never
// occurs in a batch).
func ClassWeights(counts []int, maxWeight float64) []float64 {
	maxCount := 0
	for _, c := range counts {
		maxCount = max(maxCount, c)
	}
	w := make([]float64, len(counts))
	for i, c := range counts {
		switch {
		case c <= 0 && maxWeight > 0:
			w[i] = maxWeight
		case c <= 0:
			w[i] = 0
		default:
			w[i] = float64(maxCount) / float64(c)
			if maxWeight > 0 {
				w[i] = math.Min(w[i], maxWeight)
			}
		}
	}
	return w
}

// epochOrder returns the dataset indices of one epoch: all samples in order,
// a seeded shuffle of them, or (oversampling) len(labels) draws with
// replacement where each sample's chance is proportional to its class
// weight, so rare classes are seen up to cap times as often. It depends
// only on (seed, epoch).
func epochOrder(labels []int, weights []float64, shuffle, oversample bool, seed uint64, epoch int) []int {
	n := len(labels)
	if oversample && n > 0 {
		r := newRNG(seed, streamSampler, uint64(epoch), 0)
		cum := make([]float64, n)
		total := 0.0
		for i, l := range labels {
			wt := 1.0
			if l >= 0 && l < len(weights) {
				wt = weights[l]
			}
			total += wt
			cum[i] = total
		}
		out := make([]int, n)
		for k := range out {
			u := r.Float64() * total
			lo, hi := 0, n-1
			for lo < hi {
				mid := (lo + hi) / 2
				if cum[mid] > u {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			out[k] = lo
		}
		return out
	}
	if !shuffle {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	r := newRNG(seed, streamOrder, uint64(epoch), 0)
	return r.Perm(n)
}
