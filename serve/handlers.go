package serve

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/infer"
)

//go:embed page/index.html
var page embed.FS

// errorBody is every error answer: one line saying what is wrong.
type errorBody struct {
	Error string `json:"error"`
}

// Prediction is one image's answer: its top classes, or why it could not
// be used.
type Prediction struct {
	// Image is the multipart file name (or form field name), or "body" for
	// a raw body.
	Image string `json:"image"`
	// Emotion is the most probable class.
	Emotion string             `json:"emotion,omitempty"`
	Top     []infer.ClassScore `json:"top,omitempty"`
	Error   string             `json:"error,omitempty"`
}

// PredictResponse is the answer of POST /v1/predict.
type PredictResponse struct {
	Model       string       `json:"model"`
	Predictions []Prediction `json:"predictions"`
	// Error is set when no image could be used (the status is then 4xx).
	Error string `json:"error,omitempty"`
}

// ModelInfo is the answer of GET /v1/model.
type ModelInfo struct {
	Name      string   `json:"name"`
	Classes   []string `json:"classes"`
	TopK      int      `json:"top_k"`
	MaxImages int      `json:"max_images"`
	MaxBytes  int64    `json:"max_bytes"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/predict", s.instrument("/v1/predict", http.HandlerFunc(s.predict)))
	mux.Handle("GET /v1/model", s.instrument("/v1/model", http.HandlerFunc(s.modelInfo)))
	mux.Handle("GET /healthz", s.instrument("/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})))
	mux.Handle("GET /readyz", s.instrument("/readyz", http.HandlerFunc(s.readyz)))
	mux.Handle("GET /metrics", s.instrument("/metrics", s.metrics.handler()))
	mux.Handle("GET /{$}", s.instrument("/", http.HandlerFunc(s.index)))
	allowed := map[string]string{"/v1/predict": "POST", "/v1/model": "GET", "/healthz": "GET", "/readyz": "GET", "/metrics": "GET", "/": "GET"}
	mux.Handle("/", s.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s %s (try POST /v1/predict)", r.Method, r.URL.Path))
	})))
	return mux
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := page.ReadFile("page/index.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	w.Write(b)
}

func (s *Server) modelInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ModelInfo{Name: s.model.Name(), Classes: s.classes, TopK: s.cfg.TopK, MaxImages: s.cfg.MaxImages, MaxBytes: s.cfg.MaxBodyBytes})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	closing := s.closing
	s.mu.RUnlock()
	switch {
	case closing:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	case !s.ready.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "model": s.model.Name()})
	}
}

// httpError is an error with the status it is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// admitRequest takes one of the Queue tokens, or says why not.
func (s *Server) admitRequest() (release func(), herr *httpError) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closing {
		return nil, errorf(http.StatusServiceUnavailable, "the server is shutting down")
	}
	if !s.ready.Load() {
		return nil, errorf(http.StatusServiceUnavailable, "the model is not loaded yet")
	}
	select {
	case s.admit <- struct{}{}:
	default:
		return nil, errorf(http.StatusServiceUnavailable, "server busy: %d requests in progress (--queue %d); retry later", s.cfg.Queue, s.cfg.Queue)
	}
	s.inflight.Add(1)
	return func() {
		<-s.admit
		s.inflight.Done()
	}, nil
}

func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	release, herr := s.admitRequest()
	if herr != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, herr.status, herr.msg)
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	k := s.cfg.TopK
	if v := r.URL.Query().Get("top_k"); v != "" {
		if v == "all" {
			k = len(s.classes)
		} else if n, err := strconv.Atoi(v); err == nil && n >= 1 {
			k = n
		} else {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("top_k %q: want a positive number or all", v))
			return
		}
	}
	inputs, herr := s.readImages(w, r)
	if herr != nil {
		writeError(w, herr.status, herr.msg)
		return
	}
	setImages(r, len(inputs))
	resp := PredictResponse{Model: s.model.Name(), Predictions: make([]Prediction, len(inputs))}
	jobs := make([]*job, len(inputs))
	var first *httpError
	fail := func(i int, e *httpError) {
		resp.Predictions[i].Error = e.msg
		if first == nil {
			first = errorf(e.status, "image %d (%s): %s", i+1, inputs[i].name, e.msg)
		}
	}
	for i, in := range inputs {
		resp.Predictions[i].Image = in.name
		x, e := s.prepare(ctx, in.data)
		inputs[i].data = nil
		if e != nil {
			fail(i, e)
			continue
		}
		jobs[i] = &job{ctx: ctx, x: x, res: make(chan result, 1)}
	}
	for _, j := range jobs {
		if j != nil {
			s.metrics.queue.Inc()
			s.jobs <- j // never blocks: admitted requests fit in its buffer
		}
	}
	for i, j := range jobs {
		if j == nil {
			continue
		}
		var res result
		select {
		case res = <-j.res:
		case <-ctx.Done():
			res.err = ctx.Err()
		}
		switch {
		case errors.Is(res.err, context.DeadlineExceeded):
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("timed out after %v waiting for the model (--timeout)", s.cfg.Timeout))
			return
		case res.err != nil && r.Context().Err() != nil:
			return // the client went away
		case res.err != nil:
			s.cfg.Log.Error("forward pass failed", "err", res.err)
			writeError(w, http.StatusInternalServerError, "the model failed: "+oneLine(res.err.Error()))
			return
		}
		top := infer.TopK(s.classes, res.probs, k)
		resp.Predictions[i].Top = top
		resp.Predictions[i].Emotion = top[0].Class
	}
	status := http.StatusOK
	if first != nil && len(inputs) == countErrors(resp.Predictions) {
		status = first.status
		resp.Error = first.msg
	}
	writeJSON(w, status, resp)
}

func countErrors(ps []Prediction) int {
	n := 0
	for _, p := range ps {
		if p.Error != "" {
			n++
		}
	}
	return n
}

// input is one image's bytes as received.
type input struct {
	name string
	data []byte
}

// readImages reads the request's images: every part of a multipart form,
// or the whole body.
func (s *Server) readImages(w http.ResponseWriter, r *http.Request) ([]input, *httpError) {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	readErr := func(err error, what string) *httpError {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "request body over %d bytes (--max-body)", s.cfg.MaxBodyBytes)
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return errorf(http.StatusRequestTimeout, "reading the request: %v", err)
		}
		return errorf(http.StatusBadRequest, "%s: %s", what, oneLine(err.Error()))
	}
	mediaType, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var inputs []input
	if !strings.HasPrefix(mediaType, "multipart/") {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, readErr(err, "reading the body")
		}
		if len(b) == 0 {
			return nil, errorf(http.StatusBadRequest, "empty request body: send an image, or a multipart form of images")
		}
		return []input{{name: "body", data: b}}, nil
	}
	if params["boundary"] == "" {
		return nil, errorf(http.StatusBadRequest, "multipart body without a boundary in its Content-Type")
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr(err, "malformed multipart body")
		}
		if len(inputs) == s.cfg.MaxImages {
			return nil, errorf(http.StatusRequestEntityTooLarge, "more than %d images in one request (--max-images)", s.cfg.MaxImages)
		}
		name := part.FileName()
		if name == "" {
			name = part.FormName()
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return nil, readErr(err, "malformed multipart body")
		}
		inputs = append(inputs, input{name: name, data: b})
	}
	if len(inputs) == 0 {
		return nil, errorf(http.StatusBadRequest, "no image in the multipart form")
	}
	return inputs, nil
}

// prepare decodes one image by its content (never by its name or type),
// refusing oversized ones from their header, and prepares it for the model.
func (s *Server) prepare(ctx context.Context, b []byte) ([]float32, *httpError) {
	if t := bytes.TrimSpace(b[:min(len(b), 16)]); bytes.HasPrefix(bytes.ToLower(t), []byte("http://")) || bytes.HasPrefix(bytes.ToLower(t), []byte("https://")) {
		return nil, errorf(http.StatusBadRequest, "a URL, not an image: send the image's bytes (the server fetches nothing)")
	}
	select {
	case s.decode <- struct{}{}:
	case <-ctx.Done():
		return nil, errorf(http.StatusServiceUnavailable, "timed out waiting to decode")
	}
	defer func() { <-s.decode }()
	img, _, err := data.DecodeBytes(b, s.cfg.Limits)
	if err != nil {
		status := http.StatusBadRequest
		var de *data.DecodeError
		if errors.As(err, &de) {
			switch de.Kind {
			case data.SkipFormat:
				status = http.StatusUnsupportedMediaType
			case data.SkipTooLarge:
				status = http.StatusRequestEntityTooLarge
			}
		}
		return nil, errorf(status, "%s", oneLine(err.Error()))
	}
	x := make([]float32, s.per)
	if err := s.model.Prepare(x, img); err != nil {
		return nil, errorf(http.StatusBadRequest, "%s", oneLine(err.Error()))
	}
	return x, nil
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// requestInfo carries what the access log reports beyond the status.
type requestInfo struct{ images int }

type infoKey struct{}

func setImages(r *http.Request, n int) {
	if ri, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		ri.images = n
	}
}

// recorder remembers the status and size of an answer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// instrument counts and times a handler's requests and logs each one.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{}
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), infoKey{}, ri)))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.observe(route, rec.status, d)
		s.cfg.Log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Int("bytes", rec.bytes), slog.Int("images", ri.images),
			slog.Float64("ms", float64(d.Microseconds())/1000), slog.String("remote", r.RemoteAddr))
	})
}
