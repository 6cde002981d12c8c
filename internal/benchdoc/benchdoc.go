// Package benchdoc keeps bench/RESULTS.md up to date: each benchmark owns
// one "## " section of the file and replaces it with its latest results,
// leaving the other sections as they are. It also names the machine.
package benchdoc

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
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
