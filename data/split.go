package data

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// SplitScheme is how samples are assigned to train, valid and test.
type SplitScheme int

const (
	// SplitRandom is the tutorial's scheme: a seeded shuffle, the first
	// ValidFraction of all samples to valid, then TestFraction of the rest to
	// test (each count rounded up, as scikit-learn's train_test_split).
	SplitRandom SplitScheme = iota
	// SplitStratified applies the fractions within each class (rounded, with
	// at least one sample per split for classes large enough), so that rare
	// classes appear in every split.
	SplitStratified
	// SplitBySubject keeps every person (Sample.Subject) in one split: whole
	// identities are assigned, in seeded random order, until each split is
	// as full as its fraction allows.
	SplitBySubject
)

// SplitConfig controls SplitDataset.
type SplitConfig struct {
	// Scheme is how samples are assigned.
	Scheme SplitScheme
	// ValidFraction is the share of all samples that goes to valid.
	ValidFraction float64
	// TestFraction is the share of the samples left after valid that goes
	// to test.
	TestFraction float64
	// Seed makes the split reproducible.
	Seed uint64
	// DedupeContent drops files whose bytes repeat an earlier sample's
	// (keeping the first; dropping all copies when their labels differ), so
	// that one picture cannot land in two splits under two names.
	DedupeContent bool
}

// DefaultSplitConfig is the tutorial's split: 10% valid, then 5% of the
// rest as test, with the SplitRandom scheme.
func DefaultSplitConfig(seed uint64) SplitConfig {
	return SplitConfig{Scheme: SplitRandom, ValidFraction: 0.10, TestFraction: 0.05, Seed: seed}
}

// Split is a dataset divided into train, valid and test.
type Split struct {
	// Classes are the dataset's class names.
	Classes []string
	// Train, Valid and Test are the parts, each in dataset order.
	Train, Valid, Test []Sample
	// Config is the configuration that made the split.
	Config SplitConfig
	// Dropped lists samples removed before splitting (content duplicates).
	Dropped []Skip
}

// Parts returns the three parts with their layout folder names.
func (s *Split) Parts() []SplitPart {
	return []SplitPart{{"train", s.Train}, {"valid", s.Valid}, {"test", s.Test}}
}

// SplitPart is one named part of a split.
type SplitPart struct {
	// Name is "train", "valid" or "test".
	Name    string
	Samples []Sample
}

func countLabels(samples []Sample, n int) []int {
	c := make([]int, n)
	for _, s := range samples {
		if s.Label >= 0 && s.Label < n {
			c[s.Label]++
		}
	}
	return c
}

// Counts returns per-class counts of train, valid and test.
func (s *Split) Counts() (train, valid, test []int) {
	n := len(s.Classes)
	return countLabels(s.Train, n), countLabels(s.Valid, n), countLabels(s.Test, n)
}

