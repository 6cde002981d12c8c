package main

// Guards of the CUDA delivery: scripts/gpu-check.sh (run here as its CPU dry
// run, and with failing steps) and Dockerfile.cuda with its .dockerignore
// (checked statically: there is no Docker engine or GPU in CI).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fertorch/fertorch/internal/pyref"
)

const repoRoot = "../.."

// goTool is the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Skip("skipping: no go command to build fer with")
	}
	return p
}

// buildFer builds this command into a temporary folder.
func buildFer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fer")
	cmd := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build fer: %v\n%s", err, out)
	}
	return bin
}

type gpuCheckSummary struct {
	Mode     string `json:"mode"`
	DryRun   bool   `json:"dry_run"`
	Note     string `json:"note"`
	OK       bool   `json:"ok"`
	Settings struct {
		Device    string `json:"device"`
		InputSize int    `json:"input_size"`
		BatchSize int    `json:"batch_size"`
	} `json:"settings"`
	Parity map[string]struct {
		Status     string   `json:"status"`
		MaxAbsDiff *float64 `json:"max_abs_diff"`
	} `json:"parity"`
	Training map[string]struct {
		Precision    string `json:"precision"`
		ChannelsLast bool   `json:"channels_last"`
		Fertorch     struct {
			Status       string   `json:"status"`
			ImagesPerSec *float64 `json:"images_per_sec"`
			Error        string   `json:"error"`
		} `json:"fertorch"`
		Pytorch struct {
			Status       string   `json:"status"`
			ImagesPerSec *float64 `json:"images_per_sec"`
			Error        string   `json:"error"`
		} `json:"pytorch"`
		Ratio *float64 `json:"ratio_fertorch_over_pytorch"`
	} `json:"training"`
	Steps []struct {
		Name    string `json:"name"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"steps"`
	Failures []string `json:"failures"`
}

// runGPUCheck runs the script into a fresh folder and returns its exit
// status, the parsed summary and the combined output.
func runGPUCheck(t *testing.T, args ...string) (int, *gpuCheckSummary, string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(repoRoot, "scripts", "gpu-check.sh")}, append(args, out)...)...)
	output, err := cmd.CombinedOutput()
	rc := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			t.Fatalf("gpu-check.sh did not finish: %v\n%s", err, output)
		}
		rc = ee.ExitCode()
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatalf("no summary.json (exit %d): %v\n%s", rc, err, output)
	}
	var s gpuCheckSummary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("summary.json is not JSON: %v\n%s", err, raw)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "gpu-check.log summary.json" {
		t.Errorf("output folder holds %v, want gpu-check.log and summary.json only", names)
	}
	if fi, err := os.Stat(filepath.Join(out, "gpu-check.log")); err != nil || fi.Size() == 0 {
		t.Errorf("gpu-check.log missing or empty: %v", err)
	}
	return rc, &s, string(output), string(raw)
}

var trainingSettings = map[string]struct {
	precision    string
	channelsLast bool
}{
	"fp32":               {"fp32", false},
	"bf16":               {"bf16", false},
	"bf16_channels_last": {"bf16", true},
}

