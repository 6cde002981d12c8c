package torch

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestOneDNNModeApply: what each mode does to the switch, when the probe
// runs, and what the user is told.
func TestOneDNNModeApply(t *testing.T) {
	defer SetOneDNN(OneDNNEnabled())
	t.Setenv("ONEDNN_MAX_CPU_ISA", "")
	t.Setenv("DNNL_MAX_CPU_ISA", "")
	good := OneDNNProbe{MaxRelDiff: 2e-6, Case: "3x3 convolution 64->64 channels"}
	bad := OneDNNProbe{MaxRelDiff: 0.77, Case: "3x3 convolution 24->16 channels"}
	cpu, cuda := CPU(), CUDA(0)
	cases := []struct {
		name      string
		mode      OneDNNMode
		dev       Device
		available bool
		probe     OneDNNProbe
		probeErr  error
		isaCap    string
		probed    bool
		enabled   bool
		note, err string
	}{
		{name: "off", mode: OneDNNOff, dev: cpu, available: true, enabled: false},
		{name: "on", mode: OneDNNOn, dev: cpu, available: true, probe: bad, enabled: true},
		{name: "on without oneDNN", mode: OneDNNOn, dev: cpu, err: "--onednn on: this libtorch (" + Version() + ") was built without oneDNN"},
		{name: "auto, agreeing", mode: OneDNNAuto, dev: cpu, available: true, probe: good, probed: true, enabled: true},
		{name: "empty is auto", mode: "", dev: cpu, available: true, probe: good, probed: true, enabled: true},
		{name: "auto, disagreeing", mode: OneDNNAuto, dev: cpu, available: true, probe: bad, probed: true, enabled: false,
			note: "oneDNN is off: on this CPU, this libtorch's (" + Version() + ") oneDNN computes a 3x3 convolution 24->16 channels 0.77 away (relative) from its native kernels, so CPU work uses the slower native kernels (--onednn on to use it anyway)"},
		{name: "auto, disagreeing under a cap", mode: OneDNNAuto, dev: cpu, available: true, probe: bad, isaCap: "AVX2", probed: true, enabled: false,
			note: "oneDNN is off: on this CPU, this libtorch's (" + Version() + ") oneDNN with ONEDNN_MAX_CPU_ISA=AVX2 computes a 3x3 convolution 24->16 channels 0.77 away (relative) from its native kernels, so CPU work uses the slower native kernels (--onednn on to use it anyway)"},
		{name: "auto on CUDA", mode: OneDNNAuto, dev: cuda, available: true, probe: bad, enabled: true},
		{name: "auto without oneDNN", mode: OneDNNAuto, dev: cpu, enabled: true},
		{name: "probe fails", mode: OneDNNAuto, dev: cpu, available: true, probeErr: errors.New("boom"), probed: true, enabled: true,
			err: "checking oneDNN against libtorch's native kernels: boom"},
		{name: "unknown", mode: "maybe", dev: cpu, available: true, enabled: false, err: `unknown oneDNN mode "maybe" (want auto, on or off)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("ONEDNN_MAX_CPU_ISA", c.isaCap)
			SetOneDNN(!c.enabled)
			probed := false
			note, err := c.mode.apply(c.dev, c.available, func() (OneDNNProbe, error) {
				probed = true
				return c.probe, c.probeErr
			})
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if probed != c.probed {
				t.Errorf("probed %v, want %v", probed, c.probed)
			}
			if c.err == "" || c.probeErr != nil {
				if got := OneDNNEnabled(); got != c.enabled {
					t.Errorf("oneDNN enabled %v, want %v", got, c.enabled)
				}
			}
			if note != c.note {
				t.Errorf("note %q\nwant %q", note, c.note)
			}
		})
	}
}

// TestOneDNNISACap: the cap is read from oneDNN's own variables, the
// newer spelling first, and an empty one is no cap.
func TestOneDNNISACap(t *testing.T) {
	for _, c := range []struct{ onednn, dnnl, want string }{
		{"", "", ""},
		{"AVX", "", "ONEDNN_MAX_CPU_ISA=AVX"},
		{"", "SSE41", "DNNL_MAX_CPU_ISA=SSE41"},
		{"AVX2", "SSE41", "ONEDNN_MAX_CPU_ISA=AVX2"},
	} {
		t.Setenv("ONEDNN_MAX_CPU_ISA", c.onednn)
		t.Setenv("DNNL_MAX_CPU_ISA", c.dnnl)
		if got := OneDNNISACap(); got != c.want {
			t.Errorf("ONEDNN_MAX_CPU_ISA=%q DNNL_MAX_CPU_ISA=%q: %q, want %q", c.onednn, c.dnnl, got, c.want)
		}
	}
}

// TestOneDNNModeSet: the names a flag or config accepts.
func TestOneDNNModeSet(t *testing.T) {
	for _, s := range []string{"auto", "on", "off"} {
		var m OneDNNMode
		if err := m.Set(s); err != nil || m.String() != s {
			t.Errorf("Set(%q): %v, %q", s, err, m)
		}
	}
	var m OneDNNMode
	if m.String() != "auto" {
		t.Errorf("zero mode %q, want auto", m)
	}
	err := m.Set("true")
	if err == nil || !strings.Contains(err.Error(), `unknown oneDNN mode "true" (want auto, on or off)`) {
		t.Errorf("Set(true): %v", err)
	}
}

// TestOneDNNDisagreement: how a probe's finding is put in words.
func TestOneDNNDisagreement(t *testing.T) {
	for _, c := range []struct {
		p    OneDNNProbe
		want string
	}{
		{OneDNNProbe{MaxRelDiff: 0.7712, Case: "3x3 convolution 24->16 channels"}, "a 3x3 convolution 24->16 channels 0.77 away (relative)"},
		{OneDNNProbe{MaxRelDiff: math.Inf(1), Case: "3x3 convolution 16->8 channels"}, "NaN or infinite values for a 3x3 convolution 16->8 channels"},
		{OneDNNProbe{MaxRelDiff: math.NaN(), Case: "5x5 stride-2 convolution 3->4 channels"}, "NaN or infinite values for a 5x5 stride-2 convolution 3->4 channels"},
	} {
		if got := c.p.Disagreement(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
		if c.p.Agrees() {
			t.Errorf("%+v agrees", c.p)
		}
	}
}
