// Package serve is fertorch's model server: an HTTP API that answers
// images with their most probable emotions, gathering concurrent requests
// into batches for one goroutine that owns the model, with limits on what
// it accepts and holds, Prometheus metrics, an access log, graceful
// shutdown and a web page.
//
// Endpoints: POST /v1/predict (images as a multipart form or a raw body),
// GET /v1/model, GET /healthz, GET /readyz, GET /metrics and GET / (the
// page).
package serve

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fertorch/fertorch/data"
)

// Predictor is the model a Server runs: *infer.Model, or a stand-in in
// tests. Only the Server's batching goroutine calls Probabilities.
type Predictor interface {
	// Name describes the model for people.
	Name() string
	// ClassNames are the classes in output order.
	ClassNames() []string
	// ImageValues is the number of float32 values of one prepared image.
	ImageValues() int
	// Prepare writes a decoded image into dst (ImageValues values).
	Prepare(dst []float32, img image.Image) error
	// Probabilities runs one forward pass over n prepared images.
	Probabilities(images []float32, n int, flipTTA bool) ([][]float32, error)
}

// Config are the server's settings; zero fields take the defaults noted.
type Config struct {
	// MaxBatch is the most images in one forward pass (16).
	MaxBatch int
	// MaxWait is how long the first image of a batch waits for others
	// (0: no waiting; a batch is what is queued when the model is free).
	MaxWait time.Duration
	// Queue is the most requests admitted at once, waiting or being
	// answered (64); more are answered 503 with Retry-After.
	Queue int
	// MaxImages is the most images in one request (16).
	MaxImages int
	// MaxBodyBytes is the largest request body (32 MiB).
	MaxBodyBytes int64
	// Limits bound each image, checked from its header before its pixels
	// are decoded (MaxSide 8192, MaxPixels 16 million; MaxBytes is
	// MaxBodyBytes).
	Limits data.Limits
	// Timeout bounds a request from its headers to its answer (30 s).
	Timeout time.Duration
	// ReadHeaderTimeout bounds the time to read a request's headers, against
	// slow clients (5 s).
	ReadHeaderTimeout time.Duration
	// TopK is the number of classes answered per image unless the request
	// asks for another (3).
	TopK int
	// TTA averages each image's prediction with its mirror's.
	TTA bool
	// Log receives the access log and the server's events (nil: discarded).
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 16
	}
	if c.Queue <= 0 {
		c.Queue = 64
	}
	if c.MaxImages <= 0 {
		c.MaxImages = 16
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 32 << 20
	}
	if c.Limits.MaxSide <= 0 {
		c.Limits.MaxSide = 8192
	}
	if c.Limits.MaxPixels <= 0 {
		c.Limits.MaxPixels = 16_000_000
	}
	c.Limits.MaxBytes = c.MaxBodyBytes
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.TopK <= 0 {
		c.TopK = 3
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server answers prediction requests with one model.
type Server struct {
	cfg     Config
	model   Predictor
	classes []string
	per     int
	metrics *metrics
	handler http.Handler

	jobs   chan *job     // images waiting for a batch
	admit  chan struct{} // one token per admitted request
	decode chan struct{} // one token per image being decoded

	mu        sync.RWMutex // guards closing against new admissions
	closing   bool
	inflight  sync.WaitGroup
	closeOnce sync.Once
	ready     atomic.Bool
	started   atomic.Bool
	done      chan struct{}
	passes    atomic.Int64
}

// job is one prepared image waiting for the model.
type job struct {
	ctx context.Context
	x   []float32
	res chan result
}

type result struct {
	probs []float32
	err   error
}

// New prepares a server for model; Start begins the batching.
func New(model Predictor, cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		model:   model,
		classes: model.ClassNames(),
		per:     model.ImageValues(),
		jobs:    make(chan *job, cfg.Queue*cfg.MaxImages),
		admit:   make(chan struct{}, cfg.Queue),
		decode:  make(chan struct{}, runtime.GOMAXPROCS(0)),
		done:    make(chan struct{}),
	}
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	return s
}

// Handler is the server's HTTP handler (every endpoint, with metrics and
// the access log).
func (s *Server) Handler() http.Handler { return s.handler }