// SplitDataset divides a dataset's samples. Samples are first made unique
// by name (and by content with DedupeContent); the result is deterministic
// for a given seed, and each part keeps the dataset's order.
func SplitDataset(d *Dataset, cfg SplitConfig) (*Split, error) {
	if bad := func(f float64) bool { return math.IsNaN(f) || f < 0 || f >= 1 }; bad(cfg.ValidFraction) || bad(cfg.TestFraction) {
		return nil, fmt.Errorf("split: fractions must be in [0, 1), got valid %v test %v", cfg.ValidFraction, cfg.TestFraction)
	}
	sp := &Split{Classes: append([]string(nil), d.Classes...), Config: cfg}
	// Unique by name: a name listed twice must not end up in two splits.
	seen := map[string]bool{}
	var samples []Sample
	for _, s := range d.Samples {
		key := s.Path
		if seen[key] {
			continue
		}
		seen[key] = true
		samples = append(samples, s)
	}
	if cfg.DedupeContent {
		var err error
		samples, sp.Dropped, err = dedupeContent(samples)
		if err != nil {
			return nil, err
		}
	}
	r := newRNG(cfg.Seed, streamSplit, uint64(cfg.Scheme), 0)
	part := make([]int8, len(samples)) // 0 train, 1 valid, 2 test
	switch cfg.Scheme {
	case SplitRandom:
		perm := r.Perm(len(samples))
		nv := int(math.Ceil(cfg.ValidFraction * float64(len(samples))))
		nt := int(math.Ceil(cfg.TestFraction * float64(len(samples)-nv)))
		assignInOrder(part, perm, nv, nt)
	case SplitStratified:
		byClass := map[int][]int{}
		for i, s := range samples {
			byClass[s.Label] = append(byClass[s.Label], i)
		}
		labels := make([]int, 0, len(byClass))
		for l := range byClass {
			labels = append(labels, l)
		}
		sort.Ints(labels)
		for _, l := range labels {
			idx := byClass[l]
			r.Shuffle(idx)
			n := len(idx)
			nv := int(math.Round(cfg.ValidFraction * float64(n)))
			if nv == 0 && cfg.ValidFraction > 0 && n >= 2 {
				nv = 1
			}
			nt := int(math.Round(cfg.TestFraction * float64(n-nv)))
			if nt == 0 && cfg.TestFraction > 0 && n-nv >= 2 {
				nt = 1
			}
			assignInOrder(part, idx, nv, nt)
		}
	case SplitBySubject:
		groups := map[string][]int{}
		for i, s := range samples {
			subj := s.Subject
			if subj == "" {
				subj = SubjectOf(s.Name)
			}
			groups[subj] = append(groups[subj], i)
		}
		names := make([]string, 0, len(groups))
		for g := range groups {
			names = append(names, g)
		}
		sort.Strings(names)
		order := r.Perm(len(names))
		n := len(samples)
		tv := int(math.Round(cfg.ValidFraction * float64(n)))
		tt := int(math.Round(cfg.TestFraction * float64(n-tv)))
		var nv, nt int
		assigned := make([]int8, len(names))
		for _, k := range order {
			g := groups[names[k]]
			switch {
			case nv+len(g) <= tv:
				assigned[k], nv = 1, nv+len(g)
			case nt+len(g) <= tt:
				assigned[k], nt = 2, nt+len(g)
			}
		}
		// A part that asked for samples but got none (every identity was too
		// large) takes the smallest identity still in train.
		for _, want := range []struct {
			p    int8
			size int
			got  *int
		}{{1, tv, &nv}, {2, tt, &nt}} {
			if want.size == 0 || *want.got > 0 {
				continue
			}
			best := -1
			for k := range names {
				if assigned[k] == 0 && (best < 0 || len(groups[names[k]]) < len(groups[names[best]])) {
					best = k
				}
			}
			if best >= 0 && len(groups[names[best]]) < n {
				assigned[best] = want.p
				*want.got += len(groups[names[best]])
			}
		}
		for k, name := range names {
			for _, i := range groups[name] {
				part[i] = assigned[k]
			}
		}
	default:
		return nil, fmt.Errorf("split: unknown scheme %d", int(cfg.Scheme))
	}
	for i, s := range samples {
		switch part[i] {
		case 0:
			sp.Train = append(sp.Train, s)
		case 1:
			sp.Valid = append(sp.Valid, s)
		case 2:
			sp.Test = append(sp.Test, s)
		}
	}
	return sp, nil
}

// assignInOrder puts the first nv samples of order in the validation part
// (1), the next nt in the test part (2) and leaves the rest in train (0).
func assignInOrder(part []int8, order []int, nv, nt int) {
	for k, i := range order {
		switch {
		case k < nv:
			part[i] = 1
		case k < nv+nt:
			part[i] = 2
		}
	}
}

