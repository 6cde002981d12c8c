package train_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fertorch/fertorch/internal/testmodel"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/train"
	"github.com/fertorch/fertorch/train/metrics"
	"github.com/fertorch/fertorch/train/plot"
)

// The distributed tests re-execute the test binary as the ranks of a job:
// a worker runs train.Train with the config file and options its parent
// names in distConfigVar and distCaseVar, as one rank of a Gloo group on
// loopback.
const (
	distWorkerVar = "FERTORCH_TRAIN_DIST_WORKER"
	distConfigVar = "FERTORCH_TRAIN_DIST_CONFIG"
	distCaseVar   = "FERTORCH_TRAIN_DIST_CASE"
)

// distLayout writes a tiny prepared layout: 80 training images in four
// unbalanced classes (32, 24, 16, 8: class weights matter) and 21
// validation images, 32x32 PNGs whose pattern depends on the class.
func distLayout(t *testing.T, dir string) string {
	t.Helper()
	classes := []string{"anger", "happiness", "sadness", "surprise"}
	write := func(part string, counts []int) {
		for c, n := range counts {
			folder := filepath.Join(dir, part, classes[c])
			if err := os.MkdirAll(folder, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				img := image.NewRGBA(image.Rect(0, 0, 32, 32))
				for y := 0; y < 32; y++ {
					for x := 0; x < 32; x++ {
						v := 128 + 100*math.Sin(float64(x*(c+1)+y*(i%5+1))/6)
						img.Set(x, y, color.RGBA{uint8(v), uint8((x * 8 * (c + 1)) % 256), uint8((y*7 + i*13) % 256), 255})
					}
				}
				var buf bytes.Buffer
				if err := png.Encode(&buf, img); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(folder, fmt.Sprintf("%s-%s-%02d.png", part, classes[c], i)), buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write("train", []int{32, 24, 16, 8})
	write("valid", []int{7, 6, 5, 3})
	return dir
}

// distConfig is a small deterministic run: VGG16 from scratch at 32x32 with
// a small transfer head, global batch 16 (5 steps an epoch), class weights
// on, augmentation and dropout off, one thread.
func distConfig(layout, out string, arch string, epochs int) train.Config {
	cfg := train.DefaultConfig()
	cfg.Data.Dir, cfg.Data.Workers, cfg.Data.Prefetch = layout, 1, 2
	cfg.Output = out
	if err := cfg.Model.Arch.Set(arch); err != nil {
		panic(err)
	}
	cfg.Model.InputSize, cfg.Model.Hidden, cfg.Model.Dropout = 32, 32, 0
	cfg.Model.Weights, cfg.Model.TrainableBaseLayers = "", "all"
	cfg.Augment.Enabled = false
	cfg.Train.Epochs, cfg.Train.BatchSize, cfg.Train.LR = epochs, 16, 1e-4
	cfg.Train.ClassWeights = true
	cfg.Train.Device, cfg.Train.Threads = "cpu", 1
	cfg.Train.EpochCheckpoints = true
	return cfg
}

// distWorker runs this process as a rank of the running test's job, if it
// is one; the test function returns when it reports true.
func distWorker(t *testing.T) bool {
	t.Helper()
	if os.Getenv(distWorkerVar) != t.Name() {
		return false
	}
	env, ok, err := dist.FromEnv(os.Getenv)
	if err != nil || !ok {
		t.Fatalf("worker: FromEnv: ok=%v err=%v", ok, err)
	}
	cfg, err := train.LoadConfig(os.Getenv(distConfigVar))
	if err != nil {
		t.Fatal(err)
	}
	g, err := dist.Init(env, dist.Options{Timeout: 2 * time.Minute, Device: torch.CPU()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	opts := train.Options{Dist: g, LocalRank: env.LocalRank, LocalWorldSize: env.LocalWorldSize, Log: os.Stdout, Warnings: os.Stdout}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	switch c := os.Getenv(distCaseVar); {
	case c == "resume":
		opts.Resume = cfg.Output
	case c == "interrupt" && env.Rank == 1:
		// Rank 1 alone is interrupted once rank 0 saved a checkpoint in the
		// middle of the second epoch.
		go func() {
			for ctx.Err() == nil {
				if lc, err := train.LoadCheckpoint(filepath.Join(cfg.Output, train.LastCheckpoint)); err == nil && lc.State.Epoch == 1 && lc.State.Step > 0 {
					fmt.Printf("REPORT interrupted-after=%d\n", lc.State.Step)
					cancel()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	_, err = train.Train(ctx, cfg, opts)
	fmt.Printf("REPORT error=%v\n", err)
	if err != nil && os.Getenv(distCaseVar) != "interrupt" {
		t.Fatal(err)
	}
	return true
}

// runRanks runs cfg as a job of n ranks of the running test and returns
// each rank's output; every rank must exit 0.
func runRanks(t *testing.T, n int, cfg train.Config, scenario string) []string {
	t.Helper()
	return runRanksNamed(t, n, cfg, scenario, t.Name())
}

func runRanksNamed(t *testing.T, n int, cfg train.Config, scenario, name string) []string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(cfg.Output), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := cfg.Output + ".yaml"
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FERTORCH_TRAIN_DIST_") && !strings.HasPrefix(kv, "RANK=") && !strings.HasPrefix(kv, "WORLD_SIZE=") && !strings.HasPrefix(kv, "MASTER_") && !strings.HasPrefix(kv, "LOCAL_") && !strings.HasPrefix(kv, "TORCHELASTIC_") {
			base = append(base, kv)
		}
	}
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for r := range cmds {
		env := dist.Env{Rank: r, WorldSize: n, LocalRank: r, LocalWorldSize: n, MasterAddr: "127.0.0.1", MasterPort: port}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
		cmd.Env = append(append(append([]string{}, base...), env.Environ()...),
			distWorkerVar+"="+name, distConfigVar+"="+cfgPath, distCaseVar+"="+scenario)
		outs[r] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[r], outs[r]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = cmd
	}
	var failed []string
	texts := make([]string, n)
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			failed = append(failed, fmt.Sprintf("rank %d: %v", r, err))
		}
		texts[r] = outs[r].String()
	}
	if len(failed) > 0 {
		var all strings.Builder
		for r, o := range texts {
			fmt.Fprintf(&all, "---- rank %d:\n%s\n", r, o)
		}
		t.Fatalf("%s: %s\n%s", scenario, strings.Join(failed, "; "), all.String())
	}
	return texts
}

// reportOf is the value a worker reported for key.
func reportOf(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "REPORT "+key+"="); ok {
			return v
		}
	}
	return "(not reported)"
}

// maxDiff is the largest absolute difference between the float tensors of
// two checkpoints' models (parameters and buffers), which must hold the
// same names, shapes and dtypes; integer tensors must be equal. It logs
// the tensor where the difference is largest.
func maxDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	ca, err := train.LoadCheckpoint(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := train.LoadCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	worst, at, err := testmodel.WeightDiff(ca, cb)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s and %s: largest difference %.3g, in %s", filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b)), worst, at)
	return worst
}

// sameEnd checks that the run folder resumed ends as the uninterrupted run
// straight does, bit for bit: weights, optimizer state, and history but for
// the epochs' durations. It returns straight's history.
func sameEnd(t *testing.T, straight, resumed string) []plot.Epoch {
	t.Helper()
	a, err := train.LoadCheckpoint(filepath.Join(straight, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	b, err := train.LoadCheckpoint(filepath.Join(resumed, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Model.Entries, b.Model.Entries) || !reflect.DeepEqual(a.Optimizer, b.Optimizer) {
		worst, at, err := testmodel.WeightDiff(a, b)
		t.Errorf("the resumed run does not end with the uninterrupted run's weights and optimizer state (largest weight difference %.3g, in %s; %v)", worst, at, err)
	}
	ha, hb := a.State.History, b.State.History
	for i := range ha {
		ha[i].Seconds = 0
	}
	for i := range hb {
		hb[i].Seconds = 0
	}
	if !reflect.DeepEqual(ha, hb) {
		t.Errorf("history: uninterrupted %+v, resumed %+v", ha, hb)
	}
	return ha
}

func needDist(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("trains several small runs on 1 and 2 processes")
	}
	if err := dist.Available(); err != nil {
		t.Skip(err)
	}
}

// TestTwoRanksTrainAsOneProcess: 2 ranks with global batch 16 end the
// first epoch (5 steps of SGD with momentum) with the parameters one
// process reaches with batch 16 (max abs diff <= 1e-5, class weights with
// Keras' normalisation, augmentation and dropout off); their history agrees, and their sharded validation gives the same
// confusion matrix and loss as one process. Rank 0 alone writes.
func TestTwoRanksTrainAsOneProcess(t *testing.T) {
	if distWorker(t) {
		return
	}
	needDist(t)
	dir := t.TempDir()
	layout := distLayout(t, filepath.Join(dir, "data"))
	// SGD's step is proportional to the gradient (Adam's hardly depends on
	// its scale), so a gradient summed wrongly shows. At lr 1e-2 this
	// network is chaotic (any two summation orders end 5 steps ~1e-4 apart;
	// see TestTwoRanksSyncBatchNorm); at 1e-3 it is not.
	single := distConfig(layout, filepath.Join(dir, "single"), "vgg16", 1)
	single.Train.Optimizer, single.Train.LR, single.Train.Momentum = train.SGD, 1e-3, 0.9
	if _, err := train.Train(context.Background(), single, train.Options{}); err != nil {
		t.Fatal(err)
	}
	two := single
	two.Output = filepath.Join(dir, "two")
	outs := runRanks(t, 2, two, "train")
	for r, out := range outs {
		if e := reportOf(out, "error"); e != "<nil>" {
			t.Fatalf("rank %d: %s", r, e)
		}
	}
	if strings.Contains(outs[1], "epoch 1/1") || !strings.Contains(outs[0], "epoch 1/1") || !strings.Contains(outs[0], "data-parallel on 2 ranks: global batch 16, 8 images per rank and step") {
		t.Errorf("rank 0 alone logs:\n---- rank 0:\n%s\n---- rank 1:\n%s", outs[0], outs[1])
	}
	epoch1 := func(run string) string {
		m, err := filepath.Glob(filepath.Join(run, "epoch-01-*.safetensors"))
		if err != nil || len(m) != 1 {
			t.Fatalf("%s: epoch files %v %v", run, m, err)
		}
		return m[0]
	}
	d := maxDiff(t, epoch1(single.Output), epoch1(two.Output))
	t.Logf("vgg16, 5 steps: max abs parameter difference 2 ranks vs 1 process %.3g", d)
	if d > 1e-5 {
		t.Errorf("parameters after 5 steps differ by %.3g > 1e-5", d)
	}
	checkSameValidation(t, single.Output, two.Output)

	// Gradient accumulation on 2 ranks (2 micro-batches of 4 images per
	// rank): the micro-batches' gradients add up in .grad and the last
	// backward's Reducer sums them across ranks.
	acc := single
	acc.Output, acc.Train.Accumulate = filepath.Join(dir, "accumulate"), 2
	for r, out := range runRanks(t, 2, acc, "train") {
		if e := reportOf(out, "error"); e != "<nil>" {
			t.Fatalf("accumulate, rank %d: %s", r, e)
		}
	}
	d = maxDiff(t, epoch1(single.Output), epoch1(acc.Output))
	t.Logf("vgg16, 5 steps: max abs parameter difference 2 ranks x 2 micro-batches vs 1 process %.3g", d)
	if d > 1e-5 {
		t.Errorf("with accumulation, parameters after 5 steps differ by %.3g > 1e-5", d)
	}
}

// checkSameValidation compares two runs' validation reports and history.
func checkSameValidation(t *testing.T, a, b string) {
	t.Helper()
	load := func(run string) *metrics.Report {
		raw, err := os.ReadFile(filepath.Join(run, train.ValidationReport))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := metrics.ReadJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	ra, rb := load(a), load(b)
	if ra.Samples != 21 || !reflect.DeepEqual(ra.Confusion, rb.Confusion) {
		t.Errorf("confusion matrices: one process %v (%d samples), 2 ranks %v (%d samples)", ra.Confusion, ra.Samples, rb.Confusion, rb.Samples)
	}
	ha, err := plot.LoadCSV(filepath.Join(a, train.HistoryCSV))
	if err != nil {
		t.Fatal(err)
	}
	hb, err := plot.LoadCSV(filepath.Join(b, train.HistoryCSV))
	if err != nil {
		t.Fatal(err)
	}
	if len(ha.Epochs) != len(hb.Epochs) {
		t.Fatalf("%d and %d epochs of history", len(ha.Epochs), len(hb.Epochs))
	}
	for i := range ha.Epochs {
		x, y := ha.Epochs[i], hb.Epochs[i]
		if x.ValAcc != y.ValAcc || x.TrainAcc != y.TrainAcc || math.Abs(x.ValLoss-y.ValLoss) > 1e-5 || math.Abs(x.TrainLoss-y.TrainLoss) > 1e-5 {
			t.Errorf("epoch %d: one process %+v, 2 ranks %+v", i+1, x, y)
		}
	}
}

// TestTwoRanksSyncBatchNorm: with --sync-bn, 2 ranks training vgg16_bn
// (class weights with PyTorch's normalisation) with global batch 16 end 5
// steps with the parameters and running
// statistics of one process with batch 16 (max abs diff <= 1e-5); without
// it, each rank normalises with its own 8 images and they do not.
//
// vgg16_bn from scratch is chaotic: the gradients of 2 ranks and of one
// process differ in their last bits (sums in another order, see
// TestTwoRanksSyncBatchNormGradients), and from the second step on such
// differences flip ReLU and max-pool decisions somewhere in the network,
// which then differ by whole gradient terms: one process whose batch norm
// sums its statistics in another order (this synchronised one, on 1 rank)
// ends 5 steps of SGD at lr 1e-3 about 2e-3 away from native batch norm,
// at lr 1e-5 about 6e-6. So the learning rate is 1e-5, and
// the optimizer SGD: Adam moves a parameter by about its learning rate
// whatever its gradient, and the gradient of a convolution's bias in front
// of batch norm is rounding noise (batch norm removes the mean).
func TestTwoRanksSyncBatchNorm(t *testing.T) {
	if distWorker(t) {
		return
	}
	needDist(t)
	dir := t.TempDir()
	layout := distLayout(t, filepath.Join(dir, "data"))
	single := distConfig(layout, filepath.Join(dir, "single"), "vgg16_bn", 1)
	single.Train.Optimizer, single.Train.LR, single.Train.Momentum = train.SGD, 1e-5, 0.9
	// Each rank's share has its own sum of class weights; the loss divides
	// by the global batch's.
	single.Train.LossNormalization = train.PyTorchLoss
	if _, err := train.Train(context.Background(), single, train.Options{}); err != nil {
		t.Fatal(err)
	}
	synced := single
	synced.Output = filepath.Join(dir, "sync")
	synced.Train.SyncBN = true
	outs := runRanks(t, 2, synced, "train")
	if !strings.Contains(outs[0], "batch norm synchronised across ranks (13 layers)") {
		t.Errorf("rank 0's log does not say batch norm is synchronised:\n%s", outs[0])
	}
	last := train.LastCheckpoint
	d := maxDiff(t, filepath.Join(single.Output, last), filepath.Join(synced.Output, last))
	t.Logf("vgg16_bn --sync-bn, 5 steps: max abs difference 2 ranks vs 1 process %.3g", d)
	if d > 1e-5 {
		t.Errorf("parameters and running statistics after 5 steps differ by %.3g > 1e-5", d)
	}
	perRank := single
	perRank.Output = filepath.Join(dir, "per-rank")
	runRanks(t, 2, perRank, "train")
	if d := maxDiff(t, filepath.Join(single.Output, last), filepath.Join(perRank.Output, last)); d < 1e-3 {
		t.Errorf("per-rank batch norm ends within %.3g of one process: the test would not see a missing synchronisation", d)
	}
}

// TestTwoRanksResumeExactly: a 2-rank run whose rank 1 alone is
// interrupted in the middle of its second epoch stops on both ranks at the
// next step, rank 0 saving the checkpoint; resumed on 2 ranks it ends with
// the weights, optimizer state and history (times aside) of an
// uninterrupted 2-rank run, bit for bit.
func TestTwoRanksResumeExactly(t *testing.T) {
	if distWorker(t) {
		return
	}
	needDist(t)
	dir := t.TempDir()
	layout := distLayout(t, filepath.Join(dir, "data"))
	straight := distConfig(layout, filepath.Join(dir, "straight"), "vgg16", 2)
	straight.Train.CheckpointEverySteps = 2
	straight.Train.EpochCheckpoints = false
	runRanks(t, 2, straight, "train")

	stopped := straight
	stopped.Output = filepath.Join(dir, "stopped")
	outs := runRanks(t, 2, stopped, "interrupt")
	if e := reportOf(outs[0], "error"); e != train.ErrPeerInterrupted.Error() {
		t.Errorf("rank 0 ended with %q, want %q", e, train.ErrPeerInterrupted)
	}
	if e := reportOf(outs[1], "error"); e != context.Canceled.Error() {
		t.Errorf("rank 1 ended with %q, want %q", e, context.Canceled)
	}
	lc, err := train.LoadCheckpoint(filepath.Join(stopped.Output, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	// Rank 1 was interrupted once it saw the checkpoint of step `after`,
	// while the ranks ran the next step: they stop at the end of that one
	// (or of the following one, had rank 1 seen the file late).
	after, err := strconv.Atoi(reportOf(outs[1], "interrupted-after"))
	if err != nil {
		t.Fatalf("rank 1: %v\n%s", err, outs[1])
	}
	t.Logf("rank 1 interrupted after the checkpoint of epoch 2 step %d; saved at epoch %d step %d", after, lc.State.Epoch+1, lc.State.Step)
	if lc.State.Epoch != 1 || lc.State.Step <= after || lc.State.Step > after+2 {
		t.Errorf("saved at epoch %d step %d; rank 1 was interrupted after the checkpoint of epoch 2 step %d", lc.State.Epoch+1, lc.State.Step, after)
	}
	if lc.State.Ranks != 2 {
		t.Errorf("the checkpoint says %d ranks, want 2", lc.State.Ranks)
	}
	runRanks(t, 2, stopped, "resume")

	sameEnd(t, straight.Output, stopped.Output)
}

// TestTwoRanksSyncBatchNormGradients: after one backward on their halves
// of a batch of 16, with synchronised batch norm and the Reducer, both
// ranks of vgg16_bn hold the gradients of one process on the whole batch,
// within 1e-5 of the largest gradient (the convolution biases in front of
// batch norm have rounding noise for a gradient, batch norm removing their
// effect). This bounds the difference at its source; over several steps
// any two summation orders drift apart in such a network (see
// TestTwoRanksSyncBatchNorm).
func TestTwoRanksSyncBatchNormGradients(t *testing.T) {
	if os.Getenv(distWorkerVar) == t.Name() {
		syncGradientWorker(t)
		return
	}
	needDist(t)
	cfg := distConfig(t.TempDir(), filepath.Join(t.TempDir(), "unused"), "vgg16_bn", 1)
	outs := runRanks(t, 2, cfg, "gradients")
	for r, out := range outs {
		var worst, scale float64
		var name string
		if _, err := fmt.Sscanf(reportOf(out, "worst"), "%s %g %g", &name, &worst, &scale); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, out)
		}
		t.Logf("rank %d: largest gradient difference %.3g (%s) of largest gradient %.3g", r, worst, name, scale)
		if worst > 1e-5*scale {
			t.Errorf("rank %d: %s's gradient differs by %.3g > 1e-5 x %.3g", r, name, worst, scale)
		}
	}
}

// syncGradientWorker is one rank of TestTwoRanksSyncBatchNormGradients.
func syncGradientWorker(t *testing.T) {
	if err := torch.SetNumThreads(1); err != nil {
		t.Fatal(err)
	}
	env, _, err := dist.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	g, err := dist.Init(env, dist.Options{Timeout: time.Minute, Device: torch.CPU()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	build := func() train.Net {
		if err := torch.ManualSeed(3); err != nil {
			t.Fatal(err)
		}
		m, err := train.BuildNet(distConfig("", "", "vgg16_bn", 1).Model, 4)
		if err != nil {
			t.Fatal(err)
		}
		m.SetTraining(true)
		return m
	}
	scope := torch.NewScope()
	defer scope.Close()
	if err := torch.ManualSeed(9); err != nil {
		t.Fatal(err)
	}
	x, _ := scope.Own(torch.Rand([]int64{16, 3, 32, 32}, torch.Options{}))
	y, err := scope.Own(torch.FromInt64s([]int64{0, 1, 2, 3, 0, 0, 1, 2, 0, 3, 1, 0, 0, 2, 1, 0}, 16))
	if err != nil {
		t.Fatal(err)
	}
	grads := func(m train.Net) [][]float32 {
		var out [][]float32
		for _, p := range m.Parameters() {
			gr, err := scope.Own(p.Tensor.Grad())
			if err != nil {
				t.Fatal(err)
			}
			v, _ := gr.Float32s()
			out = append(out, v)
		}
		return out
	}
	backward := func(l *torch.Tensor, err error) {
		if err == nil {
			err = l.Backward()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ref := build()
	defer ref.Free()
	logits, err := ref.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	backward(train.LossConfig{}.Loss(logits, y))
	want := grads(ref)

	m := build()
	defer m.Free()
	var params []*torch.Tensor
	for _, p := range m.Parameters() {
		params = append(params, p.Tensor)
	}
	nn.Walk(m, func(_ string, mod nn.Module) bool {
		if bn, ok := mod.(*nn.BatchNorm2d); ok {
			bn.Sync = g
		}
		return true
	})
	red, err := g.NewReducer(params, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer red.Free()
	xs, _ := x.Narrow(0, int64(env.Rank)*8, 8)
	ys, _ := y.Narrow(0, int64(env.Rank)*8, 8)
	out, err := m.Forward(xs)
	if err != nil {
		t.Fatal(err)
	}
	if err := red.Prepare(); err != nil {
		t.Fatal(err)
	}
	backward(train.LossConfig{}.ShardLoss(out, ys, 16))
	if err := red.Finish(); err != nil {
		t.Fatal(err)
	}
	got := grads(m)
	names := m.Parameters()
	worst, scale, at := 0.0, 0.0, ""
	for i := range want {
		for k := range want[i] {
			if d := math.Abs(float64(want[i][k] - got[i][k])); d > worst {
				worst, at = d, names[i].Name
			}
			scale = max(scale, math.Abs(float64(want[i][k])))
		}
	}
	fmt.Printf("REPORT worst=%s %g %g\n", at, worst, scale)
}
