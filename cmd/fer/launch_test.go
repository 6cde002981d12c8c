package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fertorch/fertorch/launch"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/train"
	"gopkg.in/yaml.v3"
)

// TestLaunchUsageErrors: a --nproc-per-node that cannot work exits with 2
// and one line, before anything is written.
func TestLaunchUsageErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	gpus := 0
	if torch.BuiltWithCUDA() {
		gpus = torch.CUDADeviceCount()
	}
	tooMany := fmt.Sprint(gpus + 1)
	cudaWant := fmt.Sprintf("fer train: --nproc-per-node %d with --device cuda needs %d CUDA devices (one per process), but %d are visible; use at most %d, or --device cpu (see 'fer train --help')\n", gpus+1, gpus+1, gpus, gpus)
	if gpus == 0 {
		cudaWant = fmt.Sprintf("fer train: --nproc-per-node 1 with --device cuda needs 1 CUDA devices (one per process), but %s; or use --device cpu (see 'fer train --help')\n", torch.CUDAUnavailableReason())
	}
	cases := []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"--nproc-per-node", "0"}, "fer train: --nproc-per-node 0 must be at least 1 (see 'fer train --help')\n"},
		{"", []string{"--nproc-per-node=-2"}, "fer train: --nproc-per-node -2 must be at least 1 (see 'fer train --help')\n"},
		{"", []string{"--nproc-per-node", tooMany, "--device", "cuda"}, cudaWant},
		{"", []string{"--nproc-per-node", "2", "--device", "cuda:1"}, "fer train: --device cuda:1 names one GPU for the 2 processes of --nproc-per-node; use --device cuda, which gives each process its own (cuda:LOCAL_RANK) (see 'fer train --help')\n"},
		{"3", []string{"--nproc-per-node", "2", "--device", "cpu"}, "fer train: --nproc-per-node starts its own processes, but WORLD_SIZE=3 says this fer train is one of a launched job's; drop --nproc-per-node under torchrun or a PyTorchJob (see 'fer train --help')\n"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			if c.env != "" {
				t.Setenv("WORLD_SIZE", c.env)
			}
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"train", "--output", out}, c.args...), &stdout, &stderr)
			if code != 2 || stderr.String() != c.want || stdout.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr\n%q\nwant\n%q", code, stdout.String(), stderr.String(), c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was made", out)
			}
		})
	}
}

