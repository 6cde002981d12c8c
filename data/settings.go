package data

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/internal/choice"
	"gopkg.in/yaml.v3"
)

// The data settings that are names. Each type parses itself from flags
// (pflag.Value), YAML and JSON, writes its canonical name, and lists its
// legal names.

var fillModes = choice.Names[FillMode]{What: "fill mode", List: []choice.Name[FillMode]{
	{Value: FillConstant, Name: "constant"}, {Value: FillNearest, Name: "nearest"}, {Value: FillReflect, Name: "reflect"}, {Value: FillWrap, Name: "wrap"},
}}

// String returns the fill mode's name.
func (v FillMode) String() string { return fillModes.Name(v) }

// ParseFillMode reads a fill mode name (one of FillModeNames).
func ParseFillMode(s string) (FillMode, error) { return fillModes.Parse(s) }

// FillModeNames lists the legal fill mode names.
func FillModeNames() string { return fillModes.Legal() }

// Set parses a name (pflag.Value).
func (v *FillMode) Set(s string) error { return fillModes.Set(v, s) }

// Type names the flag's value in --help.
func (FillMode) Type() string { return "mode" }

// MarshalText writes the name (YAML, JSON).
func (v FillMode) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *FillMode) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *FillMode) UnmarshalYAML(n *yaml.Node) error { return fillModes.DecodeYAML(v, n) }

var semanticsNames = choice.Names[Semantics]{What: "augmentation semantics", List: []choice.Name[Semantics]{
	{Value: Legacy, Name: "legacy"}, {Value: Fixed, Name: "fixed"},
}}

// String returns the augmentation semantics's name.
func (v Semantics) String() string { return semanticsNames.Name(v) }

// ParseSemantics reads a augmentation semantics name (one of SemanticsNames).
func ParseSemantics(s string) (Semantics, error) { return semanticsNames.Parse(s) }

// SemanticsNames lists the legal augmentation semantics names.
func SemanticsNames() string { return semanticsNames.Legal() }

// Set parses a name (pflag.Value).
func (v *Semantics) Set(s string) error { return semanticsNames.Set(v, s) }

// Type names the flag's value in --help.
func (Semantics) Type() string { return "semantics" }

// MarshalText writes the name (YAML, JSON).
func (v Semantics) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *Semantics) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *Semantics) UnmarshalYAML(n *yaml.Node) error { return semanticsNames.DecodeYAML(v, n) }

var normalizations = choice.Names[Normalization]{What: "normalization", List: []choice.Name[Normalization]{
	{Value: NormImageNet, Name: "imagenet"}, {Value: NormRescale, Name: "rescale"}, {Value: NormNone, Name: "none"},
}}

// String returns the normalization's name.
func (v Normalization) String() string { return normalizations.Name(v) }

// ParseNormalization reads a normalization name (one of NormalizationNames).
func ParseNormalization(s string) (Normalization, error) { return normalizations.Parse(s) }

// NormalizationNames lists the legal normalization names.
func NormalizationNames() string { return normalizations.Legal() }

// Set parses a name (pflag.Value).
func (v *Normalization) Set(s string) error { return normalizations.Set(v, s) }

// Type names the flag's value in --help.
func (Normalization) Type() string { return "name" }

// MarshalText writes the name (YAML, JSON).
func (v Normalization) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *Normalization) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *Normalization) UnmarshalYAML(n *yaml.Node) error { return normalizations.DecodeYAML(v, n) }

var resizeMethods = choice.Names[ResizeMethod]{What: "resize method", List: []choice.Name[ResizeMethod]{
	{Value: ResizeNearest, Name: "nearest"}, {Value: ResizeBilinear, Name: "bilinear", Aliases: []string{"linear"}}, {Value: ResizeArea, Name: "area", Aliases: []string{"box"}},
}}

// String returns the resize method's name.
func (v ResizeMethod) String() string { return resizeMethods.Name(v) }

// ParseResizeMethod reads a resize method name (one of ResizeMethodNames).
func ParseResizeMethod(s string) (ResizeMethod, error) { return resizeMethods.Parse(s) }

// ResizeMethodNames lists the legal resize method names.
func ResizeMethodNames() string { return resizeMethods.Legal() }

// Set parses a name (pflag.Value).
func (v *ResizeMethod) Set(s string) error { return resizeMethods.Set(v, s) }

// Type names the flag's value in --help.
func (ResizeMethod) Type() string { return "method" }

// MarshalText writes the name (YAML, JSON).
func (v ResizeMethod) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *ResizeMethod) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *ResizeMethod) UnmarshalYAML(n *yaml.Node) error { return resizeMethods.DecodeYAML(v, n) }

var splitSchemes = choice.Names[SplitScheme]{What: "split scheme", List: []choice.Name[SplitScheme]{
	{Value: SplitRandom, Name: "seed", Aliases: []string{"random"}}, {Value: SplitStratified, Name: "stratified"}, {Value: SplitBySubject, Name: "by-subject", Aliases: []string{"subject", "bysubject"}},
}}

