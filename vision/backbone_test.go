package vision_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/vision"
)

// TestArchTable: every architecture parses (from flags and YAML alike),
// unknown names are refused with the list of legal ones, and each weight
// file's name carries its SHA-256 prefix as torchvision names it.
func TestArchTable(t *testing.T) {
	names := vision.ArchNames()
	if len(names) < 4 || names[0] != "vgg16" {
		t.Fatalf("architectures %v", names)
	}
	for _, spec := range vision.Archs() {
		var a vision.Arch
		if err := a.Set(strings.ToUpper(string(spec.Arch))); err != nil || a != spec.Arch {
			t.Errorf("Set(%q): %v, %q", spec.Arch, err, a)
		}
		if err := a.UnmarshalText([]byte(spec.Arch)); err != nil || a != spec.Arch {
			t.Errorf("UnmarshalText(%q): %v", spec.Arch, err)
		}
		if len(spec.Weights) == 0 {
			t.Errorf("%s has no weights", spec.Arch)
		}
		for _, w := range spec.Weights {
			if len(w.SHA256Prefix) != 8 || !strings.HasSuffix(w.FileName(), "-"+w.SHA256Prefix+".pth") ||
				!strings.HasPrefix(w.URL, "https://download.pytorch.org/models/") || w.CropSize != 224 {
				t.Errorf("%s weights %+v", spec.Arch, w)
			}
		}
		if spec.Params <= 0 || spec.FeatureWidth <= 0 || spec.Classifier == "" || !strings.HasSuffix(spec.Classifier, ".") {
			t.Errorf("%s row %+v", spec.Arch, spec)
		}
	}
	_, err := vision.ParseArch("resnet19")
	if err == nil || !strings.Contains(err.Error(), "resnet18") {
		t.Errorf("ParseArch(resnet19): %v", err)
	}
	if _, err := vision.NewBackbone("resnet19", vision.BackboneConfig{}); err == nil {
		t.Error("NewBackbone accepted an unknown architecture")
	}
	if _, err := vision.NewBackbone(vision.ArchResNet18, vision.BackboneConfig{NumClasses: -1}); err == nil {
		t.Error("NewBackbone accepted -1 classes")
	}
}

func trainableNames(ps []torch.NamedTensor) []string {
	var names []string
	for _, p := range ps {
		if p.Tensor.RequiresGrad() {
			names = append(names, p.Name)
		}
	}
	return names
}