// ForwardPasses is the number of forward passes run so far, warm-up
// included.
func (s *Server) ForwardPasses() int64 { return s.passes.Load() }

// Ready reports whether the model is loaded and warmed up and the server
// is not shutting down.
func (s *Server) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ready.Load() && !s.closing
}

// Start warms the model up (a forward pass of one image and one of a full
// batch) in the goroutine that will own it, then serves batches until
// Close. It returns the warm-up's error.
func (s *Server) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("serve: already started")
	}
	warm := make(chan error, 1)
	go s.loop(warm)
	if err := <-warm; err != nil {
		return fmt.Errorf("serve: warm-up: %w", err)
	}
	s.ready.Store(true)
	return nil
}

// Close stops admitting requests, lets every admitted one finish (they
// are answered), then stops the batching goroutine.
func (s *Server) Close() {
	s.stopAdmitting()
	s.closeOnce.Do(func() {
		s.inflight.Wait()
		close(s.jobs)
		if s.started.Load() {
			<-s.done
		}
	})
}

// stopAdmitting makes new requests get 503 and readyz report shutting down.
func (s *Server) stopAdmitting() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
}

// loop is the goroutine that owns the model.
func (s *Server) loop(warm chan<- error) {
	// One OS thread too: libtorch's thread-local state and its allocations
	// stay with one thread instead of following the goroutine around.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(s.done)
	buf := make([]float32, s.cfg.MaxBatch*s.per)
	for _, n := range []int{1, s.cfg.MaxBatch} {
		if _, err := s.model.Probabilities(buf[:n*s.per], n, s.cfg.TTA); err != nil {
			warm <- err
			for j := range s.jobs {
				j.res <- result{err: err}
			}
			return
		}
		s.passes.Add(1)
	}
	warm <- nil
	var timer *time.Timer
	batch := make([]*job, 0, s.cfg.MaxBatch)
	for {
		j, ok := <-s.jobs
		if !ok {
			return
		}
		batch = append(batch[:0], j)
		open := true
		if s.cfg.MaxWait > 0 {
			if timer == nil {
				timer = time.NewTimer(s.cfg.MaxWait)
			} else {
				timer.Reset(s.cfg.MaxWait)
			}
		gather:
			for len(batch) < s.cfg.MaxBatch {
				select {
				case j, ok := <-s.jobs:
					if !ok {
						open = false
						break gather
					}
					batch = append(batch, j)
				case <-timer.C:
					break gather
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		} else {
		greedy:
			for len(batch) < s.cfg.MaxBatch {
				select {
				case j, ok := <-s.jobs:
					if !ok {
						open = false
						break greedy
					}
					batch = append(batch, j)
				default:
					break greedy
				}
			}
		}
		s.metrics.queue.Sub(float64(len(batch)))
		s.run(batch, buf)
		if !open {
			return
		}
	}
}

// run answers a batch with one forward pass, leaving out images whose
// request has given up.
func (s *Server) run(batch []*job, buf []float32) {
	live := batch[:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.res <- result{err: err}
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	for i, j := range live {
		copy(buf[i*s.per:(i+1)*s.per], j.x)
	}
	start := time.Now()
	probs, err := s.model.Probabilities(buf[:len(live)*s.per], len(live), s.cfg.TTA)
	s.passes.Add(1)
	s.metrics.batch.Observe(float64(len(live)))
	s.metrics.forward.Observe(time.Since(start).Seconds())
	if err == nil && len(probs) != len(live) {
		err = fmt.Errorf("model answered %d of %d images", len(probs), len(live))
	}
	for i, j := range live {
		if err != nil {
			j.res <- result{err: err}
			continue
		}
		j.res <- result{probs: probs[i]}
	}
}

// Run serves on l until ctx is cancelled, then shuts down gracefully: it
// stops accepting connections, answers every request it holds (waiting at
// most grace), and stops the model's goroutine. Start must have been
// called.
func (s *Server) Run(ctx context.Context, l net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.Timeout,
		WriteTimeout:      s.cfg.Timeout + 5*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.cfg.Log.Info("shutting down: no new connections; answering the requests held")
	s.stopAdmitting()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	s.Close()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.cfg.Log.Info("stopped")
	return nil
}
