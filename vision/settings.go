package vision

import (
	"github.com/fertorch/fertorch/internal/choice"
	"gopkg.in/yaml.v3"
)

// The model settings that are names. Each type parses itself from flags
// (pflag.Value), YAML and JSON, writes its canonical name, and lists its
// legal names.

// Arch is a network architecture.
type Arch string

// The architectures.
const (
	// ArchVGG16 is torchvision's vgg16, the seed tutorial's network.
	ArchVGG16 Arch = "vgg16"
	// ArchVGG16BN is torchvision's vgg16_bn: batch norm after every
	// convolution, which trains from scratch far more readily.
	ArchVGG16BN Arch = "vgg16_bn"
)

var archNames = choice.Names[Arch]{What: "architecture", List: []choice.Name[Arch]{
	{Value: ArchVGG16, Name: "vgg16"},
	{Value: ArchVGG16BN, Name: "vgg16_bn"},
}}

// String returns the architecture's name.
func (v Arch) String() string { return archNames.Name(v) }

// ParseArch reads a architecture name (one of ArchNames).
func ParseArch(s string) (Arch, error) { return archNames.Parse(s) }

// ArchNames lists the legal architecture names.
func ArchNames() string { return archNames.Legal() }

// Set parses a name (pflag.Value).
func (v *Arch) Set(s string) error { return archNames.Set(v, s) }

// Type names the flag's value in --help.
func (Arch) Type() string { return "arch" }

// MarshalText writes the name (YAML, JSON).
func (v Arch) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *Arch) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *Arch) UnmarshalYAML(n *yaml.Node) error { return archNames.DecodeYAML(v, n) }

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
