package vision_test

import (
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/vision"
)

// TestSeedModelParameterCounts checks the totals the seed's Keras model
// reports: base 14,714,688; with its head at 224x224 and 8 classes,
// 40,414,024 in all, 32,778,760 trainable and 7,635,264 frozen.
func TestSeedModelParameterCounts(t *testing.T) {
	m, err := vision.NewVGG16(vision.VGG16Config{NumClasses: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	names, err := m.FreezeBase(4)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, ","); got != "block5_conv1,block5_conv2,block5_conv3,block5_pool" {
		t.Errorf("trainable base layers %s", got)
	}
	s, err := m.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if got := s.BaseParams(); got != 14714688 {
		t.Errorf("base params %d, want 14,714,688", got)
	}
	if s.Total != 40414024 || s.Trainable != 32778760 || s.Frozen != 7635264 {
		t.Errorf("totals %d / %d trainable / %d frozen, want 40,414,024 / 32,778,760 / 7,635,264", s.Total, s.Trainable, s.Frozen)
	}
	text := s.String()
	rows := map[string][]string{
		"block1_conv1 features.0 (Conv2d+ReLU)":  {"(None, 64, 224, 224)", "1,792", "no"},
		"block5_conv3 features.28 (Conv2d+ReLU)": {"(None, 512, 14, 14)", "2,359,808", "yes"},
		"block5_pool features.30 (MaxPool2d)":    {"(None, 512, 7, 7)", " 0  -"},
		"flatten (Flatten)":                      {"(None, 25088)"},
		"classifier.0 (Linear+ReLU)":             {"(None, 1024)", "25,691,136  yes"},
		"classifier.3 (Linear)":                  {"(None, 8)", "8,200  yes"},
	}
	for _, line := range strings.Split(text, "\n") {
		for name, wants := range rows {
			if strings.HasPrefix(strings.TrimSpace(line), name+" ") {
				for _, w := range wants {
					if !strings.Contains(line, w) {
						t.Errorf("summary row %q lacks %q", line, w)
					}
				}
				delete(rows, name)
			}
		}
	}
	for name := range rows {
		t.Errorf("summary has no row %q:\n%s", name, text)
	}
	for _, want := range []string{
		"Total params: 40,414,024",
		"Trainable params: 32,778,760",
		"Non-trainable params: 7,635,264",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	base, head := m.TrainableParameters()
	if len(base) != 6 || base[0].Name != "features.24.weight" || base[5].Name != "features.28.bias" {
		t.Errorf("trainable base parameters %v", paramNames(base))
	}
	if got := strings.Join(paramNames(head), ","); got != "classifier.0.weight,classifier.0.bias,classifier.3.weight,classifier.3.bias" {
		t.Errorf("head parameters %s", got)
	}
}

func paramNames(ps []torch.NamedTensor) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestHeadsAndSizes(t *testing.T) {
	cases := []struct {
		cfg       vision.VGG16Config
		total     int64
		lastShape string
	}{
		// 64x64: the base ends at 2x2x512 = 2048 features.
		{vision.VGG16Config{InputSize: 64, NumClasses: 8}, 14714688 + 2048*1024 + 1024 + 1024*8 + 8, "(None, 8)"},
		// torchvision's own classifier with 1000 classes: 138,357,544.
		{vision.VGG16Config{NumClasses: 1000, Head: vision.HeadTorchvision}, 138357544, "(None, 1000)"},
		{vision.VGG16Config{InputSize: 96, NumClasses: 7, Head: vision.HeadGAP}, 14714688 + 512*7 + 7, "(None, 7)"},
	}
	for _, c := range cases {
		m, err := vision.NewVGG16(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.Summary()
		if err != nil {
			t.Fatal(err)
		}
		if s.Total != c.total {
			t.Errorf("%+v: %d params, want %d", c.cfg, s.Total, c.total)
		}
		if got := s.Rows[len(s.Rows)-1]; !strings.Contains(s.String(), c.lastShape) || got.OutputShape[1] != int64(c.cfg.NumClasses) {
			t.Errorf("%+v: last row %+v", c.cfg, got)
		}
		if _, err := m.FreezeBase(0); err != nil {
			t.Fatal(err)
		}
		base, _ := m.TrainableParameters()
		if len(base) != 0 {
			t.Errorf("frozen base still has %d trainable tensors", len(base))
		}
		m.Free()
	}
	if _, err := vision.NewVGG16(vision.VGG16Config{InputSize: 16, NumClasses: 2}); err == nil || !strings.Contains(err.Error(), "below the minimum of 32") {
		t.Errorf("16px input: %v", err)
	}
	if _, err := vision.ParseTrainableBaseLayers("20"); err == nil {
		t.Error("20 trainable layers accepted")
	}
	if n, err := vision.ParseTrainableBaseLayers("all"); err != nil || n != 19 {
		t.Errorf("all = %d, %v", n, err)
	}
}

// TestDropoutZeroIsHonoured: a dropout of 0 builds heads without dropout
// (it used to become the default 0.5), and 0.3 stays 0.3.
func TestDropoutZeroIsHonoured(t *testing.T) {
	for _, p := range []float64{0, 0.3} {
		for _, head := range []vision.Head{vision.HeadTransfer, vision.HeadGAP, vision.HeadTorchvision} {
			m, err := vision.NewVGG16(vision.VGG16Config{InputSize: 32, NumClasses: 3, Head: head, Hidden: 8, Dropout: p})
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			for _, c := range m.Classifier.Children {
				if d, ok := c.(*nn.Dropout); ok {
					found++
					if d.P != p {
						t.Errorf("%s head with dropout %g has a Dropout(p=%g)", head, p, d.P)
					}
				}
			}
			if found == 0 {
				t.Errorf("%s head has no Dropout layer", head)
			}
			m.Free()
		}
	}
}

// TestVGGWalkReachesEveryLayer: nn.Walk over vgg16_bn, as a Backbone,
// reaches its 13 batch norms under torchvision's names (what --sync-bn
// needs), and the torchvision head's pool and classifier.
func TestVGGWalkReachesEveryLayer(t *testing.T) {
	b, err := vision.NewBackbone(vision.ArchVGG16BN, vision.BackboneConfig{InputSize: 32, NumClasses: 3, Head: vision.HeadTorchvision})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	var bns []string
	others := map[string]bool{}
	nn.Walk(b, func(name string, m nn.Module) bool {
		if _, ok := m.(*nn.BatchNorm2d); ok {
			bns = append(bns, name)
		}
		others[name] = true
		return true
	})
	want := "features.1 features.4 features.8 features.11 features.15 features.18 features.21 features.25 features.28 features.31 features.35 features.38 features.41"
	if got := strings.Join(bns, " "); got != want {
		t.Errorf("batch norms %s, want %s", got, want)
	}
	for _, name := range []string{"avgpool", "classifier", "classifier.6"} {
		if !others[name] {
			t.Errorf("nn.Walk does not reach %s", name)
		}
	}
}
