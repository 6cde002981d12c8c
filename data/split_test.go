package data

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// synthDataset makes an in-memory dataset: per class, the given number of
// samples, spread over people with 1..6 pictures each.
func synthDataset(counts []int) *Dataset {
	d := &Dataset{Root: "/imgs"}
	for c := range counts {
		d.Classes = append(d.Classes, fmt.Sprintf("class%d", c))
	}
	person := 0
	for c, n := range counts {
		for i := 0; i < n; i++ {
			if i%((person%6)+1) == 0 {
				person++
			}
			name := fmt.Sprintf("Person_%03d_%04d.jpg", person, len(d.Samples))
			d.Samples = append(d.Samples, Sample{Path: "/imgs/" + name, Name: name, Label: c, Subject: SubjectOf(name)})
		}
	}
	return d
}

func partNames(s []Sample) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Name
	}
	return out
}

func checkPartition(t *testing.T, d *Dataset, sp *Split) {
	t.Helper()
	seen := map[string]string{}
	for _, p := range sp.Parts() {
		for _, s := range p.Samples {
			if prev, ok := seen[s.Path]; ok {
				t.Fatalf("%s in both %s and %s", s.Path, prev, p.Name)
			}
			seen[s.Path] = p.Name
		}
	}
	if len(seen) != d.Len() {
		t.Fatalf("split holds %d samples, dataset %d", len(seen), d.Len())
	}
}

func TestSplitRandomCounts(t *testing.T) {
	d := synthDataset([]int{500, 300, 200})
	sp, err := SplitDataset(d, DefaultSplitConfig(42))
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, d, sp)
	// ceil(0.10*1000) = 100 valid, ceil(0.05*900) = 45 test.
	if len(sp.Valid) != 100 || len(sp.Test) != 45 || len(sp.Train) != 855 {
		t.Fatalf("sizes %d/%d/%d, want 855/100/45", len(sp.Train), len(sp.Valid), len(sp.Test))
	}
	again, _ := SplitDataset(d, DefaultSplitConfig(42))
	if !reflect.DeepEqual(partNames(again.Valid), partNames(sp.Valid)) {
		t.Fatal("same seed, different split")
	}
	other, _ := SplitDataset(d, DefaultSplitConfig(43))
	if reflect.DeepEqual(partNames(other.Valid), partNames(sp.Valid)) {
		t.Fatal("different seeds, same split")
	}
	// Parts keep the dataset's order.
	if !sort.StringsAreSorted(partNames(sp.Train)) {
		t.Fatal("train is not in dataset order")
	}
}

func TestSplitStratified(t *testing.T) {
	d := synthDataset([]int{1523, 1265, 83, 60, 57, 50, 19, 7})
	cfg := DefaultSplitConfig(1)
	cfg.Scheme = SplitStratified
	sp, err := SplitDataset(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, d, sp)
	tr, va, te := sp.Counts()
	// round(0.1*n) valid, round(0.05*(n-valid)) test, at least one each.
	wantV := []int{152, 127, 8, 6, 6, 5, 2, 1}
	wantT := []int{69, 57, 4, 3, 3, 2, 1, 1}
	if !reflect.DeepEqual(va, wantV) || !reflect.DeepEqual(te, wantT) {
		t.Fatalf("valid %v test %v, want %v %v", va, te, wantV, wantT)
	}
	if tr[7] != 5 {
		t.Fatalf("train has %d of the 7-sample class, want 5", tr[7])
	}
}

func TestSplitBySubject(t *testing.T) {
	d := synthDataset([]int{400, 250, 100, 30})
	cfg := DefaultSplitConfig(7)
	cfg.Scheme = SplitBySubject
	sp, err := SplitDataset(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, d, sp)
	where := map[string]string{}
	for _, p := range sp.Parts() {
		for _, s := range p.Samples {
			if prev, ok := where[s.Subject]; ok && prev != p.Name {
				t.Fatalf("subject %s in %s and %s", s.Subject, prev, p.Name)
			}
			where[s.Subject] = p.Name
		}
	}
	// Targets: round(0.1*780) = 78 valid, round(0.05*702) = 35 test; whole
	// identities of at most 6 pictures fill them to within 6.
	if len(sp.Valid) > 78 || len(sp.Valid) < 72 || len(sp.Test) > 35 || len(sp.Test) < 29 {
		t.Fatalf("sizes %d/%d/%d", len(sp.Train), len(sp.Valid), len(sp.Test))
	}
}

