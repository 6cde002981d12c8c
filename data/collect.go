package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CollectImages lists the files that paths name, for prediction: a file is
// taken as it is (its content decides later whether it is an image); a
// folder is searched recursively in name order, skipping hidden entries
// and not following links to folders. A path that does not exist and a
// folder that cannot be read are returned as skips, with the reason, and do
// not stop the others.
func CollectImages(paths []string) ([]Sample, []Skip) {
	return collectImages(paths, os.ReadDir)
}

// collectImages is CollectImages listing folders with readDir (tests
// simulate folders that cannot be read: root reads folders of any mode).
func collectImages(paths []string, readDir func(string) ([]os.DirEntry, error)) ([]Sample, []Skip) {
	var samples []Sample
	var skips []Skip
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := readDir(dir)
		if err != nil {
			skips = append(skips, Skip{Path: dir, Kind: SkipUnreadable, Reason: fmt.Sprintf("folder cannot be read: %v", unwrapPathError(err))})
			return
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if e.IsDir() {
				walk(p)
				continue
			}
			samples = append(samples, Sample{Path: p, Name: p})
		}
	}
	for _, root := range paths {
		st, err := os.Stat(root)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			skips = append(skips, Skip{Path: root, Kind: SkipMissing, Reason: "no such file or folder"})
		case err != nil:
			skips = append(skips, Skip{Path: root, Kind: SkipUnreadable, Reason: unwrapPathError(err).Error()})
		case st.IsDir():
			walk(root)
		default:
			samples = append(samples, Sample{Path: root, Name: root})
		}
	}
	return samples, skips
}

// IsURL reports whether arg is an http or https address rather than a
// path; fertorch reads local files only.
func IsURL(arg string) bool {
	l := strings.ToLower(strings.TrimSpace(arg))
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}
