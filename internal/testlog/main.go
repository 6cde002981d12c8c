// Command testlog runs go test with the arguments it is given and prints
// what go test prints without -v (each package's ok or FAIL line, the full
// output of every failed test, build errors), or with -v among them all
// that -v prints, followed by the slowest tests, so that a test suite's log
// says where its time went. It reads go test's -json events as they come
// and exits with go test's status. The go command is $GO, else go.
//
//	go run ./internal/testlog -count=1 -timeout 30m ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// event is one line of go test -json (cmd/test2json's TestEvent, and the
// build-output events of go test's own build), the fields testlog reads.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// slowest is how many tests the closing list names.
const slowest = 15

func main() {
	gocmd := os.Getenv("GO")
	if gocmd == "" {
		gocmd = "go"
	}
	cmd := exec.Command(gocmd, append([]string{"test", "-json"}, os.Args[1:]...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fatal(err)
	}
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	log := newLog(os.Stdout)
	for _, a := range os.Args[1:] {
		log.verbose = log.verbose || a == "-v" || a == "-v=true" || a == "-test.v" || a == "-test.v=true"
	}
	readErr := log.read(out)
	waitErr := cmd.Wait()
	log.finish()
	if readErr != nil {
		fmt.Fprintf(os.Stderr, "testlog: reading go test's events: %v\n", readErr)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit):
		os.Exit(exit.ExitCode())
	case waitErr != nil:
		fatal(waitErr)
	case readErr != nil:
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "testlog: %v\n", err)
	os.Exit(2)
}

// testKey names one test of one package.
type testKey struct{ pkg, test string }

// timing is a finished top-level test's duration.
type timing struct {
	key     testKey
	seconds float64
}

// testLog turns events into go test's plain output.
type testLog struct {
	w io.Writer
	// verbose prints every line as it comes, as go test -v does.
	verbose bool
	// running holds the output of each test that has not ended, in case
	// it fails.
	running map[testKey]*strings.Builder
	// last holds each package's closing ok or FAIL line until the package
	// ends, so that the output of its unfinished tests comes before it.
	last  map[string]string
	times []timing
}

func newLog(w io.Writer) *testLog {
	return &testLog{w: w, running: map[testKey]*strings.Builder{}, last: map[string]string{}}
}

// read handles the events of r until it ends. A line that is not an event
// (go test's own messages) is printed as it is.
func (l *testLog) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(l.w, sc.Text())
			continue
		}
		l.handle(e)
	}
	// Closing lines of packages that never ended (go test killed).
	pkgs := make([]string, 0, len(l.last))
	for p := range l.last {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		io.WriteString(l.w, l.last[p])
	}
	clear(l.last)
	return sc.Err()
}

func (l *testLog) handle(e event) {
	switch {
	case l.verbose:
		io.WriteString(l.w, e.Output)
		if e.Test != "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip") {
			l.record(testKey{e.Package, e.Test}, e.Elapsed)
		}
	case e.Action == "build-output":
		io.WriteString(l.w, e.Output)
	case e.Test == "":
		l.packageEvent(e)
	default:
		l.testEvent(e)
	}
}

// packageEvent prints a package's own lines (ok, FAIL, panics) but the bare
// PASS that -v adds; when the package ends, the output of tests that never
// ended (a time-out, a crash) is printed before its closing line.
func (l *testLog) packageEvent(e event) {
	switch e.Action {
	case "output":
		switch {
		case e.Output == "PASS\n":
		case strings.HasPrefix(e.Output, "ok  \t"+e.Package+"\t"), strings.HasPrefix(e.Output, "FAIL\t"+e.Package+"\t"):
			l.last[e.Package] += e.Output
		default:
			io.WriteString(l.w, e.Output)
		}
	case "fail", "pass", "skip":
		defer func() {
			io.WriteString(l.w, l.last[e.Package])
			delete(l.last, e.Package)
		}()
		var unfinished []testKey
		for k := range l.running {
			if k.pkg == e.Package {
				unfinished = append(unfinished, k)
			}
		}
		sort.Slice(unfinished, func(i, j int) bool { return unfinished[i].test < unfinished[j].test })
		for _, k := range unfinished {
			if e.Action == "fail" {
				io.WriteString(l.w, l.running[k].String())
				fmt.Fprintf(l.w, "--- FAIL: %s (did not end: stopped with its package)\n", k.test)
			}
			delete(l.running, k)
		}
	}
}

// testEvent buffers a test's output and prints it if the test fails.
func (l *testLog) testEvent(e event) {
	k := testKey{e.Package, e.Test}
	switch e.Action {
	case "run":
		l.running[k] = &strings.Builder{}
	case "output":
		b := l.running[k]
		if b == nil {
			b = &strings.Builder{}
			l.running[k] = b
		}
		b.WriteString(e.Output)
	case "fail":
		if b := l.running[k]; b != nil {
			io.WriteString(l.w, b.String())
		}
		delete(l.running, k)
		l.record(k, e.Elapsed)
	case "pass", "skip":
		delete(l.running, k)
		l.record(k, e.Elapsed)
	}
}

func (l *testLog) record(k testKey, seconds float64) {
	if !strings.Contains(k.test, "/") {
		l.times = append(l.times, timing{k, seconds})
	}
}

// finish lists the slowest top-level tests.
func (l *testLog) finish() {
	if len(l.times) == 0 {
		return
	}
	sort.SliceStable(l.times, func(i, j int) bool { return l.times[i].seconds > l.times[j].seconds })
	n := min(slowest, len(l.times))
	fmt.Fprintf(l.w, "slowest %d of %d tests:\n", n, len(l.times))
	for _, t := range l.times[:n] {
		fmt.Fprintf(l.w, "  %8s  %s %s\n", time.Duration(t.seconds*float64(time.Second)).Round(100*time.Millisecond), t.key.pkg, t.key.test)
	}
}