func TestSplitBySubjectLargeIdentities(t *testing.T) {
	// Three people: the valid target (1) is smaller than anyone, so the
	// smallest identity is taken rather than leaving valid empty.
	d := &Dataset{Classes: []string{"a"}}
	for i, n := range map[string]int{"Big": 6, "Mid": 3, "Small": 2} {
		for k := 0; k < n; k++ {
			name := fmt.Sprintf("%s_%d.jpg", i, k)
			d.Samples = append(d.Samples, Sample{Path: name, Name: name, Subject: i})
		}
	}
	sort.Slice(d.Samples, func(i, j int) bool { return d.Samples[i].Name < d.Samples[j].Name })
	cfg := DefaultSplitConfig(3)
	cfg.Scheme = SplitBySubject
	sp, err := SplitDataset(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.Valid) != 2 || sp.Valid[0].Subject != "Small" {
		t.Fatalf("valid = %v, want Small's 2 pictures", partNames(sp.Valid))
	}
	if len(sp.Test) != 3 || sp.Test[0].Subject != "Mid" {
		t.Fatalf("test = %v, want Mid's 3 pictures", partNames(sp.Test))
	}
}

func TestSplitDedupeContent(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.jpg": "same", "b.jpg": "same", "c.jpg": "other", "d.jpg": "x", "e.jpg": "x"})
	d := &Dataset{Classes: []string{"k0", "k1"}}
	for _, n := range []string{"a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"} {
		label := 0
		if n == "e.jpg" {
			label = 1
		}
		d.Samples = append(d.Samples, Sample{Path: filepath.Join(dir, n), Name: n, Label: label})
	}
	cfg := SplitConfig{DedupeContent: true}
	sp, err := SplitDataset(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := partNames(sp.Train); !reflect.DeepEqual(got, []string{"a.jpg", "c.jpg"}) {
		t.Fatalf("kept %v, want a.jpg c.jpg", got)
	}
	var reasons []string
	for _, s := range sp.Dropped {
		reasons = append(reasons, filepath.Base(s.Path)+": "+string(s.Kind)+": "+strings.ReplaceAll(s.Reason, dir+"/", ""))
	}
	want := []string{"b.jpg: duplicate: same content as a.jpg", "d.jpg: conflict: same content as e.jpg, with a different label", "e.jpg: conflict: same content as d.jpg, with a different label"}
	if !reflect.DeepEqual(reasons, want) {
		t.Fatalf("dropped %q\nwant %q", reasons, want)
	}
}

func TestSplitErrorsAndTable(t *testing.T) {
	d := synthDataset([]int{3, 2})
	if _, err := SplitDataset(d, SplitConfig{ValidFraction: 1.5}); err == nil || !strings.Contains(err.Error(), "fractions must be in [0, 1)") {
		t.Fatalf("error %v", err)
	}
	sp := &Split{Classes: []string{"anger", "happiness"},
		Train: []Sample{{Label: 0}, {Label: 1}, {Label: 1}}, Valid: []Sample{{Label: 1}}, Test: nil}
	want := "" +
		"class       train   valid    test   total\n" +
		"anger           1       0       0       1\n" +
		"happiness       2       1       0       3\n" +
		"total           3       1       0       4\n"
	if got := FormatSplitTable(sp); got != want {
		t.Fatalf("table\n%s\nwant\n%s", got, want)
	}
	// The empty test part is not a gap per class; anger's missing valid
	// image is.
	wantGaps := []string{"no valid images of anger (1 in all): validation metrics (and the best checkpoint by val_macro_f1) leave it out"}
	if got := sp.Gaps(); !reflect.DeepEqual(got, wantGaps) {
		t.Errorf("gaps %q\nwant %q", got, wantGaps)
	}
	// contempt has no images at all: not a gap.
	sp = &Split{Classes: []string{"anger", "contempt", "fear", "happiness"},
		Train: []Sample{{Label: 0}, {Label: 3}, {Label: 3}}, Valid: []Sample{{Label: 0}, {Label: 3}, {Label: 2}}, Test: []Sample{{Label: 3}}}
	wantGaps = []string{
		"no train images of fear (1 in all): the model cannot learn it",
		"no test images of anger (2 in all): test metrics leave it out",
		"no test images of fear (1 in all): test metrics leave it out",
	}
	if got := sp.Gaps(); !reflect.DeepEqual(got, wantGaps) {
		t.Errorf("gaps %q\nwant %q", got, wantGaps)
	}
}

func TestWriteLayoutAndOpenDir(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{}
	for i := 0; i < 30; i++ {
		files[fmt.Sprintf("P%d_%04d.jpg", i%7, i)] = fmt.Sprintf("content %d", i)
	}
	writeTree(t, src, files)
	d := &Dataset{Classes: []string{"anger", "happiness", "neutral"}}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		d.Samples = append(d.Samples, Sample{Path: filepath.Join(src, n), Name: n, Label: i % 3, Subject: SubjectOf(n)})
	}
	cfg := DefaultSplitConfig(5)
	cfg.ValidFraction, cfg.TestFraction = 0.2, 0.2
	sp, err := SplitDataset(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "data")
	rep, err := WriteLayout(root, sp, LinkAuto)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Linked+rep.Copied != 30 || rep.Unchanged != 0 || len(rep.Removed) != 0 {
		t.Fatalf("first run: %v", rep)
	}
	// Hard links where possible: the temp folders share a file system.
	if rep.Linked == 30 {
		a, _ := os.Stat(filepath.Join(src, sp.Train[0].Name))
		b, _ := os.Stat(filepath.Join(root, "train", d.Classes[sp.Train[0].Label], sp.Train[0].Name))
		if !os.SameFile(a, b) {
			t.Fatal("linked file is not the same file")
		}
	}
	// Every class folder exists in every part, even when empty.
	for _, part := range []string{"train", "valid", "test"} {
		for _, c := range d.Classes {
			if st, err := os.Stat(filepath.Join(root, part, c)); err != nil || !st.IsDir() {
				t.Fatalf("%s/%s missing", part, c)
			}
		}
	}
	// Reading the layout back gives the split, with flow_from_directory's
	// order (class by class, names sorted).
	for _, p := range sp.Parts() {
		back, err := OpenDir(filepath.Join(root, p.Name), DirOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Classes, d.Classes) {
			t.Fatalf("%s classes %v", p.Name, back.Classes)
		}
		var want []string
		for c := range d.Classes {
			var names []string
			for _, s := range p.Samples {
				if s.Label == c {
					names = append(names, s.Name)
				}
			}
			sort.Strings(names)
			want = append(want, names...)
		}
		if got := partNames(back.Samples); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("%s read back %v, want %v", p.Name, got, want)
		}
	}
	// Running again changes nothing.
	rep2, err := WriteLayout(root, sp, LinkAuto)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Unchanged != 30 || rep2.Linked+rep2.Copied != 0 || len(rep2.Removed) != 0 {
		t.Fatalf("second run: %v", rep2)
	}
	// A different split replaces the old one: nothing stays in two parts.
	cfg.Seed = 99
	sp2, _ := SplitDataset(d, cfg)
	os.WriteFile(filepath.Join(root, "train", "anger", "notes.txt"), []byte("mine"), 0o644)
	rep3, err := WriteLayout(root, sp2, LinkCopy)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep3.Removed) == 0 || rep3.Copied == 0 {
		t.Fatalf("re-split: %v", rep3)
	}
	if len(rep3.Warnings) != 1 || !strings.Contains(rep3.Warnings[0], "notes.txt is not part of the split; left in place") {
		t.Fatalf("warnings %q", rep3.Warnings)
	}
	count := 0
	seen := map[string]bool{}
	for _, part := range []string{"train", "valid", "test"} {
		back, err := OpenDir(filepath.Join(root, part), DirOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range back.Samples {
			if seen[s.Name] {
				t.Fatalf("%s appears twice after re-split", s.Name)
			}
			seen[s.Name] = true
			count++
		}
	}
	if count != 30 {
		t.Fatalf("%d files after re-split, want 30", count)
	}
}

