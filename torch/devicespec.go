package torch

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DeviceSpec is a device setting as users write it: auto (CUDA device 0
// when one is available, else the CPU), cpu, cuda or cuda:N. It parses
// itself from flags (pflag.Value), YAML and JSON, checking the spelling;
// Resolve finds the device and whether it can be used.
type DeviceSpec string

// DeviceAuto is the default device setting.
const DeviceAuto DeviceSpec = "auto"

// DeviceSpecNames describes the legal device settings.
func DeviceSpecNames() string { return "auto, cpu, cuda or cuda:N" }

// ParseDeviceSpec checks the spelling of a device setting and returns it
// in canonical form (lower case, "cuda:0" for "cuda:0").
func ParseDeviceSpec(s string) (DeviceSpec, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch {
	case v == "auto" || v == "cpu" || v == "cuda":
		return DeviceSpec(v), nil
	case strings.HasPrefix(v, "cuda:"):
		n, err := strconv.Atoi(v[len("cuda:"):])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad device %q: want cuda:N with N a device index", s)
		}
		return DeviceSpec("cuda:" + strconv.Itoa(n)), nil
	}
	return "", fmt.Errorf("unknown device %q (want %s)", s, DeviceSpecNames())
}

// Resolve returns the device the setting names, or an error that says why
// it cannot be used here (see ParseDevice).
func (d DeviceSpec) Resolve() (Device, error) { return ParseDevice(string(d)) }

// String returns the setting as written in canonical form.
func (d DeviceSpec) String() string { return string(d) }

// Set parses a device setting (pflag.Value).
func (d *DeviceSpec) Set(s string) error {
	v, err := ParseDeviceSpec(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Type names the flag's value in --help.
func (DeviceSpec) Type() string { return "device" }

// UnmarshalText reads a device setting (JSON).
func (d *DeviceSpec) UnmarshalText(b []byte) error { return d.Set(string(b)) }

// UnmarshalYAML reads a device setting, naming the line of a bad one.
func (d *DeviceSpec) UnmarshalYAML(n *yaml.Node) error {
	if err := d.Set(n.Value); err != nil || n.Kind != yaml.ScalarNode {
		if err == nil {
			err = fmt.Errorf("want a device (%s)", DeviceSpecNames())
		}
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}
