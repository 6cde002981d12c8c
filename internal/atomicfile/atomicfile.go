// Package atomicfile writes files that appear under their final name only
// once they are completely written and synced. Every file fertorch writes
// atomically (checkpoints, configs, reports, plots, pixel caches, copied
// images) goes through it.
//
// A file is written to a temporary file in the same folder, named
// ".<name>.tmp-<random>", fsynced, renamed over the target, and the folder is
// fsynced. A crash at any point leaves either the old file or the new one,
// never a torn one; at worst a temporary file stays behind, which
// RemoveStale deletes.
package atomicfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is a file being written atomically. Write to it, then Commit; Abort
// (a no-op after Commit) discards it.
type File struct {
	*os.File
	path string
	mode fs.FileMode
	done bool
}

// tempPattern is the os.CreateTemp pattern of path's temporary files.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// Create starts writing path atomically with mode 0644, making its folder
// if needed.
func Create(path string) (*File, error) {
	return CreateMode(path, 0o644)
}

// CreateMode is Create with the final file's permission bits.
func CreateMode(path string, mode fs.FileMode) (*File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return nil, fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	return &File{File: f, path: path, mode: mode}, nil
}

// Commit makes the written content visible under the final name.
func (a *File) Commit() error {
	if a.done {
		return fmt.Errorf("%s: already committed or aborted", a.path)
	}
	a.done = true
	tmp := a.File.Name()
	fail := func(what string, err error) error {
		a.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s %s: %w", what, a.path, err)
	}
	if err := a.File.Sync(); err != nil {
		return fail("syncing", err)
	}
	if err := a.File.Chmod(a.mode); err != nil {
		return fail("setting mode of", err)
	}
	if err := a.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("closing %s: %w", a.path, err)
	}
	if err := os.Rename(tmp, a.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renaming into %s: %w", a.path, err)
	}
	SyncDir(filepath.Dir(a.path))
	return nil
}

// Abort discards the temporary file; it is a no-op after Commit.
func (a *File) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.File.Name())
}

// Write writes path atomically with what write produces; an error from
// write leaves the old file (if any) in place.
func Write(path string, write func(io.Writer) error) error {
	return WriteMode(path, 0o644, write)
}

// WriteMode is Write with the final file's permission bits.
func WriteMode(path string, mode fs.FileMode, write func(io.Writer) error) error {
	f, err := CreateMode(path, mode)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Abort()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir fsyncs a folder so that renames in it survive a crash. It is best
// effort: not every filesystem syncs folders.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// IsTemp reports whether name (a base name) is a temporary file of this
// package.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// RemoveStale deletes the temporary files that interrupted atomic writes
// left in dir (not in its sub-folders) and returns their paths. A missing
// folder has none.
func RemoveStale(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking for stale temporary files in %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("removing stale temporary file: %w", err)
		}
		removed = append(removed, path)
	}
	return removed, nil
}
