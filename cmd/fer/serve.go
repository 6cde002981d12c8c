package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/serve"
	"github.com/fertorch/fertorch/torch"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve --checkpoint FILE [--addr 127.0.0.1:8080] [flags]", stderr)
	checkpoint := fs.String("checkpoint", "runs/vgg16/best.safetensors", "trained model")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (host:port; :8080 for every interface)")
	device := torch.DeviceAuto
	fs.Var(&device, "device", "device: "+torch.DeviceSpecNames())
	maxBatch := fs.Int("max-batch", 16, "most images in one forward pass (1: no batching)")
	maxWait := fs.Float64("max-wait", 5, "milliseconds the first image of a batch waits for more (0: batch only what is already queued)")
	queue := fs.Int("queue", 64, "most requests held at once; more are answered 503 with Retry-After")
	maxImages := fs.Int("max-images", 16, "most images in one request")
	maxBody := fs.Int64("max-body", 32<<20, "largest request body in bytes")
	maxPixels := fs.Int("max-pixels", 16_000_000, "largest image in pixels (width x height), checked before decoding")
	timeout := fs.Duration("timeout", 30*time.Second, "longest time from a request's arrival to its answer")
	grace := fs.Duration("grace", 30*time.Second, "on SIGTERM or Ctrl-C, how long to finish the requests held")
	k := fs.IntP("top-k", "k", 3, "classes answered per image (a request may ask ?top_k=N or ?top_k=all)")
	tta := fs.Bool("tta", false, "average each image's prediction with its horizontal mirror's")
	oneDNN := oneDNNFlag(fs)
	threads := fs.Int("threads", 0, "libtorch CPU threads (0: one per core)")
	logFormat := fs.String("log-format", "text", "access log format on stderr: text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected arguments %v", fs.Args())
	case *maxBatch < 1:
		return usagef("--max-batch %d must be at least 1", *maxBatch)
	case *maxWait < 0:
		return usagef("--max-wait %g is negative", *maxWait)
	case *queue < 1:
		return usagef("--queue %d must be at least 1", *queue)
	case *maxImages < 1:
		return usagef("--max-images %d must be at least 1", *maxImages)
	case *maxBody < 1:
		return usagef("--max-body %d must be at least 1", *maxBody)
	case *maxPixels < 1:
		return usagef("--max-pixels %d must be at least 1", *maxPixels)
	case *timeout <= 0:
		return usagef("--timeout %v must be positive", *timeout)
	case *k < 1:
		return usagef("--top-k must be at least 1")
	case *threads < 0:
		return usagef("--threads %d is negative", *threads)
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, nil)
	case "json":
		handler = slog.NewJSONHandler(stderr, nil)
	default:
		return usagef("--log-format %q: want text or json", *logFormat)
	}
	log := slog.New(handler)
	if *threads > 0 {
		if err := torch.SetNumThreads(*threads); err != nil {
			return err
		}
	}
	model, err := infer.Load(*checkpoint, infer.Options{Device: device, OneDNN: *oneDNN})
	if err != nil {
		return err
	}
	defer model.Free()
	tellNotice(stderr, "serve", model.Notice)
	srv := serve.New(model, serve.Config{
		MaxBatch: *maxBatch, MaxWait: time.Duration(*maxWait * float64(time.Millisecond)), Queue: *queue,
		MaxImages: *maxImages, MaxBodyBytes: *maxBody, Limits: data.Limits{MaxPixels: *maxPixels},
		Timeout: *timeout, TopK: *k, TTA: *tta, Log: log,
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ctx := onInterrupt()
	defer ctx.stop()
	if err := srv.Start(); err != nil {
		l.Close()
		return err
	}
	fmt.Fprintf(stdout, "serving %s on %s at http://%s/ (batches of up to %d images)\n", model.Name(), model.Device, l.Addr(), *maxBatch)
	return srv.Run(ctx, l, *grace)
}
