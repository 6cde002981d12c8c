package tensorfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runFetch runs scripts/fetch-weights.sh with a download URL and a target
// directory, and returns its exit status and combined output.
func runFetch(t *testing.T, url, dir string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", "../../scripts/fetch-weights.sh", "--dir", dir)
	cmd.Env = append(os.Environ(), "FERTORCH_WEIGHTS_URL="+url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	}
	t.Fatal(err)
	return 0, ""
}

func noPartFiles(t *testing.T, dir string) {
	t.Helper()
	parts, _ := filepath.Glob(filepath.Join(dir, ".*.part"))
	if len(parts) != 0 {
		t.Errorf("temporary files left behind: %v", parts)
	}
}

func TestFetchWeightsScript(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found", tool)
		}
	}
	src := t.TempDir()
	payload := bytes.Repeat([]byte("fertorch weights "), 1000)
	sum := sha256.Sum256(payload)
	prefix := hex.EncodeToString(sum[:])[:8]
	name := "vgg16-" + prefix + ".pth"
	if err := os.WriteFile(filepath.Join(src, name), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(src, name)

	t.Run("offline", func(t *testing.T) {
		// A name that never resolves behaves like a machine without
		// internet access.
		dir := filepath.Join(t.TempDir(), "weights")
		code, out := runFetch(t, "https://download.invalid/models/vgg16-397923af.pth", dir)
		if code != 3 {
			t.Errorf("exit status %d, want 3\n%s", code, out)
		}
		for _, want := range []string{
			"fetch-weights: cannot download the pretrained weights: download.invalid is unreachable (no internet connection?).",
			"On a machine with internet access, download\n      https://download.invalid/models/vgg16-397923af.pth",
			"copy it to\n      " + filepath.Join(dir, "vgg16-397923af.pth"),
			"and run scripts/fetch-weights.sh --dir " + dir + " again to verify it.",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "vgg16-397923af.pth")); !errors.Is(err, os.ErrNotExist) {
			t.Error("a file was installed")
		}
		noPartFiles(t, dir)
	})

	t.Run("download, skip, repair", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "weights")
		dest := filepath.Join(dir, name)
		code, out := runFetch(t, url, dir)
		if code != 0 || !strings.Contains(out, dest+" verified (sha256 "+hex.EncodeToString(sum[:])+")") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, payload) {
			t.Fatal("installed file differs from the source")
		}
		code, out = runFetch(t, url, dir)
		if code != 0 || !strings.Contains(out, dest+" is already there and verified") || strings.Contains(out, "downloading") {
			t.Errorf("re-run: exit %d:\n%s", code, out)
		}
		// A truncated file is replaced.
		if err := os.WriteFile(dest, payload[:100], 0o644); err != nil {
			t.Fatal(err)
		}
		code, out = runFetch(t, url, dir)
		if code != 0 || !strings.Contains(out, dest+" is corrupt or incomplete") || !strings.Contains(out, "verified (sha256") {
			t.Errorf("repair: exit %d:\n%s", code, out)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, payload) {
			t.Error("the corrupt file was not replaced")
		}
		noPartFiles(t, dir)
	})

	t.Run("hash mismatch", func(t *testing.T) {
		bad := filepath.Join(src, "vgg16-00000000.pth")
		if err := os.WriteFile(bad, payload, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		code, out := runFetch(t, "file://"+bad, dir)
		if code != 1 || !strings.Contains(out, "does not start with 00000000; not installed") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "vgg16-00000000.pth")); !errors.Is(err, os.ErrNotExist) {
			t.Error("a file that failed verification was installed")
		}
		noPartFiles(t, dir)
	})

	t.Run("name without hash", func(t *testing.T) {
		code, out := runFetch(t, "file:///tmp/vgg16.pth", t.TempDir())
		if code != 1 || !strings.Contains(out, "cannot tell the expected SHA-256 prefix from the file name 'vgg16.pth'") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}
