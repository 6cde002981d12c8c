package torch

/*
#include "fertorch.h"
*/
import "C"

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceType is the kind of device a tensor lives on.
type DeviceType int

// Device types. Values match the shim's FER_* codes.
const (
	DeviceCPU  DeviceType = C.FER_CPU
	DeviceCUDA DeviceType = C.FER_CUDA
)

// Device is a device type and, for CUDA, the device index.
type Device struct {
	Type  DeviceType
	Index int
}

// CPU is the host device.
func CPU() Device { return Device{Type: DeviceCPU} }

// CUDA is the CUDA device with the given index.
func CUDA(index int) Device { return Device{Type: DeviceCUDA, Index: index} }

// IsCUDA reports whether d is a CUDA device.
func (d Device) IsCUDA() bool { return d.Type == DeviceCUDA }

// String is PyTorch's spelling: "cpu", "cuda:0".
func (d Device) String() string {
	if d.Type == DeviceCUDA {
		return "cuda:" + strconv.Itoa(d.Index)
	}
	return "cpu"
}

// ParseDevice reads "cpu", "cuda", "cuda:N" or "auto" (CUDA device 0 when
// one is available, else the CPU). Asking for CUDA where there is none is an
// error that says why (see CUDAUnavailableReason) and what to install.
func ParseDevice(s string) (Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "cpu":
		return CPU(), nil
	case s == "auto" || s == "":
		if CUDAIsAvailable() {
			return CUDA(0), nil
		}
		return CPU(), nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		index := 0
		if rest, ok := strings.CutPrefix(s, "cuda:"); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 0 {
				return Device{}, fmt.Errorf("bad device %q: want cuda:N with N a device index", s)
			}
			index = n
		}
		count := 0
		if BuiltWithCUDA() {
			count = CUDADeviceCount()
		}
		if count == 0 {
			return Device{}, fmt.Errorf("device %q requested, but %s, or use --device cpu", s, CUDAUnavailableReason())
		}
		if index >= count {
			return Device{}, fmt.Errorf("device %q requested, but only %d CUDA device(s) are visible", s, count)
		}
		return CUDA(index), nil
	}
	return Device{}, fmt.Errorf("unknown device %q (want cpu, cuda, cuda:N or auto)", s)
}
