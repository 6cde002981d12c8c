package infer

import (
	"fmt"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/vision"
)

// ModelConfig is what a trained network is and how its inputs are
// prepared: everything inference needs besides the weights and the class
// names. The trainer's model settings (train.ModelConfig) embed it, so a
// checkpoint's run state carries it under config.Model.
type ModelConfig struct {
	// Arch is an architecture of vision's table: vgg16 (the seed's),
	// vgg16_bn (batch norm after every convolution: trains from scratch far
	// more readily), resnet18, resnet50, mobilenet_v3_large,
	// efficientnet_b0, convnext_tiny or vit_b_16.
	Arch vision.Arch `yaml:"arch"`
	// Head is transfer (the seed's Dense-ReLU-Dropout-Dense on the base's
	// features), torchvision (the architecture's own classifier) or gap
	// (Dropout-Dense; VGG pools globally first). See vision/heads.go for
	// their parameter names.
	Head vision.Head `yaml:"head"`
	// Hidden is the transfer head's hidden width.
	Hidden int `yaml:"hidden"`
	// Dropout is the transfer and gap heads' dropout probability (and VGG's
	// torchvision head's; the other torchvision heads keep their own).
	Dropout float64 `yaml:"dropout"`
	// InputSize is the square input side in pixels.
	InputSize int `yaml:"input_size"`
	// Normalization is imagenet (mean/std, what torchvision weights expect)
	// or rescale (x/255 only, as the seed does).
	Normalization data.Normalization `yaml:"normalization"`
	// Resize is how images are brought to InputSize before augmentation:
	// nearest (Keras' default) or bilinear.
	Resize data.ResizeMethod `yaml:"resize"`
}

// Build builds the network the config describes for numClasses classes,
// with fresh weights (torchvision's initialisation for the base, Keras'
// for the transfer and gap heads). It is the one constructor of training,
// evaluation, prediction and serving: a checkpoint's model config rebuilds
// the network it holds.
func (c ModelConfig) Build(numClasses int) (vision.Backbone, error) {
	net, err := vision.NewBackbone(c.Arch, vision.BackboneConfig{
		NumClasses: numClasses, InputSize: c.InputSize, Head: c.Head, Hidden: c.Hidden, Dropout: c.Dropout,
	})
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", c.Arch, err)
	}
	return net, nil
}
