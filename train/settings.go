package train

import (
	"github.com/fertorch/fertorch/internal/choice"
	"gopkg.in/yaml.v3"
)

// The training settings that are names. Each type parses itself from flags
// (pflag.Value), YAML and JSON, writes its canonical name, and lists its
// legal names.

// OptimizerName chooses the optimizer.
type OptimizerName string

// The optimizers.
const (
	Adam  OptimizerName = "adam"
	AdamW OptimizerName = "adamw" // Adam with decoupled weight decay
	SGD   OptimizerName = "sgd"
)

// ScheduleName chooses the learning-rate schedule.
type ScheduleName string

// The schedules.
const (
	ScheduleNone    ScheduleName = "none"
	ScheduleStep    ScheduleName = "step"    // x StepGamma every StepEpochs
	ScheduleCosine  ScheduleName = "cosine"  // cosine annealing to MinLR
	SchedulePlateau ScheduleName = "plateau" // x PlateauFactor when val_loss stalls
	// ScheduleOneCycle is fastai's fit_one_cycle and PyTorch's OneCycleLR,
	// stepped per batch: warm-up to the configured rate, cosine annealing
	// down, the momentum (Adam's beta1) cycled the other way.
	ScheduleOneCycle ScheduleName = "one-cycle"
)

// Metric is a validation metric that chooses the best checkpoint and
// drives early stopping.
type Metric string

// The metrics.
const (
	ValAccuracy         Metric = "val_accuracy"
	ValLoss             Metric = "val_loss"
	ValBalancedAccuracy Metric = "val_balanced_accuracy"
	ValMacroF1          Metric = "val_macro_f1"
)

// LossNormalization is how the class-weighted loss of a batch is averaged.
type LossNormalization string

// The normalisations.
const (
	// KerasLoss is sum(w*CE)/batch size (Keras' class_weight, the seed's).
	KerasLoss LossNormalization = "keras"
	// PyTorchLoss is sum(w*CE)/sum(w) (nn.CrossEntropyLoss(weight=...)).
	PyTorchLoss LossNormalization = "pytorch"
)

var precisions = choice.Names[Precision]{What: "precision", List: []choice.Name[Precision]{
	{Value: FP32, Name: "fp32", Aliases: []string{"float32"}},
	{Value: BF16, Name: "bf16", Aliases: []string{"bfloat16"}},
	{Value: FP16, Name: "fp16", Aliases: []string{"float16"}},
}}

// String returns the precision's name.
func (v Precision) String() string { return precisions.Name(v) }

// ParsePrecision reads a precision name (one of PrecisionNames).
func ParsePrecision(s string) (Precision, error) { return precisions.Parse(s) }

// PrecisionNames lists the legal precision names.
func PrecisionNames() string { return precisions.Legal() }

// Set parses a name (pflag.Value).
func (v *Precision) Set(s string) error { return precisions.Set(v, s) }

// Type names the flag's value in --help.
func (Precision) Type() string { return "precision" }

// MarshalText writes the name (YAML, JSON).
func (v Precision) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *Precision) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *Precision) UnmarshalYAML(n *yaml.Node) error { return precisions.DecodeYAML(v, n) }

var optimizerNames = choice.Names[OptimizerName]{What: "optimizer", List: []choice.Name[OptimizerName]{
	{Value: Adam, Name: "adam"},
	{Value: AdamW, Name: "adamw"},
	{Value: SGD, Name: "sgd"},
}}

// String returns the optimizer's name.
func (v OptimizerName) String() string { return optimizerNames.Name(v) }

// ParseOptimizerName reads a optimizer name (one of OptimizerNameNames).
func ParseOptimizerName(s string) (OptimizerName, error) { return optimizerNames.Parse(s) }

// OptimizerNameNames lists the legal optimizer names.
func OptimizerNameNames() string { return optimizerNames.Legal() }

// Set parses a name (pflag.Value).
func (v *OptimizerName) Set(s string) error { return optimizerNames.Set(v, s) }