func TestOpenDirKerasOrder(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"happiness/b.jpg":       "x",
		"happiness/a.JPG":       "x",
		"happiness/z/c.png":     "x",
		"happiness/a-x/d.jpeg":  "x",
		"happiness/notes.txt":   "x",
		"happiness/e.webp":      "x",
		"HAPPINESS/x.jpg":       "x",
		"anger/y.bmp":           "x",
		".hidden/h.jpg":         "x",
		"loose.jpg":             "x",
		"anger/sub/deep/q.tiff": "x",
	})
	if err := os.Symlink(filepath.Join(root, "anger"), filepath.Join(root, "happiness", "linked")); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(root, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".hidden", "HAPPINESS", "anger", "happiness"}; !reflect.DeepEqual(d.Classes, want) {
		t.Fatalf("classes %v, want %v", d.Classes, want)
	}
	var got []string
	for _, s := range d.Samples {
		got = append(got, fmt.Sprintf("%d:%s", s.Label, s.Name))
	}
	want := []string{"0:h.jpg", "1:x.jpg", "2:y.bmp", "2:sub/deep/q.tiff", "3:a.JPG", "3:b.jpg", "3:a-x/d.jpeg", "3:z/c.png"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("samples %v\nwant %v", got, want)
	}
	d2, err := OpenDir(root, DirOptions{Extensions: append(KerasExtensions(), "webp"), FollowLinks: true})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, s := range d2.Samples {
		if s.Label == 3 {
			got = append(got, s.Name)
		}
	}
	if want := []string{"a.JPG", "b.jpg", "e.webp", "a-x/d.jpeg", "linked/y.bmp", "linked/sub/deep/q.tiff", "z/c.png"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("with webp and links: %v\nwant %v", got, want)
	}
}

