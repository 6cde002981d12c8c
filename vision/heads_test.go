package vision_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/vision"
)

// Hand-computed parameter counts, 8 classes, 32x32 input (conv: in*out*k*k
// weights, batch norm: 2*channels, linear: in*out+out).
const (
	// resnet18's stages: stem conv1 3*64*49 + bn 128; layer1 two blocks of
	// two 64->64 3x3 convs with batch norms, 2*(2*36864+2*128); layer2
	// 73728+256+147456+256+8192+256 (the block with the 1x1 downsample) +
	// 2*(147456+256); layer3 294912+512+589824+512+32768+512 +
	// 2*(589824+512); layer4 1179648+1024+2359296+1024+131072+1024 +
	// 2*(2359296+1024). Together 11,176,512: torchvision's 11,689,512 less
	// its 1000-class fc (513,000).
	r18Stem, r18Layer1, r18Layer2, r18Layer3, r18Layer4 = 9536, 147968, 525568, 2099712, 8393728
	r18Base                                             = r18Stem + r18Layer1 + r18Layer2 + r18Layer3 + r18Layer4
	// Heads on 512 features: torchvision's fc and gap's Linear 512*8+8;
	// transfer 512*1024+1024 + 1024*8+8.
	r18Linear, r18Transfer = 4104, 533512

	// mobilenet_v3_large: features.16 is a 1x1 conv 160->960 and its batch
	// norm, 153600+1920; features.14 and .15 are inverted residuals
	// 160->960 (expand 153600+1920), 5x5 depthwise 960*25+1920,
	// squeeze-excitation to 240 (960*240+240 + 240*960+960), project
	// 960*160+320. The base: torchvision's 5,483,032 less its classifier
	// 960*1280+1280 + 1280*1000+1000.
	mnFeatures16, mnFeatures15 = 155520, 797360
	mnBase                     = 5483032 - (960*1280 + 1280 + 1280*1000 + 1000)
	// Heads on 960 features: torchvision's Linear(960, 1280), Hardswish,
	// Dropout, Linear(1280, 8); transfer 960*1024+1024 + 1024*8+8; gap
	// 960*8+8.
	mnTorchvision, mnTransfer, mnGAP = 960*1280 + 1280 + 1280*8 + 8, 992264, 7688

	// vgg16: 13 convolutions, 14,714,688 (Keras' include_top=False); block5
	// (Keras' last 4 layers: three 512->512 convs and the pool) 3*(2359296+512);
	// block4_conv2 and _conv3 2*(2359296+512) more. Heads at 32x32 (a 1x1x512
	// base output): transfer 512*1024+1024 + 1024*8+8; gap 512*8+8;
	// torchvision 25088*4096+4096 + 4096*4096+4096 + 4096*8+8.
	vggBase, vggBlock5, vggBlock4Top2         = 14714688, 7079424, 4719616
	vggTransfer, vggGAP, vggTorchvision int64 = 533512, 4104, 119578632
)

// TestTrainableCountsByHeadAndStages: for resnet18, mobilenet_v3_large and
// vgg16, every head and trainable_base_layers setting trains exactly the
// hand-computed number of parameters; the summary and SplitTrainable agree.
func TestTrainableCountsByHeadAndStages(t *testing.T) {
	cases := []struct {
		arch      vision.Arch
		head      vision.Head
		trainable string
		want      int64
	}{
		{vision.ArchResNet18, vision.HeadTransfer, "0", r18Transfer},
		{vision.ArchResNet18, vision.HeadTransfer, "1", r18Layer4 + r18Transfer},
		{vision.ArchResNet18, vision.HeadGAP, "2", r18Layer3 + r18Layer4 + r18Linear},
		{vision.ArchResNet18, vision.HeadTorchvision, "4", r18Base - r18Stem + r18Linear},
		{vision.ArchResNet18, vision.HeadTorchvision, "all", r18Base + r18Linear},
		{vision.ArchMobileNetV3Large, vision.HeadTorchvision, "0", mnTorchvision},
		{vision.ArchMobileNetV3Large, vision.HeadTransfer, "1", mnFeatures16 + mnTransfer},
		{vision.ArchMobileNetV3Large, vision.HeadGAP, "2", mnFeatures16 + mnFeatures15 + mnGAP},
		{vision.ArchMobileNetV3Large, vision.HeadGAP, "all", mnBase + mnGAP},
		{vision.ArchVGG16, vision.HeadTransfer, "0", vggTransfer},
		{vision.ArchVGG16, vision.HeadTransfer, "4", vggBlock5 + vggTransfer},
		{vision.ArchVGG16, vision.HeadGAP, "7", vggBlock5 + vggBlock4Top2 + vggGAP},
		{vision.ArchVGG16, vision.HeadGAP, "all", vggBase + vggGAP},
		{vision.ArchVGG16, vision.HeadTorchvision, "0", vggTorchvision},
	}
	for _, c := range cases {
		b, err := vision.NewBackbone(c.arch, vision.BackboneConfig{NumClasses: 8, InputSize: 32, Head: c.head})
		if err != nil {
			t.Fatal(err)
		}
		n, err := vision.ParseTrainable(c.arch, c.trainable)
		if err == nil {
			_, err = vision.FreezeTop(b, n)
		}
		if err != nil {
			b.Free()
			t.Fatal(err)
		}
		var got int64
		for _, p := range b.Parameters() {
			if p.Tensor.RequiresGrad() {
				got += p.Tensor.Numel()
			}
		}
		base, head := vision.SplitTrainable(b)
		var split int64
		for _, p := range append(base, head...) {
			split += p.Tensor.Numel()
		}
		s, err := b.Summary()
		if err != nil {
			b.Free()
			t.Fatal(err)
		}
		if got != c.want || split != c.want || s.Trainable != c.want {
			t.Errorf("%s %s head, %s trainable: %d trainable (split %d, summary %d), want %d", c.arch, c.head, c.trainable, got, split, s.Trainable, c.want)
		}
		b.Free()
	}
}

