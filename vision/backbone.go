package vision

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// Arch names an image-classification architecture of the table (Archs),
// spelled as torchvision's model builder ("resnet50"). It parses itself
// from YAML (encoding.TextUnmarshaler) and from flags (pflag.Value).
type Arch string

// The architectures, as torchvision 0.14 defines them.
const (
	ArchVGG16            Arch = "vgg16"
	ArchVGG16BN          Arch = "vgg16_bn"
	ArchResNet18         Arch = "resnet18"
	ArchResNet50         Arch = "resnet50"
	ArchMobileNetV3Large Arch = "mobilenet_v3_large"
	ArchEfficientNetB0   Arch = "efficientnet_b0"
	ArchConvNeXtTiny     Arch = "convnext_tiny"
	ArchViTB16           Arch = "vit_b_16"
)

// ArchNames lists the legal architecture names in table order.
func ArchNames() []string {
	var names []string
	for _, s := range archTable {
		names = append(names, string(s.Arch))
	}
	return names
}

// ParseArch reads an architecture name (case-insensitive).
func ParseArch(s string) (Arch, error) { return archNames().Parse(s) }

// String is the name.
func (a Arch) String() string { return string(a) }

// Set parses a flag value (pflag.Value).
func (a *Arch) Set(s string) error {
	v, err := ParseArch(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Type names the flag's value type (pflag.Value).
func (a *Arch) Type() string { return "arch" }

// UnmarshalText parses a YAML or JSON value.
func (a *Arch) UnmarshalText(b []byte) error { return a.Set(string(b)) }

// MarshalText writes the name.
func (a Arch) MarshalText() ([]byte, error) { return []byte(a), nil }

// Weights is one of torchvision's published weight files for an
// architecture.
type Weights struct {
	// Name is torchvision's enum member ("IMAGENET1K_V1").
	Name string
	// URL is where torchvision downloads the file from.
	URL string
	// SHA256Prefix is the first 8 hex digits of the file's SHA-256, as
	// torchvision writes them in the file name (resnet18-f37072fd.pth) and
	// checks them after download.
	SHA256Prefix string
	// Normalization is what inputs in [0, 1] must be normalised with.
	Normalization Normalization
	// ResizeSize and CropSize are torchvision's evaluation transforms:
	// resize the short side, then centre-crop.
	ResizeSize, CropSize int
}

// FileName is the file's name in torchvision's cache ("resnet18-f37072fd.pth").
func (w Weights) FileName() string { return path.Base(w.URL) }

// ArchSpec is one row of the architecture table.
type ArchSpec struct {
	Arch Arch
	// Weights are torchvision's ImageNet-1k weights; the first is
	// torchvision's DEFAULT.
	Weights []Weights
	// FeatureWidth is the width of Backbone.Features at the default input
	// size.
	FeatureWidth int64
	// Params is the parameter count with 1000 classes, as torchvision's.
	Params int64
	// MinInputSize is the smallest square input the network accepts (ViT
	// takes multiples of it, fixed when it is built: BackboneConfig's
	// InputSize; its ImageNet weights need 224).
	MinInputSize int
	// Classifier is the name prefix of the final linear layer, the only
	// parameters whose shapes depend on the number of classes.
	Classifier string
	// HeadModule is the module that the transfer and gap heads replace, as
	// a PyTorch user replaces it (`model.fc = nn.Sequential(...)`): fc,
	// classifier, classifier.2 (ConvNeXt keeps its LayerNorm2d and Flatten)
	// or heads.
	HeadModule string
	// Stages is the number of stages of the base, the range of
	// trainable_base_layers (VGG: Keras' 19 base layers, the input layer
	// included).
	Stages int
	build  func(BackboneConfig) (Backbone, error)
}

func imagenet(name, url, sha string, resize int) Weights {
	return Weights{Name: name, URL: url, SHA256Prefix: sha, Normalization: ImageNetNormalization(), ResizeSize: resize, CropSize: 224}
}

const modelsURL = "https://download.pytorch.org/models/"

// archTable is every architecture fertorch builds, with torchvision 0.14's
// weight files.
var archTable = []ArchSpec{
	{Arch: ArchVGG16, FeatureWidth: 25088, Params: 138357544, MinInputSize: 32, Classifier: "classifier.6.", HeadModule: "classifier", Stages: 19,
		Weights: []Weights{imagenet("IMAGENET1K_V1", modelsURL+"vgg16-397923af.pth", "397923af", 256)},
		build:   func(c BackboneConfig) (Backbone, error) { return newVGGBackbone(c, false) }},
	{Arch: ArchVGG16BN, FeatureWidth: 25088, Params: 138365992, MinInputSize: 32, Classifier: "classifier.6.", HeadModule: "classifier", Stages: 19,
		Weights: []Weights{imagenet("IMAGENET1K_V1", modelsURL+"vgg16_bn-6c64b313.pth", "6c64b313", 256)},
		build:   func(c BackboneConfig) (Backbone, error) { return newVGGBackbone(c, true) }},
	{Arch: ArchResNet18, FeatureWidth: 512, Params: 11689512, MinInputSize: 1, Classifier: "fc.", HeadModule: "fc", Stages: 5,
		Weights: []Weights{imagenet("IMAGENET1K_V1", modelsURL+"resnet18-f37072fd.pth", "f37072fd", 256)},
		build:   func(c BackboneConfig) (Backbone, error) { return NewResNet(ArchResNet18, c) }},
	{Arch: ArchResNet50, FeatureWidth: 2048, Params: 25557032, MinInputSize: 1, Classifier: "fc.", HeadModule: "fc", Stages: 5,
		Weights: []Weights{
			imagenet("IMAGENET1K_V2", modelsURL+"resnet50-11ad3fa6.pth", "11ad3fa6", 232),
			imagenet("IMAGENET1K_V1", modelsURL+"resnet50-0676ba61.pth", "0676ba61", 256),
		},
		build: func(c BackboneConfig) (Backbone, error) { return NewResNet(ArchResNet50, c) }},
	{Arch: ArchMobileNetV3Large, FeatureWidth: 960, Params: 5483032, MinInputSize: 1, Classifier: "classifier.3.", HeadModule: "classifier", Stages: 17,
		Weights: []Weights{
			imagenet("IMAGENET1K_V2", modelsURL+"mobilenet_v3_large-5c1a4163.pth", "5c1a4163", 232),
			imagenet("IMAGENET1K_V1", modelsURL+"mobilenet_v3_large-8738ca79.pth", "8738ca79", 256),
		},
		build: newMobileNetV3Large},
	{Arch: ArchEfficientNetB0, FeatureWidth: 1280, Params: 5288548, MinInputSize: 1, Classifier: "classifier.1.", HeadModule: "classifier", Stages: 9,
		Weights: []Weights{imagenet("IMAGENET1K_V1", modelsURL+"efficientnet_b0_rwightman-3dd342df.pth", "3dd342df", 256)},
		build:   newEfficientNetB0},
	{Arch: ArchConvNeXtTiny, FeatureWidth: 768, Params: 28589128, MinInputSize: 32, Classifier: "classifier.2.", HeadModule: "classifier.2", Stages: 8,
		Weights: []Weights{imagenet("IMAGENET1K_V1", modelsURL+"convnext_tiny-983f1562.pth", "983f1562", 236)},
		build:   newConvNeXtTiny},
	{Arch: ArchViTB16, FeatureWidth: 768, Params: 86567656, MinInputSize: 16, Classifier: "heads.head.", HeadModule: "heads", Stages: 14,
		Weights: []Weights{imagenet("IMAGENET1K_V1", modelsURL+"vit_b_16-c867db91.pth", "c867db91", 256)},
		build:   newViTB16},
}

// Archs lists the architecture table.
func Archs() []ArchSpec { return slices.Clone(archTable) }

// LookupArch returns the table's row for an architecture.
func LookupArch(a Arch) (ArchSpec, error) {
	for _, s := range archTable {
		if s.Arch == a {
			return s, nil
		}
	}
	_, err := ParseArch(string(a))
	return ArchSpec{}, err
}

// BackboneConfig describes a network to build.
type BackboneConfig struct {
	// NumClasses is the size of torchvision's final linear layer (1000 by
	// default, the ImageNet classes).
	NumClasses int
	// InputSize is the square input side (224 by default). It fixes VGG's
	// flattened width and ViT's position embeddings; the convolutional
	// networks with global pooling accept any size and use it only for
	// their summary.
	InputSize int
	// Head is the classifier on top of Features (see heads.go):
	// HeadTorchvision, the architecture's own (the default here), or
	// HeadTransfer or HeadGAP in place of ArchSpec.HeadModule.
	Head Head
	// Hidden is the transfer head's hidden width (1024 by default).
	Hidden int
	// Dropout is the transfer and gap heads' dropout probability; 0 means
	// none (the seed's is 0.5). Torchvision's heads keep torchvision's (VGG's
	// torchvision head takes it too).
	Dropout float64
}

func (c BackboneConfig) withDefaults() BackboneConfig {
	if c.NumClasses == 0 {
		c.NumClasses = 1000
	}
	if c.InputSize == 0 {
		c.InputSize = 224
	}
	if c.Head == "" {
		c.Head = HeadTorchvision
	}
	if c.Hidden == 0 {
		c.Hidden = 1024
	}
	return c
}

func (c BackboneConfig) check(a Arch, minSize int) (BackboneConfig, error) {
	c = c.withDefaults()
	if c.NumClasses < 1 {
		return c, fmt.Errorf("%s: need at least one class, got %d", a, c.NumClasses)
	}
	if c.InputSize < minSize {
		return c, fmt.Errorf("%s: input size %d is below the minimum of %d pixels", a, c.InputSize, minSize)
	}
	return c, nil
}

// NewBackbone builds an architecture of the table with torchvision's
// initialisation and the configured head (call torch.ManualSeed first for
// reproducible weights). It is the one constructor that training,
// evaluation and prediction share.
func NewBackbone(a Arch, cfg BackboneConfig) (Backbone, error) {
	spec, err := LookupArch(a)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if _, err := ParseHead(string(cfg.Head)); err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	if cfg.Hidden < 1 {
		return nil, fmt.Errorf("%s: hidden width %d must be positive", a, cfg.Hidden)
	}
	if cfg.Dropout < 0 || cfg.Dropout >= 1 {
		return nil, fmt.Errorf("%s: dropout %g is outside [0, 1)", a, cfg.Dropout)
	}
	b, err := spec.build(cfg)
	if err != nil {
		return nil, err
	}
	if n, ok := b.(*network); ok && cfg.Head != HeadTorchvision {
		if err := n.replaceHead(spec.HeadModule, cfg); err != nil {
			b.Free()
			return nil, err
		}
	}
	return b, nil
}

// Stage is a group of consecutive modules that is frozen or trained as a
// whole: ResNet's stem and layer1..layer4, an entry of torchvision's
// `features` for the MobileNets and EfficientNets, a Keras base layer for
// VGG.
type Stage struct {
	// Name is the torchvision module name ("layer1", "features.3") or, for a
	// group of top-level modules, a descriptive one ("stem").
	Name string
	// Modules are the stage's modules with their torchvision names.
	Modules []nn.NamedModule
}

// Parameters lists the stage's parameters with their torchvision names.
func (s Stage) Parameters() []torch.NamedTensor {
	var ps []torch.NamedTensor
	for _, m := range s.Modules {
		for _, p := range m.Module.Parameters() {
			name := m.Name
			if p.Name != "" { // "" is a bare parameter (ViT's class_token)
				name += "." + p.Name
			}
			ps = append(ps, torch.NamedTensor{Name: name, Tensor: p.Tensor})
		}
	}
	return ps
}

// Backbone is what every architecture offers the trainer: the network as
// torchvision defines it (parameter names, state dict, logits) plus the
// pieces transfer learning needs (the pooled features before the
// classifier, the stages to freeze, a summary).
type Backbone interface {
	// Forward computes torchvision's logits [N, NumClasses] for an NCHW
	// batch normalised as the weights expect.
	Forward(x *torch.Tensor) (*torch.Tensor, error)
	// Features computes what torchvision's classifier receives, flattened
	// to [N, FeatureWidth()]: the pooled (or class-token) features.
	Features(x *torch.Tensor) (*torch.Tensor, error)
	// FeatureWidth is the width of Features.
	FeatureWidth() int64
	// Parameters lists the trainable tensors with torchvision's names, in
	// torchvision's order.
	Parameters() []torch.NamedTensor
	// StateTensors lists parameters and buffers with torchvision's
	// state_dict names and order: what weight files and checkpoints hold.
	StateTensors() []torch.NamedTensor
	// SetTraining switches dropout, stochastic depth and batch statistics
	// on (training) or off. Batch-norm layers whose parameters are frozen
	// keep their running statistics, as Keras does for frozen layers.
	SetTraining(training bool)
	// Arch is the architecture's name.
	Arch() Arch
	// Config is the configuration the network was built with (defaults
	// filled in).
	Config() BackboneConfig
	// Classifier is the name prefix of the tensors a torchvision ImageNet
	// file cannot provide: torchvision's final linear layer ("fc.",
	// "classifier.3.") with the torchvision head, the whole new head
	// ("fc.", "classifier.") with the transfer and gap heads.
	Classifier() string
	// Stages lists the base's stages from input to output; parameters in
	// no stage form the head.
	Stages() []Stage
	// Summary describes the network stage by stage.
	Summary() (*Summary, error)
	// Free releases every parameter and buffer.
	Free()
}

// FreezeStages makes the parameters of the last `trainable` stages of b
// trainable and freezes the earlier ones; the head (parameters in no stage)
// stays trainable. It returns the names of the trainable stages.
func FreezeStages(b Backbone, trainable int) ([]string, error) {
	stages := b.Stages()
	if trainable < 0 || trainable > len(stages) {
		return nil, fmt.Errorf("%s: %d trainable stages requested, the base has %d", b.Arch(), trainable, len(stages))
	}
	inStage := map[*torch.Tensor]bool{}
	var names []string
	for i, s := range stages {
		train := i >= len(stages)-trainable
		if train {
			names = append(names, s.Name)
		}
		for _, p := range s.Parameters() {
			inStage[p.Tensor] = true
			if err := p.Tensor.SetRequiresGrad(train); err != nil {
				return nil, fmt.Errorf("%s: freezing %s: %w", b.Arch(), p.Name, err)
			}
		}
	}
	for _, p := range b.Parameters() {
		if !inStage[p.Tensor] {
			if err := p.Tensor.SetRequiresGrad(true); err != nil {
				return nil, fmt.Errorf("%s: head %s: %w", b.Arch(), p.Name, err)
			}
		}
	}
	return names, nil
}

// SplitTrainable returns the parameters of b that require grad, split into
// the base's (in a stage) and the head's, so that each can get its own
// learning rate. Frozen parameters are left out.
func SplitTrainable(b Backbone) (base, head []torch.NamedTensor) {
	inStage := map[*torch.Tensor]bool{}
	for _, s := range b.Stages() {
		for _, p := range s.Parameters() {
			inStage[p.Tensor] = true
		}
	}
	for _, p := range b.Parameters() {
		if !p.Tensor.RequiresGrad() {
			continue
		}
		if inStage[p.Tensor] {
			base = append(base, p)
		} else {
			head = append(head, p)
		}
	}
	return base, head
}

// ---- the shared implementation -------------------------------------------------

var (
	_ Backbone  = (*network)(nil)
	_ Backbone  = vggBackbone{}
	_ nn.Module = (*network)(nil)
)

// network is what the architectures share: the module tree with
// torchvision's names, the configuration, the stages, and Forward as
// features followed by the classifier.
type network struct {
	nn.Node
	arch       Arch
	cfg        BackboneConfig
	width      int64
	classifier string
	stages     []Stage
	// features runs the base; observe, when not nil, sees each stage's
	// output (for the summary).
	features func(x *torch.Tensor, observe func(stage int, y *torch.Tensor)) (*torch.Tensor, error)
	// head maps Features' output to logits.
	head     nn.Module
	training bool
}

func (n *network) Arch() Arch             { return n.arch }
func (n *network) Config() BackboneConfig { return n.cfg }
func (n *network) FeatureWidth() int64    { return n.width }
func (n *network) Classifier() string     { return n.classifier }
func (n *network) Stages() []Stage        { return slices.Clone(n.stages) }
func (n *network) Free()                  { nn.Free(n) }
func (n *network) Features(x *torch.Tensor) (*torch.Tensor, error) {
	f, err := n.features(x, nil)
	if err != nil {
		return nil, fmt.Errorf("%s features: %w", n.arch, err)
	}
	return f, nil
}

// Forward is Features followed by torchvision's classifier.
func (n *network) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	f, err := n.Features(x)
	if err != nil {
		return nil, err
	}
	y, err := n.head.Forward(f)
	f.Free()
	if err != nil {
		return nil, fmt.Errorf("%s classifier: %w", n.arch, err)
	}
	return y, nil
}

// SetTraining sets every module's mode; batch-norm layers with frozen
// parameters stay in evaluation mode.
func (n *network) SetTraining(training bool) {
	n.training = training
	n.Node.SetTraining(training)
	if !training {
		return
	}
	nn.Walk(n, func(_ string, m nn.Module) bool {
		if bn, ok := m.(*nn.BatchNorm2d); ok && !bn.Weight.RequiresGrad() {
			bn.SetTraining(false)
		}
		return true
	})
}

// Summary runs one zero image of the configured size through the base in
// evaluation mode, without gradients, and lists each stage's output shape
// and parameter counts, then the head's.
func (n *network) Summary() (*Summary, error) {
	size := int64(n.cfg.InputSize)
	s := &Summary{Title: fmt.Sprintf("%s (%s head, %d classes, %dx%d input)", n.arch, n.cfg.Head, n.cfg.NumClasses, size, size)}
	s.Rows = append(s.Rows, SummaryRow{Name: "input", Type: "Input", OutputShape: []int64{-1, 3, size, size}})
	training := n.training
	n.SetTraining(false)
	defer n.SetTraining(training)
	shapes := make([][]int64, len(n.stages))
	var featShape []int64
	err := torch.NoGrad(func() error {
		scope := torch.NewScope()
		defer scope.Close()
		x, err := scope.Own(torch.Zeros([]int64{1, 3, size, size}, torch.Options{}))
		if err != nil {
			return err
		}
		f, err := n.features(x, func(i int, y *torch.Tensor) { shapes[i] = y.Shape() })
		if err != nil {
			return err
		}
		featShape = f.Shape()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s summary: %w", n.arch, err)
	}
	counted := map[*torch.Tensor]bool{}
	count := func(row *SummaryRow, ps []torch.NamedTensor) {
		for _, p := range ps {
			counted[p.Tensor] = true
			k := p.Tensor.Numel()
			row.Params += k
			if p.Tensor.RequiresGrad() {
				row.TrainableParams += k
			}
		}
	}
	for i, st := range n.stages {
		var types []string
		for _, m := range st.Modules {
			types = append(types, moduleType(m.Module))
		}
		row := SummaryRow{Name: st.Name, Type: strings.Join(types, "+"), OutputShape: batchFree(shapes[i])}
		count(&row, st.Parameters())
		s.Rows = append(s.Rows, row)
	}
	s.Rows = append(s.Rows, SummaryRow{Name: "features", Type: "Pool+Flatten", OutputShape: batchFree(featShape)})
	headName := "head"
	if spec, err := LookupArch(n.arch); err == nil {
		headName = strings.SplitN(spec.HeadModule, ".", 2)[0]
	}
	head := SummaryRow{Name: headName, Type: layerTypes(n.head), OutputShape: []int64{-1, int64(n.cfg.NumClasses)}}
	var rest []torch.NamedTensor
	for _, p := range n.Parameters() {
		if !counted[p.Tensor] {
			rest = append(rest, p)
		}
	}
	count(&head, rest)
	s.Rows = append(s.Rows, head)
	for _, r := range s.Rows {
		s.Total += r.Params
		s.Trainable += r.TrainableParams
	}
	s.Frozen = s.Total - s.Trainable
	return s, nil
}

func batchFree(shape []int64) []int64 {
	if len(shape) == 0 {
		return nil
	}
	out := slices.Clone(shape)
	out[0] = -1
	return out
}

// layerTypes names a module by its layers: "Linear", or a Sequential's
// "Linear+ReLU+Dropout+Linear" (a nested one in parentheses).
func layerTypes(m nn.Module) string {
	seq, ok := m.(*nn.Sequential)
	if !ok {
		return moduleType(m)
	}
	var parts []string
	for _, c := range seq.Children {
		if _, nested := c.(*nn.Sequential); nested {
			parts = append(parts, "("+layerTypes(c)+")")
			continue
		}
		parts = append(parts, moduleType(c))
	}
	return strings.Join(parts, "+")
}

func moduleType(m nn.Module) string {
	if m == nil {
		return "-"
	}
	t := fmt.Sprintf("%T", m)
	return t[strings.LastIndex(t, ".")+1:]
}
