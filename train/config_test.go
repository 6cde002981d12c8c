package train

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/vision"
	"github.com/spf13/pflag"
)

func TestDefaultsAreTheSeedSettings(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Model.InputSize != 224 || c.Train.BatchSize != 64 || c.Train.Epochs != 10 || c.Train.Optimizer != "adam" ||
		c.Train.ClassWeightCap != 3 || c.Model.TrainableBaseLayers != "4" || c.Model.Hidden != 1024 || c.Model.Dropout != 0.5 {
		t.Errorf("defaults differ from the seed: %+v", c)
	}
	a := c.Augment
	if a.RotationRange != 20 || a.WidthShiftRange != 0.1 || a.HeightShiftRange != 0.1 || a.ShearRange != 0.01 ||
		a.ZoomRange != data.ZoomRangeOf(0.1) || !a.HorizontalFlip || a.FillMode != data.FillConstant || a.Cval != 0 || a.Semantics != data.Legacy {
		t.Errorf("augmentation defaults differ from the seed: %+v", a)
	}
}

func TestConfigFileThenFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(path, []byte("train:\n  epochs: 3\n  lr: 0.0005\nmodel:\n  input_size: 64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c := DefaultConfig()
	RegisterFlags(fs, &c)
	if err := fs.Parse([]string{"--epochs", "5", "--device=cpu", "--augment=false"}); err != nil {
		t.Fatal(err)
	}
	got, err := ResolveConfig(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	// Flags win over the file, the file over the defaults.
	if got.Train.Epochs != 5 || got.Train.LR != 0.0005 || got.Model.InputSize != 64 || got.Train.Device != "cpu" || got.Augment.Enabled || got.Train.BatchSize != 64 {
		t.Errorf("resolved %+v", got)
	}
	// The saved config reloads to the same values.
	saved := filepath.Join(dir, "effective.yaml")
	if err := got.Save(saved); err != nil {
		t.Fatal(err)
	}
	back, err := LoadConfig(saved)
	if err != nil {
		t.Fatal(err)
	}
	got.Model.weightsGiven = true // the saved file names the weights
	if back != got {
		t.Errorf("round trip changed the config:\n%+v\n%+v", got, back)
	}
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("train:\n  epochs: 3\n  learning_rate: 0.1\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "line 3: field learning_rate not found") || !strings.Contains(err.Error(), path) {
		t.Errorf("unknown key: %v", err)
	}
	os.WriteFile(path, []byte("train:\n  epochs: ten\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("wrong type: %v", err)
	}
	c := DefaultConfig()
	c.Train.Optimizer = "rmsprop"
	c.Train.BatchSize = 0
	c.Model.TrainableBaseLayers = "25"
	err := c.Validate()
	for _, want := range []string{
		`train.optimizer: unknown optimizer "rmsprop" (want adam, adamw or sgd)`,
		"train.batch_size 0 must be at least 1",
		"model.trainable_base_layers: ",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v lacks %q", err, want)
		}
	}
}

// TestNamedSettingsParseThemselves: every setting that is a name reads
// from YAML with the line of a bad value, from flags with the legal names,
// and survives the checkpoint's JSON.
func TestNamedSettingsParseThemselves(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ yaml, want string }{
		{"model:\n  arch: vgg19\n", `line 2: unknown architecture "vgg19" (want vgg16, vgg16_bn, resnet18, resnet50, mobilenet_v3_large, efficientnet_b0, convnext_tiny or vit_b_16)`},
		{"model:\n  head: dense\n", `line 2: unknown head "dense" (want transfer, torchvision or gap)`},
		{"model:\n  normalization: zscore\n", `line 2: unknown normalization "zscore" (want imagenet, rescale or none)`},
		{"model:\n  resize: cubic\n", `line 2: unknown resize method "cubic" (want nearest, bilinear or area)`},
		{"augment:\n  fill_mode: mirror\n", `line 2: unknown fill mode "mirror" (want constant, nearest, reflect or wrap)`},
		{"augment:\n  semantics: new\n", `line 2: unknown augmentation semantics "new" (want legacy or fixed)`},
		{"augment:\n  zoom_range: [0.9]\n", `line 2: zoom range: want [lo, hi], got 1 numbers`},
		{"train:\n  optimizer: rmsprop\n", `line 2: unknown optimizer "rmsprop" (want adam, adamw or sgd)`},
		{"train:\n  schedule: linear\n", `line 2: unknown schedule "linear" (want none, step, cosine, plateau or one-cycle)`},
		{"train:\n  precision: fp8\n", `line 2: unknown precision "fp8" (want fp32, bf16 or fp16)`},
		{"train:\n  best_metric: val_f1\n", `line 2: unknown metric "val_f1" (want val_accuracy, val_loss, val_balanced_accuracy or val_macro_f1)`},
		{"train:\n  loss_normalization: mean\n", `line 2: unknown loss normalization "mean" (want keras or pytorch)`},
		{"train:\n  device: tpu\n", `line 2: unknown device "tpu" (want auto, cpu, cuda or cuda:N)`},
		{"train:\n  onednn: false\n", `line 2: unknown oneDNN mode "false" (want auto, on or off)`},
		{"train:\n\n  device: cuda:x\n", `line 3: bad device "cuda:x": want cuda:N with N a device index`},
	}
	for _, c := range cases {
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte(c.yaml), 0o644)
		_, err := LoadConfig(path)
		if err == nil || err.Error() != "config "+path+": "+c.want {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
	// Good values, aliases and both zoom forms.
	path := filepath.Join(dir, "good.yaml")
	os.WriteFile(path, []byte("model:\n  arch: VGG16_BN\n  resize: linear\naugment:\n  zoom_range: [0.8, 1.3]\ntrain:\n  device: CUDA:1\n  precision: bfloat16\n"), 0o644)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Arch != vision.ArchVGG16BN || c.Model.Resize != data.ResizeBilinear || c.Augment.ZoomRange != (data.ZoomRange{0.8, 1.3}) ||
		c.Train.Device != "cuda:1" || c.Train.Precision != BF16 {
		t.Errorf("parsed %+v %+v %+v", c.Model, c.Augment, c.Train)
	}
	// Flags: the legal names in --help and in the error.
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	RegisterFlags(fs, &c)
	err = fs.Parse([]string{"--fill-mode", "mirror"})
	if err == nil || !strings.Contains(err.Error(), `unknown fill mode "mirror" (want constant, nearest, reflect or wrap)`) {
		t.Errorf("--fill-mode mirror: %v", err)
	}
	if usage := fs.FlagUsages(); !strings.Contains(usage, "--schedule schedule") || !strings.Contains(usage, "none, step, cosine, plateau or one-cycle") {
		t.Errorf("--help does not list the schedules:\n%s", usage)
	}
	if err := fs.Parse([]string{"--zoom-range", "0.2"}); err != nil || c.Augment.ZoomRange != data.ZoomRangeOf(0.2) {
		t.Errorf("--zoom-range 0.2: %v %v", c.Augment.ZoomRange, err)
	}
	// JSON (the checkpoint's state) round trip, and the older checkpoints'
	// scalar zoom_range.
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"FillMode":"constant"`) || !strings.Contains(string(raw), `"Arch":"vgg16_bn"`) {
		t.Errorf("JSON does not use the names: %s", raw)
	}
	var back Config
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	back.Model.weightsGiven = c.Model.weightsGiven
	if back != c {
		t.Errorf("JSON round trip:\n%+v\n%+v", c, back)
	}
	var old AugmentConfig
	if err := json.Unmarshal([]byte(`{"Enabled":true,"ZoomRange":0.1,"FillMode":"reflect","Semantics":"fixed"}`), &old); err != nil ||
		old.ZoomRange != data.ZoomRangeOf(0.1) || old.FillMode != data.FillReflect || old.Semantics != data.Fixed {
		t.Errorf("older checkpoint's augment: %+v %v", old, err)
	}
}

// TestSeedConfigFileIsTheDefaults keeps configs/seed.yaml, the documented
// settings, identical to DefaultConfig.
func TestSeedConfigFileIsTheDefaults(t *testing.T) {
	got, err := LoadConfig("../configs/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Model.weightsGiven = true
	if got != want {
		t.Errorf("configs/seed.yaml differs from DefaultConfig:\n%+v\n%+v", got, want)
	}
}

// TestArchSettings: trainable_base_layers counts each architecture's own
// stages (VGG: Keras' 19 base layers), and what an architecture or head
// cannot honour is refused with the reason.
func TestArchSettings(t *testing.T) {
	for _, spec := range vision.Archs() {
		c := DefaultConfig()
		c.Model.Arch = spec.Arch
		c.Model.TrainableBaseLayers = "all"
		if err := c.Validate(); err != nil {
			t.Errorf("%s with the defaults: %v", spec.Arch, err)
		}
		c.Model.TrainableBaseLayers = strconv.Itoa(spec.Stages + 1)
		want := fmt.Sprintf("has %d stages", spec.Stages)
		if isVGG(spec.Arch) {
			want = "want a number from 0 to 19"
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s with %s trainable: %v, want %q", spec.Arch, c.Model.TrainableBaseLayers, err, want)
		}
	}
	cases := []struct {
		edit func(m *ModelConfig)
		want string // "" for valid
	}{
		{func(m *ModelConfig) { m.Arch, m.InputSize = vision.ArchViTB16, 40 }, "model.input_size 40: vit_b_16 takes multiples of its 16-pixel patches"},
		{func(m *ModelConfig) { m.Arch, m.InputSize = vision.ArchViTB16, 64 }, ""},
		{func(m *ModelConfig) { m.Arch, m.Head, m.Hidden = vision.ArchResNet18, vision.HeadTorchvision, 512 }, "model.hidden 512 sets the transfer head's width; the torchvision head has none"},
		{func(m *ModelConfig) { m.Arch, m.Head, m.Hidden = vision.ArchVGG16, vision.HeadGAP, 512 }, "model.hidden 512 sets the transfer head's width; the gap head has none"},
		{func(m *ModelConfig) {
			m.Arch, m.Head, m.Dropout = vision.ArchMobileNetV3Large, vision.HeadTorchvision, 0.3
		}, "model.dropout 0.3: mobilenet_v3_large's torchvision head keeps torchvision's dropout"},
		{func(m *ModelConfig) { m.Arch, m.Head, m.Dropout = vision.ArchMobileNetV3Large, vision.HeadGAP, 0.3 }, ""},
		{func(m *ModelConfig) { m.Arch, m.Head, m.Dropout = vision.ArchVGG16, vision.HeadTorchvision, 0.3 }, ""},
	}
	for i, tc := range cases {
		c := DefaultConfig()
		tc.edit(&c.Model)
		err := c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("case %d: %v, want %q", i, err, tc.want)
		}
	}
}