// TestGPUCheckDryRun runs scripts/gpu-check.sh on the CPU with tiny
// settings and checks that every step ran and summary.json says so.
func TestGPUCheckDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the gpu-check dry run in -short mode")
	}
	fer := buildFer(t)
	// The budget is a ceiling, not a target: on 2 busy cores under
	// libtorch 2.6 (its slow native kernels here) the dry run took 4m22s,
	// and a budget of 280 s left its last step 18 s.
	args := []string{"--cpu-dry-run", "--skip-build", "--fer", fer, "--steps", "1", "--warmup", "0", "--budget", "900"}
	py, pyErr := pyref.Find("torch", "torchvision")
	if pyErr == nil {
		args = append(args, "--python", py)
	} else {
		t.Logf("PyTorch steps are expected to fail: %v", pyErr)
	}
	start := time.Now()
	rc, s, output, raw := runGPUCheck(t, args...)
	t.Logf("dry run took %s", time.Since(start).Round(time.Second))
	fail := func(format string, a ...any) {
		t.Helper()
		t.Errorf(format+"\nsummary.json:\n%s\noutput:\n%s", append(a, raw, output)...)
	}
	if s.Mode != "cpu-dry-run" || !s.DryRun || !strings.Contains(s.Note, "not GPU measurements") {
		fail("mode %q dry_run %v note %q: want a clearly labelled CPU dry run", s.Mode, s.DryRun, s.Note)
	}
	if s.Settings.Device != "cpu" || s.Settings.InputSize != 64 || s.Settings.BatchSize != 4 {
		fail("dry-run settings %+v, want cpu, 64, 4", s.Settings)
	}
	for _, key := range []string{"fp32", "fp32_channels_last"} {
		p, ok := s.Parity[key]
		if !ok || p.Status != "ok" || p.MaxAbsDiff == nil || *p.MaxAbsDiff > 1e-3 {
			fail("parity %s: %+v", key, p)
		}
	}
	for key, want := range trainingSettings {
		tr, ok := s.Training[key]
		if !ok || tr.Precision != want.precision || tr.ChannelsLast != want.channelsLast {
			fail("training %s missing or mislabelled: %+v", key, tr)
			continue
		}
		if tr.Fertorch.Status != "ok" || tr.Fertorch.ImagesPerSec == nil || *tr.Fertorch.ImagesPerSec <= 0 {
			fail("training %s fertorch: %+v", key, tr.Fertorch)
		}
		if pyErr != nil {
			if tr.Pytorch.Status == "ok" || tr.Ratio != nil {
				fail("training %s pytorch ran without a reference Python: %+v", key, tr.Pytorch)
			}
			continue
		}
		if tr.Pytorch.Status != "ok" || tr.Pytorch.ImagesPerSec == nil || *tr.Pytorch.ImagesPerSec <= 0 {
			fail("training %s pytorch: %+v", key, tr.Pytorch)
		}
		if tr.Ratio == nil || *tr.Ratio <= 0 {
			fail("training %s: no ratio", key)
		}
	}
	distOK := false
	for _, st := range s.Steps {
		distOK = distOK || (st.Name == "dist-train-world-size-1" && st.Status == "ok")
	}
	if !distOK {
		fail("the one-rank distributed training step did not pass: %+v", s.Steps)
	}
	if pyErr == nil && (rc != 0 || !s.OK || len(s.Failures) != 0) {
		fail("exit %d, ok %v, failures %v: want a clean dry run", rc, s.OK, s.Failures)
	}
	if !strings.Contains(output, "CPU DRY RUN") {
		fail("the printed summary does not say it is a CPU dry run")
	}
}

// TestGPUCheckRecordsFailures makes every step fail and checks that the
// script goes on, records each failure and exits 1 with a summary.
func TestGPUCheckRecordsFailures(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fer")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'fake fer: broken on purpose' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rc, s, output, raw := runGPUCheck(t, "--cpu-dry-run", "--skip-build", "--fer", fake, "--python", "/bin/false", "--budget", "120")
	if rc != 1 || s.OK {
		t.Fatalf("exit %d ok %v, want 1 and false\n%s\n%s", rc, s.OK, raw, output)
	}
	want := []string{"fer-version", "parity-fp32", "parity-fp32-channels-last", "train-fertorch-fp32", "train-pytorch-fp32",
		"train-fertorch-bf16", "train-pytorch-bf16", "train-fertorch-bf16-channels-last", "train-pytorch-bf16-channels-last", "dist-train-world-size-1", "python"}
	failed := map[string]string{}
	for _, st := range s.Steps {
		if st.Status != "ok" && st.Status != "skipped-by-option" {
			failed[st.Name] = st.Message
		}
	}
	for _, name := range want {
		if _, ok := failed[name]; !ok {
			t.Errorf("step %s is not recorded as failed; steps: %+v", name, s.Steps)
		}
	}
	if !strings.Contains(failed["fer-version"], "broken on purpose") {
		t.Errorf("fer-version's failure message %q does not carry the command's error", failed["fer-version"])
	}
}

