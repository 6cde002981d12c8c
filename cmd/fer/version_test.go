package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
)

// TestVersion: fer version names the libtorch build and says why there is no
// CUDA device when there is none.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("fer version: exit %d: %s", code, errb.String())
	}
	t.Logf("fer version:\n%s", out.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("fer version printed %d lines, want 5:\n%s", len(lines), out.String())
	}
	wantDist := "distributed training: Gloo (CPU)"
	switch {
	case dist.Available() != nil:
		wantDist = fmt.Sprintf("distributed training: not available (%v)", dist.Available())
	case dist.HasNCCL():
		wantDist = "distributed training: Gloo (CPU) and NCCL (CUDA)"
	case torch.BuiltWithCUDA():
		t.Errorf("the shim was built against a CUDA libtorch without NCCL")
	}
	if lines[4] != wantDist {
		t.Errorf("line 5 %q, want %q", lines[4], wantDist)
	}
	probe, err := torch.ProbeOneDNN()
	if err != nil {
		t.Fatal(err)
	}
	name := "oneDNN"
	if isaCap := torch.OneDNNISACap(); isaCap != "" {
		name += " (" + isaCap + ")"
	}
	switch {
	case !torch.OneDNNAvailable():
		if want := "oneDNN: not in this libtorch"; lines[3] != want {
			t.Errorf("line 4 %q, want %q", lines[3], want)
		}
	case probe.Agrees():
		if want := fmt.Sprintf("%s: agrees with the native kernels on this CPU (largest relative difference %.2g)", name, probe.MaxRelDiff); lines[3] != want {
			t.Errorf("line 4 %q, want %q", lines[3], want)
		}
	default:
		// A wrong oneDNN need not be wrong the same way twice (it can
		// read memory it never wrote), so only the verdict is compared.
		prefix := name + ": wrong on this CPU (it computes "
		suffix := " from the native kernels): --onednn auto keeps CPU work to the native kernels"
		if !strings.HasPrefix(lines[3], prefix) || !strings.HasSuffix(lines[3], suffix) {
			t.Errorf("line 4 %q, want %q...%q", lines[3], prefix, suffix)
		}
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

// TestOneDNNFlag: --onednn reaches libtorch's switch (benchmark stands for
// every command that runs a network: they share the flag), and auto on
// this machine leaves oneDNN on exactly when the probe finds it right.
func TestOneDNNFlag(t *testing.T) {
	if !torch.OneDNNAvailable() {
		t.Skipf("libtorch %s has no oneDNN", torch.Version())
	}
	defer torch.SetOneDNN(torch.OneDNNEnabled())
	defer torch.SetNumThreads(torch.NumThreads())
	probe, err := torch.ProbeOneDNN()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode string
		want bool
	}{{"off", false}, {"on", true}, {"off", false}, {"auto", probe.Agrees()}} {
		torch.SetOneDNN(!c.want)
		var out, errb bytes.Buffer
		args := []string{"benchmark", "--device", "cpu", "--arch", "resnet18", "--head", "gap", "--input-size", "32",
			"--batch-size", "2", "--steps", "1", "--warmup", "0", "--threads", "1", "--onednn", c.mode}
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("fer %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		if got := torch.OneDNNEnabled(); got != c.want {
			t.Errorf("--onednn %s: oneDNN enabled %v, want %v", c.mode, got, c.want)
		}
		if notice := strings.Contains(errb.String(), "oneDNN is off"); notice != (c.mode == "auto" && !c.want) {
			t.Errorf("--onednn %s: stderr %q", c.mode, errb.String())
		}
	}
}
