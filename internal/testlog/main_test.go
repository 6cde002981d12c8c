package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fixture is a module whose tests pass, fail, skip and time out.
var fixture = map[string]string{
	"go.mod": "module fixture\n\ngo 1.21\n",
	"good/good_test.go": `package good

import "testing"

func TestFine(t *testing.T) { t.Log("quiet when passing") }

func TestSkipped(t *testing.T) { t.Skip("not here") }
`,
	"bad/bad_test.go": `package bad

import (
	"testing"
	"time"
)

func TestBroken(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Error("sub went wrong") })
}

func TestPasses(t *testing.T) {}

func TestHangs(t *testing.T) {
	t.Log("before the hang")
	time.Sleep(time.Minute)
}
`,
	"nobuild/nobuild_test.go": "package nobuild\n\nfunc TestX(t *testing.T) { undefined() }\n",
}

// TestLogOfRealEvents runs go test -json on the fixture and checks what
// testlog makes of its events: the plain ok and FAIL lines, a failed
// test's whole output, nothing of passing or skipped tests, the output of
// a test killed by the time-out, build errors, and the closing list.
func TestLogOfRealEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a fixture module")
	}
	dir := t.TempDir()
	for name, text := range fixture {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "-timeout", "3s", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	events, err := cmd.Output()
	if err == nil {
		t.Fatalf("go test on the fixture passed:\n%s", events)
	}
	var got, verbose bytes.Buffer
	log := newLog(&got)
	if err := log.read(bytes.NewReader(events)); err != nil {
		t.Fatal(err)
	}
	log.finish()
	out := got.String()
	// With -v every line is printed as it comes.
	vlog := newLog(&verbose)
	vlog.verbose = true
	if err := vlog.read(bytes.NewReader(events)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"=== RUN   TestFine", "quiet when passing", "--- SKIP: TestSkipped", "--- PASS: TestPasses", "--- FAIL: TestBroken/sub", "panic: test timed out after 3s"} {
		if !strings.Contains(verbose.String(), want) {
			t.Errorf("the verbose log lacks %q:\n%s", want, verbose.String())
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ok  \tfixture/good\t[0-9.]+s$`),
		regexp.MustCompile(`(?m)^=== RUN   TestBroken/sub\n +bad_test.go:9: sub went wrong\n--- FAIL: TestBroken/sub \(`),
		regexp.MustCompile(`(?m)^--- FAIL: TestBroken \(`),
		regexp.MustCompile(`(?m)^panic: test timed out after 3s$`),
		regexp.MustCompile(`(?m)bad_test.go:15: before the hang\n(.|\n)*\n--- FAIL: TestHangs \(did not end: stopped with its package\)\nFAIL\tfixture/bad\t[0-9.]+s\n`),
		regexp.MustCompile(`undefined: testing`),
		regexp.MustCompile(`(?m)^FAIL\tfixture/nobuild \[setup failed\]$|^FAIL\tfixture/nobuild \[build failed\]$`),
		regexp.MustCompile(`(?m)^slowest [0-9]+ of [0-9]+ tests:\n +[0-9.]+[a-z]+  fixture/`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"quiet when passing", "not here", "=== RUN   TestFine", "--- PASS", "=== RUN   TestPasses", "\nPASS\n"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("the log has %q:\n%s", unwanted, out)
		}
	}
}

// TestSlowestList: the closing list names the slowest top-level tests,
// slowest first, without subtests.
func TestSlowestList(t *testing.T) {
	var events strings.Builder
	for _, e := range []string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p","Test":"TestA/sub","Elapsed":9}`,
		`{"Action":"pass","Package":"p","Test":"TestA","Elapsed":2.5}`,
		`{"Action":"skip","Package":"q","Test":"TestB","Elapsed":0}`,
		`{"Action":"fail","Package":"q","Test":"TestC","Elapsed":61.25}`,
		`not an event`,
	} {
		events.WriteString(e + "\n")
	}
	var got bytes.Buffer
	log := newLog(&got)
	if err := log.read(strings.NewReader(events.String())); err != nil {
		t.Fatal(err)
	}
	log.finish()
	want := "not an event\n" +
		"slowest 3 of 3 tests:\n" +
		"    1m1.3s  q TestC\n" +
		"      2.5s  p TestA\n" +
		"        0s  q TestB\n"
	if got.String() != want {
		t.Errorf("log\n%q\nwant\n%q", got.String(), want)
	}
}
