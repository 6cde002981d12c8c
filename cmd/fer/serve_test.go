package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/internal/testmodel"
	"github.com/fertorch/fertorch/serve"
)

// TestServePredictEvalAgree: the same images get the same eight
// probabilities (max abs diff 1e-6; eval's CSV has six decimals) from
// `fer predict --json`, `fer eval`'s predictions.csv and the server's
// POST /v1/predict, which all run through package infer.
func TestServePredictEvalAgree(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "model.safetensors")
	if _, err := testmodel.Checkpoint(ckpt, testmodel.Options{}); err != nil {
		t.Fatal(err)
	}
	faces, err := testmodel.WriteFaces(filepath.Join(dir, "faces"), 6)
	if err != nil {
		t.Fatal(err)
	}
	// eval reads class folders: the faces, labelled anger or happiness.
	test := filepath.Join(dir, "test")
	byName := map[string]string{}
	for i, f := range faces {
		class := []string{"anger", "happiness"}[i%2]
		dst := filepath.Join(test, class, filepath.Base(f))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.Link(f, dst); err != nil {
			t.Fatal(err)
		}
		byName[filepath.Base(f)] = f
	}
	classes := testmodel.Classes()

	// predict
	var out, errb bytes.Buffer
	if code := run(append([]string{"predict", "--checkpoint", ckpt, "--device", "cpu", "--json", "-k", "8"}, faces...), &out, &errb); code != 0 {
		t.Fatalf("predict: exit %d\n%s", code, errb.String())
	}
	var pj struct {
		Predictions []infer.Prediction `json:"predictions"`
	}
	if err := json.Unmarshal(out.Bytes(), &pj); err != nil {
		t.Fatal(err)
	}
	predicted := map[string]map[string]float64{}
	for _, p := range pj.Predictions {
		predicted[p.Image] = scores(p.Top)
	}

	// eval
	evalOut := filepath.Join(dir, "eval")
	out.Reset()
	errb.Reset()
	if code := run([]string{"eval", "--checkpoint", ckpt, "--device", "cpu", "--data", test, "-o", evalOut}, &out, &errb); code != 0 {
		t.Fatalf("eval: exit %d\n%s", code, errb.String())
	}
	f, err := os.Open(filepath.Join(evalOut, "predictions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(faces)+1 || strings.Join(rows[0][3:], ",") != strings.Join(classes, ",") {
		t.Fatalf("predictions.csv: %d rows, header %v", len(rows), rows[0])
	}
	evaluated := map[string]map[string]float64{}
	for _, row := range rows[1:] {
		m := map[string]float64{}
		for j, c := range classes {
			v, err := strconv.ParseFloat(row[3+j], 64)
			if err != nil {
				t.Fatal(err)
			}
			m[c] = v
		}
		evaluated[filepath.Base(row[0])] = m
	}

	// serve, batching the images of concurrent requests
	model, err := infer.Load(ckpt, infer.Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Free()
	srv := serve.New(model, serve.Config{MaxBatch: 4, MaxWait: 20 * time.Millisecond})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	compared := 0
	for name, path := range byName {
		b, _ := os.ReadFile(path)
		resp, err := http.Post(ts.URL+"/v1/predict?top_k=all", "application/octet-stream", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var r serve.PredictResponse
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(r.Predictions) != 1 {
			t.Fatalf("serve %s: %d %v", name, resp.StatusCode, err)
		}
		served := scores(r.Predictions[0].Top)
		p, e := predicted[path], evaluated[name]
		if len(p) != 8 || len(e) != 8 || len(served) != 8 {
			t.Fatalf("%s: %d predicted, %d evaluated, %d served probabilities", name, len(p), len(e), len(served))
		}
		for _, c := range classes {
			if d := max(math.Abs(served[c]-p[c]), math.Abs(served[c]-e[c]), math.Abs(p[c]-e[c])); d > 1e-6 {
				t.Errorf("%s %s: serve %.9f predict %.9f eval %.6f", name, c, served[c], p[c], e[c])
			}
			compared++
		}
	}
	if compared != 8*len(faces) {
		t.Errorf("compared %d probabilities", compared)
	}
}

func scores(top []infer.ClassScore) map[string]float64 {
	m := map[string]float64{}
	for _, c := range top {
		m[c.Class] = c.Probability
	}
	return m
}

// TestServeCommand runs `fer serve` on a free loopback port: it says where
// it listens, becomes ready, answers an image, and on SIGTERM shuts down
// gracefully with exit status 0 and an access log on stderr.
func TestServeCommand(t *testing.T) {
	fer := buildFer(t)
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "model.safetensors")
	if _, err := testmodel.Checkpoint(ckpt, testmodel.Options{}); err != nil {
		t.Fatal(err)
	}
	faces, err := testmodel.WriteFaces(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fer, "serve", "--checkpoint", ckpt, "--addr", "127.0.0.1:0", "--device", "cpu", "--threads", "1", "--log-format", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no 'serving' line; stderr:\n%s", stderr.String())
	}
	_, rest, ok := strings.Cut(line, " at http://")
	addr, _, _ := strings.Cut(rest, "/")
	if !ok || !strings.HasPrefix(line, "serving model.safetensors (vgg16_bn, gap head, 32x32) on cpu at http://127.0.0.1:") {
		t.Fatalf("first line %q", line)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	b, _ := os.ReadFile(faces[0])
	resp, err = http.Post("http://"+addr+"/v1/predict", "image/png", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"emotion":`)) {
		t.Errorf("predict: %d %s", resp.StatusCode, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("fer serve after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fer serve did not stop after SIGTERM")
	}
	log := stderr.String()
	if !strings.Contains(log, `"msg":"request","method":"POST","path":"/v1/predict","status":200,`) || !strings.Contains(log, `"msg":"stopped"`) {
		t.Errorf("log:\n%s", log)
	}
}
