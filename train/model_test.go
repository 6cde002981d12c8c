package train

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/vision"
)

// TestFrozenStagesStayPut: one Adam training step through the Stepper on
// resnet18 and mobilenet_v3_large with the last stages trainable leaves
// every tensor of the frozen stages as it was, batch-norm running
// statistics included (their batch norms stay in evaluation mode), while
// the trainable stages' weights and statistics move.
func TestFrozenStagesStayPut(t *testing.T) {
	for _, c := range []struct {
		arch      vision.Arch
		trainable string
		frozen    []string // name prefixes of frozen stages
		trains    []string // of trainable ones
	}{
		{vision.ArchResNet18, "1", []string{"bn1.", "layer1.", "layer3."}, []string{"layer4.", "fc."}},
		{vision.ArchMobileNetV3Large, "2", []string{"features.0.", "features.14."}, []string{"features.15.", "features.16.", "classifier."}},
	} {
		m := DefaultConfig().Model
		m.Arch, m.Head, m.InputSize, m.TrainableBaseLayers = c.arch, vision.HeadTorchvision, 32, c.trainable
		if err := torch.ManualSeed(3); err != nil {
			t.Fatal(err)
		}
		net, err := BuildNet(m, 4)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := freezeNet(net, m.TrainableBaseLayers); err != nil {
			t.Fatal(err)
		}
		base, head := vision.SplitTrainable(net)
		opt, err := optim.NewAdam([]optim.Group{{Params: base, LR: 1e-2}, {Params: head, LR: 1e-2}}, optim.AdamOptions{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewStepper(net, opt, LossConfig{}, torch.CPU(), FP32)
		if err != nil {
			t.Fatal(err)
		}
		before := map[string][]float32{}
		for _, p := range net.StateTensors() {
			if p.Tensor.DType() == torch.Float32 {
				before[p.Name], _ = p.Tensor.Float32s()
			}
		}
		net.SetTraining(true)
		scope := torch.NewScope()
		rng := rand.New(rand.NewPCG(1, 2))
		x := make([]float32, 4*3*32*32)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		xt, _ := scope.Own(torch.FromFloat32s(x, 4, 3, 32, 32))
		yt, _ := scope.Own(torch.FromInt64s([]int64{0, 1, 2, 3}, 4))
		if _, err := s.TrainStep(xt, yt); err != nil {
			t.Fatal(err)
		}
		scope.Close()
		moved := map[string]bool{}
		for _, p := range net.StateTensors() {
			if p.Tensor.DType() != torch.Float32 {
				continue
			}
			after, _ := p.Tensor.Float32s()
			moved[p.Name] = !slices.Equal(after, before[p.Name])
		}
		check := func(prefixes []string, want bool, kinds ...string) {
			for _, prefix := range prefixes {
				for _, kind := range kinds {
					n, wrong := 0, []string{}
					for name, mv := range moved {
						if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, kind) {
							n++
							if mv != want {
								wrong = append(wrong, name)
							}
						}
					}
					if n == 0 {
						t.Errorf("%s: no %s*%s tensors", c.arch, prefix, kind)
					}
					if len(wrong) > 0 {
						t.Errorf("%s: moved=%v expected for %s*%s, not so for %v", c.arch, want, prefix, kind, wrong)
					}
				}
			}
		}
		check(c.frozen, false, "weight", "running_mean", "running_var")
		check(c.trains, true, "weight")
		// The trainable stages' batch norms update their statistics.
		check(c.trains[:len(c.trains)-1], true, "running_mean", "running_var")
		opt.Free()
		net.Free()
	}
}

// TestPretrainedLoadsAllButTheNewHead: an ImageNet resnet18 state dict
// loads strictly into every head's network but the tensors of the new head
// (torchvision's fc for the torchvision head, the whole fc otherwise; all of
// it with 1000 classes); mobilenet_v3_large's torchvision head keeps its
// pretrained first classifier layer. Another architecture's file is refused.
func TestPretrainedLoadsAllButTheNewHead(t *testing.T) {
	src, err := vision.NewBackbone(vision.ArchResNet18, vision.BackboneConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Free()
	entries, err := torch.ToEntries(src.StateTensors())
	if err != nil {
		t.Fatal(err)
	}
	file := tensorfile.File{Entries: entries}
	cases := []struct {
		arch    vision.Arch
		head    vision.Head
		classes int
		exclude []string
		loaded  int
	}{
		{vision.ArchResNet18, vision.HeadTransfer, 8, []string{"fc."}, len(file.Entries) - 2},
		{vision.ArchResNet18, vision.HeadGAP, 8, []string{"fc."}, len(file.Entries) - 2},
		{vision.ArchResNet18, vision.HeadTorchvision, 8, []string{"fc."}, len(file.Entries) - 2},
		{vision.ArchResNet18, vision.HeadTorchvision, 1000, nil, len(file.Entries)},
		{vision.ArchMobileNetV3Large, vision.HeadTorchvision, 8, []string{"classifier.3."}, -1},
	}
	for _, c := range cases {
		m := DefaultConfig().Model
		m.Arch, m.Head, m.InputSize = c.arch, c.head, 32
		net, err := BuildNet(m, c.classes)
		if err != nil {
			t.Fatal(err)
		}
		opts := pretrainedOptions(net, c.classes)
		if !slices.Equal(opts.Exclude, c.exclude) || !opts.Strict {
			t.Errorf("%s %s head, %d classes: options %+v, want exclude %v", c.arch, c.head, c.classes, opts, c.exclude)
		}
		if c.loaded >= 0 {
			rep, err := vision.LoadStateDict(net.StateTensors(), &file, opts)
			if err != nil || len(rep.Loaded) != c.loaded {
				t.Errorf("%s %s head, %d classes: %v, loaded %d of %d", c.arch, c.head, c.classes, err, len(rep.Loaded), c.loaded)
			}
		} else if _, err := vision.LoadStateDict(net.StateTensors(), &file, opts); err == nil {
			t.Errorf("a resnet18 file loaded into %s", c.arch)
		}
		net.Free()
	}
}
