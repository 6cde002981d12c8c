package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpAndUsageErrors: every command answers --help with its usage and
// exit status 0; a command-line mistake exits with 2 and one line naming it.
func TestHelpAndUsageErrors(t *testing.T) {
	for _, c := range commands() {
		var out, errb bytes.Buffer
		if code := run([]string{c.name, "--help"}, &out, &errb); code != 0 {
			t.Errorf("fer %s --help: exit %d", c.name, code)
		}
		if !strings.Contains(errb.String(), "usage: fer "+c.name) {
			t.Errorf("fer %s --help printed %q", c.name, errb.String())
		}
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `fer: unknown command "nope"`},
		{[]string{"train", "--epochs", "ten"}, `fer train: invalid argument "ten" for "--epochs"`},
		{[]string{"train", "--optimizer", "rmsprop"}, `unknown optimizer "rmsprop" (want adam, adamw or sgd)`},
		{[]string{"train", "--resume", "runs/x", "--lr", "0.1"}, "drop --lr (only --epochs, --data, --device, --threads, --onednn, --workers, --prefetch, --cache may change)"},
		{[]string{"eval"}, "give either --data DIR or --legend CSV with --images DIR"},
		{[]string{"predict", "--checkpoint", "x"}, "give at least one image or folder"},
		{[]string{"prepare", "--split", "alphabetical"}, `unknown split scheme "alphabetical"`},
		{[]string{"prepare", "--verify=maybe"}, `invalid argument "maybe" for "--verify"`},
		{[]string{"predict", "--checkpoint", "x", "a.jpg", "https://example.com/face.jpg"}, "https://example.com/face.jpg is a URL: fer does not fetch URLs; download the image first and give its path"},
		{[]string{"benchmark", "--device", "tpu"}, `unknown device "tpu"`},
		{[]string{"train", "--device", "tpu"}, `invalid argument "tpu" for "--device" flag: unknown device "tpu" (want auto, cpu, cuda or cuda:N)`},
		{[]string{"train", "--trainable-base-layers", "25"}, "model.trainable_base_layers: "},
		{[]string{"train", "--arch", "resnet18", "--trainable-base-layers", "6"}, `model.trainable_base_layers: trainable_base_layers "6": resnet18 has 5 stages; want a number from 0 to 5 or "all"`},
		{[]string{"train", "--arch", "resnet18", "--head", "torchvision", "--hidden", "512"}, "model.hidden 512 sets the transfer head's width; the torchvision head has none"},
		{[]string{"summary", "--arch", "vit_b_16", "--input-size", "40"}, "model.input_size 40: vit_b_16 takes multiples of its 16-pixel patches"},
		{[]string{"summary", "--arch", "resnet19"}, `unknown architecture "resnet19"`},
		{[]string{"summary", "--classes", "0"}, "--classes 0 must be at least 1"},
		{[]string{"eval", "--data", "x", "--batch-size", "0"}, "--batch-size 0 must be at least 1"},
		{[]string{"predict", "--checkpoint", "x", "--batch-size", "-1", "a.jpg"}, "--batch-size -1 must be at least 1"},
		{[]string{"eval", "--data", "x", "--device", "gpu"}, `unknown device "gpu"`},
		{[]string{"train", "--onednn", "no"}, `invalid argument "no" for "--onednn" flag: unknown oneDNN mode "no" (want auto, on or off)`},
		{[]string{"eval", "--data", "x", "--onednn", "1"}, `unknown oneDNN mode "1"`},
		{[]string{"predict", "--onednn", "yes", "a.png"}, `unknown oneDNN mode "yes"`},
		{[]string{"serve", "--onednn", "disable"}, `unknown oneDNN mode "disable"`},
		{[]string{"benchmark", "--onednn", "native"}, `unknown oneDNN mode "native"`},
		{[]string{"serve", "--max-batch", "0"}, "--max-batch 0 must be at least 1"},
		{[]string{"serve", "--queue", "0"}, "--queue 0 must be at least 1"},
		{[]string{"serve", "--max-wait", "-1"}, "--max-wait -1 is negative"},
		{[]string{"serve", "--log-format", "xml"}, `--log-format "xml": want text or json`},
		{[]string{"serve", "model.safetensors"}, "unexpected arguments [model.safetensors]"},
		{[]string{"train", "--batch-size", "8", "--accumulate", "16"}, "train.accumulate 16 must be from 1 to the batch size 8"},
		{[]string{"train", "--epochs", "3", "--fine-tune", "3"}, "train.fine_tune 3 must be from 0 to epochs-1 (2): the base trains after it"},
		{[]string{"train", "--fine-tune", "1", "--trainable-base-layers", "0"}, "train.fine_tune 1 unfreezes the trainable base layers after the head's epochs, but model.trainable_base_layers is 0"},
		{[]string{"train", "--ema", "1"}, "train.ema 1 is outside [0, 1)"},
		{[]string{"train", "--mixup", "-0.5"}, "train.mixup -0.5 must be a finite Beta concentration >= 0 (0: off)"},
		{[]string{"train", "--cutmix", "1", "--mix-prob", "1.2"}, "train.mix_prob 1.2 is outside [0, 1]"},
		{[]string{"train", "--mix-switch-prob", "-1"}, "train.mix_switch_prob -1 is outside [0, 1]"},
		{[]string{"lr-find", "--steps", "5"}, "--steps 5: at least 10 steps are needed for a curve"},
		{[]string{"lr-find", "--start-lr", "1", "--end-lr", "0.5"}, "--start-lr 1 and --end-lr 0.5 must satisfy 0 < start < end"},
		{[]string{"train", "--schedule", "one-cycle", "--warmup-epochs", "1"}, "train.warmup_epochs 1: the one-cycle schedule warms up over one_cycle_pct_start of the run instead"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != 2 {
			t.Errorf("fer %v: exit %d, want 2", c.args, code)
			continue
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("fer %v: stderr %q lacks %q", c.args, errb.String(), c.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--epochs", "0"}, &out, &errb); code != 2 {
		t.Errorf("invalid config exit %d, want 2", code)
	}
}

// TestTrainWithoutDataLeavesNothing: a --data folder that is not a prepared
// layout is reported before the run folder is made.
func TestTrainWithoutDataLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	output := filepath.Join(dir, "run")
	var out, errb bytes.Buffer
	code := run([]string{"train", "--data", filepath.Join(dir, "nope"), "-o", output, "--progress", "off"}, &out, &errb)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want := "stat " + filepath.Join(dir, "nope", "train") + ": no such file or directory (run `fer prepare` first?)"
	if !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q lacks %q", errb.String(), want)
	}
	if _, err := os.Stat(output); !os.IsNotExist(err) {
		t.Errorf("the run folder was made (%v)", err)
	}
}
