package nn

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// NamedModule is a child module with its attribute name in PyTorch
// ("conv1", "layer1", "0").
type NamedModule struct {
	Name   string
	Module Module
}

// Parent is implemented by modules made of named children, so that a model
// can be walked module by module (to find its batch-norm layers, or a stage
// to freeze).
type Parent interface {
	NamedChildren() []NamedModule
}

// Node holds what a torch.nn.Module registers: its own parameters and its
// named children. It lists them as PyTorch's state_dict does: the own
// parameters first, then each child's tensors under "child.". A block
// embeds a Node and adds Forward.
type Node struct {
	// Params are the module's own parameters (ConvNeXt's layer_scale,
	// ViT's class_token), named without prefix.
	Params []torch.NamedTensor
	// Children are the registered submodules in registration order.
	Children []NamedModule
}

// Add registers a child under name and returns it.
func (n *Node) Add(name string, m Module) Module {
	n.Children = append(n.Children, NamedModule{Name: name, Module: m})
	return m
}

// AddParam registers one of the module's own parameters.
func (n *Node) AddParam(name string, t *torch.Tensor) {
	n.Params = append(n.Params, torch.NamedTensor{Name: name, Tensor: t})
}

// NamedChildren lists the children.
func (n *Node) NamedChildren() []NamedModule { return n.Children }

// Parameters lists the own parameters, then the children's, prefixed.
func (n *Node) Parameters() []torch.NamedTensor {
	ps := append([]torch.NamedTensor(nil), n.Params...)
	for _, c := range n.Children {
		ps = append(ps, Prefixed(c.Name, c.Module.Parameters())...)
	}
	return ps
}

// StateTensors lists the own parameters, then the children's parameters
// and buffers, prefixed: PyTorch's state_dict order.
func (n *Node) StateTensors() []torch.NamedTensor {
	ps := append([]torch.NamedTensor(nil), n.Params...)
	for _, c := range n.Children {
		ps = append(ps, Prefixed(c.Name, StateDict(c.Module))...)
	}
	return ps
}

// SetTraining sets the mode of every child.
func (n *Node) SetTraining(training bool) {
	for _, c := range n.Children {
		c.Module.SetTraining(training)
	}
}

// Walk calls fn for m and every module below it, depth first in
// registration order, with the dotted name of each ("" for m itself,
// "layer1.0.conv1", ...). Returning false from fn skips a module's children.
func Walk(m Module, fn func(name string, m Module) bool) {
	walk("", m, fn)
}

func walk(name string, m Module, fn func(string, Module) bool) {
	if !fn(name, m) {
		return
	}
	p, ok := m.(Parent)
	if !ok {
		return
	}
	for _, c := range p.NamedChildren() {
		child := c.Name
		if name != "" {
			child = name + "." + c.Name
		}
		walk(child, c.Module, fn)
	}
}

// Chain runs x through the modules in order, releasing each intermediate
// result once the next module has consumed it (autograd keeps what it
// needs). The result is always a new handle.
func Chain(x *torch.Tensor, modules ...Module) (*torch.Tensor, error) {
	cur := x
	for i, m := range modules {
		y, err := m.Forward(cur)
		if cur != x {
			cur.Free()
		}
		if err != nil {
			return nil, fmt.Errorf("step %d (%T): %w", i, m, err)
		}
		cur = y
	}
	if cur == x {
		return x.Share()
	}
	return cur, nil
}

// NamedSequential runs its named children in order, as torch.nn.Sequential
// built from an OrderedDict (ViT's heads.head): parameters are named after
// the children ("head.weight").
type NamedSequential struct{ Node }

// Forward runs the children in registration order.
func (s *NamedSequential) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	ms := make([]Module, len(s.Children))
	for i, c := range s.Children {
		ms[i] = c.Module
	}
	return Chain(x, ms...)
}
