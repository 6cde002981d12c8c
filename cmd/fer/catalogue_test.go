package main

import (
	"archive/zip"
	"bytes"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// badInput is one case of the bad-input catalogue (testdata/bad-inputs.yaml
// at the repository's top): a mistake a user makes, the command, the
// files it needs, and what fer must answer.
type badInput struct {
	Name string `yaml:"name"`
	// Area groups the cases: legend, images, weights, checkpoints,
	// config, flags, signals, disk, distributed.
	Area string `yaml:"area"`
	// Files are written into the case's folder first: name -> spec (see
	// makeFixture).
	Files map[string]string `yaml:"files"`
	Args  []string          `yaml:"args"`
	// Exit is the expected exit status.
	Exit int `yaml:"exit"`
	// Stderr is the expected start of the first line of standard error;
	// Stdout a text standard output must contain.
	Stderr string `yaml:"stderr"`
	Stdout string `yaml:"stdout"`
	// StderrHas is a text the first line of standard error must contain
	// (for messages whose middle names a generated file).
	StderrHas string `yaml:"stderr_has"`
	// Absent are paths (or glob patterns) the command must not leave
	// behind.
	Absent []string `yaml:"absent"`
	// Signal (TERM or INT) is sent once the file When exists.
	Signal string `yaml:"signal"`
	When   string `yaml:"when"`
	// Env are environment variables set for the command.
	Env map[string]string `yaml:"env"`
	// MaxSeconds, when set, is how long the command may take.
	MaxSeconds float64 `yaml:"max_seconds"`
	// Disk runs the command with a tmpfs of this many KiB mounted at
	// {tmp}/small (root only; the case is skipped elsewhere). What the
	// tmpfs holds when the command ends is listed into {tmp}/small.txt,
	// and Absent paths under {tmp}/small are checked against that list.
	Disk int `yaml:"disk_kib"`
}

// TestBadInputCatalogue runs every case of testdata/bad-inputs.yaml
// against the fer binary and checks its exit status and the first line of
// its message.
func TestBadInputCatalogue(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a short run for its checkpoint fixtures")
	}
	raw, err := os.ReadFile("../../testdata/bad-inputs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []badInput
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("testdata/bad-inputs.yaml: %v", err)
	}
	areas := map[string]int{}
	for _, c := range cases {
		areas[c.Area]++
	}
	if len(cases) < 40 || len(areas) < 8 {
		t.Errorf("the catalogue has %d cases in %d areas (%v), want at least 40 in 8", len(cases), len(areas), areas)
	}

	fer := buildFer(t)
	fix := t.TempDir()
	src := filepath.Join(fix, "synth")
	layout := filepath.Join(fix, "data")
	prepareSplit(t, src, layout, 1)
	run := filepath.Join(fix, "run")
	if code, out, errs := ferIn(t, fer, fix, append(trainArgs(layout, run), "--epochs", "1")...); code != 0 {
		t.Fatalf("fixture run: exit %d\n%s%s", code, out, errs)
	}
	image, _ := filepath.Glob(filepath.Join(layout, "valid", "*", "*"))
	// A port that a test holds, and one that nobody listens on.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	vars := map[string]string{
		"{src}": src, "{layout}": layout, "{run}": run, "{image}": image[0],
		"{ckpt}": filepath.Join(run, "best.safetensors"), "{last}": filepath.Join(run, "last.safetensors"),
		"{busyport}": strconv.Itoa(busy.Addr().(*net.TCPAddr).Port), "{freeport}": strconv.Itoa(freePort(t)),
	}
	root := os.Geteuid() == 0
	var privateMounts error
	if root {
		// Inside a chroot, for one, the root is no mount point to make private.
		if out, err := exec.Command("unshare", "-m", "--propagation", "private", "true").CombinedOutput(); err != nil {
			privateMounts = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%02d-%s", i+1, strings.ReplaceAll(c.Name, " ", "_")), func(t *testing.T) {
			if c.Disk > 0 && !root {
				t.Skip("needs root to mount a small tmpfs")
			}
			if c.Disk > 0 && privateMounts != nil {
				t.Skipf("cannot mount a small tmpfs in a private mount namespace here: %v", privateMounts)
			}
			tmp := t.TempDir()
			expand := func(s string) string {
				s = strings.ReplaceAll(s, "{tmp}", tmp)
				for k, v := range vars {
					s = strings.ReplaceAll(s, k, v)
				}
				return s
			}
			// Files made from other files (head, flip, copy) come last.
			names := make([]string, 0, len(c.Files))
			for name := range c.Files {
				names = append(names, name)
			}
			derived := func(name string) bool {
				kind, _, _ := strings.Cut(c.Files[name], ":")
				return kind == "head" || kind == "flip" || kind == "copy"
			}
			sort.SliceStable(names, func(i, j int) bool { return !derived(names[i]) && derived(names[j]) })
			for _, name := range names {
				if err := makeFixture(filepath.Join(tmp, name), expand(c.Files[name])); err != nil {
					t.Fatalf("fixture %s: %v", name, err)
				}
			}
			args := make([]string, len(c.Args))
			for i, a := range c.Args {
				args[i] = expand(a)
			}
			cmd := exec.Command(fer, args...)
			if c.Disk > 0 {
				small := filepath.Join(tmp, "small")
				os.Mkdir(small, 0o755)
				script := fmt.Sprintf(`mount -t tmpfs -o size=%dk tmpfs %[2]q || exit 99; "$@"; rc=$?; find %[2]q > %[2]q.txt; exit $rc`, c.Disk, small)
				cmd = exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh", fer}, args...)...)
			}
			cmd.Dir = tmp
			if len(c.Env) > 0 {
				cmd.Env = os.Environ()
				for k, v := range c.Env {
					cmd.Env = append(cmd.Env, k+"="+expand(v))
				}
			}
			began := time.Now()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if c.Signal != "" {
				sig := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "INT": syscall.SIGINT}[c.Signal]
				when := expand(c.When)
				deadline := time.Now().Add(2 * time.Minute)
				for {
					if _, err := os.Stat(when); err == nil {
						break
					}
					if time.Now().After(deadline) {
						cmd.Process.Kill()
						cmd.Wait()
						t.Fatalf("%s never appeared:\n%s%s", when, stdout.String(), stderr.String())
					}
					time.Sleep(20 * time.Millisecond)
				}
				cmd.Process.Signal(sig)
			}
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(began); c.MaxSeconds > 0 && took.Seconds() > c.MaxSeconds {
				t.Errorf("took %v, want at most %gs", took, c.MaxSeconds)
			}
			first, rest, _ := strings.Cut(stderr.String(), "\n")
			// On a CPU where oneDNN computes wrong results, the commands
			// first say that they keep to libtorch's own kernels (see
			// torch.OneDNNMode); the catalogue is about the line after.
			for strings.Contains(first, ": oneDNN is off: ") {
				first, rest, _ = strings.Cut(rest, "\n")
			}
			if code != c.Exit || !strings.HasPrefix(first, expand(c.Stderr)) || !strings.Contains(first, expand(c.StderrHas)) ||
				!strings.Contains(stdout.String(), expand(c.Stdout)) {
				t.Errorf("fer %s\nexit %d, want %d\nstderr first line: %q\nwant prefix:       %q (and %q)\nstdout (want %q):\n%s",
					strings.Join(args, " "), code, c.Exit, first, expand(c.Stderr), expand(c.StderrHas), expand(c.Stdout), stdout.String())
			}
			var listed []string
			if c.Disk > 0 {
				raw, err := os.ReadFile(filepath.Join(tmp, "small.txt"))
				if err != nil {
					t.Fatalf("no listing of the small disk: %v", err)
				}
				listed = strings.Fields(string(raw))
				if len(listed) == 0 {
					t.Fatal("empty listing of the small disk")
				}
			}
			for _, p := range c.Absent {
				pattern := expand(p)
				if c.Disk > 0 && strings.HasPrefix(pattern, filepath.Join(tmp, "small")) {
					for _, l := range listed {
						if ok, _ := filepath.Match(pattern, l); ok {
							t.Errorf("%s was left on the full disk", l)
						}
					}
					continue
				}
				if found, _ := filepath.Glob(pattern); len(found) > 0 {
					t.Errorf("%v was left behind", found)
				}
			}
		})
	}
}

