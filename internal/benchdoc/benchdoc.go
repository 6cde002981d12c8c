// Package benchdoc keeps bench/RESULTS.md up to date: each benchmark owns
// one "## " section of the file and replaces it with its latest results,
// leaving the other sections as they are. It also names the machine.
package benchdoc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Publish prints a benchmark's section and, unless path is empty, writes
// it into the results file at path (see WriteSection).
func Publish(path, title, section string) error {
	fmt.Print(section)
	if path == "" {
		return nil
	}
	return WriteSection(path, title, section)
}

// WriteSection replaces the section of the results file at path that
// starts with the heading title (up to the next "## " heading) by section,
// which should itself start with title, or appends it when the file has no
// such section.
func WriteSection(path, title, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmark results\n\n"
	}
	if i := strings.Index(text, title); i >= 0 {
		rest := text[i+len(title):]
		end := len(text)
		if j := strings.Index(rest, "\n## "); j >= 0 {
			end = i + len(title) + j + 1
		}
		text = text[:i] + section + text[end:]
	} else {
		if !strings.HasSuffix(text, "\n\n") {
			text = strings.TrimRight(text, "\n") + "\n\n"
		}
		text += section
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", path)
	return nil
}

// Provenance is the sentence that dates a measurement and names the
// machine and the libtorch the fer binary at fer runs on: "Date: ...
// Machine: ..., N cores (shared), libtorch ...".
func Provenance(fer string) (string, error) {
	version, err := exec.Command(fer, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", fer, err)
	}
	libtorch, _, _ := strings.Cut(string(version), "\n")
	return fmt.Sprintf("Date: %s. Machine: %s, %d cores (shared), %s.",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), CPUModel(), runtime.NumCPU(), libtorch), nil
}

// CPUModel is the processor's model name (the architecture when unknown).
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
