// Package choice is the machinery of settings whose value is one of a
// fixed list of names (an architecture, a fill mode, an optimizer...). The
// package that owns such a setting defines its type and a Names table
// once; the type then parses itself from flags (pflag.Value), YAML (with
// the line of a bad value) and JSON, writes its canonical name, and lists
// its legal names for --help and errors.
package choice

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Name is one legal value of a setting: its canonical name and the other
// spellings it accepts.
type Name[T comparable] struct {
	Value   T
	Name    string
	Aliases []string
}

// Names is the table of a setting's legal values.
type Names[T comparable] struct {
	// What the setting is, for messages ("fill mode", "optimizer").
	What string
	// List holds the legal values in the order --help shows them.
	List []Name[T]
}

// Parse reads a name (case-insensitive, surrounding spaces ignored, aliases
// accepted) or says which names are legal.
func (n Names[T]) Parse(s string) (T, error) {
	key := strings.ToLower(strings.TrimSpace(s))
	for _, e := range n.List {
		if key == e.Name {
			return e.Value, nil
		}
		for _, a := range e.Aliases {
			if key == a {
				return e.Value, nil
			}
		}
	}
	var zero T
	return zero, fmt.Errorf("unknown %s %q (want %s)", n.What, s, n.Legal())
}

// Name is v's canonical name; a value outside the table is written as Go
// prints it, so that parsing it again fails with the legal names.
func (n Names[T]) Name(v T) string {
	for _, e := range n.List {
		if e.Value == v {
			return e.Name
		}
	}
	// Not fmt.Sprint(v): that would call v's String method, which is this.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	}
	return fmt.Sprintf("%#v", rv.Interface())
}

// Valid reports whether v is in the table.
func (n Names[T]) Valid(v T) bool {
	for _, e := range n.List {
		if e.Value == v {
			return true
		}
	}
	return false
}

// Strings are the canonical names in order.
func (n Names[T]) Strings() []string {
	out := make([]string, len(n.List))
	for i, e := range n.List {
		out[i] = e.Name
	}
	return out
}

// Legal lists the canonical names for messages: "a, b or c".
func (n Names[T]) Legal() string {
	names := n.Strings()
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Set parses s into *p (for pflag.Value.Set and encoding.TextUnmarshaler).
func (n Names[T]) Set(p *T, s string) error {
	v, err := n.Parse(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// DecodeYAML parses a YAML scalar into *p; a bad value is an error naming
// its line (for yaml.Unmarshaler).
func (n Names[T]) DecodeYAML(p *T, node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a %s (%s)", node.Line, n.What, n.Legal())
	}
	if err := n.Set(p, node.Value); err != nil {
		return fmt.Errorf("line %d: %w", node.Line, err)
	}
	return nil
}
