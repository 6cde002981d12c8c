package vision

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/tensorfile"
)

// LoadOptions control LoadStateDict.
type LoadOptions struct {
	// Strict fails on any missing, unexpected or mis-shaped key, as
	// PyTorch's load_state_dict(strict=True); otherwise those are reported
	// and every matching tensor is loaded.
	Strict bool
	// Prefixes, when set, restrict loading to model parameters and file keys
	// starting with one of them (e.g. "features." to take only the base from
	// an ImageNet file and keep a new head). Other keys are reported as
	// Ignored, not as missing or unexpected.
	Prefixes []string
	// Exclude leaves out model parameters and file keys starting with one
	// of these prefixes (reported as Ignored): Backbone.Classifier() keeps
	// a new classifier while the rest of an ImageNet file loads strictly.
	Exclude []string
}

// Mismatch is a key present in both the model and the file with different
// shapes.
type Mismatch struct {
	Name        string
	Model, File []int64
}

// LoadReport says what a load did.
type LoadReport struct {
	Loaded     []string
	Missing    []string // model parameters the file lacks
	Unexpected []string // file keys the model lacks
	Mismatched []Mismatch
	Ignored    []string // keys outside Prefixes, in the model or the file
}

// Problems is the number of missing, unexpected and mis-shaped keys.
func (r *LoadReport) Problems() int {
	return len(r.Missing) + len(r.Unexpected) + len(r.Mismatched)
}

// String summarises the report in a few lines.
func (r *LoadReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loaded %d tensors", len(r.Loaded))
	if len(r.Ignored) > 0 {
		fmt.Fprintf(&b, ", ignored %d outside the selected prefixes", len(r.Ignored))
	}
	list := func(what string, names []string) {
		if len(names) == 0 {
			return
		}
		shown := names
		if len(shown) > 8 {
			shown = shown[:8]
		}
		fmt.Fprintf(&b, "\n  %s (%d): %s", what, len(names), strings.Join(shown, ", "))
		if len(names) > len(shown) {
			b.WriteString(", ...")
		}
	}
	list("missing from the file", r.Missing)
	list("unexpected in the file", r.Unexpected)
	for _, m := range r.Mismatched {
		fmt.Fprintf(&b, "\n  shape mismatch: %s is %v in the model, %v in the file", m.Name, m.Model, m.File)
	}
	return b.String()
}

func (o LoadOptions) selected(name string) bool {
	for _, p := range o.Exclude {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return selected(name, o.Prefixes)
}

func selected(name string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// LoadStateDict copies tensors from a weight file into the model's
// parameters by name (torchvision names), converting dtype and device as
// needed, without touching requires_grad. In strict mode nothing is loaded
// when any key is missing, unexpected or mis-shaped.
func LoadStateDict(params []torch.NamedTensor, file *tensorfile.File, opts LoadOptions) (*LoadReport, error) {
	rep := &LoadReport{}
	byName := map[string]*tensorfile.Entry{}
	for i := range file.Entries {
		e := &file.Entries[i]
		if !opts.selected(e.Name) {
			rep.Ignored = append(rep.Ignored, e.Name)
			continue
		}
		byName[e.Name] = e
	}
	type pair struct {
		param torch.NamedTensor
		entry *tensorfile.Entry
	}
	var todo []pair
	// first is the first problem in the model's parameter order.
	var first string
	known := map[string]bool{}
	for _, p := range params {
		if !opts.selected(p.Name) {
			rep.Ignored = append(rep.Ignored, p.Name)
			continue
		}
		known[p.Name] = true
		e, ok := byName[p.Name]
		if !ok {
			rep.Missing = append(rep.Missing, p.Name)
			if first == "" {
				first = p.Name + " is missing from the file"
			}
			continue
		}
		if want := p.Tensor.Shape(); !slices.Equal(want, e.Shape) {
			rep.Mismatched = append(rep.Mismatched, Mismatch{Name: p.Name, Model: want, File: e.Shape})
			if first == "" {
				first = fmt.Sprintf("%s is %v in the model but %v in the file", p.Name, want, e.Shape)
			}
			continue
		}
		todo = append(todo, pair{p, e})
	}
	for i := range file.Entries {
		name := file.Entries[i].Name
		if _, ok := byName[name]; ok && !known[name] {
			rep.Unexpected = append(rep.Unexpected, name)
		}
	}
	if first == "" && len(rep.Unexpected) > 0 {
		first = rep.Unexpected[0] + " is in the file but not in the model"
	}
	if opts.Strict && rep.Problems() > 0 {
		return rep, fmt.Errorf("strict load: %s (%d problems: a file for another architecture, head or class count?)\n%s", first, rep.Problems(), rep)
	}
	for _, p := range todo {
		src, err := torch.FromEntry(p.entry, torch.CPU())
		if err != nil {
			return rep, fmt.Errorf("loading %s: %w", p.param.Name, err)
		}
		err = p.param.Tensor.CopyFrom(src)
		src.Free()
		if err != nil {
			return rep, fmt.Errorf("loading %s: %w", p.param.Name, err)
		}
		rep.Loaded = append(rep.Loaded, p.param.Name)
	}
	return rep, nil
}

// ErrNoWeights reports a weights file that does not exist.
var ErrNoWeights = errors.New("weights file not found")

// ReadWeights reads a weight file in any supported format (torchvision
// .pth, legacy or zip, read as data only; safetensors), detected from its
// content.
func ReadWeights(path string) (*tensorfile.File, error) {
	f, err := tensorfile.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	return f, nil
}
