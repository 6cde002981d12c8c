package serve_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/internal/testmodel"
	"github.com/fertorch/fertorch/serve"
)

var fixture struct {
	dir   string
	model *infer.Model
	faces []string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serve-test-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		fixture.dir = dir
		path := filepath.Join(dir, "model.safetensors")
		if _, err := testmodel.Checkpoint(path, testmodel.Options{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if fixture.model, err = infer.Load(path, infer.Options{Device: "cpu"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer fixture.model.Free()
		if fixture.faces, err = testmodel.WriteFaces(filepath.Join(dir, "faces"), 8); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// start makes a started server for the real test model and an httptest
// server in front of it, both closed when the test ends.
func start(t *testing.T, cfg serve.Config) (*serve.Server, *httptest.Server) {
	t.Helper()
	return startModel(t, fixture.model, cfg)
}

func startModel(t *testing.T, m serve.Predictor, cfg serve.Config) (*serve.Server, *httptest.Server) {
	t.Helper()
	s := serve.New(m, cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// part is one multipart field: a file when file is set.
type part struct {
	field, file string
	data        []byte
}

func multipartBody(t *testing.T, parts ...part) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.file != "" {
			w, err = mw.CreateFormFile(p.field, p.file)
		} else {
			w, err = mw.CreateFormField(p.field)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.data)
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, contentType string, body []byte) answer {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func get(t *testing.T, url string) answer {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func decode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", a.status, err, a.body)
	}
	return v
}

// errorOf checks that an answer has the status and a one-line JSON error
// containing want.
func errorOf(t *testing.T, what string, a answer, status int, want string) {
	t.Helper()
	if a.status != status {
		t.Errorf("%s: status %d, want %d (%s)", what, a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	e := decode[struct {
		Error string `json:"error"`
	}](t, a)
	if !strings.Contains(e.Error, want) || strings.Contains(e.Error, "\n") {
		t.Errorf("%s: error %q, want one line containing %q", what, e.Error, want)
	}
}

// TestEndpoints: predict with a multipart form and a raw body, top_k, the
// model description, health, readiness, the page, unknown paths and wrong
// methods.
func TestEndpoints(t *testing.T) {
	s, ts := start(t, serve.Config{MaxBatch: 4})
	ct, body := multipartBody(t, part{"image", "a.png", readFile(t, fixture.faces[0])}, part{"image", "b.jpg", readFile(t, fixture.faces[1])})
	a := post(t, ts.URL+"/v1/predict", ct, body)
	r := decode[serve.PredictResponse](t, a)
	if a.status != 200 || len(r.Predictions) != 2 || r.Model != fixture.model.Name() || r.Error != "" {
		t.Fatalf("multipart: %d %s", a.status, a.body)
	}
	for i, name := range []string{"a.png", "b.jpg"} {
		p := r.Predictions[i]
		if p.Image != name || len(p.Top) != 3 || p.Emotion != p.Top[0].Class || p.Error != "" ||
			!(p.Top[0].Probability >= p.Top[1].Probability && p.Top[1].Probability >= p.Top[2].Probability) {
			t.Errorf("prediction %d: %+v", i, p)
		}
	}
	raw := post(t, ts.URL+"/v1/predict?top_k=all", "image/png", readFile(t, fixture.faces[0]))
	rr := decode[serve.PredictResponse](t, raw)
	if raw.status != 200 || len(rr.Predictions) != 1 || rr.Predictions[0].Image != "body" || len(rr.Predictions[0].Top) != 8 {
		t.Fatalf("raw body: %d %s", raw.status, raw.body)
	}
	sum := 0.0
	for _, c := range rr.Predictions[0].Top {
		sum += c.Probability
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Errorf("the eight probabilities sum to %v", sum)
	}
	// The same image answers the same in both requests (1e-6).
	if d := math.Abs(rr.Predictions[0].Top[0].Probability - r.Predictions[0].Top[0].Probability); rr.Predictions[0].Emotion != r.Predictions[0].Emotion || d > 1e-6 {
		t.Errorf("a.png: %s %v as a raw body, %s %v in a form", rr.Predictions[0].Emotion, rr.Predictions[0].Top[0].Probability, r.Predictions[0].Emotion, r.Predictions[0].Top[0].Probability)
	}
	errorOf(t, "top_k=0", post(t, ts.URL+"/v1/predict?top_k=0", "image/png", readFile(t, fixture.faces[0])), 400, `top_k "0": want a positive number or all`)

	info := decode[serve.ModelInfo](t, get(t, ts.URL+"/v1/model"))
	if info.Name != fixture.model.Name() || len(info.Classes) != 8 || info.Classes[4] != "happiness" || info.TopK != 3 || info.MaxImages != 16 {
		t.Errorf("/v1/model: %+v", info)
	}
	if a := get(t, ts.URL+"/healthz"); a.status != 200 || string(a.body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("/healthz: %d %s", a.status, a.body)
	}
	if a := get(t, ts.URL+"/readyz"); a.status != 200 || !strings.Contains(string(a.body), `"status":"ready"`) || !s.Ready() {
		t.Errorf("/readyz: %d %s", a.status, a.body)
	}
	page := get(t, ts.URL+"/")
	if page.status != 200 || page.header.Get("Content-Type") != "text/html; charset=utf-8" || !bytes.Contains(page.body, []byte(`type="file"`)) {
		t.Errorf("/: %d %s %.200s", page.status, page.header.Get("Content-Type"), page.body)
	}
	errorOf(t, "unknown path", get(t, ts.URL+"/v2/predict"), 404, "no such endpoint GET /v2/predict")
	wrong := get(t, ts.URL+"/v1/predict")
	errorOf(t, "GET /v1/predict", wrong, 405, "GET /v1/predict: use POST")
	if wrong.header.Get("Allow") != "POST" {
		t.Errorf("405 without Allow: POST (%q)", wrong.header.Get("Allow"))
	}

	// Not ready before Start: readyz and predict say so.
	cold := serve.New(fixture.model, serve.Config{})
	cts := httptest.NewServer(cold.Handler())
	defer cts.Close()
	if a := get(t, cts.URL+"/readyz"); a.status != 503 || !strings.Contains(string(a.body), `"status":"loading"`) {
		t.Errorf("/readyz before Start: %d %s", a.status, a.body)
	}
	errorOf(t, "predict before Start", post(t, cts.URL+"/v1/predict", "image/png", readFile(t, fixture.faces[0])), 503, "the model is not loaded yet")
}

// pngHeader is a PNG whose header claims w x h pixels, followed by no
// pixel data: a decompression bomb's announcement.
func pngHeader(t *testing.T, w, h uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// IHDR's data starts at 16: width, height; its CRC covers type + data.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// TestBadInput: each kind of bad input gets its 4xx and a one-line reason,
// and the server keeps serving.
func TestBadInput(t *testing.T) {
	_, ts := start(t, serve.Config{MaxBodyBytes: 1 << 20, MaxImages: 3})
	url := ts.URL + "/v1/predict"
	good := readFile(t, fixture.faces[2])

	ct, body := multipartBody(t, part{"image", "a.png", good})
	errorOf(t, "truncated multipart", post(t, url, ct, body[:len(body)/2]), 400, "malformed multipart body: ")
	errorOf(t, "multipart without boundary", post(t, url, "multipart/form-data", body), 400, "multipart body without a boundary")
	ct, body = multipartBody(t, part{"image", "empty.png", nil})
	errorOf(t, "0-byte image", post(t, url, ct, body), 400, "image 1 (empty.png): empty file")
	errorOf(t, "empty body", post(t, url, "image/png", nil), 400, "empty request body")
	ct, body = multipartBody(t, part{"image", "notes.jpg", []byte("these are my notes, not a photo\n")})
	errorOf(t, "text file named .jpg", post(t, url, ct, body), 415, "image 1 (notes.jpg): not a JPEG, PNG, GIF, WebP, BMP or TIFF image")
	errorOf(t, "30000x30000 PNG header", post(t, url, "image/png", pngHeader(t, 30000, 30000)), 413, "png of 30000x30000 pixels, over the limits")
	ct, body = multipartBody(t, part{"image", "", []byte("https://example.com/face.jpg")})
	errorOf(t, "URL as a form field", post(t, url, ct, body), 400, "image 1 (image): a URL, not an image")
	errorOf(t, "URL as the body", post(t, url, "text/plain", []byte("  http://example.com/face.jpg\n")), 400, "a URL, not an image")
	errorOf(t, "body over --max-body", post(t, url, "image/png", make([]byte, 1<<20+1)), 413, "request body over 1048576 bytes")
	ct, body = multipartBody(t, part{"a", "1.png", good}, part{"b", "2.png", good}, part{"c", "3.png", good}, part{"d", "4.png", good})
	errorOf(t, "4 images over --max-images 3", post(t, url, ct, body), 413, "more than 3 images in one request")
	ct, body = multipartBody(t)
	errorOf(t, "form without images", post(t, url, ct, body), 400, "no image in the multipart form")

	// One bad image among good ones: 200, with the error in its place.
	ct, body = multipartBody(t, part{"image", "good.png", good}, part{"image", "bad.txt", []byte("hello")})
	a := post(t, url, ct, body)
	r := decode[serve.PredictResponse](t, a)
	if a.status != 200 || len(r.Predictions) != 2 || r.Predictions[0].Emotion == "" || r.Predictions[1].Error == "" || r.Predictions[1].Top != nil {
		t.Errorf("mixed request: %d %s", a.status, a.body)
	}
	if a := post(t, url, "image/png", good); a.status != 200 {
		t.Errorf("after the bad input the server answers %d %s", a.status, a.body)
	}
}

func probsOf(t *testing.T, a answer) map[string]float64 {
	t.Helper()
	r := decode[serve.PredictResponse](t, a)
	if a.status != 200 || len(r.Predictions) != 1 {
		t.Fatalf("answer %d %s", a.status, a.body)
	}
	out := map[string]float64{}
	for _, c := range r.Predictions[0].Top {
		out[c.Class] = c.Probability
	}
	return out
}

func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	a := get(t, url+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`).FindSubmatch(a.body)
	if m == nil {
		t.Fatalf("metric %s not in /metrics:\n%s", name, a.body)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDynamicBatching: concurrent requests are answered with fewer forward
// passes than requests, with the same probabilities (1e-6) as when sent
// one by one; the metrics count the batches.
func TestDynamicBatching(t *testing.T) {
	const n = 8
	s, ts := start(t, serve.Config{MaxBatch: n, MaxWait: 300 * time.Millisecond})
	url := ts.URL + "/v1/predict?top_k=all"
	var alone []map[string]float64
	for i := 0; i < n; i++ {
		alone = append(alone, probsOf(t, post(t, url, "image/png", readFile(t, fixture.faces[i%len(fixture.faces)]))))
	}
	before := s.ForwardPasses()
	if got := before - 2; got != n {
		t.Errorf("%d requests one by one took %d forward passes (after the 2 of the warm-up)", n, got)
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(url, "image/png", bytes.NewReader(readFile(t, fixture.faces[i%len(fixture.faces)])))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = answer{resp.StatusCode, resp.Header, b}
		}()
	}
	wg.Wait()
	passes := s.ForwardPasses() - before
	if passes >= n || passes < 1 {
		t.Errorf("%d concurrent requests took %d forward passes, want fewer than %d", n, passes, n)
	}
	for i := 0; i < n; i++ {
		got := probsOf(t, answers[i])
		for c, p := range alone[i] {
			if d := math.Abs(got[c] - p); d > 1e-6 {
				t.Errorf("request %d, %s: %v batched, %v alone", i, c, got[c], p)
			}
		}
	}
	if got := metric(t, ts.URL, "fer_batch_size_count"); got != float64(n)+float64(passes) {
		t.Errorf("fer_batch_size_count %v, want %d", got, n+int(passes))
	}
	if got := metric(t, ts.URL, "fer_batch_size_sum"); got != 2*n {
		t.Errorf("fer_batch_size_sum %v, want %d images", got, 2*n)
	}
	t.Logf("%d concurrent requests: %d forward passes", n, passes)
}

// gate is a stand-in model whose forward passes wait until released.
type gate struct {
	entered chan int
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan int, 100), release: make(chan struct{})} }

func (g *gate) Name() string                               { return "gate" }
func (g *gate) ClassNames() []string                       { return []string{"anger", "happiness"} }
func (g *gate) ImageValues() int                           { return 3 }
func (g *gate) Prepare(dst []float32, _ image.Image) error { return nil }
func (g *gate) Probabilities(_ []float32, n int, _ bool) ([][]float32, error) {
	g.entered <- n
	<-g.release
	out := make([][]float32, n)
	for i := range out {
		out[i] = []float32{0.25, 0.75}
	}
	return out, nil
}
func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// startGate starts a server on a gate model past its warm-up.
func startGate(t *testing.T, cfg serve.Config) (*gate, *serve.Server, *httptest.Server) {
	t.Helper()
	g := newGate()
	s := serve.New(g, cfg)
	done := make(chan error, 1)
	go func() { done <- s.Start() }()
	for i := 0; i < 2; i++ { // the warm-up's two passes
		<-g.entered
		g.release <- struct{}{}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		g.open()
		ts.Close()
		s.Close()
	})
	return g, s, ts
}

// TestOverload: ten times the queue size of concurrent requests while the
// model is busy: exactly the queue's worth are held and answered, the rest
// get 503 with Retry-After at once, the queue never holds more than it
// may, and the server serves afterwards.
func TestOverload(t *testing.T) {
	const queue = 4
	g, _, ts := startGate(t, serve.Config{Queue: queue, MaxBatch: 2})
	tiny := readFile(t, fixture.faces[0])
	results := make(chan answer, 10*queue)
	for i := 0; i < 10*queue; i++ {
		go func() {
			resp, err := http.Post(ts.URL+"/v1/predict", "image/png", bytes.NewReader(tiny))
			if err != nil {
				results <- answer{status: -1, body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			results <- answer{resp.StatusCode, resp.Header, b}
		}()
	}
	var busy int
	for busy < 10*queue-queue {
		select {
		case a := <-results:
			if a.status != 503 || a.header.Get("Retry-After") != "1" || !strings.Contains(string(a.body), "server busy: 4 requests in progress (--queue 4)") {
				t.Fatalf("while busy: %d %q %s", a.status, a.header.Get("Retry-After"), a.body)
			}
			busy++
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d requests refused", busy, 10*queue-queue)
		}
	}
	if depth := metric(t, ts.URL, "fer_queue_depth"); depth > queue {
		t.Errorf("queue depth %v with the queue at %d requests of 1 image", depth, queue)
	}
	g.open()
	for i := 0; i < queue; i++ {
		a := <-results
		if a.status != 200 || !strings.Contains(string(a.body), `"emotion":"happiness"`) {
			t.Errorf("held request: %d %s", a.status, a.body)
		}
	}
	if a := post(t, ts.URL+"/v1/predict", "image/png", tiny); a.status != 200 {
		t.Errorf("after the overload: %d %s", a.status, a.body)
	}
	if got := metric(t, ts.URL, `fer_http_requests_total{code="503",handler="/v1/predict"}`); got != 10*queue-queue {
		t.Errorf("503s counted: %v", got)
	}
}

// TestRequestTimeout: a request the model does not answer in time gets
// 503 saying so; the server answers the next one.
func TestRequestTimeout(t *testing.T) {
	g, _, ts := startGate(t, serve.Config{Timeout: 200 * time.Millisecond})
	img := readFile(t, fixture.faces[0])
	start := time.Now()
	errorOf(t, "timed out", post(t, ts.URL+"/v1/predict", "image/png", img), 503, "timed out after 200ms waiting for the model (--timeout)")
	if d := time.Since(start); d > 15*time.Second { // 200 ms, with room for a loaded machine
		t.Errorf("the timeout took %v", d)
	}
	g.open()
	if a := post(t, ts.URL+"/v1/predict", "image/png", img); a.status != 200 {
		t.Errorf("after the timeout: %d %s", a.status, a.body)
	}
}

// TestGracefulShutdown: cancelling Run stops accepting connections and
// readiness, answers the request it holds, and returns without error.
func TestGracefulShutdown(t *testing.T) {
	g := newGate()
	s := serve.New(g, serve.Config{})
	go func() {
		for i := 0; i < 2; i++ {
			<-g.entered
			g.release <- struct{}{}
		}
	}()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, l, 10*time.Second) }()
	held := make(chan answer, 1)
	go func() {
		resp, err := http.Post(base+"/v1/predict", "image/png", bytes.NewReader(readFile(t, fixture.faces[0])))
		if err != nil {
			held <- answer{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		held <- answer{resp.StatusCode, resp.Header, b}
	}()
	<-g.entered // the request is in the model
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 5 s after the shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.Ready() {
		t.Error("ready while shutting down")
	}
	g.open()
	if a := <-held; a.status != 200 || !strings.Contains(string(a.body), `"emotion":"happiness"`) {
		t.Errorf("held request: %d %s", a.status, a.body)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestSlowClient: a client that sends half its headers is cut off after
// ReadHeaderTimeout.
func TestSlowClient(t *testing.T) {
	g := newGate()
	g.open()
	s := serve.New(g, serve.Config{ReadHeaderTimeout: 200 * time.Millisecond})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, l, time.Second) }()
	defer func() {
		cancel()
		<-ran
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	b, _ := io.ReadAll(c)
	if d := time.Since(start); d > 15*time.Second { // 200 ms, with room for a loaded machine
		t.Errorf("the slow client was held %v", d)
	}
	if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 408")) {
		t.Errorf("slow client got %q", b)
	}
}

// TestMetricsAndAccessLog: /metrics speaks the Prometheus text format from
// a private registry (nothing in the global one), with requests by code,
// latency, batch sizes and queue depth; every request is logged with
// method, path, status and image count.
func TestMetricsAndAccessLog(t *testing.T) {
	var logBuf syncBuffer
	_, ts := start(t, serve.Config{Log: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	ct, body := multipartBody(t, part{"image", "a.png", readFile(t, fixture.faces[0])}, part{"image", "b.png", readFile(t, fixture.faces[2])})
	post(t, ts.URL+"/v1/predict", ct, body)
	post(t, ts.URL+"/v1/predict", "text/plain", []byte("hello"))
	get(t, ts.URL+"/healthz")
	for name, want := range map[string]float64{
		`fer_http_requests_total{code="200",handler="/v1/predict"}`:      1,
		`fer_http_requests_total{code="415",handler="/v1/predict"}`:      1,
		`fer_http_requests_total{code="200",handler="/healthz"}`:         1,
		`fer_http_request_duration_seconds_count{handler="/v1/predict"}`: 2,
		`fer_batch_size_count`: 1,
		`fer_batch_size_sum`:   2,
		`fer_queue_depth`:      0,
		`fer_ready`:            1,
	} {
		if got := metric(t, ts.URL, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metric(t, ts.URL, "go_goroutines"); got < 1 {
		t.Errorf("go_goroutines %v", got)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "fer_") {
			t.Errorf("%s is in the global registry", mf.GetName())
		}
	}
	var entries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	first := entries[0]
	if first["msg"] != "request" || first["method"] != "POST" || first["path"] != "/v1/predict" || first["status"] != 200.0 || first["images"] != 2.0 {
		t.Errorf("access log entry %v", first)
	}
	if len(entries) < 3 || entries[1]["status"] != 415.0 || entries[2]["path"] != "/healthz" {
		t.Errorf("access log: %v", entries)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