// TestTrainHelpExplainsLaunching: fer train --help tells how to run on
// several processes.
func TestTrainHelpExplainsLaunching(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"train", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--nproc-per-node int", "start this many training processes on this machine", "--batch-size is the global batch", "torchrun --max_restarts"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("fer train --help lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestWithoutFlag: the workers get the launcher's arguments without
// --nproc-per-node, in either spelling, and flags after "--" stay.
func TestWithoutFlag(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"--nproc-per-node", "2", "--epochs", "3"}, []string{"--epochs", "3"}},
		{[]string{"--epochs", "3", "--nproc-per-node=4"}, []string{"--epochs", "3"}},
		{[]string{"-c", "x.yaml", "--nproc-per-node", "2", "--nproc-per-node-x", "1"}, []string{"-c", "x.yaml", "--nproc-per-node-x", "1"}},
		{[]string{"--nproc-per-node", "2", "--", "--nproc-per-node", "3"}, []string{"--", "--nproc-per-node", "3"}},
	}
	for _, c := range cases {
		if got := withoutFlag(c.in, nprocFlag); !reflect.DeepEqual(got, c.want) {
			t.Errorf("withoutFlag(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestElasticResume: a restarted worker (TORCHELASTIC_RESTART_COUNT > 0)
// resumes from its run folder's last checkpoint when there is one, and
// starts over otherwise; the first attempt never resumes by itself.
func TestElasticResume(t *testing.T) {
	withLast := t.TempDir()
	if err := os.WriteFile(filepath.Join(withLast, train.LastCheckpoint), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	cases := []struct {
		restarts, dir string
		ok            bool
		err           string
	}{
		{"", withLast, false, ""},
		{"0", withLast, false, ""},
		{"1", withLast, true, ""},
		{"3", empty, false, ""},
		{"1", filepath.Join(empty, "not-yet"), false, ""},
		{"x", withLast, false, `TORCHELASTIC_RESTART_COUNT="x" is not a restart count`},
		{"-1", withLast, false, `TORCHELASTIC_RESTART_COUNT="-1" is not a restart count`},
	}
	for _, c := range cases {
		getenv := func(name string) string {
			if name == "TORCHELASTIC_RESTART_COUNT" {
				return c.restarts
			}
			return ""
		}
		dir, ok, err := elasticResume(getenv, c.dir)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		if ok != c.ok || errText != c.err || (ok && dir != c.dir) {
			t.Errorf("restarts %q in %s: %q, %v, %v; want ok %v, error %q", c.restarts, c.dir, dir, ok, err, c.ok, c.err)
		}
	}
}

// The test binary doubles as a worker of a launched job: with
// FER_LAUNCH_TEST_WORKER set it joins the job and all-reduces its rank.
func TestMain(m *testing.M) {
	if os.Getenv("FER_LAUNCH_TEST_WORKER") != "" {
		if err := joinWorker(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func joinWorker() error {
	env, ok, err := dist.FromEnv(os.Getenv)
	if err != nil || !ok {
		return fmt.Errorf("FromEnv: %v, %v", ok, err)
	}
	g, err := dist.Init(env, dist.Options{Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer g.Close()
	x, err := torch.FromFloat32s([]float32{float32(env.Rank + 1)}, 1)
	if err != nil {
		return err
	}
	if err := g.AllReduceSum([]*torch.Tensor{x}); err != nil {
		return err
	}
	v, err := x.Float32s()
	if err != nil {
		return err
	}
	fmt.Printf("rank %d of %d, agent store %v: sum %v\n", g.Rank(), g.Size(), env.UseAgentStore, v[0])
	return nil
}

// TestLaunchedWorkersJoin: workers started by the launcher find its c10d
// store through the environment contract and form one process group.
func TestLaunchedWorkersJoin(t *testing.T) {
	if err := dist.Available(); err != nil {
		t.Skip(err)
	}
	var stdout, stderr bytes.Buffer
	err := launch.Run(launch.Job{
		Procs:      3,
		Path:       os.Args[0],
		Env:        append(os.Environ(), "FER_LAUNCH_TEST_WORKER=1"),
		Stdout:     &stdout,
		Stderr:     &stderr,
		ServeStore: storeServer(30 * time.Second),
		Grace:      5 * time.Second,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	got := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	sort.Strings(got)
	want := []string{"rank 0 of 3, agent store true: sum 6", "rank 1: rank 1 of 3, agent store true: sum 6", "rank 2: rank 2 of 3, agent store true: sum 6"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("workers printed\n%q\nwant\n%q\nstderr:\n%s", got, want, stderr.String())
	}
}

// TestLauncherEnvironmentParses: what the launcher gives each worker is
// what torch/dist reads as that rank's contract.
func TestLauncherEnvironmentParses(t *testing.T) {
	for rank := 0; rank < 3; rank++ {
		vars := map[string]string{}
		for _, kv := range launch.Environ(rank, 3, 29400) {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		env, ok, err := dist.FromEnv(func(k string) string { return vars[k] })
		want := dist.Env{Rank: rank, WorldSize: 3, LocalRank: rank, LocalWorldSize: 3, MasterAddr: "127.0.0.1", MasterPort: 29400, UseAgentStore: true}
		if err != nil || !ok || env != want {
			t.Errorf("rank %d: %+v, %v, %v; want %+v", rank, env, ok, err, want)
		}
	}
}

// TestPyTorchJobManifest: deploy/pytorchjob.yaml runs one fer train per pod
// (one GPU each) with the same flags on the Master and the Workers, in the
// container the training-operator gives the contract to, and fer train
// accepts those flags.
func TestPyTorchJobManifest(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/pytorchjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var job struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			Replicas map[string]struct {
				Replicas int `yaml:"replicas"`
				Template struct {
					Spec struct {
						Containers []struct {
							Name       string   `yaml:"name"`
							Image      string   `yaml:"image"`
							Command    []string `yaml:"command"`
							Args       []string `yaml:"args"`
							WorkingDir string   `yaml:"workingDir"`
							Resources  struct {
								Limits map[string]string `yaml:"limits"`
							} `yaml:"resources"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"pytorchReplicaSpecs"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	if job.APIVersion != "kubeflow.org/v1" || job.Kind != "PyTorchJob" || len(job.Spec.Replicas) != 2 {
		t.Fatalf("%s %s with replica sets %v", job.APIVersion, job.Kind, job.Spec.Replicas)
	}
	var args []string
	for _, role := range []string{"Master", "Worker"} {
		spec, ok := job.Spec.Replicas[role]
		if !ok || len(spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: want one container", role)
		}
		c := spec.Template.Spec.Containers[0]
		if c.Name != "pytorch" || !reflect.DeepEqual(c.Command, []string{"fer", "train"}) || c.Resources.Limits["nvidia.com/gpu"] != "1" || c.WorkingDir != "/work" {
			t.Errorf("%s: container %q runs %q with %v GPUs in %q", role, c.Name, c.Command, c.Resources.Limits["nvidia.com/gpu"], c.WorkingDir)
		}
		if args == nil {
			args = c.Args
		} else if !reflect.DeepEqual(args, c.Args) {
			t.Errorf("the Worker's flags %q differ from the Master's %q", c.Args, args)
		}
	}
	if job.Spec.Replicas["Master"].Replicas != 1 {
		t.Errorf("%d Masters, want 1 (rank 0)", job.Spec.Replicas["Master"].Replicas)
	}
	var stdout, stderr bytes.Buffer
	if code := run(append(append([]string{"train"}, args...), "--print-config"), &stdout, &stderr); code != 0 {
		t.Errorf("fer train %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--"+nprocFlag) {
			t.Errorf("the manifest gives %s, which fer refuses where WORLD_SIZE is set", a)
		}
	}
}
