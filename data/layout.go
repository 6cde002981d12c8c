package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
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
	// Skipped are samples whose source file could not be placed (it vanished
	// or cannot be read); they are not in the layout.
	Skipped []Skip
	// Interrupted lists what an earlier, interrupted run left next to Root
	// and this run cleaned up or restored.
	Interrupted []string
	// Warnings are things left alone that a reader should know about.
	Warnings []string
}

// String summarizes the report in one line.
func (r *LayoutReport) String() string {
	return fmt.Sprintf("layout %s: %d linked, %d copied, %d unchanged, %d stale removed", r.Root, r.Linked, r.Copied, r.Unchanged, len(r.Removed))
}

// The temporary folders a layout is built in, next to it: ".<name>.tmp-*"
// while it is written, ".<name>.old-*" for an earlier layout being replaced
// where the folders cannot be exchanged in one step.
func layoutTempPrefix(base string) string { return "." + base + ".tmp-" }
func layoutOldPrefix(base string) string  { return "." + base + ".old-" }

// layoutParts are the folders of a layout.
var layoutParts = []string{"train", "valid", "test"}

// WriteLayout writes the Keras directory layout root/{train,valid,test}/
// <class>/<name> for a split, creating every class folder in every part (so
// that each part reads back with the same class indices). Files are hard
// links where possible and copies otherwise.
//
// The layout is built in a temporary folder next to root and put in place
// at the end in one step, so an interrupted run never leaves a layout that
// looks complete: root holds the earlier layout (or nothing) until the new
// one is whole. A temporary folder left by an interrupted run is removed
// first. Running it again is safe: files whose content did not change are
// reused (reported as unchanged), image files of an earlier, different split
// are dropped (so no picture stays in two splits), and other files in the
// earlier layout are kept. A folder that is neither empty nor a layout is
// refused rather than replaced.
func WriteLayout(root string, s *Split, mode LinkMode) (*LayoutReport, error) {
	return writeLayout(context.Background(), root, s, mode, nil)
}

// layoutFinish adds files to a layout being built in dir before it is put
// in place; the carried-over files of an earlier layout with these names
// (top-level) are replaced.
type layoutFinish struct {
	names []string
	write func(dir string, rep *LayoutReport) error
}

