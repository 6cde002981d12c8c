package synth

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var nameRE = regexp.MustCompile(`^(Synth_Person\d{3,})_(\d{4})\.jpg$`)

// readLegend parses data/legend.csv with encoding/csv.
func readLegend(t *testing.T, dir string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "data", "legend.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("legend does not parse: %v", err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "user.id,image,emotion" {
		t.Fatalf("legend header %v", recs[:min(1, len(recs))])
	}
	return recs[1:]
}

func imageFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestGenerateClean(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Seed: 3, PerClass: 9, ImagesPerSubject: 5, MaxSize: 96}
	rep, err := Generate(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	classes := AllClasses()
	total := 9 * len(classes)
	if len(rep.Samples) != total || rep.Rows != total || rep.Files != total {
		t.Errorf("samples/rows/files = %d/%d/%d, want %d each", len(rep.Samples), rep.Rows, rep.Files, total)
	}
	if want := (total + 4) / 5; rep.Subjects != want {
		t.Errorf("subjects = %d, want %d", rep.Subjects, want)
	}
	if len(rep.Injected) != 0 || len(rep.Unlabelled) != 0 {
		t.Errorf("clean dataset has mess: %v %v", rep.Injected, rep.Unlabelled)
	}
	rows := readLegend(t, dir)
	if len(rows) != total {
		t.Fatalf("%d legend rows, want %d", len(rows), total)
	}
	perClass := map[string]int{}
	perSubject := map[string]int{}
	subjectClasses := map[string]map[string]bool{}
	files := imageFiles(t, dir)
	if len(files) != total {
		t.Errorf("%d image files, want %d", len(files), total)
	}
	sizes := map[int]bool{}
	grey, colour := 0, 0
	for i, row := range rows {
		if row[0] != "synth" {
			t.Errorf("row %d user.id %q", i, row[0])
		}
		m := nameRE.FindStringSubmatch(row[1])
		if m == nil {
			t.Fatalf("row %d image name %q does not look like Name_NNNN.jpg", i, row[1])
		}
		if row[2] != strings.ToLower(row[2]) {
			t.Errorf("row %d label %q is not lower case in a clean dataset", i, row[2])
		}
		perClass[row[2]]++
		perSubject[m[1]]++
		if subjectClasses[m[1]] == nil {
			subjectClasses[m[1]] = map[string]bool{}
		}
		subjectClasses[m[1]][row[2]] = true
		s := rep.Samples[i]
		if s.Image != row[1] || s.Label != row[2] || s.Emotion != row[2] || s.Subject != m[1] || s.Format != "jpeg" {
			t.Errorf("report sample %d %+v disagrees with legend row %v", i, s, row)
		}
		data, err := os.ReadFile(filepath.Join(dir, "images", row[1]))
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s does not decode as JPEG: %v", row[1], err)
		}
		b := img.Bounds()
		if b.Dx() != s.Size || b.Dy() != s.Size || s.Size < 48 || s.Size > 96 {
			t.Errorf("%s is %v, report says %d (allowed 48..96)", row[1], b, s.Size)
		}
		sizes[s.Size] = true
		_, isGray := img.(*image.Gray)
		if isGray != s.Gray {
			t.Errorf("%s: decoded grey %v, report says %v", row[1], isGray, s.Gray)
		}
		if isGray {
			grey++
		} else {
			colour++
		}
	}
	for _, c := range classes {
		if perClass[c] != 9 || rep.PerClass[c] != 9 {
			t.Errorf("class %s: %d rows, report %d, want 9", c, perClass[c], rep.PerClass[c])
		}
	}
	for s, n := range perSubject {
		want := 5
		if s == fmt.Sprintf("Synth_Person%03d", rep.Subjects) {
			want = total - 5*(rep.Subjects-1)
		}
		if n != want {
			t.Errorf("subject %s has %d images, want %d", s, n, want)
		}
	}
	// Persons show several expressions, so a split by subject still sees
	// every class.
	multi := 0
	for _, cs := range subjectClasses {
		if len(cs) > 1 {
			multi++
		}
	}
	if multi < len(subjectClasses)/2 {
		t.Errorf("only %d of %d subjects have more than one class", multi, len(subjectClasses))
	}
	if grey < total/5 || colour < total/5 {
		t.Errorf("grey/colour = %d/%d, want a mix", grey, colour)
	}
	if len(sizes) < 10 || !sizes[96] {
		t.Errorf("sizes %v: want many different sizes including the maximum", sizes)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	opts := Options{Seed: 42, PerClass: 4, MaxSize: 80, Messy: true}
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	opts.Workers = 1
	if _, err := Generate(a, opts); err != nil {
		t.Fatal(err)
	}
	opts.Workers = 3 // the number of workers must not matter
	if _, err := Generate(b, opts); err != nil {
		t.Fatal(err)
	}
	opts.Seed = 43
	if _, err := Generate(c, opts); err != nil {
		t.Fatal(err)
	}
	files := append(imageFiles(t, a), filepath.Join("..", "data", "legend.csv"))
	if len(files) != 4*8+2 {
		t.Fatalf("%d files", len(files))
	}
	same := 0
	for _, f := range files {
		fa, err := os.ReadFile(filepath.Join(a, "images", f))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := os.ReadFile(filepath.Join(b, "images", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fa, fb) {
			t.Errorf("%s differs between two runs with the same seed", f)
		}
		if fc, err := os.ReadFile(filepath.Join(c, "images", f)); err == nil && bytes.Equal(fa, fc) {
			same++
		}
	}
	if same != 0 {
		t.Errorf("%d files are identical under another seed", same)
	}
}

func TestGenerateMessy(t *testing.T) {
	clean, messy := t.TempDir(), t.TempDir()
	opts := Options{Seed: 5, PerClass: 10, MaxSize: 64}
	cr, err := Generate(clean, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Messy = true
	mr, err := Generate(messy, opts)
	if err != nil {
		t.Fatal(err)
	}
	total := 80
	if mr.Rows != total+1 || mr.Files != total+1 || len(mr.Samples) != total {
		t.Errorf("rows/files/samples = %d/%d/%d, want %d/%d/%d", mr.Rows, mr.Files, len(mr.Samples), total+1, total+1, total)
	}
	kinds := map[string][]Injection{}
	for _, in := range mr.Injected {
		kinds[in.Kind] = append(kinds[in.Kind], in)
	}
	if len(kinds[KindDuplicateRow]) != 1 || len(kinds[KindUnlabelled]) != 1 || len(kinds[KindPNGAsJPG]) != 1 || len(kinds[KindUpperCase]) < 1 {
		t.Fatalf("injected %v", mr.Injected)
	}
	rows := readLegend(t, messy)
	if len(rows) != total+1 {
		t.Fatalf("%d rows", len(rows))
	}
	// Duplicate: the last row repeats an earlier one verbatim.
	last := strings.Join(rows[total], ",")
	dups := 0
	for _, r := range rows[:total] {
		if strings.Join(r, ",") == last {
			dups++
		}
	}
	if dups != 1 || rows[total][1] != kinds[KindDuplicateRow][0].Image {
		t.Errorf("last row %q repeats %d earlier rows; injected %v", last, dups, kinds[KindDuplicateRow])
	}
	// Upper-case labels: exactly the injected rows, and they name the same
	// class as the clean dataset.
	upper := map[string]bool{}
	for _, in := range kinds[KindUpperCase] {
		upper[in.Image] = true
	}
	nUpper := 0
	for i, r := range rows[:total] {
		if r[2] != strings.ToLower(r[2]) {
			nUpper++
			if !upper[r[1]] || r[2] != strings.ToUpper(r[2]) {
				t.Errorf("row %d label %q not reported or not upper case", i, r[2])
			}
		}
		if strings.ToLower(r[2]) != cr.Samples[i].Emotion || r[1] != cr.Samples[i].Image {
			t.Errorf("row %d %v differs from the clean dataset's %s,%s", i, r, cr.Samples[i].Image, cr.Samples[i].Emotion)
		}
	}
	if nUpper != len(upper) {
		t.Errorf("%d upper-case rows, %d reported", nUpper, len(upper))
	}
	// The unlabelled image exists, decodes, and no row names it.
	un := kinds[KindUnlabelled][0].Image
	if len(mr.Unlabelled) != 1 || mr.Unlabelled[0] != un || !nameRE.MatchString(un) {
		t.Errorf("unlabelled %v / %s", mr.Unlabelled, un)
	}
	for _, r := range rows {
		if r[1] == un {
			t.Errorf("unlabelled image %s has a row", un)
		}
	}
	files := imageFiles(t, messy)
	if len(files) != total+1 {
		t.Errorf("%d image files, want %d", len(files), total+1)
	}
	// PNG under a .jpg name: PNG signature, decodes as PNG, not as JPEG;
	// every other file is byte-identical to the clean dataset's.
	pngName := kinds[KindPNGAsJPG][0].Image
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(messy, "images", f))
		if err != nil {
			t.Fatal(err)
		}
		switch f {
		case pngName:
			if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || !strings.HasSuffix(f, ".jpg") {
				t.Errorf("%s is not PNG data under a .jpg name", f)
			}
			if _, err := png.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			if _, err := jpeg.Decode(bytes.NewReader(data)); err == nil {
				t.Errorf("%s decodes as JPEG", f)
			}
		case un:
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		default:
			cd, err := os.ReadFile(filepath.Join(clean, "images", f))
			if err != nil || !bytes.Equal(cd, data) {
				t.Errorf("%s differs from the clean dataset (%v)", f, err)
			}
		}
	}
	for _, s := range mr.Samples {
		if want := map[bool]string{true: "png", false: "jpeg"}[s.Image == pngName]; s.Format != want {
			t.Errorf("%s format %q, want %q", s.Image, s.Format, want)
		}
	}
}