// dedupeContent hashes every file and keeps the first of each group of
// byte-identical files.
func dedupeContent(samples []Sample) ([]Sample, []Skip, error) {
	sums := make([][32]byte, len(samples))
	errs := make([]error, len(samples))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				sums[i], errs[i] = hashFile(samples[i].Path)
			}
		}()
	}
	for i := range samples {
		work <- i
	}
	close(work)
	wg.Wait()
	type group struct {
		first  int
		labels map[int]bool
		idx    []int
	}
	groups := map[[32]byte]*group{}
	for i := range samples {
		if errs[i] != nil {
			continue // unreadable files are reported by Decode
		}
		g := groups[sums[i]]
		if g == nil {
			g = &group{first: i, labels: map[int]bool{}}
			groups[sums[i]] = g
		}
		g.labels[samples[i].Label] = true
		g.idx = append(g.idx, i)
	}
	drop := make([]bool, len(samples))
	var dropped []Skip
	for i := range samples {
		if errs[i] != nil {
			continue
		}
		g := groups[sums[i]]
		if len(g.idx) < 2 {
			continue
		}
		switch {
		case len(g.labels) > 1:
			drop[i] = true
			dropped = append(dropped, Skip{Path: samples[i].Path, Kind: SkipConflict,
				Reason: fmt.Sprintf("same content as %s, with a different label", samples[g.idx[0]].Path)})
			if i == g.idx[0] {
				dropped[len(dropped)-1].Reason = fmt.Sprintf("same content as %s, with a different label", samples[g.idx[1]].Path)
			}
		case i != g.first:
			drop[i] = true
			dropped = append(dropped, Skip{Path: samples[i].Path, Kind: "duplicate",
				Reason: fmt.Sprintf("same content as %s", samples[g.first].Path)})
		}
	}
	out := samples[:0:0]
	for i, s := range samples {
		if !drop[i] {
			out = append(out, s)
		}
	}
	return out, dropped, nil
}

func hashFile(p string) ([32]byte, error) {
	f, err := openFile(p)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, nil
}

// Gaps lists, one sentence each, the classes that a part holding images
// lacks: a class with no training images cannot be learnt, and one with no
// validation or test images is left out of that part's per-class and macro
// figures (a by-subject split puts a class whose images come from a few
// subjects into a few parts). Classes with no images at all are not listed.
func (s *Split) Gaps() []string {
	tr, va, te := s.Counts()
	parts := []struct {
		name    string
		samples []Sample
		counts  []int
		effect  string
	}{
		{"train", s.Train, tr, "the model cannot learn it"},
		{"valid", s.Valid, va, "validation metrics (and the best checkpoint by val_macro_f1) leave it out"},
		{"test", s.Test, te, "test metrics leave it out"},
	}
	var gaps []string
	for _, p := range parts {
		if len(p.samples) == 0 {
			continue
		}
		for c, name := range s.Classes {
			total := tr[c] + va[c] + te[c]
			if p.counts[c] == 0 && total > 0 {
				gaps = append(gaps, fmt.Sprintf("no %s images of %s (%d in all): %s", p.name, name, total, p.effect))
			}
		}
	}
	return gaps
}

// FormatSplitTable renders the per-class counts of each part, with totals:
//
//	class       train  valid   test  total
//	anger          45      6      3     54
//	...
//	total        2636    307    121   3064
func FormatSplitTable(s *Split) string {
	tr, va, te := s.Counts()
	width := len("class")
	for _, c := range s.Classes {
		width = max(width, len(c))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s %7s %7s %7s %7s\n", width, "class", "train", "valid", "test", "total")
	var st, sv, se int
	for i, c := range s.Classes {
		fmt.Fprintf(&b, "%-*s %7d %7d %7d %7d\n", width, c, tr[i], va[i], te[i], tr[i]+va[i]+te[i])
		st, sv, se = st+tr[i], sv+va[i], se+te[i]
	}
	fmt.Fprintf(&b, "%-*s %7d %7d %7d %7d\n", width, "total", st, sv, se, st+sv+se)
	return b.String()
}