// makeFixture writes one file of a case. spec is one of:
//
//	text:CONTENT          the text (with \n for newlines)
//	zeros:N               N zero bytes
//	jpeg:WxH, png:WxH     a valid image
//	png-header:WxH        a PNG signature and IHDR claiming WxH, no pixels
//	head:N:PATH           the first N bytes of PATH (a truncated file)
//	flip:N:PATH           PATH with the byte N from the end flipped
//	copy:PATH             a copy of PATH
//	dir:                  an empty folder
//	pth-code:             a zip .pth whose pickle calls os.system
func makeFixture(path, spec string) error {
	kind, arg, _ := strings.Cut(spec, ":")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	size := func(s string) (int, int, error) {
		w, h, ok := strings.Cut(s, "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("bad size %q", s)
		}
		return wi, hi, nil
	}
	var b bytes.Buffer
	switch kind {
	case "text":
		b.WriteString(strings.ReplaceAll(arg, `\n`, "\n"))
	case "zeros":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return err
		}
		b.Write(make([]byte, n))
	case "jpeg", "png":
		w, h, err := size(arg)
		if err != nil {
			return err
		}
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			img.Pix[i] = uint8(i * 7)
		}
		if kind == "jpeg" {
			err = jpeg.Encode(&b, img, nil)
		} else {
			err = png.Encode(&b, img)
		}
		if err != nil {
			return err
		}
	case "png-header":
		w, h, err := size(arg)
		if err != nil {
			return err
		}
		// Encode a 1x1 PNG and rewrite the IHDR's size and CRC: a decoder
		// must refuse the size before it reads on.
		png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
		raw := b.Bytes()
		putBE := func(off, v int) {
			raw[off], raw[off+1], raw[off+2], raw[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		putBE(16, w)
		putBE(20, h)
		putBE(29, int(crc32.ChecksumIEEE(raw[12:29])))
		b.Truncate(33)
	case "head", "flip":
		nStr, src, _ := strings.Cut(arg, ":")
		n, err := strconv.Atoi(nStr)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if kind == "head" {
			raw = raw[:n]
		} else {
			raw[len(raw)-n] ^= 0x20
		}
		b.Write(raw)
	case "copy":
		raw, err := os.ReadFile(arg)
		if err != nil {
			return err
		}
		b.Write(raw)
	case "dir":
		return os.MkdirAll(path, 0o755)
	case "pth-code":
		zw := zip.NewWriter(&b)
		f, _ := zw.Create("archive/data.pkl")
		// PROTO 2, GLOBAL os.system, the argument, TUPLE1, REDUCE, STOP.
		f.Write([]byte("\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R."))
		v, _ := zw.Create("archive/version")
		v.Write([]byte("3\n"))
		zw.Close()
	default:
		return fmt.Errorf("unknown fixture kind %q", kind)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// TestMakeFixturePNGHeader: the oversized PNG fixture claims its size in a
// header that image.DecodeConfig reads.
func TestMakeFixturePNGHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.png")
	if err := makeFixture(path, "png-header:30000x20000"); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil || cfg.Width != 30000 || cfg.Height != 20000 {
		t.Errorf("DecodeConfig: %+v %v", cfg, err)
	}
}
