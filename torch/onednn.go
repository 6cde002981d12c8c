package torch

/*
#include "fertorch.h"
*/
import "C"

import (
	"fmt"
	"math"
	"os"

	"github.com/fertorch/fertorch/internal/choice"
	"gopkg.in/yaml.v3"
)

// OneDNNAvailable reports whether libtorch was built with oneDNN (MKL-DNN),
// the library it uses for many CPU operations, convolutions first.
func OneDNNAvailable() bool { return C.fer_onednn_available() != 0 }

// OneDNNEnabled reports whether libtorch may use oneDNN for CPU operations
// (torch.backends.mkldnn.enabled).
func OneDNNEnabled() bool { return C.fer_onednn_enabled() != 0 }

// SetOneDNN lets libtorch use oneDNN for CPU operations (on, its default) or
// keeps it to its native kernels (off), for the whole process.
func SetOneDNN(on bool) { C.fer_set_onednn(cbool(on)) }

// OneDNNISACap returns the environment variable and value that cap the
// instruction sets of oneDNN's kernels in this process
// ("ONEDNN_MAX_CPU_ISA=AVX"), or "". oneDNN reads them once, at its first
// use; DNNL_ is their older spelling.
func OneDNNISACap() string {
	for _, name := range []string{"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"} {
		if v := os.Getenv(name); v != "" {
			return name + "=" + v
		}
	}
	return ""
}

// OneDNNTolerance is the largest relative difference between oneDNN's and
// the native kernels' results that ProbeOneDNN counts as agreement: float32
// convolutions summing differently differ by about 1e-6.
const OneDNNTolerance = 1e-3

// OneDNNProbe is what ProbeOneDNN found: the largest difference between
// oneDNN's convolutions (output, input gradient and weight gradient) and
// libtorch's native ones, relative to the native result's largest
// magnitude, and the case that had it.
type OneDNNProbe struct {
	MaxRelDiff float64
	Case       string
}

// Agrees reports whether oneDNN and the native kernels agree within
// OneDNNTolerance.
func (p OneDNNProbe) Agrees() bool { return p.MaxRelDiff <= OneDNNTolerance }

// Disagreement says how oneDNN's results differ from the native kernels'
// in words: "a 3x3 convolution 24->16 channels 0.77 away (relative)" or
// "NaN or infinite values for a ...".
func (p OneDNNProbe) Disagreement() string {
	if math.IsInf(p.MaxRelDiff, 0) || math.IsNaN(p.MaxRelDiff) {
		return "NaN or infinite values for a " + p.Case
	}
	return fmt.Sprintf("a %s %.2g away (relative)", p.Case, p.MaxRelDiff)
}

// ProbeOneDNN runs a few small convolutions forward and backward on the CPU
// with oneDNN and with libtorch's native kernels and compares them. Some
// oneDNN builds compute wrong results on some CPUs (Debian's oneDNN 3.6 under
// libtorch 2.6 on AVX-512 machines gets 24-channel 3x3 convolutions and the
// input gradient of ones with few output channels wrong by 30-100%). It takes
// milliseconds, leaves the oneDNN switch as it was and draws no random
// numbers. Without oneDNN the probe is empty and agrees.
func ProbeOneDNN() (OneDNNProbe, error) {
	var diff C.double
	var worst C.int
	if err := takeError("onednn_probe", C.fer_onednn_probe(&diff, &worst)); err != nil {
		return OneDNNProbe{}, err
	}
	return OneDNNProbe{MaxRelDiff: float64(diff), Case: C.GoString(C.fer_onednn_probe_case(worst))}, nil
}

// OneDNNMode is the --onednn setting: whether CPU work may use oneDNN.
type OneDNNMode string

// The oneDNN modes.
const (
	// OneDNNAuto uses oneDNN unless ProbeOneDNN shows it computing wrong
	// results on this machine, and then says so and keeps to the native
	// kernels.
	OneDNNAuto OneDNNMode = "auto"
	// OneDNNOn uses oneDNN whatever the probe says.
	OneDNNOn OneDNNMode = "on"
	// OneDNNOff keeps to libtorch's native kernels.
	OneDNNOff OneDNNMode = "off"
)

var oneDNNModes = choice.Names[OneDNNMode]{What: "oneDNN mode", List: []choice.Name[OneDNNMode]{
	{Value: OneDNNAuto, Name: "auto"},
	{Value: OneDNNOn, Name: "on"},
	{Value: OneDNNOff, Name: "off"},
}}

// OneDNNModeNames lists the modes for help texts.
func OneDNNModeNames() string { return oneDNNModes.Legal() }

// OneDNNFlagUsage is the help text of every command's --onednn.
const OneDNNFlagUsage = "libtorch's oneDNN CPU kernels: auto, on or off (auto: used unless a start-up check finds them computing wrong convolutions on this CPU)"

// String returns the mode's name; the zero value (a config written before
// the setting existed) is auto.
func (m OneDNNMode) String() string {
	if m == "" {
		return string(OneDNNAuto)
	}
	return oneDNNModes.Name(m)
}

// Set parses a name (pflag.Value).
func (m *OneDNNMode) Set(s string) error { return oneDNNModes.Set(m, s) }

// Type names the flag's value in --help.
func (OneDNNMode) Type() string { return "mode" }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (m *OneDNNMode) UnmarshalYAML(n *yaml.Node) error { return oneDNNModes.DecodeYAML(m, n) }

// Apply sets libtorch's oneDNN switch for work on dev as the mode says and
// returns a line for the user when it turned oneDNN off on its own (auto
// after a failed probe), else "". The probe runs only for auto on a CPU
// device: CUDA work does not use oneDNN. "on" with a libtorch that has no
// oneDNN is an error.
func (m OneDNNMode) Apply(dev Device) (string, error) {
	return m.apply(dev, OneDNNAvailable(), ProbeOneDNN)
}

func (m OneDNNMode) apply(dev Device, available bool, probe func() (OneDNNProbe, error)) (string, error) {
	switch m {
	case OneDNNOff:
		SetOneDNN(false)
		return "", nil
	case OneDNNOn:
		if !available {
			return "", fmt.Errorf("--onednn on: this libtorch (%s) was built without oneDNN", Version())
		}
		SetOneDNN(true)
		return "", nil
	case OneDNNAuto, "":
		SetOneDNN(true)
		if !available || dev.IsCUDA() {
			return "", nil
		}
		p, err := probe()
		if err != nil {
			return "", fmt.Errorf("checking oneDNN against libtorch's native kernels: %w", err)
		}
		if p.Agrees() {
			return "", nil
		}
		SetOneDNN(false)
		return fmt.Sprintf("oneDNN is off: on this CPU, this libtorch's (%s) oneDNN%s computes %s from its native kernels, so CPU work uses the slower native kernels (--onednn on to use it anyway)",
			Version(), withISACap(), p.Disagreement()), nil
	}
	_, err := oneDNNModes.Parse(string(m))
	return "", err
}

// withISACap is " with ONEDNN_MAX_CPU_ISA=..." when the environment caps
// oneDNN's instruction sets, else "".
func withISACap() string {
	if isaCap := OneDNNISACap(); isaCap != "" {
		return " with " + isaCap
	}
	return ""
}