// writeLayout is WriteLayout with finish (may be nil); a cancelled context
// stops it with the earlier layout untouched.
func writeLayout(ctx context.Context, root string, s *Split, mode LinkMode, finish *layoutFinish) (*LayoutReport, error) {
	root = filepath.Clean(root)
	rep := &LayoutReport{Root: root}
	for _, c := range s.Classes {
		if _, err := CheckImageName(c); err != nil || strings.Contains(c, "/") {
			return nil, fmt.Errorf("layout: class name %q cannot be a folder name", c)
		}
	}
	parent, base := filepath.Dir(root), filepath.Base(root)
	if base == "." || base == ".." || base == string(filepath.Separator) {
		return nil, fmt.Errorf("layout: the output folder %q must be named (it is replaced as a whole when complete)", root)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	if err := cleanInterrupted(parent, base, rep); err != nil {
		return nil, err
	}
	hasOld, err := checkLayoutRoot(root)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, layoutTempPrefix(base)+"*")
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	placed := false
	defer func() {
		if !placed {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	expected := map[string]bool{}
	for _, part := range s.Parts() {
		for _, c := range s.Classes {
			if err := os.MkdirAll(filepath.Join(tmp, part.Name, c), 0o755); err != nil {
				return nil, fmt.Errorf("layout: %w", err)
			}
		}
		for _, smp := range part.Samples {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("layout: %w (%s is unchanged)", err, root)
			}
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
			prev := ""
			if hasOld {
				prev = filepath.Join(root, filepath.FromSlash(rel))
			}
			how, err := placeFile(smp.Path, filepath.Join(tmp, filepath.FromSlash(rel)), prev, mode)
			var se *sourceError
			if errors.As(err, &se) {
				rep.Skipped = append(rep.Skipped, Skip{Path: smp.Path, Kind: SkipUnreadable, Reason: se.Error()})
				continue
			}
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
	if hasOld {
		var replaced []string
		if finish != nil {
			replaced = finish.names
		}
		if err := carryOver(root, tmp, s, expected, replaced, rep); err != nil {
			return nil, err
		}
	}
	if finish != nil {
		if err := finish.write(tmp, rep); err != nil {
			return nil, fmt.Errorf("layout: %w", err)
		}
	}
	if err := swapIn(tmp, root, hasOld); err != nil {
		return nil, err
	}
	placed = true
	return rep, nil
}

// checkLayoutRoot reports whether root exists as a non-empty folder, and
// refuses one that is not a folder or holds something other than a layout.
func checkLayoutRoot(root string) (bool, error) {
	st, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("layout: %w", err)
	}
	if !st.IsDir() {
		return false, fmt.Errorf("layout: %s exists and is not a folder", root)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return false, fmt.Errorf("layout: %w", err)
	}
	if len(entries) == 0 {
		return false, nil
	}
	for _, e := range entries {
		for _, p := range layoutParts {
			if e.Name() == p && e.IsDir() {
				return true, nil
			}
		}
	}
	return false, fmt.Errorf("layout: %s is not empty and holds no train, valid or test folder: give a new or empty folder, or one that fer prepare wrote", root)
}

// cleanInterrupted removes the temporary folders an interrupted run left
// next to the layout, and restores an earlier layout that was moved aside
// but never replaced.
func cleanInterrupted(parent, base string, rep *LayoutReport) error {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	root := filepath.Join(parent, base)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(parent, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), layoutTempPrefix(base)):
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("layout: removing %s, left by an interrupted run: %w", p, err)
			}
			rep.Interrupted = append(rep.Interrupted, "removed "+p+", left by an interrupted run")
		case strings.HasPrefix(e.Name(), layoutOldPrefix(base)):
			if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
				if err := os.Rename(p, root); err != nil {
					return fmt.Errorf("layout: restoring %s from %s: %w", root, p, err)
				}
				rep.Interrupted = append(rep.Interrupted, "restored the earlier layout "+root+" from "+p+", which an interrupted run had moved aside")
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("layout: removing %s, left by an interrupted run: %w", p, err)
			}
			rep.Interrupted = append(rep.Interrupted, "removed "+p+", left by an interrupted run")
		}
	}
	return nil
}

// swapIn puts the built layout tmp in place of root: in one step where the
// system can exchange two folders, otherwise by moving root aside first
// (cleanInterrupted restores it if the run stops in between). The earlier
// layout is removed afterwards.
func swapIn(tmp, root string, hasOld bool) error {
	parent := filepath.Dir(root)
	atomicfile.SyncDir(tmp)
	if !hasOld {
		// root is absent or an empty folder, which rename replaces.
		if err := os.Rename(tmp, root); err != nil {
			return fmt.Errorf("layout: putting the new layout in place: %w", err)
		}
		atomicfile.SyncDir(parent)
		return nil
	}
	if err := exchange(tmp, root); err == nil {
		atomicfile.SyncDir(parent)
		// tmp now holds the earlier layout.
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("layout: removing the earlier layout (now %s): %w", tmp, err)
		}
		return nil
	}
	old := filepath.Join(parent, layoutOldPrefix(filepath.Base(root))+strings.TrimPrefix(filepath.Base(tmp), layoutTempPrefix(filepath.Base(root))))
	if err := os.Rename(root, old); err != nil {
		return fmt.Errorf("layout: moving the earlier layout aside: %w", err)
	}
	if err := os.Rename(tmp, root); err != nil {
		if rerr := os.Rename(old, root); rerr != nil {
			return fmt.Errorf("layout: putting the new layout in place: %w (the earlier layout is in %s)", err, old)
		}
		return fmt.Errorf("layout: putting the new layout in place: %w", err)
	}
	atomicfile.SyncDir(parent)
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("layout: removing the earlier layout (now %s): %w", old, err)
	}
	return nil
}

