// Package optim holds the optimizers fertorch trains with, Adam (and AdamW)
// and SGD (momentum, Nesterov), computing exactly what torch.optim computes,
// with parameter groups that have their own learning rates and state that
// can be saved into a checkpoint and restored.
package optim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/torch"
)

// Group is a set of parameters sharing a learning rate and weight decay.
// Parameter names key the optimizer state, so they must be unique.
type Group struct {
	Params      []torch.NamedTensor
	LR          float64
	WeightDecay float64
}

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Step applies one update to every parameter that has a gradient.
	Step() error
	// ZeroGrad drops every parameter's gradient.
	ZeroGrad() error
	// Groups is the number of parameter groups.
	Groups() int
	// LR is the learning rate of group g.
	LR(g int) float64
	// SetLR changes the learning rate of group g (for schedules).
	SetLR(g int, lr float64)
	// Momentum is SGD's momentum or Adam's beta1.
	Momentum() float64
	// SetMomentum changes SGD's momentum or Adam's beta1 for every group
	// (for one-cycle schedules, as PyTorch's OneCycleLR cycles them).
	SetMomentum(m float64)
	// State is everything needed to continue exactly where this optimizer is.
	State() (*State, error)
	// LoadState restores a State saved from an optimizer over the same
	// parameters.
	LoadState(*State) error
	// Free releases the optimizer's state tensors.
	Free()
}

// State is an optimizer's saved state: tensors named
// "<param>.<buffer>" and scalars such as "<param>.step" or "group.0.lr".
// Tensors are copies owned by the State; Free them when done.
type State struct {
	Kind    string
	Tensors []torch.NamedTensor
	Scalars map[string]float64
}

// Free releases the state's tensors.
func (s *State) Free() {
	if s == nil {
		return
	}
	for _, t := range s.Tensors {
		t.Tensor.Free()
	}
}

func (s *State) tensor(name string) *torch.Tensor {
	for _, t := range s.Tensors {
		if t.Name == name {
			return t.Tensor
		}
	}
	return nil
}

func checkGroups(kind string, groups []Group) error {
	if len(groups) == 0 {
		return fmt.Errorf("%s: no parameter groups", kind)
	}
	seen := map[string]bool{}
	for gi, g := range groups {
		if g.LR < 0 {
			return fmt.Errorf("%s: group %d: negative learning rate %g", kind, gi, g.LR)
		}
		if g.WeightDecay < 0 {
			return fmt.Errorf("%s: group %d: negative weight decay %g", kind, gi, g.WeightDecay)
		}
		for _, p := range g.Params {
			if p.Tensor == nil || p.Tensor.Released() {
				return fmt.Errorf("%s: group %d: parameter %q is nil or released", kind, gi, p.Name)
			}
			if seen[p.Name] {
				return fmt.Errorf("%s: parameter name %q appears twice", kind, p.Name)
			}
			seen[p.Name] = true
		}
	}
	return nil
}

func zeroGrads(groups []Group) error {
	for _, g := range groups {
		for _, p := range g.Params {
			if err := p.Tensor.ZeroGrad(); err != nil {
				return fmt.Errorf("zero_grad %s: %w", p.Name, err)
			}
		}
	}
	return nil
}

func groupScalars(groups []Group, scalars map[string]float64) {
	for i, g := range groups {
		scalars["group."+strconv.Itoa(i)+".lr"] = g.LR
		scalars["group."+strconv.Itoa(i)+".weight_decay"] = g.WeightDecay
	}
}

func loadGroupScalars(kind string, groups []Group, s *State) error {
	for i := range groups {
		lr, ok := s.Scalars["group."+strconv.Itoa(i)+".lr"]
		if !ok {
			return fmt.Errorf("%s state: missing group.%d.lr (saved with %d group(s)?)", kind, i, countGroups(s))
		}
		groups[i].LR = lr
		if wd, ok := s.Scalars["group."+strconv.Itoa(i)+".weight_decay"]; ok {
			groups[i].WeightDecay = wd
		}
	}
	if n := countGroups(s); n != len(groups) {
		return fmt.Errorf("%s state has %d parameter group(s), optimizer has %d", kind, n, len(groups))
	}
	return nil
}

func countGroups(s *State) int {
	n := 0
	for k := range s.Scalars {
		if strings.HasPrefix(k, "group.") && strings.HasSuffix(k, ".lr") {
			n++
		}
	}
	return n
}

// copyTensor returns an independent copy of t outside autograd.
func copyTensor(t *torch.Tensor) (*torch.Tensor, error) {
	d, err := t.Detach()
	if err != nil {
		return nil, err
	}
	defer d.Free()
	return d.Clone()
}

// onDeviceOf returns an independent copy of a saved state tensor with
// param's device and dtype.
func onDeviceOf(src, param *torch.Tensor) (*torch.Tensor, error) {
	t, err := src.To(param.Device(), param.DType(), false)
	if err != nil {
		return nil, err
	}
	defer t.Free()
	return copyTensor(t)
}

// checkKnown reports, in name order, the state tensors that belong to no
// parameter of the optimizer.
func checkKnown(kind string, s *State, known map[string]bool) error {
	var unknown []string
	for _, t := range s.Tensors {
		if !known[t.Name] {
			unknown = append(unknown, t.Name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("%s state: entries for unknown parameters: %v", kind, unknown)
}
