package choice

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type color int

const (
	red color = iota
	green
)

var colors = Names[color]{What: "color", List: []Name[color]{
	{Value: red, Name: "red", Aliases: []string{"rot"}},
	{Value: green, Name: "green"},
}}

func TestParseNamesAndErrors(t *testing.T) {
	for in, want := range map[string]color{"red": red, " RED ": red, "rot": red, "Green": green} {
		if got, err := colors.Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := colors.Parse("blue"); err == nil || err.Error() != `unknown color "blue" (want red or green)` {
		t.Errorf("Parse(blue): %v", err)
	}
	if got := colors.Name(green); got != "green" {
		t.Errorf("Name(green) = %q", got)
	}
	if got := colors.Name(color(7)); got != "7" {
		t.Errorf("Name(7) = %q, want the raw value", got)
	}
	if colors.Valid(color(7)) || !colors.Valid(red) {
		t.Error("Valid")
	}
	three := Names[string]{What: "x", List: []Name[string]{{Value: "a", Name: "a"}, {Value: "b", Name: "b"}, {Value: "c", Name: "c"}}}
	if got := three.Legal(); got != "a, b or c" {
		t.Errorf("Legal() = %q", got)
	}
}

func TestDecodeYAMLNamesTheLine(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\nb: blue\nc: [red]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Content[0]
	var c color
	if err := colors.DecodeYAML(&c, m.Content[3]); err == nil || err.Error() != `line 2: unknown color "blue" (want red or green)` {
		t.Errorf("scalar: %v", err)
	}
	if err := colors.DecodeYAML(&c, m.Content[5]); err == nil || !strings.HasPrefix(err.Error(), "line 3: want a color") {
		t.Errorf("sequence: %v", err)
	}
	if err := colors.Set(&c, "green"); err != nil || c != green {
		t.Errorf("Set: %v %v", c, err)
	}
}
