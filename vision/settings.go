package vision

import (
	"github.com/fertorch/fertorch/internal/choice"
	"gopkg.in/yaml.v3"
)

// The model settings that are names. Each type parses itself from flags
// (pflag.Value), YAML and JSON, writes its canonical name, and lists its
// legal names.

// archNames is the architecture table's names, for YAML.
func archNames() choice.Names[Arch] {
	n := choice.Names[Arch]{What: "architecture"}
	for _, spec := range archTable {
		n.List = append(n.List, choice.Name[Arch]{Value: spec.Arch, Name: string(spec.Arch)})
	}
	return n
}

// UnmarshalYAML reads an architecture name, naming the line of a bad one.
func (a *Arch) UnmarshalYAML(n *yaml.Node) error { return archNames().DecodeYAML(a, n) }

var headNames = choice.Names[Head]{What: "head", List: []choice.Name[Head]{
	{Value: HeadTransfer, Name: "transfer"},
	{Value: HeadTorchvision, Name: "torchvision"},
	{Value: HeadGAP, Name: "gap"},
}}

// String returns the head's name.
func (v Head) String() string { return headNames.Name(v) }

// ParseHead reads a head name (one of HeadNames).
func ParseHead(s string) (Head, error) { return headNames.Parse(s) }

// HeadNames lists the legal head names.
func HeadNames() string { return headNames.Legal() }

// Set parses a name (pflag.Value).
func (v *Head) Set(s string) error { return headNames.Set(v, s) }

// Type names the flag's value in --help.
func (Head) Type() string { return "head" }

// MarshalText writes the name (YAML, JSON).
func (v Head) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *Head) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *Head) UnmarshalYAML(n *yaml.Node) error { return headNames.DecodeYAML(v, n) }