// TestScriptsShellcheck runs shellcheck on every shell script of the
// repository (scripts/*.sh, scripts/lib/*.sh and .ci/run) when it is
// installed, following the files they source.
func TestScriptsShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("skipping: shellcheck is not installed (apt-get install shellcheck)")
	}
	scripts, err := filepath.Glob(filepath.Join(repoRoot, "scripts", "*.sh"))
	if err != nil || len(scripts) < 7 {
		t.Fatalf("found %d scripts in scripts/ (%v), want at least 7", len(scripts), err)
	}
	lib, err := filepath.Glob(filepath.Join(repoRoot, "scripts", "lib", "*.sh"))
	if err != nil || len(lib) < 3 {
		t.Fatalf("found %d scripts in scripts/lib (%v), want at least 3", len(lib), err)
	}
	scripts = append(append(scripts, lib...), filepath.Join(repoRoot, ".ci", "run"))
	for _, script := range scripts {
		if out, err := exec.Command(sc, "-x", script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", script, err, out)
		}
	}
}

// ---- Dockerfile.cuda ------------------------------------------------------

type dockerInstr struct {
	line int
	cmd  string // upper case
	args string
}

// parseDockerfile returns the instructions with continuation lines joined
// and comments dropped.
func parseDockerfile(t *testing.T, path string) []dockerInstr {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstr
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		out = append(out, dockerInstr{start, strings.ToUpper(cmd), strings.TrimSpace(args)})
	}
	if cur.Len() != 0 {
		t.Fatalf("%s ends inside a continued line", path)
	}
	return out
}

// dockerignore is a .dockerignore matcher (Docker's rules: patterns from the
// context root, * within a path element, ** across elements, ! re-includes,
// the last matching pattern wins, a matching folder excludes its content).
type dockerignore struct {
	res     []*regexp.Regexp
	include []bool
}

func loadDockerignore(t *testing.T, path string) *dockerignore {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerignore{}
	for _, line := range strings.Split(string(raw), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		inc := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		p = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case c == '*' && strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case c == '*' && strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		d.res = append(d.res, regexp.MustCompile(re.String()))
		d.include = append(d.include, inc)
	}
	return d
}

// excluded reports whether a path (relative, slash-separated) stays out of
// the build context.
func (d *dockerignore) excluded(path string) bool {
	parts := strings.Split(path, "/")
	out := false
	for i, re := range d.res {
		for j := 1; j <= len(parts); j++ {
			if re.MatchString(strings.Join(parts[:j], "/")) {
				out = !d.include[i]
				break
			}
		}
	}
	return out
}

func TestDockerignoreMatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".dockerignore")
	if err := os.WriteFile(path, []byte("# comment\nbuild\n/work/\n**/*.test\ndocs/*.md\n!docs/keep.md\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := loadDockerignore(t, path)
	for path, want := range map[string]bool{
		"build": true, "build/fer": true, "cmd/build.go": false, "cmd/build/x.go": false, "work/data/a.jpg": true,
		"a/b/c.test": true, "x.test": true, "docs/a.md": true, "docs/keep.md": false, "docs/sub/a.md": false, "go.mod": false,
	} {
		if got := d.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v, want %v", path, got, want)
		}
	}
}

// shellCommands splits a RUN line into the first words of its simple
// commands (after environment assignments).
func shellCommands(script string) []string {
	var cmds []string
	for _, part := range regexp.MustCompile(`&&|\|\||;|\|`).Split(script, -1) {
		fields := strings.Fields(part)
		for len(fields) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(fields[0]) {
			fields = fields[1:]
		}
		if len(fields) > 0 {
			cmds = append(cmds, fields[0])
		}
	}
	return cmds
}

