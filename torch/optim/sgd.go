package optim

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// SGDOptions are SGD's hyper-parameters beyond each group's learning rate
// and weight decay.
type SGDOptions struct {
	Momentum  float64
	Dampening float64
	Nesterov  bool
}

// SGD is torch.optim.SGD.
type SGD struct {
	groups []Group
	opts   SGDOptions
	bufs   map[string]*torch.Tensor
}

// NewSGD creates an SGD optimizer over the groups.
func NewSGD(groups []Group, opts SGDOptions) (*SGD, error) {
	if err := checkGroups("sgd", groups); err != nil {
		return nil, err
	}
	if opts.Momentum < 0 {
		return nil, fmt.Errorf("sgd: negative momentum %g", opts.Momentum)
	}
	if opts.Nesterov && (opts.Momentum <= 0 || opts.Dampening != 0) {
		return nil, fmt.Errorf("sgd: Nesterov momentum requires a momentum and zero dampening")
	}
	return &SGD{groups: groups, opts: opts, bufs: map[string]*torch.Tensor{}}, nil
}

// Step updates every parameter that has a gradient.
func (s *SGD) Step() error {
	for _, g := range s.groups {
		for _, p := range g.Params {
			if !p.Tensor.RequiresGrad() {
				continue
			}
			buf, err := torch.SGDStep(p.Tensor, s.bufs[p.Name], torch.SGDHyper{
				LR: g.LR, Momentum: s.opts.Momentum, Dampening: s.opts.Dampening,
				WeightDecay: g.WeightDecay, Nesterov: s.opts.Nesterov,
			})
			if err != nil {
				return fmt.Errorf("sgd step for %s: %w", p.Name, err)
			}
			if buf != nil {
				s.bufs[p.Name] = buf
			}
		}
	}
	return nil
}

// ZeroGrad drops every parameter's gradient.
func (s *SGD) ZeroGrad() error { return zeroGrads(s.groups) }

// Groups is the number of parameter groups.
func (s *SGD) Groups() int { return len(s.groups) }

// LR is group g's learning rate.
func (s *SGD) LR(g int) float64 { return s.groups[g].LR }

// SetLR changes group g's learning rate.
func (s *SGD) SetLR(g int, lr float64) { s.groups[g].LR = lr }

// Momentum is the momentum factor.
func (s *SGD) Momentum() float64 { return s.opts.Momentum }

// SetMomentum sets the momentum factor of later steps.
func (s *SGD) SetMomentum(m float64) { s.opts.Momentum = m }

// State copies the momentum buffers.
func (s *SGD) State() (*State, error) {
	st := &State{Kind: "sgd", Scalars: map[string]float64{}}
	groupScalars(s.groups, st.Scalars)
	for _, g := range s.groups {
		for _, p := range g.Params {
			b, ok := s.bufs[p.Name]
			if !ok {
				continue
			}
			c, err := copyTensor(b)
			if err != nil {
				st.Free()
				return nil, fmt.Errorf("sgd state %s: %w", p.Name, err)
			}
			st.Tensors = append(st.Tensors, torch.NamedTensor{Name: p.Name + ".momentum_buffer", Tensor: c})
		}
	}
	return st, nil
}

// LoadState restores momentum buffers saved by State.
func (s *SGD) LoadState(st *State) error {
	if st.Kind != "sgd" {
		return fmt.Errorf("sgd: cannot load %q optimizer state", st.Kind)
	}
	if err := loadGroupScalars("sgd", s.groups, st); err != nil {
		return err
	}
	fresh := map[string]*torch.Tensor{}
	known := map[string]bool{}
	free := func() {
		for _, t := range fresh {
			t.Free()
		}
	}
	for _, g := range s.groups {
		for _, p := range g.Params {
			name := p.Name + ".momentum_buffer"
			known[name] = true
			src := st.tensor(name)
			if src == nil {
				continue
			}
			t, err := onDeviceOf(src, p.Tensor)
			if err != nil {
				free()
				return fmt.Errorf("sgd state %s: %w", name, err)
			}
			fresh[p.Name] = t
		}
	}
	if err := checkKnown("sgd", st, known); err != nil {
		free()
		return err
	}
	s.Free()
	s.bufs = fresh
	return nil
}

// Free releases the momentum buffers.
func (s *SGD) Free() {
	for _, b := range s.bufs {
		b.Free()
	}
	s.bufs = map[string]*torch.Tensor{}
}