// TestHeadParameterNames: the transfer and gap heads take the place of the
// module a PyTorch user replaces, with nn.Sequential's names, and the
// classifier prefix (what an ImageNet file cannot provide) follows the head.
// ArchSpec.Stages is each architecture's number of stages (VGG: plus Keras'
// input layer), the range of trainable_base_layers.
func TestHeadParameterNames(t *testing.T) {
	for _, spec := range vision.Archs() {
		for i, h := range []struct {
			head       vision.Head
			names      []string
			classifier string
		}{
			{vision.HeadTransfer, []string{".0.weight", ".0.bias", ".3.weight", ".3.bias"}, spec.HeadModule + "."},
			{vision.HeadGAP, []string{".1.weight", ".1.bias"}, spec.HeadModule + "."},
		} {
			if i > 0 && spec.Arch == vision.ArchViTB16 {
				break // ViT's gap head is checked below
			}
			b, err := vision.NewBackbone(spec.Arch, vision.BackboneConfig{NumClasses: 5, InputSize: 32, Head: h.head, Hidden: 16})
			if err != nil {
				t.Fatal(err)
			}
			stages := len(b.Stages())
			if spec.Arch == vision.ArchVGG16 || spec.Arch == vision.ArchVGG16BN {
				stages++
			}
			if n, err := vision.ParseTrainable(spec.Arch, "all"); spec.Stages != stages || err != nil || n != stages {
				t.Errorf("%s: table says %d stages, the network has %d; all is %d (%v)", spec.Arch, spec.Stages, stages, n, err)
			}
			var got []string
			for _, p := range b.StateTensors() {
				if strings.HasPrefix(p.Name, spec.HeadModule+".") {
					got = append(got, strings.TrimPrefix(p.Name, spec.HeadModule))
				}
			}
			if !slices.Equal(got, h.names) || b.Classifier() != h.classifier || b.Config().Head != h.head {
				t.Errorf("%s %s head: %v, classifier %q", spec.Arch, h.head, got, b.Classifier())
			}
			b.Free()
		}
	}
	// ConvNeXt keeps its LayerNorm2d (classifier.0) in front of the new head.
	b, err := vision.NewBackbone(vision.ArchConvNeXtTiny, vision.BackboneConfig{NumClasses: 5, InputSize: 32, Head: vision.HeadTransfer, Hidden: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	var names []string
	for _, p := range b.StateTensors() {
		if strings.HasPrefix(p.Name, "classifier.") {
			names = append(names, p.Name)
		}
	}
	want := []string{"classifier.0.weight", "classifier.0.bias", "classifier.2.0.weight", "classifier.2.0.bias", "classifier.2.3.weight", "classifier.2.3.bias"}
	if !slices.Equal(names, want) {
		t.Errorf("convnext_tiny transfer head: %v, want %v", names, want)
	}
	v, err := vision.NewBackbone(vision.ArchViTB16, vision.BackboneConfig{NumClasses: 5, InputSize: 32, Head: vision.HeadGAP})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Free()
	last := v.StateTensors()[len(v.StateTensors())-1]
	if last.Name != "heads.1.bias" || v.Classifier() != "heads." {
		t.Errorf("vit_b_16 gap head ends with %s, classifier %q", last.Name, v.Classifier())
	}
	if _, err := vision.NewBackbone(vision.ArchResNet18, vision.BackboneConfig{Head: "mlp"}); err == nil || !strings.Contains(err.Error(), "mlp") {
		t.Errorf("an unknown head: %v", err)
	}
}
