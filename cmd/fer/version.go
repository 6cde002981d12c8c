package main

import (
	"fmt"
	"io"

	"github.com/fertorch/fertorch/torch"
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
	return nil
}
