package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		a.ZoomRange != 0.1 || !a.HorizontalFlip || a.FillMode != "constant" || a.Cval != 0 {
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
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `train.optimizer: "rmsprop" is not one of adam, adamw, sgd`) || !strings.Contains(err.Error(), "train.batch_size 0 must be at least 1") {
		t.Errorf("validate: %v", err)
	}
}

// TestSeedConfigFileIsTheDefaults keeps configs/seed.yaml, the documented
// settings, identical to DefaultConfig.
func TestSeedConfigFileIsTheDefaults(t *testing.T) {
	got, err := LoadConfig("../configs/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); got != want {
		t.Errorf("configs/seed.yaml differs from DefaultConfig:\n%+v\n%+v", got, want)
	}
}