// TestDockerfileCUDA checks Dockerfile.cuda without a Docker engine: its
// syntax, pinned sources, that every COPY source exists and is in the build
// context, and that every command it runs is there at that point.
func TestDockerfileCUDA(t *testing.T) {
	instrs := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile.cuda"))
	ignore := loadDockerignore(t, filepath.Join(repoRoot, ".dockerignore"))
	known := map[string]bool{"FROM": true, "ARG": true, "ENV": true, "RUN": true, "COPY": true, "WORKDIR": true,
		"SHELL": true, "ENTRYPOINT": true, "CMD": true, "LABEL": true, "USER": true, "EXPOSE": true, "VOLUME": true}

	// Commands every Ubuntu base image has, and what apt packages add.
	base := map[string]bool{"apt-get": true, "rm": true, "test": true, "tar": true, "ln": true, "chmod": true,
		"mkdir": true, "grep": true, "tee": true, "cp": true, "mv": true, "echo": true, "cat": true, "true": true,
		"sh": true, "bash": true, "ldconfig": true, "sed": true}
	fromPackage := map[string][]string{"curl": {"curl"}, "unzip": {"unzip"}, "make": {"make"},
		"g++": {"g++", "gcc", "c++"}, "binutils": {"nm", "readelf", "ld"}, "ca-certificates": nil, "git": {"git"}}

	args := map[string]string{}
	expand := func(s string) string {
		return regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`).ReplaceAllStringFunc(s, func(m string) string {
			name := strings.Trim(m, "${}")
			if v, ok := args[name]; ok {
				return v
			}
			return m
		})
	}
	type stage struct {
		name, image string
		available   map[string]bool
		workdir     string
		env         map[string]string
		produced    []string // paths made inside the stage
	}
	var stages []*stage
	var cur *stage
	var urls []string
	for _, in := range instrs {
		if !known[in.cmd] {
			t.Errorf("line %d: unknown instruction %s", in.line, in.cmd)
			continue
		}
		if in.args == "" {
			t.Errorf("line %d: %s without arguments", in.line, in.cmd)
			continue
		}
		if in.cmd == "ARG" {
			name, val, ok := strings.Cut(in.args, "=")
			if ok {
				args[name] = val
				if val == "" || strings.Contains(val, "latest") {
					t.Errorf("line %d: ARG %s is not pinned", in.line, in.args)
				}
			}
			continue
		}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := &stage{image: expand(f[0]), available: map[string]bool{}, env: map[string]string{}}
			if len(f) == 3 && f[1] == "AS" {
				s.name = f[2]
			} else if len(f) != 1 {
				t.Errorf("line %d: FROM %s: want IMAGE [AS NAME]", in.line, in.args)
			}
			for c := range base {
				s.available[c] = true
			}
			stages = append(stages, s)
			cur = s
			continue
		}
		if cur == nil {
			t.Fatalf("line %d: %s before FROM", in.line, in.cmd)
		}
		switch in.cmd {
		case "ENV":
			for _, kv := range regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)=(\S*)`).FindAllStringSubmatch(in.args, -1) {
				cur.env[kv[1]] = kv[2]
			}
			if !strings.Contains(in.args, "=") {
				t.Errorf("line %d: ENV without KEY=value", in.line)
			}
		case "WORKDIR":
			cur.workdir = in.args
		case "RUN":
			script := expand(in.args)
			for _, u := range regexp.MustCompile(`https://[^\s"]+`).FindAllString(script, -1) {
				urls = append(urls, u)
			}
			// Packages installed in this RUN become available to the commands after it.
			if m := regexp.MustCompile(`apt-get install ([^&|;]*)`).FindStringSubmatch(script); m != nil {
				for _, w := range strings.Fields(m[1]) {
					if strings.HasPrefix(w, "-") {
						continue
					}
					cmds, ok := fromPackage[w]
					if !ok {
						t.Errorf("line %d: package %s: add the commands it provides to this test", in.line, w)
					}
					for _, c := range cmds {
						cur.available[c] = true
					}
				}
			}
			if strings.Contains(script, "go.dev/dl/go") && strings.Contains(script, "-C /usr/local") {
				cur.produced = append(cur.produced, "/usr/local/go/bin/go")
			}
			if strings.Contains(cur.env["PATH"], "/usr/local/go/bin") && contains(cur.produced, "/usr/local/go/bin/go") {
				cur.available["go"] = true
			}
			for _, c := range shellCommands(script) {
				switch {
				case c == "go" && !cur.available["go"]:
					t.Errorf("line %d: go is run before the Go toolchain is installed and on PATH", in.line)
				case strings.HasPrefix(c, "build/") || strings.HasPrefix(c, "/"):
					if !contains(cur.produced, c) && !strings.HasPrefix(c, "/bin/") && !strings.HasPrefix(c, "/usr/bin/") {
						t.Errorf("line %d: %s is run before it is built", in.line, c)
					}
				case c != "go" && !cur.available[c]:
					t.Errorf("line %d: command %s is not in the image at this point (stage %q)", in.line, c, cur.name)
				}
				if c == "go" && strings.Contains(script, "go build") && strings.Contains(script, "-o build/") {
					cur.produced = append(cur.produced, "build/fer", cur.workdir+"/build/fer")
				}
				if c == "make" && strings.Contains(script, "make shim") {
					cur.produced = append(cur.produced, cur.workdir+"/build/libfertorch.so")
				}
				if c == "unzip" && strings.Contains(script, "-d /opt") {
					cur.produced = append(cur.produced, "/opt/libtorch/lib/")
				}
			}
		case "COPY":
			f := strings.Fields(in.args)
			from := ""
			if strings.HasPrefix(f[0], "--from=") {
				from, f = strings.TrimPrefix(f[0], "--from="), f[1:]
			}
			if len(f) < 2 {
				t.Errorf("line %d: COPY needs a source and a destination", in.line)
				continue
			}
			for _, src := range f[:len(f)-1] {
				if from == "" {
					rel := strings.TrimSuffix(filepath.ToSlash(filepath.Clean(src)), "/")
					if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
						t.Errorf("line %d: COPY source %s does not exist in the repository", in.line, src)
					}
					if rel != "." && ignore.excluded(rel) {
						t.Errorf("line %d: COPY source %s is excluded by .dockerignore", in.line, src)
					}
					continue
				}
				var fromStage *stage
				for _, s := range stages[:len(stages)-1] {
					if s.name == from {
						fromStage = s
					}
				}
				if fromStage == nil {
					t.Errorf("line %d: COPY --from=%s: no earlier stage of that name", in.line, from)
				} else if !contains(fromStage.produced, src) {
					t.Errorf("line %d: COPY --from=%s %s: the stage does not make it (made: %v)", in.line, from, src, fromStage.produced)
				}
			}
			dst := f[len(f)-1]
			for _, src := range f[:len(f)-1] {
				switch {
				case strings.HasSuffix(src, "/") || !strings.HasSuffix(dst, "/"):
					cur.produced = append(cur.produced, dst) // a folder's content, or a file renamed
				default:
					cur.produced = append(cur.produced, dst+filepath.Base(src))
				}
			}
		}
	}

	if len(stages) != 2 || stages[0].name == "" {
		t.Fatalf("want two stages, a named build stage and the runtime; got %d", len(stages))
	}
	build, final := stages[0], stages[1]
	imageRE := regexp.MustCompile(`^nvidia/cuda:(12\.\d+\.\d+)-cudnn-(devel|runtime)-ubuntu\d\d\.04$`)
	bm, fm := imageRE.FindStringSubmatch(build.image), imageRE.FindStringSubmatch(final.image)
	if bm == nil || bm[2] != "devel" || fm == nil || fm[2] != "runtime" || bm[1] != fm[1] {
		t.Errorf("images %q and %q: want nvidia/cuda:<same version>-cudnn-devel-ubuntuXX.04 and -cudnn-runtime-", build.image, final.image)
	}

	var libtorchURL, goURL string
	for _, u := range urls {
		if strings.Contains(u, "download.pytorch.org") {
			libtorchURL = u
		}
		if strings.Contains(u, "go.dev/dl/") {
			goURL = u
		}
	}
	m := regexp.MustCompile(`^https://download\.pytorch\.org/libtorch/(cu\d+)/libtorch-cxx11-abi-shared-with-deps-(2\.\d+\.\d+)%2B(cu\d+)\.zip$`).FindStringSubmatch(libtorchURL)
	if m == nil || m[1] != m[3] {
		t.Errorf("libtorch URL %q: want https://download.pytorch.org/libtorch/cuXYZ/libtorch-cxx11-abi-shared-with-deps-2.x.y%%2BcuXYZ.zip", libtorchURL)
	} else if bm != nil {
		parts := strings.SplitN(bm[1], ".", 3)
		if want := "cu" + parts[0] + parts[1]; m[1] != want {
			t.Errorf("libtorch is built for %s but the images are CUDA %s (%s)", m[1], bm[1], want)
		}
	}
	gm := regexp.MustCompile(`^https://go\.dev/dl/go(1\.(\d+)\.\d+)\.linux-amd64\.tar\.gz$`).FindStringSubmatch(goURL)
	if gm == nil {
		t.Errorf("Go URL %q: want https://go.dev/dl/go1.N.P.linux-amd64.tar.gz", goURL)
	} else {
		modRaw, _ := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
		if mm := regexp.MustCompile(`(?m)^go 1\.(\d+)`).FindStringSubmatch(string(modRaw)); mm != nil {
			var have, need int
			fmt.Sscan(gm[2], &have)
			fmt.Sscan(mm[1], &need)
			if have < need {
				t.Errorf("the image's Go %s is older than go.mod's go 1.%s", gm[1], mm[1])
			}
		}
	}

	last := func(cmd string) string {
		v := ""
		inFinal := false
		for _, in := range instrs {
			if in.cmd == "FROM" {
				inFinal = strings.HasPrefix(expand(in.args), final.image)
			}
			if inFinal && in.cmd == cmd {
				v = in.args
			}
		}
		return v
	}
	if e := last("ENTRYPOINT"); e != `["fer"]` {
		t.Errorf("runtime ENTRYPOINT %s, want [\"fer\"]", e)
	}
	if w := final.workdir; w != "/work" {
		t.Errorf("runtime WORKDIR %q, want /work", w)
	}
	ld := final.env["LD_LIBRARY_PATH"]
	for _, p := range final.produced {
		if strings.HasSuffix(p, "/libfertorch.so") && !strings.Contains(ld, filepath.Dir(p)) {
			t.Errorf("runtime LD_LIBRARY_PATH %q lacks %s", ld, filepath.Dir(p))
		}
	}
	if !strings.Contains(ld, "/opt/libtorch/lib") {
		t.Errorf("runtime LD_LIBRARY_PATH %q lacks /opt/libtorch/lib", ld)
	}
	for _, want := range []string{"/fer", "/libfertorch.so", "/opt/libtorch/lib", "/scripts"} {
		found := false
		for _, p := range final.produced {
			found = found || strings.Contains(p, want)
		}
		if !found {
			t.Errorf("the runtime stage gets no %s (has %v)", want, final.produced)
		}
	}

	// Everything `go build ./cmd/...` and `make shim` read is in the context.
	needed := []string{"go.mod", "go.sum", "Makefile", "cgo/fertorch.cpp", "cgo/fertorch.h", "cgo/fertorch_dist.cpp", "cgo/fertorch_dist.h", "cgo/fertorch_internal.hpp", "scripts/fetch-data.sh"}
	list := exec.Command(goTool(t), "list", "-e", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}} {{end}}{{range .CgoFiles}}{{$d}}/{{.}} {{end}}{{end}}{{end}}`, "./cmd/...")
	list.Dir = repoRoot
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	absRoot, _ := filepath.Abs(repoRoot)
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(absRoot, f)
		if err == nil {
			needed = append(needed, filepath.ToSlash(rel))
		}
	}
	sort.Strings(needed)
	for _, p := range needed {
		if ignore.excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the image build needs", p)
		}
	}
	for _, p := range []string{"build/fer", "build/libfertorch.so", "work/data", "weights/vgg16-397923af.pth", ".git/HEAD", "runs/vgg16/best.safetensors"} {
		if !ignore.excluded(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s || strings.TrimSuffix(v, "/") == strings.TrimSuffix(s, "/") {
			return true
		}
	}
	return false
}