// sourceError is a sample's source file that cannot be placed: the sample
// is skipped, not the run.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// placeFile makes dst (which does not exist) hold src's content and reports
// "linked", "copied" or "unchanged". When prev, the same file in the earlier
// layout, has src's content, it is linked instead (so a copied layout is not
// copied again).
func placeFile(src, dst, prev string, mode LinkMode) (string, error) {
	si, err := os.Stat(src)
	if err != nil {
		return "", &sourceError{err}
	}
	if !si.Mode().IsRegular() {
		return "", &sourceError{fmt.Errorf("%s is not a regular file", src)}
	}
	if prev != "" {
		if pi, err := os.Lstat(prev); err == nil && pi.Mode().IsRegular() &&
			(os.SameFile(si, pi) || (pi.Size() == si.Size() && sameContent(src, prev))) {
			if os.Link(prev, dst) == nil {
				return "unchanged", nil
			}
		}
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
	fa, err := openFile(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := openFile(b)
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

// copyFile copies src to dst atomically; a source that cannot be read is a
// *sourceError.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := openFile(src)
	if err != nil {
		return &sourceError{err}
	}
	defer in.Close()
	return atomicfile.WriteMode(dst, perm|0o200, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return &sourceError{fmt.Errorf("copying %s: %w", src, err)}
		}
		return nil
	})
}

// carryFile puts the earlier layout's file src at dst in the new one: a
// hard link, a copy where linking is impossible, the same link for a
// symbolic link.
func carryFile(src, dst string, d fs.DirEntry) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if d.Type()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	if !d.Type().IsRegular() {
		return fmt.Errorf("%s is a %s; not kept", src, fileTypeName(d.Type()))
	}
	if os.Link(src, dst) == nil {
		return nil
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	return copyFile(src, dst, st.Mode().Perm())
}

// carryOver brings what the earlier layout at root holds besides the
// split's images into the new layout tmp: files the user put there (a
// warning names those inside class folders, which readers might take for
// images) and top-level files other than the replaced ones. Image files
// the split no longer places are dropped and listed in rep.Removed.
func carryOver(root, tmp string, s *Split, expected map[string]bool, replaced []string, rep *LayoutReport) error {
	classes := map[string]bool{}
	for _, c := range s.Classes {
		classes[c] = true
	}
	skipTop := map[string]bool{}
	for _, n := range replaced {
		skipTop[n] = true
	}
	exts := append(KerasExtensions(), "webp", "gif")
	strayClasses := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) == 1 {
			switch {
			case d.IsDir() && isLayoutPart(parts[0]):
				return nil // walk into the part
			case skipTop[parts[0]] && d.IsDir():
				return filepath.SkipDir // replaced by this run
			case skipTop[parts[0]]:
				return nil
			}
		}
		if d.IsDir() {
			return nil
		}
		if atomicfile.IsTemp(d.Name()) || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil // an interrupted write; not carried
		}
		inClass := len(parts) >= 3 && isLayoutPart(parts[0])
		if inClass {
			if expected[filepath.ToSlash(rel)] {
				return nil
			}
			if hasExt(d.Name(), exts) {
				rep.Removed = append(rep.Removed, p)
				return nil
			}
		}
		if err := carryFile(p, filepath.Join(tmp, rel), d); err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s could not be kept: %v", p, err))
			return nil
		}
		if inClass {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is not part of the split; left in place", p))
			if !classes[parts[1]] {
				strayClasses[filepath.Join(root, parts[0], parts[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("layout: reading the earlier layout %s: %w", root, err)
	}
	for _, dir := range sortedKeys(strayClasses) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is not a class of this split but is not empty; readers will see it as a class", dir))
	}
	return nil
}

func isLayoutPart(name string) bool {
	for _, p := range layoutParts {
		if name == p {
			return true
		}
	}
	return false
}
