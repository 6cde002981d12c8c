package data

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
)

// The real-data sample (a 3,099-image slice of muxspace/facial_expressions)
// lives next to the repository; these tests skip when it is absent.
func sampleRoot(t *testing.T) string {
	t.Helper()
	root := os.Getenv("FERTORCH_SAMPLE")
	if root == "" {
		root = filepath.Join("..", "..", "shared", "facial_expressions")
	}
	if _, err := os.Stat(filepath.Join(root, "data", "legend.csv")); err != nil {
		t.Skipf("skipping: real-data sample not found at %s (set FERTORCH_SAMPLE)", root)
	}
	return root
}

const webpName = "facial-expressions_2868588k.jpg"

func openSample(t *testing.T) *Dataset {
	t.Helper()
	root := sampleRoot(t)
	d, err := OpenLegend(filepath.Join(root, "data", "legend.csv"), filepath.Join(root, "images"), LegendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var decodedSample struct {
	once sync.Once
	d    *Dataset
	st   *DecodeStats
	err  error
}

// decodeSample decodes the sample once per test binary (under the race
// detector, a slice of it that includes the WebP file).
func decodeSample(t *testing.T) (*Dataset, *DecodeStats) {
	t.Helper()
	d := openSample(t)
	decodedSample.once.Do(func() {
		src := d
		if raceEnabled {
			var idx []int
			for i, s := range d.Samples {
				if i < 150 || s.Name == webpName {
					idx = append(idx, i)
				}
			}
			src, _ = d.Subset(idx)
		}
		decodedSample.d, decodedSample.st, decodedSample.err = src.Decode(context.Background(), DecodeOptions{})
	})
	if decodedSample.err != nil {
		t.Fatal(decodedSample.err)
	}
	return decodedSample.d, decodedSample.st
}

func TestRealSampleLegend(t *testing.T) {
	d := openSample(t)
	rep := d.Legend
	if rep.Rows != 3065 || rep.UniqueImages != 3064 || rep.Labelled != 3064 {
		t.Errorf("rows %d, unique images %d, labelled %d; want 3065, 3064, 3064", rep.Rows, rep.UniqueImages, rep.Labelled)
	}
	if len(rep.Duplicates) != 1 || rep.Duplicates[0].Image != "Kimora_Lee_0001.jpg" {
		t.Errorf("duplicates %+v, want Kimora_Lee_0001.jpg once", rep.Duplicates)
	}
	if len(rep.Conflicts) != 0 || len(rep.Rejected) != 0 || len(rep.Missing) != 0 || len(d.Skipped) != 0 {
		t.Errorf("conflicts %d rejected %d missing %d skipped %d, want none", len(rep.Conflicts), len(rep.Rejected), len(rep.Missing), len(d.Skipped))
	}
	if len(rep.Unlisted) != 35 {
		t.Errorf("%d images without rows, want 35", len(rep.Unlisted))
	}
	if rep.RawLabels["HAPPINESS"] != 94 || rep.RawLabels["happiness"] != 1172 {
		t.Errorf("label case mix: HAPPINESS %d happiness %d, want 94 and 1172", rep.RawLabels["HAPPINESS"], rep.RawLabels["happiness"])
	}
	counts := map[string]int{}
	for i, c := range d.Counts() {
		counts[d.Classes[i]] = c
	}
	want := map[string]int{"neutral": 1523, "happiness": 1265, "surprise": 83, "sadness": 60, "anger": 57, "disgust": 50, "fear": 19, "contempt": 7}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("class counts %v\nwant %v", counts, want)
	}
	if !reflect.DeepEqual(d.Classes, Emotions()) {
		t.Errorf("classes %v", d.Classes)
	}
}

func TestRealSampleDecode(t *testing.T) {
	d, st := decodeSample(t)
	if st.Skipped != 0 || len(d.Skipped) != 0 {
		t.Fatalf("%d files skipped: %v", st.Skipped, d.Skipped)
	}
	gray := 0
	webp := -1
	for i, s := range d.Samples {
		im, _ := d.Image(i)
		if im.C == 1 {
			gray++
		}
		if s.Name == webpName {
			webp = i
		}
	}
	if webp < 0 {
		t.Fatal("the WebP file is not among the decoded samples")
	}
	b, err := os.ReadFile(d.Samples[webp].Path)
	if err != nil {
		t.Fatal(err)
	}
	if f := Sniff(b); f != "webp" {
		t.Fatalf("%s sniffed as %q, want webp", webpName, f)
	}
	if im, _ := d.Image(webp); im.C != 3 || im.H != 224 || im.W != 224 {
		t.Fatalf("WebP decoded to %dx%dx%d", im.H, im.W, im.C)
	}
	t.Logf("%d of %d samples are stored as one channel", gray, d.Len())
	if !raceEnabled && gray < 2800 {
		t.Errorf("only %d grayscale samples; the sample has about 2,850 L-mode JPEGs", gray)
	}

	// Against Keras' load_img (PIL, NEAREST to 224): the WebP exactly, a
	// few JPEGs (colour and grey) within the decoders' IDCT differences.
	py, err := pyref.Find("PIL")
	if err != nil {
		t.Logf("skipping the PIL comparison: %v", err)
		return
	}
	dir := t.TempDir()
	type tc struct {
		Input string `json:"input"`
		H     int    `json:"h"`
		W     int    `json:"w"`
		Out   string `json:"out"`
		idx   int
	}
	cases := []tc{{Input: d.Samples[webp].Path, H: 224, W: 224, Out: "webp.rgb", idx: webp}}
	colour, grey := 0, 0
	for i := range d.Samples {
		im, _ := d.Image(i)
		if i != webp && ((im.C == 3 && colour < 3) || (im.C == 1 && grey < 4)) {
			if im.C == 3 {
				colour++
			} else {
				grey++
			}
			p, _ := filepath.Abs(d.Samples[i].Path)
			cases = append(cases, tc{Input: p, H: 224, W: 224, Out: filepath.Base(p) + ".rgb", idx: i})
		}
	}
	for i := range cases {
		cases[i].Input, _ = filepath.Abs(cases[i].Input)
	}
	js, _ := json.Marshal(cases)
	os.WriteFile(filepath.Join(dir, "cases.json"), js, 0o644)
	if _, err := pyref.Run(py, "testdata/pil_ref.py", dir); err != nil {
		t.Fatal(err)
	}
	for k, c := range cases {
		want, err := os.ReadFile(filepath.Join(dir, c.Out))
		if err != nil {
			t.Fatal(err)
		}
		im, _ := d.Image(c.idx)
		got := expandRGB(im)
		var sum, maxd float64
		for i := range got {
			dd := math.Abs(float64(got[i]) - float64(want[i]))
			sum += dd
			maxd = math.Max(maxd, dd)
		}
		mean := sum / float64(len(got))
		t.Logf("%s (%d channels): mean %.4f max %.0f levels from PIL", filepath.Base(c.Input), im.C, mean, maxd)
		if k == 0 && maxd != 0 {
			t.Errorf("WebP differs from PIL: mean %.4f max %.0f", mean, maxd)
		}
		if mean > 0.1 || maxd > 6 {
			t.Errorf("%s: mean %.4f max %.0f levels from PIL, want <= 0.1 and 6", c.Input, mean, maxd)
		}
	}
}

func TestRealSampleSplits(t *testing.T) {
	d := openSample(t)
	for _, scheme := range []SplitScheme{SplitRandom, SplitStratified, SplitBySubject} {
		cfg := DefaultSplitConfig(1)
		cfg.Scheme = scheme
		sp, err := SplitDataset(d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkPartition(t, d, sp)
		t.Logf("%s split:\n%s", scheme, FormatSplitTable(sp))
		switch scheme {
		case SplitRandom:
			// ceil(306.4) = 307 valid, ceil(0.05*2757) = 138 test.
			if len(sp.Valid) != 307 || len(sp.Test) != 138 {
				t.Errorf("seed split %d/%d/%d", len(sp.Train), len(sp.Valid), len(sp.Test))
			}
		case SplitStratified:
			_, va, te := sp.Counts()
			for c := range d.Classes {
				if va[c] == 0 || te[c] == 0 {
					t.Errorf("stratified: class %s has valid %d test %d", d.Classes[c], va[c], te[c])
				}
			}
		case SplitBySubject:
			where := map[string]string{}
			for _, p := range sp.Parts() {
				for _, s := range p.Samples {
					if prev, ok := where[s.Subject]; ok && prev != p.Name {
						t.Fatalf("identity %s in %s and %s", s.Subject, prev, p.Name)
					}
					where[s.Subject] = p.Name
				}
			}
			// 306 valid and 138 test wanted; whole identities fill them closely.
			if len(sp.Valid) < 290 || len(sp.Valid) > 306 || len(sp.Test) < 125 || len(sp.Test) > 138 {
				t.Errorf("by-subject split %d/%d/%d", len(sp.Train), len(sp.Valid), len(sp.Test))
			}
			t.Logf("%d identities", len(where))
		}
	}
}
