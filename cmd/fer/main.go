// Command fer is fertorch's command-line tool: prepare a dataset, fine-tune
// a pretrained network (VGG16 as the seed tutorial, or another architecture
// of vision's table) on it, evaluate and predict, on the CPU or a CUDA GPU.
//
//	fer <command> [flags]
//
// Run `fer help` for the commands and `fer <command> --help` for flags.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/fertorch/fertorch/torch"
	"github.com/spf13/pflag"
)

// command is one subcommand of fer.
type command struct {
	name  string
	short string
	run   func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"synth", "generate a synthetic face dataset (the demo's embedded data)", runSynth},
		{"prepare", "legend + images -> train/valid/test class folders, with the per-class table", runPrepare},
		{"train", "fine-tune a pretrained network: VGG16, ResNet, MobileNetV3, EfficientNet, ConvNeXt or ViT (config file and flags; resumable)", runTrain},
		{"lr-find", "learning-rate range test for a training config: loss against rate as a PNG and suggested rates (writes no run folder)", runLRFind},
		{"summary", "print a network's layers, output shapes and what trains, and draw them as a PNG, without training", runSummary},
		{"eval", "evaluate a checkpoint on labelled images: metrics, confusion matrix, results.csv", runEval},
		{"predict", "top-k emotions of images or folders", runPredict},
		{"serve", "an HTTP model server with dynamic batching, metrics and a web page", runServe},
		{"benchmark", "measure training images/s on synthetic batches (and CPU-vs-device parity)", runBenchmark},
		{"version", "print fertorch's libtorch version and devices", runVersion},
	}
}

// errUsage marks a mistake in the command line; the message is printed
// with a hint to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func usage(w io.Writer) {
	fmt.Fprintln(w, "fer: transfer learning for facial expression recognition on libtorch")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: fer <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'fer <command> --help' for a command's flags.")
}

// oneDNNFlag adds --onednn to a command that runs a network.
func oneDNNFlag(fs *pflag.FlagSet) *torch.OneDNNMode {
	mode := torch.OneDNNAuto
	fs.Var(&mode, "onednn", torch.OneDNNFlagUsage)
	return &mode
}

// tellNotice writes a command's notice about how it runs (see
// infer.Model.Notice) to stderr, when there is one.
func tellNotice(stderr io.Writer, command, notice string) {
	if notice != "" {
		fmt.Fprintf(stderr, "fer %s: %s\n", command, notice)
	}
}

// newFlags makes a flag set whose --help prints the command's usage.
func newFlags(name, synopsis string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("fer "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fer %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; --help is not an error.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		return errHelp
	}
	if err != nil {
		return usagef("%v", err)
	}
	return nil
}

var errHelp = errors.New("help requested")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ue *usageError
		var ee *exitError
		switch {
		case err == nil, errors.Is(err, errHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "fer %s: %v (see 'fer %s --help')\n", c.name, err, c.name)
			return 2
		case errors.As(err, &ee):
			if ee.err != nil {
				fmt.Fprintf(stderr, "fer %s: %v\n", c.name, err)
			}
			return ee.code
		default:
			fmt.Fprintf(stderr, "fer %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "fer: unknown command %q; commands: %s\n", args[0], commandNames())
	return 2
}

func commandNames() string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