func TestGenerateOptions(t *testing.T) {
	dir := t.TempDir()
	rep, err := Generate(dir, Options{Classes: []string{"surprise", "happiness"}, PerClass: 3, MaxSize: 48, GrayFraction: -1, Quality: 70})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(rep.Classes, []string{"surprise", "happiness"}) || rep.PerClass["surprise"] != 3 || rep.PerClass["happiness"] != 3 || len(rep.PerClass) != 2 {
		t.Errorf("classes %v per class %v", rep.Classes, rep.PerClass)
	}
	for _, s := range rep.Samples {
		if s.Gray || s.Size != 48 {
			t.Errorf("%+v: want colour 48 px", s)
		}
	}
	dir2 := t.TempDir()
	rep, err = Generate(dir2, Options{PerClass: 2, MinSize: 32, MaxSize: 32, GrayFraction: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Samples {
		f, err := os.Open(filepath.Join(dir2, "images", s.Image))
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := img.(*image.Gray); !ok || !s.Gray {
			t.Errorf("%s is %T, want grey", s.Image, img)
		}
	}

	for name, o := range map[string]Options{
		"unknown class":   {Classes: []string{"joy"}},
		"upper class":     {Classes: []string{"ANGER"}},
		"duplicate class": {Classes: []string{"fear", "fear"}},
		"empty classes":   {Classes: []string{}},
		"per class":       {PerClass: -1},
		"per subject":     {ImagesPerSubject: -2},
		"small":           {MinSize: 8},
		"large":           {MaxSize: 5000},
		"order":           {MinSize: 100, MaxSize: 50},
		"grey":            {GrayFraction: 1.5},
		"quality":         {Quality: 101},
	} {
		if _, err := Generate(t.TempDir(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestGenerateOverwrite(t *testing.T) {
	dir := t.TempDir()
	opts := Options{PerClass: 3, MaxSize: 48, Messy: true}
	if _, err := Generate(dir, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, opts); err == nil || !strings.Contains(err.Error(), "already holds a dataset") {
		t.Errorf("second run without Overwrite: %v", err)
	}
	opts.PerClass, opts.Messy, opts.Overwrite = 2, false, true
	rep, err := Generate(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(imageFiles(t, dir)); n != 16 || rep.Files != 16 || len(readLegend(t, dir)) != 16 {
		t.Errorf("after overwrite: %d files, report %d", n, rep.Files)
	}
	// A folder with foreign images is never cleared.
	foreign := t.TempDir()
	if err := os.MkdirAll(filepath.Join(foreign, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "images", "Aaron_Peirsol_0001.jpg"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(foreign, opts); err == nil || !strings.Contains(err.Error(), "not a synthetic image") {
		t.Errorf("foreign folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "images", "Aaron_Peirsol_0001.jpg")); err != nil {
		t.Errorf("foreign image removed: %v", err)
	}
	if _, err := Generate("", Options{PerClass: 1}); err == nil {
		t.Error("empty folder name accepted")
	}
	// A file where the folder should be is an error, not a panic.
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(blocked, Options{PerClass: 1}); err == nil {
		t.Error("generating under a file succeeded")
	}
}

// greyPixels decodes an image file and shrinks it to side x side grey
// levels (0..255) by area averaging.
func greyPixels(t *testing.T, path string, side int) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return shrinkGrey(img, side)
}

func shrinkGrey(img image.Image, side int) []float64 {
	b := img.Bounds()
	out := make([]float64, side*side)
	cnt := make([]float64, side*side)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bb, _ := img.At(x, y).RGBA()
			i := (y-b.Min.Y)*side/b.Dy()*side + (x-b.Min.X)*side/b.Dx()
			out[i] += (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bb)) / 257
			cnt[i]++
		}
	}
	for i := range out {
		out[i] /= cnt[i]
	}
	return out
}

// gradientHistograms describes a side x side grey picture by histograms of
// gradient orientation (bins over 0..pi, weighted by magnitude) in cells of
// cell x cell pixels, the whole vector scaled to unit length. Flat regions
// (skin, background) contribute nothing, edges (mouth, brows, eyes) do.
func gradientHistograms(px []float64, side, cell, bins int) []float64 {
	nc := side / cell
	h := make([]float64, nc*nc*bins)
	for y := 1; y < side-1; y++ {
		for x := 1; x < side-1; x++ {
			gx := px[y*side+x+1] - px[y*side+x-1]
			gy := px[(y+1)*side+x] - px[(y-1)*side+x]
			a := math.Atan2(gy, gx)
			if a < 0 {
				a += math.Pi
			}
			bin := int(a/math.Pi*float64(bins)) % bins
			h[((y/cell)*nc+x/cell)*bins+bin] += math.Hypot(gx, gy)
		}
	}
	var n float64
	for _, v := range h {
		n += v * v
	}
	n = math.Sqrt(n) + 1e-9
	for i := range h {
		h[i] /= n
	}
	return h
}

// nearestCentroid fits class means on train and returns the accuracy on
// test.
func nearestCentroid(train, test [][]float64, trainY, testY []int, classes int) float64 {
	cent := make([][]float64, classes)
	counts := make([]int, classes)
	for k, x := range train {
		c := trainY[k]
		if cent[c] == nil {
			cent[c] = make([]float64, len(x))
		}
		for i, v := range x {
			cent[c][i] += v
		}
		counts[c]++
	}
	for c := range cent {
		for i := range cent[c] {
			cent[c][i] /= float64(counts[c])
		}
	}
	correct := 0
	for k, x := range test {
		best, bestD := -1, math.Inf(1)
		for c, m := range cent {
			if m == nil {
				continue
			}
			var d float64
			for i, v := range x {
				d += (v - m[i]) * (v - m[i])
			}
			if d < bestD {
				best, bestD = c, d
			}
		}
		if best == testY[k] {
			correct++
		}
	}
	return float64(correct) / float64(len(test))
}

// TestExpressionsDifferInPixels holds the person and the scene fixed and
// varies only the expression: at 48x48 pixels a nearest-centroid classifier
// on raw grey levels, fitted on some renderings, must name the class of
// fresh renderings (new expression jitter) of every class. This is the
// claim that the classes differ visibly, by the face alone.
func TestExpressionsDifferInPixels(t *testing.T) {
	classes := AllClasses()
	for p := range uint64(4) {
		per := newPerson(newRNG(99, 2, p))
		sc := newScene(newRNG(99, 6, p), 48, 0.5)
		var train, test [][]float64
		var trainY, testY []int
		for k, class := range classes {
			for i := range uint64(12) {
				e := expressionFor(class, newRNG(99, 7, p, uint64(k), i))
				x := shrinkGrey(renderFace(per, e, sc), 48)
				if i%2 == 0 {
					train, trainY = append(train, x), append(trainY, k)
				} else {
					test, testY = append(test, x), append(testY, k)
				}
			}
		}
		acc := nearestCentroid(train, test, trainY, testY, len(classes))
		t.Logf("person %d: nearest-centroid accuracy %.3f on %d fresh renderings", p, acc, len(test))
		if acc < 0.95 {
			t.Errorf("person %d: nearest-centroid accuracy %.3f with only the expression varying, want >= 0.95", p, acc)
		}
	}
}

// TestClassesSeparateInDataset fits a nearest-centroid classifier on the
// generated files of half the subjects and tests it on the other half, on
// gradient histograms of the pictures shrunk to 48x48 grey. Centroids know
// nothing about faces, so the position, scale, rotation, light, noise and
// blur jitter hurt them (a small CNN does far better); still the classes
// must separate far above chance (1/8).
func TestClassesSeparateInDataset(t *testing.T) {
	dir := t.TempDir()
	rep, err := Generate(dir, Options{Seed: 11, PerClass: 40, MaxSize: 96})
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, c := range rep.Classes {
		idx[c] = i
	}
	var names []string
	seen := map[string]bool{}
	for _, s := range rep.Samples {
		if !seen[s.Subject] {
			seen[s.Subject] = true
			names = append(names, s.Subject)
		}
	}
	sort.Strings(names)
	inTrain := map[string]bool{}
	for i, s := range names {
		inTrain[s] = i%2 == 0
	}
	var train, test [][]float64
	var trainY, testY []int
	for _, s := range rep.Samples {
		x := gradientHistograms(greyPixels(t, filepath.Join(dir, "images", s.Image), 48), 48, 8, 9)
		if inTrain[s.Subject] {
			train, trainY = append(train, x), append(trainY, idx[s.Emotion])
		} else {
			test, testY = append(test, x), append(testY, idx[s.Emotion])
		}
	}
	acc := nearestCentroid(train, test, trainY, testY, len(rep.Classes))
	t.Logf("nearest-centroid accuracy %.3f on %d images of held-out subjects (chance 0.125)", acc, len(test))
	if acc < 0.4 {
		t.Errorf("nearest-centroid accuracy %.3f, want >= 0.4 (chance 0.125)", acc)
	}
}
