package data

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

// badSource is a legend and images folder holding eight usable images of two
// classes and one file of every kind prepare must leave out.
func badSource(t *testing.T) (legend, images string) {
	t.Helper()
	root := t.TempDir()
	images = filepath.Join(root, "images")
	files := map[string]string{}
	rows := []string{"user.id,image,emotion"}
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("P%d_%04d.png", i, i)
		files[name] = string(encode(t, "png", pattern(12+i, 10, i%2 == 0, i)))
		rows = append(rows, fmt.Sprintf("u,%s,%s", name, []string{"happiness", "neutral"}[i%2]))
	}
	good := files["P1_0001.png"]
	files["empty.jpg"] = ""
	files["text.jpg"] = "hello, not a picture"
	files["truncated.png"] = good[:len(good)/2]
	files["garbage.jpg"] = "\xff\xd8\xff\xe0garbage after a JPEG signature"
	files["huge.png"] = string(pngHeaderOnly(20000, 20000))
	files["locked.png"] = good + "\x00" // readable bytes, but openFile refuses it below
	writeTree(t, images, files)
	if err := os.Mkdir(filepath.Join(images, "folder.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "gone.jpg"), filepath.Join(images, "dangling.jpg")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"empty.jpg", "text.jpg", "truncated.png", "garbage.jpg", "huge.png", "locked.png", "folder.jpg", "dangling.jpg"} {
		rows = append(rows, "u,"+n+",happiness")
	}
	legend = filepath.Join(root, "legend.csv")
	if err := os.WriteFile(legend, []byte(strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return legend, images
}

// refuseOpening makes openFile fail with "permission denied" for files named
// base (root can read files of any mode, so unreadability is simulated).
func refuseOpening(t *testing.T, base string) {
	t.Helper()
	orig := openFile
	openFile = func(name string) (*os.File, error) {
		if filepath.Base(name) == base {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return orig(name)
	}
	t.Cleanup(func() { openFile = orig })
}

// layoutFiles lists the files under root as slash paths.
func layoutFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestPrepareVerifiesEveryImage: prepare decodes every image before
// splitting; empty, text, truncated, undecodable, oversized and unreadable
// files, a folder and a broken link named like images are skipped with their
// reason, listed in skipped.csv, and absent from the split and the layout.
func TestPrepareVerifiesEveryImage(t *testing.T) {
	legend, images := badSource(t)
	refuseOpening(t, "locked.png")
	out := filepath.Join(t.TempDir(), "data")
	cfg := PrepareConfig{LegendFile: legend, ImagesDir: images, OutDir: out, Split: DefaultSplitConfig(3), Verify: true}
	var calls, last int
	cfg.Progress = func(done, total int) {
		calls++
		if total != 14 || done != calls {
			t.Errorf("progress %d/%d at call %d", done, total, calls)
		}
		last = done
	}
	rep, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 14 || last != 14 {
		t.Errorf("progress called %d times, last %d; want 14, 14", calls, last)
	}
	img := func(n string) string { return filepath.Join(images, n) }
	want := []Skip{
		{Path: img("folder.jpg"), Line: 16, Kind: SkipUnreadable, Reason: "is a folder, not an image file"},
		{Path: img("dangling.jpg"), Line: 17, Kind: SkipUnreadable, Reason: "is a symbolic link to " + filepath.Join(filepath.Dir(images), "gone.jpg") + ", which cannot be opened (no such file or directory)"},
		{Path: img("empty.jpg"), Kind: SkipEmpty, Reason: "empty file"},
		{Path: img("text.jpg"), Kind: SkipFormat, Reason: "not a JPEG, PNG, GIF, WebP, BMP or TIFF image (starts with 68 65 6c 6c 6f 2c 20 6e)"},
		{Path: img("truncated.png"), Kind: SkipCorrupt, Reason: "png: invalid format: not enough pixel data"},
		{Path: img("garbage.jpg"), Kind: SkipCorrupt, Reason: "jpeg header: unexpected EOF"},
		{Path: img("huge.png"), Kind: SkipTooLarge, Reason: "png of 20000x20000 pixels, over the limits (side 16384, 40000000 pixels)"},
		{Path: img("locked.png"), Kind: SkipUnreadable, Reason: "open " + img("locked.png") + ": permission denied"},
	}
	if !reflect.DeepEqual(rep.Dataset.Skipped, want) {
		t.Errorf("skipped\n%v\nwant\n%v", rep.Dataset.Skipped, want)
	}
	if rep.Verified != 14 || rep.Dataset.Len() != 8 {
		t.Errorf("verified %d, usable %d; want 14, 8", rep.Verified, rep.Dataset.Len())
	}
	total := len(rep.Split.Train) + len(rep.Split.Valid) + len(rep.Split.Test)
	if total != 8 {
		t.Errorf("split holds %d images, want 8", total)
	}
	if !strings.Contains(FormatSplitTable(rep.Split), "total") || !strings.HasSuffix(strings.TrimSpace(FormatSplitTable(rep.Split)), " 8") {
		t.Errorf("split table does not total 8:\n%s", FormatSplitTable(rep.Split))
	}
	files := layoutFiles(t, out)
	var images8 []string
	for _, f := range files {
		if f != SkipListName {
			images8 = append(images8, filepath.Base(f))
		}
	}
	sort.Strings(images8)
	wantImages := []string{"P0_0000.png", "P1_0001.png", "P2_0002.png", "P3_0003.png", "P4_0004.png", "P5_0005.png", "P6_0006.png", "P7_0007.png"}
	if !reflect.DeepEqual(images8, wantImages) {
		t.Errorf("layout holds %v, want %v", images8, wantImages)
	}
	recs := readCSV(t, filepath.Join(out, SkipListName))
	if len(recs) != 9 || !reflect.DeepEqual(recs[0], SkipListHeader) {
		t.Fatalf("skipped.csv has %d records (header %v), want 9", len(recs), recs[0])
	}
	for i, s := range want {
		line := ""
		if s.Line > 0 {
			line = fmt.Sprint(s.Line)
		}
		if got := recs[i+1]; !reflect.DeepEqual(got, []string{s.Path, line, string(s.Kind), s.Reason}) {
			t.Errorf("skipped.csv row %d: %q", i+1, got)
		}
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"verified 14 images in ",
		"): 8 decode, 6 do not\n",
		"skipped: 8 (corrupt 2, empty 1, format 1, too-large 1, unreadable 3)\n",
		"  unreadable (3):\n    " + img("folder.jpg") + " (line 16): is a folder, not an image file\n",
		"  every skipped file with its reason: " + filepath.Join(out, SkipListName) + "\n",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, b.String())
		}
	}
}

// TestPrepareWithoutVerifySkipsUnreadable: with verification off, a source
// that cannot be read while the layout is written is skipped (and listed),
// not an abort, and it leaves the split table.
func TestPrepareWithoutVerifySkipsUnreadable(t *testing.T) {
	legend, images := badSource(t)
	refuseOpening(t, "locked.png")
	out := filepath.Join(t.TempDir(), "data")
	rep, err := Prepare(context.Background(), PrepareConfig{LegendFile: legend, ImagesDir: images, OutDir: out,
		Split: SplitConfig{Scheme: SplitRandom, Seed: 1}, Link: LinkCopy})
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Dataset.Skipped[len(rep.Dataset.Skipped)-1]
	want := Skip{Path: filepath.Join(images, "locked.png"), Kind: SkipUnreadable, Reason: "open " + filepath.Join(images, "locked.png") + ": permission denied"}
	if last != want {
		t.Errorf("last skip %v, want %v", last, want)
	}
	// The 8 good images and the 5 bad files that are regular files are placed;
	// locked.png is not, and is in neither the table nor the layout.
	if n := len(rep.Split.Train) + len(rep.Split.Valid) + len(rep.Split.Test); n != 13 {
		t.Errorf("split holds %d images, want 13", n)
	}
	if rep.Layout.Copied != 13 || len(rep.Layout.Skipped) != 1 {
		t.Errorf("layout %v, skipped %v", rep.Layout, rep.Layout.Skipped)
	}
	if got := len(layoutFiles(t, out)); got != 14 {
		t.Errorf("layout holds %d files, want 13 images and skipped.csv", got)
	}
}

// TestPrepareReplacesLayoutOnlyWhenComplete: the layout is built next to
// the output folder and put in place at the end; an interrupted run leaves
// the earlier layout as it was and no temporary folder; what a killed run
// left behind is cleaned up (or restored) by the next one; a folder that is
// no layout is refused.
func TestPrepareReplacesLayoutOnlyWhenComplete(t *testing.T) {
	legend, images := badSource(t)
	parent := t.TempDir()
	out := filepath.Join(parent, "data")
	cfg := PrepareConfig{LegendFile: legend, ImagesDir: images, OutDir: out, Split: SplitConfig{Scheme: SplitRandom, Seed: 1, ValidFraction: 0.25}, Verify: true, Link: LinkCopy}
	if _, err := Prepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	first := layoutFiles(t, out)
	if len(first) != 10 { // locked.png decodes here: 9 images and skipped.csv
		t.Fatalf("first layout %v", first)
	}
	notes := filepath.Join(out, "README.txt")
	if err := os.WriteFile(notes, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	first = append(first, "README.txt")
	sort.Strings(first)

	// A run stopped while copying (Ctrl-C) leaves the earlier layout intact.
	ctx, cancel := context.WithCancel(context.Background())
	orig := openFile
	var opens atomic.Int64 // verification opens from several goroutines
	openFile = func(name string) (*os.File, error) {
		if strings.HasPrefix(name, images) {
			if opens.Add(1) == 14+3 { // after verifying 14 files, during the copies
				cancel()
			}
		}
		return orig(name)
	}
	cfg.Split.Seed = 7
	_, err := Prepare(ctx, cfg)
	openFile = orig
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "("+out+" is unchanged)") {
		t.Fatalf("interrupted run: %v", err)
	}
	if got := layoutFiles(t, out); !reflect.DeepEqual(got, first) {
		t.Errorf("after an interrupted run the layout is %v, want %v", got, first)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("the interrupted run left %v", entries)
	}

	// A killed run's temporary folder is removed, not mistaken for a layout.
	stale := filepath.Join(parent, ".data.tmp-123")
	writeTree(t, stale, map[string]string{"train/happiness/P0_0000.png": "half"})
	rep, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"removed " + stale + ", left by an interrupted run"}; !reflect.DeepEqual(rep.Layout.Interrupted, want) {
		t.Errorf("interrupted %q, want %q", rep.Layout.Interrupted, want)
	}
	// Seed 7 moves 4 of the 9 images to another part: those are copied anew
	// and their old copies removed; the other 5 are reused.
	if rep.Layout.Unchanged != 5 || rep.Layout.Copied != 4 || rep.Layout.Linked != 0 || len(rep.Layout.Removed) != 4 {
		t.Errorf("re-run: %v, want 5 unchanged, 4 copied, 4 stale removed", rep.Layout)
	}
	if got := layoutFiles(t, out); len(got) != len(first) {
		t.Errorf("re-run layout %v, want %d files", got, len(first))
	}
	if b, err := os.ReadFile(notes); err != nil || string(b) != "mine" {
		t.Errorf("a file of the user's in the layout was not kept: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("the run left %v next to the layout", entries)
	}

	// A layout moved aside by a run killed before the new one was in place
	// is restored, then replaced.
	old := filepath.Join(parent, ".data.old-5")
	if err := os.Rename(out, old); err != nil {
		t.Fatal(err)
	}
	rep, err = Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"restored the earlier layout " + out + " from " + old + ", which an interrupted run had moved aside"}; !reflect.DeepEqual(rep.Layout.Interrupted, want) {
		t.Errorf("interrupted %q, want %q", rep.Layout.Interrupted, want)
	}
	if rep.Layout.Unchanged != 9 {
		t.Errorf("after the restore: %v", rep.Layout)
	}

	// A folder with other content is refused, and left alone.
	other := filepath.Join(parent, "home")
	writeTree(t, other, map[string]string{"photo.jpg": "x"})
	cfg.OutDir = other
	_, err = Prepare(context.Background(), cfg)
	want := "layout: " + other + " is not empty and holds no train, valid or test folder: give a new or empty folder, or one that fer prepare wrote"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if got := layoutFiles(t, other); !reflect.DeepEqual(got, []string{"photo.jpg"}) {
		t.Errorf("the refused folder now holds %v", got)
	}
}

