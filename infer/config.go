package infer

import (
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/vision"
)

// ModelConfig is what a trained network is and how its inputs are
// prepared: everything inference needs besides the weights and the class
// names. The trainer's model settings (train.ModelConfig) embed it, so a
// checkpoint's run state carries it under config.Model.
type ModelConfig struct {
	// Arch is vgg16 (the seed's) or vgg16_bn (batch norm after every
	// convolution: trains from scratch far more readily).
	Arch vision.Arch `yaml:"arch"`
	// Head is transfer (the seed's Flatten-Dense-Dropout-Dense), torchvision
	// or gap.
	Head vision.Head `yaml:"head"`
	// Hidden is the transfer head's hidden width.
	Hidden int `yaml:"hidden"`
	// Dropout is the head's dropout probability.
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

// VGG16 is the network's configuration for a number of classes.
func (c ModelConfig) VGG16(classes int) vision.VGG16Config {
	return vision.VGG16Config{InputSize: c.InputSize, NumClasses: classes, Head: c.Head, Hidden: c.Hidden, Dropout: c.Dropout, BatchNorm: c.Arch == vision.ArchVGG16BN}
}