// Type names the flag's value in --help.
func (OptimizerName) Type() string { return "optimizer" }

// MarshalText writes the name (YAML, JSON).
func (v OptimizerName) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *OptimizerName) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *OptimizerName) UnmarshalYAML(n *yaml.Node) error { return optimizerNames.DecodeYAML(v, n) }

var scheduleNames = choice.Names[ScheduleName]{What: "schedule", List: []choice.Name[ScheduleName]{
	{Value: ScheduleNone, Name: "none"},
	{Value: ScheduleStep, Name: "step"},
	{Value: ScheduleCosine, Name: "cosine"},
	{Value: SchedulePlateau, Name: "plateau"},
	{Value: ScheduleOneCycle, Name: "one-cycle"},
}}

// String returns the schedule's name.
func (v ScheduleName) String() string { return scheduleNames.Name(v) }

// ParseScheduleName reads a schedule name (one of ScheduleNameNames).
func ParseScheduleName(s string) (ScheduleName, error) { return scheduleNames.Parse(s) }

// ScheduleNameNames lists the legal schedule names.
func ScheduleNameNames() string { return scheduleNames.Legal() }

// Set parses a name (pflag.Value).
func (v *ScheduleName) Set(s string) error { return scheduleNames.Set(v, s) }

// Type names the flag's value in --help.
func (ScheduleName) Type() string { return "schedule" }

// MarshalText writes the name (YAML, JSON).
func (v ScheduleName) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *ScheduleName) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *ScheduleName) UnmarshalYAML(n *yaml.Node) error { return scheduleNames.DecodeYAML(v, n) }

var metricNames = choice.Names[Metric]{What: "metric", List: []choice.Name[Metric]{
	{Value: ValAccuracy, Name: "val_accuracy"},
	{Value: ValLoss, Name: "val_loss"},
	{Value: ValBalancedAccuracy, Name: "val_balanced_accuracy"},
	{Value: ValMacroF1, Name: "val_macro_f1"},
}}

// String returns the metric's name.
func (v Metric) String() string { return metricNames.Name(v) }

// ParseMetric reads a metric name (one of MetricNames).
func ParseMetric(s string) (Metric, error) { return metricNames.Parse(s) }

// MetricNames lists the legal metric names.
func MetricNames() string { return metricNames.Legal() }

// Set parses a name (pflag.Value).
func (v *Metric) Set(s string) error { return metricNames.Set(v, s) }

// Type names the flag's value in --help.
func (Metric) Type() string { return "metric" }

// MarshalText writes the name (YAML, JSON).
func (v Metric) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *Metric) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *Metric) UnmarshalYAML(n *yaml.Node) error { return metricNames.DecodeYAML(v, n) }

var lossNormalizations = choice.Names[LossNormalization]{What: "loss normalization", List: []choice.Name[LossNormalization]{
	{Value: KerasLoss, Name: "keras"},
	{Value: PyTorchLoss, Name: "pytorch"},
}}

// String returns the loss normalization's name.
func (v LossNormalization) String() string { return lossNormalizations.Name(v) }

// ParseLossNormalization reads a loss normalization name (one of LossNormalizationNames).
func ParseLossNormalization(s string) (LossNormalization, error) { return lossNormalizations.Parse(s) }

// LossNormalizationNames lists the legal loss normalization names.
func LossNormalizationNames() string { return lossNormalizations.Legal() }

// Set parses a name (pflag.Value).
func (v *LossNormalization) Set(s string) error { return lossNormalizations.Set(v, s) }

// Type names the flag's value in --help.
func (LossNormalization) Type() string { return "name" }

// MarshalText writes the name (YAML, JSON).
func (v LossNormalization) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a name (JSON).
func (v *LossNormalization) UnmarshalText(b []byte) error { return v.Set(string(b)) }

// UnmarshalYAML reads a name, naming the line of a bad one.
func (v *LossNormalization) UnmarshalYAML(n *yaml.Node) error {
	return lossNormalizations.DecodeYAML(v, n)
}