// String returns the split scheme's name.
func (v SplitScheme) String() string { return splitSchemes.Name(v) }

// ParseSplitScheme reads a split scheme name (one of SplitSchemeNames).
func ParseSplitScheme(s string) (SplitScheme, error) { return splitSchemes.Parse(s) }

// SplitSchemeNames lists the legal split scheme names.
func SplitSchemeNames() string { return splitSchemes.Legal() }

// Set parses a name (pflag.Value).
func (v *SplitScheme) Set(s string) error { return splitSchemes.Set(v, s) }

// Type names the flag's value in --help.
func (SplitScheme) Type() string { return "scheme" }

// MarshalText writes the name (YAML, JSON).
func (v SplitScheme) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *SplitScheme) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *SplitScheme) UnmarshalYAML(n *yaml.Node) error { return splitSchemes.DecodeYAML(v, n) }

var linkModes = choice.Names[LinkMode]{What: "link mode", List: []choice.Name[LinkMode]{
	{Value: LinkAuto, Name: "auto"}, {Value: LinkCopy, Name: "copy"}, {Value: LinkHard, Name: "link", Aliases: []string{"hardlink"}},
}}

// String returns the link mode's name.
func (v LinkMode) String() string { return linkModes.Name(v) }

// ParseLinkMode reads a link mode name (one of LinkModeNames).
func ParseLinkMode(s string) (LinkMode, error) { return linkModes.Parse(s) }

// LinkModeNames lists the legal link mode names.
func LinkModeNames() string { return linkModes.Legal() }

// Set parses a name (pflag.Value).
func (v *LinkMode) Set(s string) error { return linkModes.Set(v, s) }

// Type names the flag's value in --help.
func (LinkMode) Type() string { return "mode" }

// MarshalText writes the name (YAML, JSON).
func (v LinkMode) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *LinkMode) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *LinkMode) UnmarshalYAML(n *yaml.Node) error { return linkModes.DecodeYAML(v, n) }

// ZoomRange is Keras' zoom_range as [lo, hi] inverse scale factors. It
// reads a single number z as [1-z, 1+z] (Keras' scalar form) or a pair,
// from flags ("0.1" or "0.9,1.1"), YAML (0.1 or [0.9, 1.1]) and JSON.
type ZoomRange [2]float64

// String writes a symmetric range as Keras' scalar z, others as "lo,hi".
func (z ZoomRange) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 12, 64) }
	if math.Abs(z[0]+z[1]-2) < 1e-12 {
		return f((z[1] - z[0]) / 2)
	}
	return f(z[0]) + "," + f(z[1])
}

// Set parses "z" or "lo,hi" (pflag.Value).
func (z *ZoomRange) Set(s string) error {
	parts := strings.Split(s, ",")
	var v [2]float64
	for i, p := range parts {
		if i > 1 {
			break
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return fmt.Errorf("zoom range %q: want a number z (for [1-z, 1+z]) or lo,hi", s)
		}
		v[i] = f
	}
	switch len(parts) {
	case 1:
		*z = ZoomRangeOf(v[0])
	case 2:
		*z = ZoomRange(v)
	default:
		return fmt.Errorf("zoom range %q: want a number z (for [1-z, 1+z]) or lo,hi", s)
	}
	return nil
}

// Type names the flag's value in --help.
func (ZoomRange) Type() string { return "z|lo,hi" }

// MarshalYAML writes the scalar form for a symmetric range.
func (z ZoomRange) MarshalYAML() (any, error) {
	if math.Abs(z[0]+z[1]-2) < 1e-12 {
		return strconv.ParseFloat(z.String(), 64)
	}
	return [2]float64(z), nil
}

// UnmarshalYAML reads a number or a pair, naming the line of a bad value.
func (z *ZoomRange) UnmarshalYAML(n *yaml.Node) error {
	var err error
	switch n.Kind {
	case yaml.ScalarNode:
		err = z.Set(n.Value)
	case yaml.SequenceNode:
		var pair []float64
		if err = n.Decode(&pair); err == nil && len(pair) != 2 {
			err = fmt.Errorf("zoom range: want [lo, hi], got %d numbers", len(pair))
		}
		if err == nil {
			*z = ZoomRange{pair[0], pair[1]}
		}
	default:
		err = fmt.Errorf("zoom range: want a number z or [lo, hi]")
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// UnmarshalJSON reads a number (scalar form) or a pair.
func (z *ZoomRange) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		*z = ZoomRangeOf(f)
		return nil
	}
	var pair [2]float64
	if err := json.Unmarshal(b, &pair); err != nil {
		return fmt.Errorf("zoom range: want a number or [lo, hi]: %w", err)
	}
	*z = pair
	return nil
}