// TestResNetStagesFreezeAndSummary: resnet18's stages are the stem and
// layer1..layer4; freezing all but the last stage leaves layer4 and fc
// trainable, keeps the frozen batch norms in evaluation mode while
// training, and the summary's shapes and counts agree.
func TestResNetStagesFreezeAndSummary(t *testing.T) {
	b, err := vision.NewBackbone(vision.ArchResNet18, vision.BackboneConfig{NumClasses: 8, InputSize: 96})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	var stages []string
	for _, s := range b.Stages() {
		stages = append(stages, s.Name)
	}
	if got := strings.Join(stages, ","); got != "stem,layer1,layer2,layer3,layer4" {
		t.Fatalf("stages %s", got)
	}
	names, err := vision.FreezeStages(b, 1)
	if err != nil || !slices.Equal(names, []string{"layer4"}) {
		t.Fatalf("FreezeStages: %v %v", names, err)
	}
	for _, n := range trainableNames(b.Parameters()) {
		if !strings.HasPrefix(n, "layer4.") && !strings.HasPrefix(n, b.Classifier()) {
			t.Errorf("%s is trainable", n)
		}
	}
	base, head := vision.SplitTrainable(b)
	if len(head) != 2 || head[0].Name != "fc.weight" || len(base) != 15 {
		t.Errorf("split: %d base, head %v", len(base), trainableNames(head))
	}
	b.SetTraining(true)
	if bn := findModule(t, b, "bn1").(*nn.BatchNorm2d); bn.Training() {
		t.Error("the frozen stem's batch norm is in training mode")
	}
	if bn := findModule(t, b, "layer4.1.bn2").(*nn.BatchNorm2d); !bn.Training() {
		t.Error("layer4's batch norm is not in training mode")
	}
	s, err := b.Summary()
	if err != nil {
		t.Fatal(err)
	}
	var total, trainable int64
	for _, p := range b.Parameters() {
		total += p.Tensor.Numel()
		if p.Tensor.RequiresGrad() {
			trainable += p.Tensor.Numel()
		}
	}
	if s.Total != total || s.Trainable != trainable || s.Frozen != total-trainable {
		t.Errorf("summary totals %d/%d, parameters %d/%d", s.Total, s.Trainable, total, trainable)
	}
	text := s.String()
	for _, want := range []string{"stem (Conv2d+BatchNorm2d)", "(None, 64, 24, 24)", "layer4 (Sequential)", "(None, 512, 3, 3)", "features (Pool+Flatten)", "(None, 512)", "fc (Linear)", "(None, 8)", "Total params: 11,180,616"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if !bnTraining(t, b, "layer4.0.bn1") {
		t.Error("Summary did not restore training mode")
	}
}

func bnTraining(t *testing.T, b vision.Backbone, name string) bool {
	return findModule(t, b, name).(*nn.BatchNorm2d).Training()
}

// findModule returns the module of b with a torchvision name.
func findModule(t *testing.T, b vision.Backbone, name string) nn.Module {
	t.Helper()
	root, ok := b.(nn.Module)
	if !ok {
		t.Fatalf("%T is not an nn.Module", b)
	}
	var found nn.Module
	nn.Walk(root, func(n string, m nn.Module) bool {
		if n == name {
			found = m
		}
		return found == nil
	})
	if found == nil {
		t.Fatalf("no module %s", name)
	}
	return found
}

// TestVGGAsBackbone: the VGG adapter freezes what FreezeBase freezes, names
// its classifier by head, and its features have the stated width.
func TestVGGAsBackbone(t *testing.T) {
	m, err := vision.NewVGG16(vision.VGG16Config{InputSize: 32, NumClasses: 3, Head: vision.HeadTransfer, Hidden: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	want, err := m.FreezeBase(4)
	if err != nil {
		t.Fatal(err)
	}
	wantTrainable := trainableNames(m.Parameters())
	b := vision.AsBackbone(m)
	if _, err := vision.FreezeStages(b, 18); err != nil {
		t.Fatal(err)
	}
	got, err := vision.FreezeStages(b, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || !slices.Equal(trainableNames(b.Parameters()), wantTrainable) {
		t.Errorf("FreezeStages(4): %v, trainable %v; FreezeBase(4): %v, trainable %v", got, trainableNames(b.Parameters()), want, wantTrainable)
	}
	if b.Arch() != vision.ArchVGG16 || b.Classifier() != "classifier." || b.FeatureWidth() != 512 {
		t.Errorf("arch %s, classifier %s, width %d", b.Arch(), b.Classifier(), b.FeatureWidth())
	}
	scope := torch.NewScope()
	defer scope.Close()
	x, err := scope.Own(torch.Zeros([]int64{2, 3, 32, 32}, torch.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	f, err := b.Features(x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Shape(), []int64{2, 512}) {
		t.Errorf("features shape %v", f.Shape())
	}
}

// TestLoadExcludingClassifier: a 1000-class resnet18 state dict loads
// strictly into an 8-class resnet18 when the classifier is excluded, and
// the new classifier keeps its own values.
func TestLoadExcludingClassifier(t *testing.T) {
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
	dst, err := vision.NewBackbone(vision.ArchResNet18, vision.BackboneConfig{NumClasses: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Free()
	if _, err := vision.LoadStateDict(dst.StateTensors(), &file, vision.LoadOptions{Strict: true}); err == nil {
		t.Fatal("a 1000-class fc loaded into an 8-class model")
	}
	fc, _ := dst.Parameters()[len(dst.Parameters())-2].Tensor.Float32s()
	rep, err := vision.LoadStateDict(dst.StateTensors(), &file, vision.LoadOptions{Strict: true, Exclude: []string{dst.Classifier()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loaded) != len(file.Entries)-2 || len(rep.Ignored) != 4 {
		t.Errorf("loaded %d of %d, ignored %v", len(rep.Loaded), len(file.Entries), rep.Ignored)
	}
	want, _ := src.StateTensors()[0].Tensor.Float32s()
	got, _ := dst.StateTensors()[0].Tensor.Float32s()
	after, _ := dst.Parameters()[len(dst.Parameters())-2].Tensor.Float32s()
	if !slices.Equal(got, want) || !slices.Equal(after, fc) {
		t.Error("conv1 was not loaded or fc was overwritten")
	}
}
