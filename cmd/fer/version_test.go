package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
)

// TestVersion: fer version names the libtorch build and says why there is no
// CUDA device when there is none.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("fer version: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("fer version printed %d lines, want 3:\n%s", len(lines), out.String())
	}
	if want := "libtorch " + torch.BuildInfo(); lines[0] != want {
		t.Errorf("line 1 %q, want %q", lines[0], want)
	}
	if want := fmt.Sprintf("CPU threads: %d", torch.NumThreads()); lines[1] != want {
		t.Errorf("line 2 %q, want %q", lines[1], want)
	}
	if torch.BuiltWithCUDA() {
		return
	}
	want := fmt.Sprintf("CUDA devices: none (libfertorch was built against libtorch %s without CUDA: install a CUDA libtorch "+
		"(the official download, a CUDA PyTorch wheel or Debian's libtorch-cuda-dev) and rebuild the shim against it "+
		"(make -B shim LIBTORCH=<its folder>))", torch.Version())
	if lines[2] != want {
		t.Errorf("line 3:\n got %q\nwant %q", lines[2], want)
	}
}
