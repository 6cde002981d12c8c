package main

import (
	"fmt"
	"io"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
)

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "libtorch %s\n", torch.BuildInfo())
	fmt.Fprintf(stdout, "CPU threads: %d\n", torch.NumThreads())
	if torch.CUDAIsAvailable() {
		fmt.Fprintf(stdout, "CUDA devices: %d (cuDNN: %v)\n", torch.CUDADeviceCount(), torch.CuDNNIsAvailable())
	} else {
		fmt.Fprintf(stdout, "CUDA devices: none (%s)\n", torch.CUDAUnavailableReason())
	}
	line, err := oneDNNLine()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, line)
	fmt.Fprintln(stdout, distLine())
	return nil
}

// distLine says which process groups distributed training can use.
func distLine() string {
	switch err := dist.Available(); {
	case err != nil:
		return fmt.Sprintf("distributed training: not available (%v)", err)
	case dist.HasNCCL():
		return "distributed training: Gloo (CPU) and NCCL (CUDA)"
	case torch.BuiltWithCUDA():
		return "distributed training: Gloo (CPU) only: the shim was built without NCCL (nccl.h or the CUDA runtime headers were missing), so CUDA devices cannot train as several processes"
	}
	return "distributed training: Gloo (CPU)"
}

// oneDNNLine says whether this libtorch has oneDNN and whether it agrees
// with the native kernels on this CPU (torch.ProbeOneDNN).
func oneDNNLine() (string, error) {
	if !torch.OneDNNAvailable() {
		return "oneDNN: not in this libtorch", nil
	}
	p, err := torch.ProbeOneDNN()
	if err != nil {
		return "", fmt.Errorf("checking oneDNN: %w", err)
	}
	name := "oneDNN"
	if isaCap := torch.OneDNNISACap(); isaCap != "" {
		name += " (" + isaCap + ")"
	}
	if p.Agrees() {
		return fmt.Sprintf("%s: agrees with the native kernels on this CPU (largest relative difference %.2g)", name, p.MaxRelDiff), nil
	}
	return fmt.Sprintf("%s: wrong on this CPU (it computes %s from the native kernels): --onednn auto keeps CPU work to the native kernels", name, p.Disagreement()), nil
}
