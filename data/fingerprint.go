package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
)

// ClassPrint identifies one class of a dataset: how many files it has,
// their total size, and a digest over their names and sizes.
type ClassPrint struct {
	Class  string `json:"class"`
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	Digest string `json:"digest"`
}

// Fingerprint identifies the images of a dataset (one split of a prepared
// layout) without their pixels: a run records it, and a resumed run refuses
// data whose fingerprint differs. Moving or copying the folder keeps it;
// adding, removing, renaming or rewriting a file changes it.
type Fingerprint []ClassPrint

// FingerprintOf reads the size of every sample's file and returns the
// dataset's fingerprint, one entry per class in class order.
func FingerprintOf(d *Dataset) (Fingerprint, error) {
	type file struct {
		name string
		size int64
	}
	perClass := make([][]file, len(d.Classes))
	for _, s := range d.Samples {
		st, err := os.Stat(s.Path)
		if err != nil {
			return nil, fmt.Errorf("fingerprint: %w", err)
		}
		if s.Label < 0 || s.Label >= len(d.Classes) {
			return nil, fmt.Errorf("fingerprint: %s has label %d of %d classes", s.Path, s.Label, len(d.Classes))
		}
		perClass[s.Label] = append(perClass[s.Label], file{s.Name, st.Size()})
	}
	fp := make(Fingerprint, len(d.Classes))
	var n [8]byte
	for c, files := range perClass {
		sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
		h := sha256.New()
		cp := ClassPrint{Class: d.Classes[c], Files: len(files)}
		for _, f := range files {
			binary.LittleEndian.PutUint64(n[:], uint64(len(f.name)))
			h.Write(n[:])
			h.Write([]byte(f.name))
			binary.LittleEndian.PutUint64(n[:], uint64(f.size))
			h.Write(n[:])
			cp.Bytes += f.size
		}
		cp.Digest = hex.EncodeToString(h.Sum(nil))[:16]
		fp[c] = cp
	}
	return fp, nil
}

// Files is the total number of files.
func (f Fingerprint) Files() int {
	n := 0
	for _, c := range f {
		n += c.Files
	}
	return n
}

// Diff describes how got differs from f (the recorded fingerprint), one
// phrase per class that changed; nil when they are the same.
func (f Fingerprint) Diff(got Fingerprint) []string {
	was := map[string]ClassPrint{}
	for _, c := range f {
		was[c.Class] = c
	}
	now := map[string]ClassPrint{}
	for _, c := range got {
		now[c.Class] = c
	}
	var diffs []string
	for _, c := range f {
		g, ok := now[c.Class]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("class %s (%d images) is gone", c.Class, c.Files))
		case g.Files != c.Files:
			verb := "grew"
			if g.Files < c.Files {
				verb = "shrank"
			}
			diffs = append(diffs, fmt.Sprintf("%s %s from %d to %d images", c.Class, verb, c.Files, g.Files))
		case g.Digest != c.Digest || g.Bytes != c.Bytes:
			diffs = append(diffs, fmt.Sprintf("%s has %d images as before, but other names or sizes (%d bytes, was %d)", c.Class, g.Files, g.Bytes, c.Bytes))
		}
	}
	for _, g := range got {
		if _, ok := was[g.Class]; !ok {
			diffs = append(diffs, fmt.Sprintf("class %s (%d images) is new", g.Class, g.Files))
		}
	}
	return diffs
}

// String is a one-line summary: classes, files and bytes.
func (f Fingerprint) String() string {
	var bytes int64
	names := make([]string, len(f))
	for i, c := range f {
		bytes += c.Bytes
		names[i] = c.Class
	}
	return fmt.Sprintf("%d images in %d classes (%s), %d bytes", f.Files(), len(f), strings.Join(names, ", "), bytes)
}
