package torch

import (
	"fmt"

	"github.com/fertorch/fertorch/torch/tensorfile"
)

// ToEntry copies a tensor (any device) into a weight-file entry.
func ToEntry(name string, t *Tensor) (tensorfile.Entry, error) {
	dt, err := tensorfile.ParseDType(t.DType().String())
	if err != nil {
		return tensorfile.Entry{}, fmt.Errorf("%s: %w", name, err)
	}
	data, err := t.Bytes()
	if err != nil {
		return tensorfile.Entry{}, fmt.Errorf("%s: %w", name, err)
	}
	return tensorfile.Entry{Name: name, DType: dt, Shape: t.Shape(), Data: data}, nil
}

// FromEntry copies a weight-file entry into a new tensor on dev.
func FromEntry(e *tensorfile.Entry, dev Device) (*Tensor, error) {
	dt, err := ParseDType(e.DType.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	t, err := FromBytes(e.Data, dt, dev, e.Shape...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	return t, nil
}

// ToEntries copies named tensors into entries, in order.
func ToEntries(ts []NamedTensor) ([]tensorfile.Entry, error) {
	out := make([]tensorfile.Entry, 0, len(ts))
	for _, nt := range ts {
		e, err := ToEntry(nt.Name, nt.Tensor)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
