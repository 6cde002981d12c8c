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
			note: "oneDNN is off: on this CPU, this libtorch's (" + Version() + ") oneDNN computes a 3x3 convolution 24->16 channels 0.77 away (relative) from its native kernels, so CPU work uses the native kernels (--onednn on to use it anyway)"},
		{name: "auto on CUDA", mode: OneDNNAuto, dev: cuda, available: true, probe: bad, enabled: true},
		{name: "auto without oneDNN", mode: OneDNNAuto, dev: cpu, enabled: true},
		{name: "probe fails", mode: OneDNNAuto, dev: cpu, available: true, probeErr: errors.New("boom"), probed: true, enabled: true,
			err: "checking oneDNN against libtorch's native kernels: boom"},
		{name: "unknown", mode: "maybe", dev: cpu, available: true, enabled: false, err: `unknown oneDNN mode "maybe" (want auto, on or off)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
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
