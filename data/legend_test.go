package data

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestReadLegendFormats(t *testing.T) {
	in := "\xEF\xBB\xBFuser.id,image,emotion\r\n" +
		"628,a.jpg,anger\r\n" +
		"\r\n" +
		"302,\"b, with comma.jpg\",HAPPINESS\r\n" +
		"302,\"c \"\"quoted\"\".jpg\",\" Neutral \"\r\n" +
		"jhamski,d.jpg,sadness" // no final newline
	lg, err := ReadLegend(strings.NewReader(in), "legend.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []LegendRow{
		{Line: 2, Image: "a.jpg", Label: "anger", RawLabel: "anger"},
		{Line: 4, Image: "b, with comma.jpg", Label: "happiness", RawLabel: "HAPPINESS"},
		{Line: 5, Image: `c "quoted".jpg`, Label: "neutral", RawLabel: " Neutral "},
		{Line: 6, Image: "d.jpg", Label: "sadness", RawLabel: "sadness"},
	}
	if !reflect.DeepEqual(lg.Rows, want) {
		t.Fatalf("rows\n got %+v\nwant %+v", lg.Rows, want)
	}
}

func TestReadLegendColumnOrderAndExtraHeaderColumns(t *testing.T) {
	in := "emotion,notes,Image\nfear,x,f.jpg\n"
	lg, err := ReadLegend(strings.NewReader(in), "l.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(lg.Rows) != 1 || lg.Rows[0].Image != "f.jpg" || lg.Rows[0].Label != "fear" {
		t.Fatalf("rows = %+v", lg.Rows)
	}
}

func TestReadLegendErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"extra column", "user.id,image,emotion\n1,a.jpg,anger\n2,b.jpg,fear,oops\n", "legend.csv:3: extra columns: 4 fields, the header has 3 (user.id,image,emotion)"},
		{"missing column", "user.id,image,emotion\n1,a.jpg,anger\n\n2,b.jpg\n", "legend.csv:4: missing columns: 2 fields, the header has 3 (user.id,image,emotion)"},
		{"no header", "1,a.jpg,anger\n", `legend.csv:1: header must name the columns image and emotion, got ["1" "a.jpg" "anger"]`},
		{"empty", "", "legend.csv: empty file, want a header with the columns image and emotion"},
		{"bad quote", "user.id,image,emotion\n1,\"a.jpg,anger\n", "legend.csv:2: column"},
		{"stray quote", "user.id,image,emotion\n1,a\"b.jpg,anger\n", `legend.csv:2: column 4: bare " in non-quoted-field`},
		{"utf16", "\xFF\xFEu\x00s\x00", "legend.csv: UTF-16 text is not supported; save the legend as UTF-8"},
		{"binary", "\x00\x01\x02", "legend.csv: not a text file (NUL byte at the start)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadLegend(strings.NewReader(tc.in), "legend.csv")
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestCheckImageName(t *testing.T) {
	ok := map[string]string{
		"a.jpg":         "a.jpg",
		"sub/b.jpg":     "sub/b.jpg",
		"./c.jpg":       "c.jpg",
		"x/../d.jpg":    "",
		"name with.jpg": "name with.jpg",
	}
	for in, want := range ok {
		got, err := CheckImageName(in)
		if want == "" {
			if err == nil {
				t.Errorf("CheckImageName(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("CheckImageName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":               "empty image name",
		"../etc/passwd":  `image name "../etc/passwd" leaves the images folder`,
		"a/../../b.jpg":  `image name "a/../../b.jpg" leaves the images folder`,
		"/etc/passwd":    `image name "/etc/passwd" is an absolute path`,
		`C:\x.jpg`:       `image name "C:\\x.jpg" contains a backslash`,
		"C:x.jpg":        `image name "C:x.jpg" is an absolute path`,
		`..\evil.jpg`:    `image name "..\\evil.jpg" contains a backslash`,
		"a\x00b.jpg":     "image name contains a NUL byte",
		"..":             `image name ".." leaves the images folder`,
		".":              `image name "." leaves the images folder`,
		"sub/./../../up": `image name "sub/./../../up" leaves the images folder`,
	}
	for in, want := range bad {
		_, err := CheckImageName(in)
		if err == nil || err.Error() != want {
			t.Errorf("CheckImageName(%q) error %v, want %q", in, err, want)
		}
	}
}

// writeTree creates files (content as given) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenLegendMessyRows(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"data/legend.csv": "user.id,image,emotion\n" +
			"1,Tiger_Woods_0001.jpg,happiness\n" + // 2
			"1,Tiger_Woods_0001.jpg,HAPPINESS\n" + // 3 duplicate, same label after case-folding
			"1,Tiger_Woods_0002.jpg,anger\n" + // 4 conflicting
			"1,Tiger_Woods_0002.jpg,fear\n" + // 5 conflicting
			"2,missing.jpg,neutral\n" + // 6 no file
			"2,../secret.jpg,neutral\n" + // 7 unsafe
			"2,/etc/passwd,neutral\n" + // 8 unsafe
			"3,HrithikRoshan_12.jpg,bored\n" + // 9 unknown label
			"3,HrithikRoshan_13.jpg,\n" + // 10 empty label
			"3,sub/Case.jpg,Surprise\n" + // 11 ok, in a sub-folder
			"3,other.JPG,sadness\n", // 12 file differs in case
		"images/Tiger_Woods_0001.jpg": "x",
		"images/Tiger_Woods_0002.jpg": "x",
		"images/HrithikRoshan_12.jpg": "x",
		"images/HrithikRoshan_13.jpg": "x",
		"images/sub/Case.jpg":         "x",
		"images/other.jpg":            "x",
		"images/unlisted.png":         "x",
		"images/.DS_Store":            "x",
	})
	d, err := OpenLegend(filepath.Join(root, "data/legend.csv"), filepath.Join(root, "images"), LegendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep := d.Legend
	if rep.Rows != 11 || rep.UniqueImages != 7 || rep.Labelled != 2 {
		t.Fatalf("rows %d unique %d labelled %d, want 11 7 2", rep.Rows, rep.UniqueImages, rep.Labelled)
	}
	if want := []DuplicateRow{{Image: "Tiger_Woods_0001.jpg", Line: 3, FirstLine: 2}}; !reflect.DeepEqual(rep.Duplicates, want) {
		t.Errorf("duplicates %+v, want %+v", rep.Duplicates, want)
	}
	if want := []Conflict{{Image: "Tiger_Woods_0002.jpg", Labels: []string{"anger", "fear"}, Lines: []int{4, 5}}}; !reflect.DeepEqual(rep.Conflicts, want) {
		t.Errorf("conflicts %+v, want %+v", rep.Conflicts, want)
	}
	if want := []string{"other.jpg", "unlisted.png"}; !reflect.DeepEqual(rep.Unlisted, want) {
		t.Errorf("unlisted %v, want %v", rep.Unlisted, want)
	}
	if rep.RawLabels["HAPPINESS"] != 1 || rep.RawLabels["happiness"] != 1 {
		t.Errorf("raw labels %v", rep.RawLabels)
	}
	var got []string
	for _, s := range d.Skipped {
		got = append(got, s.String())
	}
	imgs := filepath.Join(root, "images")
	want := []string{
		imgs + "/Tiger_Woods_0002.jpg (line 4): conflict: listed with different labels anger, fear on lines 4, 5",
		`../secret.jpg (line 7): unsafe-name: image name "../secret.jpg" leaves the images folder`,
		`/etc/passwd (line 8): unsafe-name: image name "/etc/passwd" is an absolute path`,
		`HrithikRoshan_12.jpg (line 9): unknown-label: label "bored" is not one of anger, contempt, disgust, fear, happiness, neutral, sadness, surprise`,
		"HrithikRoshan_13.jpg (line 10): empty-label: the row has no label",
		imgs + "/missing.jpg (line 6): missing: listed in the legend but not in the images folder",
		imgs + "/other.JPG (line 12): missing: listed in the legend but not in the images folder (other.jpg differs only in letter case)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !reflect.DeepEqual(d.Classes, Emotions()) {
		t.Errorf("classes %v", d.Classes)
	}
	wantSamples := []Sample{
		{Path: filepath.Join(imgs, "Tiger_Woods_0001.jpg"), Name: "Tiger_Woods_0001.jpg", Label: 4, Subject: "Tiger_Woods"},
		{Path: filepath.Join(imgs, "sub/Case.jpg"), Name: "sub/Case.jpg", Label: 7, Subject: "Case"},
	}
	if !reflect.DeepEqual(d.Samples, wantSamples) {
		t.Errorf("samples %+v\nwant %+v", d.Samples, wantSamples)
	}

	// AnyLabel keeps "bored" and makes the classes the labels that occur.
	d2, err := OpenLegend(filepath.Join(root, "data/legend.csv"), imgs, LegendOptions{AnyLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bored", "happiness", "surprise"}; !reflect.DeepEqual(d2.Classes, want) {
		t.Errorf("AnyLabel classes %v, want %v", d2.Classes, want)
	}
}

func TestOpenLegendMissingFiles(t *testing.T) {
	root := t.TempDir()
	_, err := OpenLegend(filepath.Join(root, "nope.csv"), root, LegendOptions{})
	if err == nil || !strings.Contains(err.Error(), "nope.csv") {
		t.Fatalf("error %v, want one naming nope.csv", err)
	}
	writeTree(t, root, map[string]string{"l.csv": "image,emotion\na.jpg,fear\n"})
	_, err = OpenLegend(filepath.Join(root, "l.csv"), filepath.Join(root, "imgs"), LegendOptions{})
	if err == nil || !strings.Contains(err.Error(), "images folder") {
		t.Fatalf("error %v, want one about the images folder", err)
	}
}

func TestWriteSkipReport(t *testing.T) {
	var b strings.Builder
	err := WriteSkipReport(&b, []Skip{
		{Path: "a.jpg", Kind: SkipCorrupt, Reason: "jpeg: unexpected EOF"},
		{Path: "b.jpg", Line: 7, Kind: SkipMissing, Reason: "gone"},
		{Path: "c.jpg", Kind: SkipCorrupt, Reason: "bad"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "skipped: 3 (corrupt 2, missing 1)\n  corrupt (2):\n    a.jpg: jpeg: unexpected EOF\n    c.jpg: bad\n  missing (1):\n    b.jpg (line 7): gone\n"
	if b.String() != want {
		t.Fatalf("report\n%q\nwant\n%q", b.String(), want)
	}
}

func TestSubjectOf(t *testing.T) {
	for in, want := range map[string]string{
		"Tiger_Woods_0003.jpg":            "Tiger_Woods",
		"HrithikRoshan_12.jpg":            "HrithikRoshan",
		"Jayamadhuri12.jpg":               "Jayamadhuri",
		"Carrie-Anne_Moss_0004.jpg":       "Carrie-Anne_Moss",
		"facial-expressions_2868588k.jpg": "facial-expressions",
		"sub/dir/Kim_Dae-jung_0007.png":   "Kim_Dae-jung",
		"12345.jpg":                       "12345",
		"noNumber.jpg":                    "noNumber",
		"x.tar.gz":                        "x.tar",
	} {
		if got := SubjectOf(in); got != want {
			t.Errorf("SubjectOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzReadLegend(f *testing.F) {
	f.Add([]byte("user.id,image,emotion\n1,a.jpg,anger\n"))
	f.Add([]byte("\xEF\xBB\xBFuser.id,image,emotion\r\n1,\"a,b.jpg\",HAPPY\r\n"))
	f.Add([]byte("image,emotion\n../x,fear\n/abs,anger\n"))
	f.Add([]byte("emotion,image\n\"unterminated\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lg, err := ReadLegend(strings.NewReader(string(b)), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		prev := 1
		for _, r := range lg.Rows {
			if r.Line <= prev {
				t.Fatalf("row line %d after %d", r.Line, prev)
			}
			prev = r.Line
			if r.Label != strings.ToLower(strings.TrimSpace(r.RawLabel)) {
				t.Fatalf("label %q from %q", r.Label, r.RawLabel)
			}
			if name, err := CheckImageName(r.Image); err == nil {
				if strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." || strings.Contains(name, "/../") {
					t.Fatalf("unsafe name %q accepted as %q", r.Image, name)
				}
			}
		}
		// The dataset builder must not fail or panic on any parsed legend.
		files := map[string]bool{"a.jpg": true}
		d, err := buildLegendDataset(lg, "/imgs", files, nil, LegendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		counts := d.Counts()
		total := 0
		for _, c := range counts {
			total += c
		}
		if total != len(d.Samples) || len(d.Samples) > 1 {
			t.Fatalf("%d samples, counts %v", len(d.Samples), counts)
		}
		names := make([]string, 0, len(d.Samples))
		for _, s := range d.Samples {
			names = append(names, s.Name)
		}
		sort.Strings(names)
	})
}
