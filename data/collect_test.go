package data

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestCollectImages: files are taken as given, folders searched in name
// order without hidden entries; a missing path and a folder that cannot be
// read are skips with their reason, and the rest is still collected.
func TestCollectImages(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"one.jpg":            "a",
		"album/b.png":        "b",
		"album/a.png":        "a",
		"album/.hidden.png":  "h",
		"album/.cache/c.png": "c",
		"album/sub/d.txt":    "d",
		"album/locked/e.png": "e",
	})
	locked := filepath.Join(dir, "album", "locked")
	readDir := func(name string) ([]os.DirEntry, error) {
		if name == locked {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.ReadDir(name)
	}
	missing := filepath.Join(dir, "nope.jpg")
	samples, skips := collectImages([]string{filepath.Join(dir, "one.jpg"), filepath.Join(dir, "album"), missing}, readDir)
	var got []string
	for _, s := range samples {
		rel, _ := filepath.Rel(dir, s.Path)
		got = append(got, filepath.ToSlash(rel))
	}
	if want := []string{"one.jpg", "album/a.png", "album/b.png", "album/sub/d.txt"}; !reflect.DeepEqual(got, want) {
		t.Errorf("collected %v, want %v", got, want)
	}
	want := []Skip{
		{Path: locked, Kind: SkipUnreadable, Reason: "folder cannot be read: permission denied"},
		{Path: missing, Kind: SkipMissing, Reason: "no such file or folder"},
	}
	if !reflect.DeepEqual(skips, want) {
		t.Errorf("skips %v, want %v", skips, want)
	}
}

func TestIsURL(t *testing.T) {
	for arg, want := range map[string]bool{
		"http://example.com/a.jpg": true,
		"HTTPS://example.com/a":    true,
		" https://x":               true,
		"http.jpg":                 false,
		"images/http://x":          false,
		"ftp://x/a.jpg":            false,
	} {
		if got := IsURL(arg); got != want {
			t.Errorf("IsURL(%q) = %v, want %v", arg, got, want)
		}
	}
}