// TestPrepareBoundsLargeBadInput: a legend of 100,000 unusable rows prints a
// bounded report (counts per reason, a few examples each) and skipped.csv
// holds every row.
func TestPrepareBoundsLargeBadInput(t *testing.T) {
	legend, images := badSource(t)
	f, err := os.OpenFile(legend, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 6000)
	var b strings.Builder
	for i := 0; i < 100_000; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "u,junk%d.jpg,bored%d%s\n", i, i, long[:i%7*1000])
		case 1:
			fmt.Fprintf(&b, "u,junk%d.jpg,\n", i)
		case 2:
			fmt.Fprintf(&b, "u,absent%d.jpg,fear\n", i)
		case 3:
			fmt.Fprintf(&b, "u,../escape%d.jpg,fear\n", i)
		}
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "data")
	rep, err := Prepare(context.Background(), PrepareConfig{LegendFile: legend, ImagesDir: images, OutDir: out, Split: SplitConfig{Scheme: SplitRandom, Seed: 1}, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	if err := rep.Write(&report); err != nil {
		t.Fatal(err)
	}
	if report.Len() > 12_000 {
		t.Errorf("report is %d bytes, want at most 12000", report.Len())
	}
	for _, s := range []string{
		"legend " + legend + ": 100016 rows, 75016 distinct images, 14 labelled images found\n",
		"  100002 rows unusable: 75000 rejected (bad name or label), 25000 without an image, 2 naming no readable file (listed under skipped)\n",
		"verified 14 images in ",
		"): 9 decode, 5 do not\n",
		"skipped: 100007 (corrupt 2, empty 1, empty-label 25000, format 1, missing 25000, too-large 1, unknown-label 25000, unreadable 2, unsafe-name 25000)\n",
		"    junk4.jpg (line 22): label \"bored4xxxxxxxxx",
		"  unknown-label (25000):\n",
		"    ... and 24995 more\n",
		"labels as written: ",
		"(empty) 25000, ", "fear 50000, ", "... (24980 more distinct labels)\n",
	} {
		if !strings.Contains(report.String(), s) {
			t.Errorf("report lacks %q", s)
		}
	}
	recs := readCSV(t, filepath.Join(out, SkipListName))
	if len(recs) != 100_007+1 {
		t.Fatalf("skipped.csv has %d records, want 100008", len(recs))
	}
	lines := map[string]bool{}
	for _, r := range recs[1:] {
		lines[r[1]] = true
	}
	for line := 18; line < 18+100_000; line++ {
		if !lines[fmt.Sprint(line)] {
			t.Fatalf("skipped.csv lacks legend line %d", line)
		}
	}
}
