package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fertorch/fertorch/torch"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (with the Go runtime's and the process's), never the global one.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	batch    prometheus.Histogram
	forward  prometheus.Histogram
	queue    prometheus.Gauge
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fer_http_requests_total", Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"handler", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fer_http_request_duration_seconds", Help: "Time from a request's arrival to its answer, by endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"handler"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fer_batch_size", Help: "Images per forward pass.",
			Buckets: prometheus.LinearBuckets(1, 1, max(1, s.cfg.MaxBatch)),
		}),
		forward: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fer_forward_seconds", Help: "Duration of a forward pass.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fer_queue_depth", Help: "Images waiting for a forward pass.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.batch, m.forward, m.queue,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fer_ready", Help: "1 when the model is loaded and warmed up and the server is not shutting down."}, func() float64 {
			if s.Ready() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fer_live_tensors", Help: "libtorch tensors alive in the process (constant between requests unless memory leaks)."}, func() float64 {
			return float64(torch.LiveTensors())
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