func TestPrepare(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"data/legend.csv": "user.id,image,emotion\n" +
			"1,Anna_0001.png,happiness\n1,Anna_0002.png,HAPPINESS\n2,Bob_0001.png,anger\n2,Bob_0001.png,anger\n" +
			"3,Cy_0001.png,neutral\n3,broken.png,neutral\n4,gone.png,fear\n",
	}
	writeTree(t, root, files)
	os.MkdirAll(filepath.Join(root, "images"), 0o755)
	for i, n := range []string{"Anna_0001.png", "Anna_0002.png", "Bob_0001.png", "Cy_0001.png"} {
		os.WriteFile(filepath.Join(root, "images", n), encode(t, "png", pattern(8, 8, false, i)), 0o644)
	}
	os.WriteFile(filepath.Join(root, "images", "broken.png"), []byte("\x89PNG\r\n\x1a\nbad"), 0o644)
	os.WriteFile(filepath.Join(root, "images", "extra.png"), []byte("x"), 0o644)
	cfg := PrepareConfig{
		LegendFile: filepath.Join(root, "data/legend.csv"), ImagesDir: filepath.Join(root, "images"),
		OutDir: filepath.Join(root, "out"), Split: SplitConfig{Scheme: SplitBySubject, ValidFraction: 0.25, Seed: 1}, Verify: true,
	}
	rep, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := strings.ReplaceAll(b.String(), root, "ROOT")
	for _, want := range []string{
		"legend ROOT/data/legend.csv: 7 rows, 6 distinct images, 5 labelled images found\n",
		"  1 duplicate rows (same image, same label) kept once\n",
		"  1 rows unusable: 0 rejected (bad name or label), 1 without an image, 0 naming no readable file (listed under skipped)\n",
		"  1 images have no legend row (not used): extra.png\n",
		"  labels written in several cases, merged: happiness (HAPPINESS, happiness)\n",
		"verified 5 images in ",
		"): 4 decode, 1 do not\n",
		"by-subject split (seed 1, valid 25%, test 0% of the rest):\n",
		"total           3       1       0       4\n",
		"layout ROOT/out: 4 linked, 0 copied, 0 unchanged, 0 stale removed\n",
		"skipped: 2 (corrupt 1, missing 1)\n",
		"  missing (1):\n    ROOT/images/gone.png (line 8): listed in the legend but not in the images folder\n",
		"  corrupt (1):\n    ROOT/images/broken.png: png header: ",
		"  every skipped file with its reason: ROOT/out/skipped.csv\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if _, err := Prepare(context.Background(), PrepareConfig{LegendFile: cfg.LegendFile, ImagesDir: cfg.ImagesDir}); err == nil {
		t.Fatal("no output folder accepted")
	}
}
