package optim

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// AdamOptions are Adam's hyper-parameters beyond each group's learning rate
// and weight decay.
type AdamOptions struct {
	Beta1, Beta2 float64
	Eps          float64
	// AMSGrad uses the maximum of past squared-gradient averages.
	AMSGrad bool
	// Decoupled applies weight decay to the parameters directly, as AdamW
	// does, instead of adding it to the gradient.
	Decoupled bool
}

// DefaultAdamOptions are PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
// (Keras uses eps 1e-7.)
func DefaultAdamOptions() AdamOptions { return AdamOptions{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

type adamState struct {
	step                      int64
	expAvg, expAvgSq, maxSqAv *torch.Tensor
}

// Adam is torch.optim.Adam (or AdamW with Decoupled).
type Adam struct {
	groups []Group
	opts   AdamOptions
	state  map[string]*adamState
}

// NewAdam creates an Adam optimizer over the groups.
func NewAdam(groups []Group, opts AdamOptions) (*Adam, error) {
	if err := checkGroups("adam", groups); err != nil {
		return nil, err
	}
	if opts.Beta1 < 0 || opts.Beta1 >= 1 || opts.Beta2 < 0 || opts.Beta2 >= 1 {
		return nil, fmt.Errorf("adam: betas must be in [0, 1), got (%g, %g)", opts.Beta1, opts.Beta2)
	}
	if opts.Eps < 0 {
		return nil, fmt.Errorf("adam: negative eps %g", opts.Eps)
	}
	return &Adam{groups: groups, opts: opts, state: map[string]*adamState{}}, nil
}

func (a *Adam) kind() string {
	if a.opts.Decoupled {
		return "adamw"
	}
	return "adam"
}

func zerosLike(p *torch.Tensor) (*torch.Tensor, error) {
	return torch.Zeros(p.Shape(), torch.Options{DType: p.DType(), Device: p.Device()})
}

func (a *Adam) stateFor(p torch.NamedTensor) (*adamState, error) {
	if s, ok := a.state[p.Name]; ok {
		return s, nil
	}
	s := &adamState{}
	var err error
	if s.expAvg, err = zerosLike(p.Tensor); err != nil {
		return nil, err
	}
	if s.expAvgSq, err = zerosLike(p.Tensor); err != nil {
		s.expAvg.Free()
		return nil, err
	}
	if a.opts.AMSGrad {
		if s.maxSqAv, err = zerosLike(p.Tensor); err != nil {
			s.expAvg.Free()
			s.expAvgSq.Free()
			return nil, err
		}
	}
	a.state[p.Name] = s
	return s, nil
}

// Step updates every parameter that has a gradient.
func (a *Adam) Step() error {
	for _, g := range a.groups {
		for _, p := range g.Params {
			if !p.Tensor.RequiresGrad() {
				continue
			}
			s, err := a.stateFor(p)
			if err != nil {
				return fmt.Errorf("%s state for %s: %w", a.kind(), p.Name, err)
			}
			updated, err := torch.AdamStep(p.Tensor, s.expAvg, s.expAvgSq, s.maxSqAv, s.step+1, torch.AdamHyper{
				LR: g.LR, Beta1: a.opts.Beta1, Beta2: a.opts.Beta2, Eps: a.opts.Eps,
				WeightDecay: g.WeightDecay, Decoupled: a.opts.Decoupled,
			})
			if err != nil {
				return fmt.Errorf("%s step for %s: %w", a.kind(), p.Name, err)
			}
			if updated {
				s.step++
			}
		}
	}
	return nil
}

// ZeroGrad drops every parameter's gradient.
func (a *Adam) ZeroGrad() error { return zeroGrads(a.groups) }

// Groups is the number of parameter groups.
func (a *Adam) Groups() int { return len(a.groups) }

// LR is group g's learning rate.
func (a *Adam) LR(g int) float64 { return a.groups[g].LR }

// SetLR changes group g's learning rate.
func (a *Adam) SetLR(g int, lr float64) { a.groups[g].LR = lr }

// Momentum is beta1.
func (a *Adam) Momentum() float64 { return a.opts.Beta1 }

// SetMomentum sets beta1; the bias correction of later steps uses it, as
// torch.optim.Adam's does when a scheduler changes betas[0].
func (a *Adam) SetMomentum(m float64) { a.opts.Beta1 = m }

// State copies the moments and step counts.
func (a *Adam) State() (*State, error) {
	st := &State{Kind: a.kind(), Scalars: map[string]float64{}}
	groupScalars(a.groups, st.Scalars)
	for _, g := range a.groups {
		for _, p := range g.Params {
			s, ok := a.state[p.Name]
			if !ok {
				continue
			}
			st.Scalars[p.Name+".step"] = float64(s.step)
			bufs := []torch.NamedTensor{{Name: p.Name + ".exp_avg", Tensor: s.expAvg}, {Name: p.Name + ".exp_avg_sq", Tensor: s.expAvgSq}}
			if s.maxSqAv != nil {
				bufs = append(bufs, torch.NamedTensor{Name: p.Name + ".max_exp_avg_sq", Tensor: s.maxSqAv})
			}
			for _, b := range bufs {
				c, err := copyTensor(b.Tensor)
				if err != nil {
					st.Free()
					return nil, fmt.Errorf("%s state %s: %w", a.kind(), b.Name, err)
				}
				st.Tensors = append(st.Tensors, torch.NamedTensor{Name: b.Name, Tensor: c})
			}
		}
	}
	return st, nil
}

// LoadState restores moments and step counts saved by State; tensors are
// copied onto each parameter's device.
func (a *Adam) LoadState(st *State) error {
	if st.Kind != a.kind() {
		return fmt.Errorf("%s: cannot load %q optimizer state", a.kind(), st.Kind)
	}
	if err := loadGroupScalars(a.kind(), a.groups, st); err != nil {
		return err
	}
	known := map[string]bool{}
	fresh := map[string]*adamState{}
	for _, g := range a.groups {
		for _, p := range g.Params {
			step, ok := st.Scalars[p.Name+".step"]
			if !ok {
				continue
			}
			s := &adamState{step: int64(step)}
			names := []string{".exp_avg", ".exp_avg_sq"}
			if a.opts.AMSGrad {
				names = append(names, ".max_exp_avg_sq")
			}
			for i, suffix := range names {
				known[p.Name+suffix] = true
				src := st.tensor(p.Name + suffix)
				if src == nil {
					freeAdam(fresh)
					return fmt.Errorf("%s state: missing %s%s", a.kind(), p.Name, suffix)
				}
				t, err := onDeviceOf(src, p.Tensor)
				if err != nil {
					freeAdam(fresh)
					return fmt.Errorf("%s state %s%s: %w", a.kind(), p.Name, suffix, err)
				}
				switch i {
				case 0:
					s.expAvg = t
				case 1:
					s.expAvgSq = t
				default:
					s.maxSqAv = t
				}
			}
			fresh[p.Name] = s
		}
	}
	if err := checkKnown(a.kind(), st, known); err != nil {
		freeAdam(fresh)
		return err
	}
	freeAdam(a.state)
	a.state = fresh
	return nil
}

func freeAdam(m map[string]*adamState) {
	for _, s := range m {
		s.expAvg.Free()
		s.expAvgSq.Free()
		s.maxSqAv.Free()
	}
}

// Free releases the moment tensors.
func (a *Adam) Free() {
	freeAdam(a.state)
	a.state = map[string]*adamState{}
}
