package data

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fertorch/fertorch/internal/atomicfile"
)

// LinkMode is how WriteLayout puts a file in place.
type LinkMode int

const (
	// LinkAuto makes a hard link and falls back to a copy when the file
	// system refuses (another device, no link support).
	LinkAuto LinkMode = iota
	// LinkCopy always copies.
	LinkCopy
	// LinkHard only links, and fails when it cannot.
	LinkHard
)

// LayoutReport says what WriteLayout did.
type LayoutReport struct {
	// Root is the layout folder (holding train, valid and test).
	Root string
	// Linked and Copied count files put in place in this run; Unchanged
	// ones were already there with the same content.
	Linked, Copied, Unchanged int
	// Removed lists image files of an earlier run that are no longer part of
	// the split (so that no picture stays in two splits).
	Removed []string
	// Warnings are things left alone that a reader should know about.
	Warnings []string
}

// String summarizes the report in one line.
func (r *LayoutReport) String() string {
	return fmt.Sprintf("layout %s: %d linked, %d copied, %d unchanged, %d stale removed", r.Root, r.Linked, r.Copied, r.Unchanged, len(r.Removed))
}

// WriteLayout writes the Keras directory layout root/{train,valid,test}/
// <class>/<name> for a split, creating every class folder in every part (so
// that each part reads back with the same class indices). Files are hard
// links where possible and copies otherwise. Running it again is safe:
// files already in place are left alone, changed ones are replaced, and
// image files from an earlier, different split are removed.
func WriteLayout(root string, s *Split, mode LinkMode) (*LayoutReport, error) {
	rep := &LayoutReport{Root: root}
	for _, c := range s.Classes {
		if _, err := CheckImageName(c); err != nil || strings.Contains(c, "/") {
			return nil, fmt.Errorf("layout: class name %q cannot be a folder name", c)
		}
	}
	expected := map[string]bool{}
	for _, part := range s.Parts() {
		for _, c := range s.Classes {
			dir := filepath.Join(root, part.Name, c)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("layout: %w", err)
			}
		}
		for _, smp := range part.Samples {
			if smp.Label < 0 || smp.Label >= len(s.Classes) {
				return nil, fmt.Errorf("layout: %s: label %d out of range", smp.Path, smp.Label)
			}
			name, err := CheckImageName(smp.Name)
			if err != nil {
				return nil, fmt.Errorf("layout: %s: %w", smp.Path, err)
			}
			rel := path.Join(part.Name, s.Classes[smp.Label], name)
			if expected[rel] {
				return nil, fmt.Errorf("layout: two samples would both be written to %s", rel)
			}
			expected[rel] = true
			dst := filepath.Join(root, filepath.FromSlash(rel))
			how, err := placeFile(smp.Path, dst, mode)
			if err != nil {
				return nil, fmt.Errorf("layout: %w", err)
			}
			switch how {
			case "linked":
				rep.Linked++
			case "copied":
				rep.Copied++
			default:
				rep.Unchanged++
			}
		}
	}
	if err := removeStale(root, s, expected, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// placeFile makes dst hold src's content and reports "linked", "copied" or
// "unchanged".
func placeFile(src, dst string, mode LinkMode) (string, error) {
	si, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	if !si.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", src)
	}
	if di, err := os.Lstat(dst); err == nil {
		if di.Mode().IsRegular() && (os.SameFile(si, di) || (di.Size() == si.Size() && sameContent(src, dst))) {
			return "unchanged", nil
		}
		if di.IsDir() {
			return "", fmt.Errorf("%s is a folder", dst)
		}
		if err := os.Remove(dst); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if mode != LinkCopy {
		err := os.Link(src, dst)
		if err == nil {
			return "linked", nil
		}
		if mode == LinkHard {
			return "", err
		}
	}
	return "copied", copyFile(src, dst, si.Mode().Perm())
}

func sameContent(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba := make([]byte, 64<<10)
	bb := make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteMode(dst, perm|0o200, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
		return nil
	})
}

// removeStale deletes image files under root/{train,valid,test}/<class>/
// that the split does not place, and empty folders of classes that are gone.
func removeStale(root string, s *Split, expected map[string]bool, rep *LayoutReport) error {
	classes := map[string]bool{}
	for _, c := range s.Classes {
		classes[c] = true
	}
	exts := append(KerasExtensions(), "webp", "gif")
	for _, part := range []string{"train", "valid", "test"} {
		partDir := filepath.Join(root, part)
		entries, err := os.ReadDir(partDir)
		if err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			classDir := filepath.Join(partDir, e.Name())
			var dirs []string
			err := filepath.WalkDir(classDir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					dirs = append(dirs, p)
					return nil
				}
				rel, err := filepath.Rel(root, p)
				if err != nil {
					return err
				}
				rel = filepath.ToSlash(rel)
				if expected[rel] {
					return nil
				}
				if !hasExt(d.Name(), exts) && !strings.HasPrefix(d.Name(), ".tmp-") {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is not part of the split; left in place", p))
					return nil
				}
				if err := os.Remove(p); err != nil {
					return err
				}
				rep.Removed = append(rep.Removed, p)
				return nil
			})
			if err != nil {
				return fmt.Errorf("layout: cleaning %s: %w", classDir, err)
			}
			// Remove now-empty sub-folders, deepest first; a class folder only
			// when the class is gone.
			sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
			for _, dir := range dirs {
				if dir == classDir && classes[e.Name()] {
					continue
				}
				if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
					if dir == classDir {
						rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is not a class of this split but is not empty; readers will see it as a class", dir))
					}
				}
			}
		}
	}
	return nil
}
