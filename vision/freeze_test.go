package vision_test

import (
	"bytes"
	"testing"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
	"github.com/fertorch/fertorch/vision"
)

// TestFrozenParametersDoNotMove: after one Adam step with the seed's "last
// 4 trainable", every frozen parameter is bit-identical, every trainable one
// changed, and frozen parameters got no gradient.
func TestFrozenParametersDoNotMove(t *testing.T) {
	if err := torch.ManualSeed(5); err != nil {
		t.Fatal(err)
	}
	m, err := vision.NewVGG16(vision.VGG16Config{InputSize: 64, NumClasses: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	if _, err := m.FreezeBase(4); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, p := range m.Parameters() {
		b, err := p.Tensor.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		before[p.Name] = b
	}
	base, head := m.TrainableParameters()
	opt, err := optim.NewAdam([]optim.Group{{Params: base, LR: 1e-4}, {Params: head, LR: 1e-3}}, optim.DefaultAdamOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Free()
	scope := torch.NewScope()
	defer scope.Close()
	x, err := scope.Own(torch.Randn([]int64{2, 3, 64, 64}, torch.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	y, _ := scope.Own(torch.FromInt64s([]int64{1, 6}, 2))
	logits, err := m.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := logits.CrossEntropy(y, torch.CrossEntropyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	if err := opt.Step(); err != nil {
		t.Fatal(err)
	}
	frozen, changed := 0, 0
	for _, p := range m.Parameters() {
		after, err := p.Tensor.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		same := bytes.Equal(before[p.Name], after)
		g, err := p.Tensor.Grad()
		if err != nil {
			t.Fatal(err)
		}
		if p.Tensor.RequiresGrad() {
			changed++
			if same {
				t.Errorf("trainable %s did not change", p.Name)
			}
			if g == nil {
				t.Errorf("trainable %s has no gradient", p.Name)
			}
		} else {
			frozen++
			if !same {
				t.Errorf("frozen %s changed", p.Name)
			}
			if g != nil {
				t.Errorf("frozen %s has a gradient", p.Name)
			}
		}
		g.Free()
	}
	// 10 frozen convolutions (weight+bias) below block5; block5 and the head train.
	if frozen != 20 || changed != 10 {
		t.Errorf("%d frozen and %d trainable parameter tensors, want 20 and 10", frozen, changed)
	}
}
