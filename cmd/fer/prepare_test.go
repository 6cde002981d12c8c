package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// preparedSource writes a legend and images folder: six PNGs of two
// classes, a zero-byte file, a text file named .jpg, and 3,000 rows with an
// unknown label.
func preparedSource(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	images := filepath.Join(src, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	rows := []string{"user.id,image,emotion"}
	for i := 0; i < 6; i++ {
		m := image.NewGray(image.Rect(0, 0, 9, 7))
		for j := range m.Pix {
			m.Pix[j] = uint8(j*13 + i*7)
		}
		m.Set(0, 0, color.Gray{Y: uint8(i)})
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("P%d_0001.png", i)
		if err := os.WriteFile(filepath.Join(images, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, fmt.Sprintf("u,%s,%s", name, []string{"happiness", "neutral"}[i%2]))
	}
	for name, content := range map[string]string{"empty.jpg": "", "notes.jpg": "not a picture"} {
		if err := os.WriteFile(filepath.Join(images, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, "u,"+name+",fear")
	}
	for i := 0; i < 3000; i++ {
		rows = append(rows, fmt.Sprintf("u,x%d.jpg,bored", i))
	}
	if err := os.MkdirAll(filepath.Join(src, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "data", "legend.csv"), []byte(strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestPrepareCommand: fer prepare verifies images by default, keeps the
// undecodable ones out of the table and the layout, prints a bounded
// summary and writes every skip to skipped.csv; --verify=false places
// what it is given; a bad --progress exits 2.
func TestPrepareCommand(t *testing.T) {
	src := preparedSource(t)
	out := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"prepare", "--source", src, "-o", out, "--split", "seed", "--valid", "0", "--test", "0"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	got := stdout.String()
	for _, want := range []string{
		"verified 8 images in ",
		"): 6 decode, 2 do not\n",
		"total           6       0       0       6\n",
		"skipped: 3002 (empty 1, format 1, unknown-label 3000)\n",
		"    ... and 2995 more\n",
		"  every skipped file with its reason: " + filepath.Join(out, "skipped.csv") + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if stdout.Len() > 4000 {
		t.Errorf("output is %d bytes for 3,002 skips, want at most 4000", stdout.Len())
	}
	list, err := os.ReadFile(filepath.Join(out, "skipped.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(list), "\n"); n != 3003 {
		t.Errorf("skipped.csv has %d lines, want 3003", n)
	}
	placed, _ := filepath.Glob(filepath.Join(out, "train", "*", "*"))
	if len(placed) != 6 {
		t.Errorf("layout holds %d files, want 6: %v", len(placed), placed)
	}

	stdout.Reset()
	if code := run([]string{"prepare", "--source", src, "-o", out, "--split", "seed", "--valid", "0", "--test", "0", "--verify=false"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--verify=false: exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "verified") || !strings.Contains(stdout.String(), "total           8       0       0       8\n") {
		t.Errorf("--verify=false output:\n%s", stdout.String())
	}

	stderr.Reset()
	if code := run([]string{"prepare", "--source", src, "-o", out, "--progress", "sometimes"}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `--progress must be auto, on or off, not "sometimes"`) {
		t.Errorf("bad --progress: exit %d, %q", code, stderr.String())
	}
}
