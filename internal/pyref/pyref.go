// Package pyref finds the Python interpreter that has the reference
// libraries tests compare against (Debian's python3-torch, -torchvision,
// -scipy) and runs reference scripts with it. It is used by tests and
// benchmarks only.
package pyref

import (
	"bytes"
	"fmt"
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
