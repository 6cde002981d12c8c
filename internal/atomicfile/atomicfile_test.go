package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func TestWriteReplacesWholeFileOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	if err := WriteFile(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := Write(path, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v does not wrap the writer's error", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "first" {
		t.Fatalf("a failed write changed the file to %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("a failed write left %d files, want only a.txt", len(entries))
	}
	if err := WriteFile(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(got) != "second" || st.Mode().Perm() != 0o644 {
		t.Fatalf("got %q mode %v, want \"second\" 0644", got, st.Mode().Perm())
	}
}

func TestWriteModeAndCommitTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.bin")
	f, err := CreateMode(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1, 2, 3})
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != 3 {
		t.Fatalf("stat %v %v, want 3 bytes mode 0600", st, err)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	// What an interrupted write leaves, and files that must stay.
	f, err := Create(filepath.Join(dir, "last.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.File.Close() // killed before Commit or Abort
	for _, name := range []string{"last.safetensors", "notes.tmp-1", ".hidden", "x.tmp-2.txt"} {
		os.WriteFile(filepath.Join(dir, name), []byte("keep"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, ".d.tmp-3"), 0o755)
	removed, err := RemoveStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != f.File.Name() {
		t.Fatalf("removed %v, want only %s", removed, f.File.Name())
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	sort.Strings(left)
	want := []string{".d.tmp-3", ".hidden", "last.safetensors", "notes.tmp-1", "x.tmp-2.txt"}
	if len(left) != len(want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	for i := range want {
		if left[i] != want[i] {
			t.Fatalf("left %v, want %v", left, want)
		}
	}
	if removed, err := RemoveStale(filepath.Join(dir, "missing")); err != nil || removed != nil {
		t.Fatalf("missing folder: %v %v", removed, err)
	}
}
