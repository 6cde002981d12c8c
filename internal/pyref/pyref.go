// Package pyref finds the Python interpreter that has the reference
// libraries tests compare against (Debian's python3-torch, -torchvision,
// -scipy) and runs reference scripts with it. It is used by tests and
// benchmarks only.
package pyref

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// candidates are tried in order; Debian's packages are only visible to the
// system interpreter, which may not be the python3 first on PATH.
func candidates() []string {
	var c []string
	if p := os.Getenv("FERTORCH_PYTHON"); p != "" {
		c = append(c, p)
	}
	return append(c, "/usr/bin/python3", "python3")
}

// Find returns an interpreter that imports every module, or an error that
// says which module is missing and how to install it.
func Find(modules ...string) (string, error) {
	script := "import " + strings.Join(modules, ", ")
	var last error
	for _, py := range candidates() {
		if _, err := exec.LookPath(py); err != nil {
			continue
		}
		cmd := exec.Command(py, "-c", script)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			return py, nil
		} else {
			last = fmt.Errorf("%s: %s", py, strings.TrimSpace(lastLine(stderr.String())))
		}
	}
	if last == nil {
		last = fmt.Errorf("no python3 interpreter found")
	}
	return "", fmt.Errorf("reference Python with %s not available (%v); on Debian: apt-get install python3-torch python3-torchvision python3-scipy", strings.Join(modules, ", "), last)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Require returns the interpreter for a test, or skips the test with the
// reason when the reference modules are absent.
func Require(t testing.TB, modules ...string) string {
	t.Helper()
	py, err := Find(modules...)
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	return py
}

// Run executes a Python script file with args and returns its stdout; a
// failure carries the script's stderr.
func Run(py, script string, args ...string) ([]byte, error) {
	cmd := exec.Command(py, append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// The reference runs single-threaded unless told otherwise, so that
	// results do not depend on the machine's core count.
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", py, script, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Peer is a long-running Python reference process for benchmarks: it
// answers each request line on its stdin with one reply line on its stdout,
// so that its start-up (imports, loading data) is paid once.
type Peer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	// Ready holds the fields after "ready" on the peer's first line.
	Ready []string
}

// StartPeer runs script with args, single-threaded, and waits for its
// first line, which must start with "ready".
func StartPeer(py, script string, args ...string) (*Peer, error) {
	cmd := exec.Command(py, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("python peer %s: %w", script, err)
	}
	p := &Peer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !p.out.Scan() {
		p.Close()
		return nil, fmt.Errorf("python peer %s did not start (%v)", script, p.out.Err())
	}
	f := strings.Fields(p.out.Text())
	if len(f) == 0 || f[0] != "ready" {
		p.Close()
		return nil, fmt.Errorf("python peer %s printed %q instead of ready", script, p.out.Text())
	}
	p.Ready = f[1:]
	return p, nil
}

// Ask sends one request line and returns the fields of the reply, which
// must have want fields.
func (p *Peer) Ask(request string, want int) ([]string, error) {
	if _, err := fmt.Fprintln(p.in, request); err != nil {
		return nil, fmt.Errorf("python peer: %w", err)
	}
	if !p.out.Scan() {
		return nil, fmt.Errorf("python peer stopped (%v)", p.out.Err())
	}
	f := strings.Fields(p.out.Text())
	if len(f) != want {
		return nil, fmt.Errorf("python peer answered %q to %q", p.out.Text(), request)
	}
	return f, nil
}

// Close ends the peer (its stdin closes) and waits for it.
func (p *Peer) Close() {
	p.in.Close()
	p.cmd.Wait()
}

// WriteFloat32s writes values as raw little-endian float32, the format the
// reference scripts read with numpy.fromfile.
func WriteFloat32s(path string, values []float32) error {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return os.WriteFile(path, b, 0o644)
}

// ReadFloat32s reads a raw little-endian float32 file a reference script
// wrote with numpy's tofile.
func ReadFloat32s(path string) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of float32 values", path, len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// MustReadFloat32s is ReadFloat32s for tests: an error fails the test.
func MustReadFloat32s(t testing.TB, path string) []float32 {
	t.Helper()
	v, err := ReadFloat32s(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MustWriteFloat32s is WriteFloat32s for tests: an error fails the test.
func MustWriteFloat32s(t testing.TB, path string, values []float32) {
	t.Helper()
	if err := WriteFloat32s(path, values); err != nil {
		t.Fatal(err)
	}
}
