package dist

/*
#cgo CFLAGS: -I${SRCDIR}/../../cgo
#cgo LDFLAGS: -L${SRCDIR}/../../build -lfertorch -Wl,-rpath,${SRCDIR}/../../build
#include <stdlib.h>
#include "fertorch_dist.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/fertorch/fertorch/torch"
)

// DefaultTimeout is the timeout of Options{} (PyTorch's default too).
const DefaultTimeout = 30 * time.Minute

// Error is a failed collective, rendezvous or store operation.
type Error struct {
	// Op is the operation: "init", "broadcast", "all_reduce", "barrier",
	// "all_gather", "gradient all_reduce", "serve_store"...
	Op string
	// Rank is the rank that reports it (-1 where there is none, as for a
	// store hosted by a launcher).
	Rank int
	// TimedOut is true when the operation gave up after Timeout.
	TimedOut bool
	Timeout  time.Duration
	// Msg is what went wrong, in c10d's and Gloo's words.
	Msg string
}

func (e *Error) Error() string {
	who := e.Op
	if e.Rank >= 0 {
		who += " on rank " + strconv.Itoa(e.Rank)
	}
	if e.TimedOut {
		return fmt.Sprintf("dist: %s timed out after %s (is another rank gone or stuck?): %s", who, formatDuration(e.Timeout), e.Msg)
	}
	if peerGone(e.Msg) {
		return fmt.Sprintf("dist: %s failed (is another rank gone?): %s", who, e.Msg)
	}
	return fmt.Sprintf("dist: %s: %s", who, e.Msg)
}

// peerGone recognises Gloo's words for a connection that a peer closed.
func peerGone(msg string) bool {
	return strings.Contains(msg, "Connection closed by peer") || strings.Contains(msg, "Connection reset by peer") ||
		strings.Contains(msg, "Broken pipe")
}

// formatDuration writes 2s, 1m30s, 30m, 1h rather than 30m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if d >= time.Minute && d%time.Minute == 0 {
		s = strings.TrimSuffix(s, "0s")
	}
	if d >= time.Hour && d%time.Hour == 0 {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// takeError turns a shim error string (nil for success) into an *Error and
// releases the C string.
func takeError(op string, rank int, timeout time.Duration, msg *C.char) error {
	if msg == nil {
		return nil
	}
	text := C.GoString(msg)
	C.fer_free_string(msg)
	e := &Error{Op: op, Rank: rank, Timeout: timeout, Msg: text}
	if rest, ok := strings.CutPrefix(text, C.FER_DIST_TIMEOUT_PREFIX); ok {
		e.TimedOut, e.Msg = true, rest
	}
	return e
}

// Available is nil when the shim was built with c10d and Gloo, else the
// error saying why not (and what to install).
func Available() error {
	if msg := C.fer_dist_check(); msg != nil {
		text := C.GoString(msg)
		C.fer_free_string(msg)
		return errors.New("dist: " + text)
	}
	return nil
}

// HasNCCL reports whether the shim was built with ProcessGroupNCCL, which
// groups on CUDA devices need: a CUDA libtorch, nccl.h and the CUDA runtime
// headers at build time.
func HasNCCL() bool { return C.fer_dist_has_nccl() != 0 }

// Options tune Init.
type Options struct {
	// Timeout bounds every collective and the rendezvous; 0 means
	// DefaultTimeout (30 min).
	Timeout time.Duration
	// Device is where the group's tensors live: the CPU (Gloo), or a CUDA
	// device (NCCL; pass cuda:LOCAL_RANK, one GPU per rank).
	Device torch.Device
}

// Group is this process's membership in a job: a process group over the
// job's ranks. Its methods are collectives that every rank must call in the
// same order with tensors of the same shapes and dtypes. A Group is not safe
// for concurrent use.
type Group struct {
	h       C.fer_dist_group
	rank    int
	size    int
	timeout time.Duration
	device  torch.Device
}

// Init joins the job env describes: a TCPStore at MasterAddr:MasterPort
// (hosted by rank 0 unless UseAgentStore), a PrefixStore per restart attempt,
// then a ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA). It returns when
// every rank has joined, or fails after opts.Timeout. A rank that connects to
// the store first waits, within the timeout, for its port to accept
// connections, so ranks may start in any order.
func Init(env Env, opts Options) (*Group, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	fail := func(msg string) error { return &Error{Op: "init", Rank: env.Rank, Timeout: timeout, Msg: msg} }
	switch {
	case timeout < time.Millisecond:
		return nil, fail(fmt.Sprintf("timeout %s is not positive", timeout))
	case env.WorldSize < 1:
		return nil, fail(fmt.Sprintf("world size %d < 1", env.WorldSize))
	case env.Rank < 0 || env.Rank >= env.WorldSize:
		return nil, fail(fmt.Sprintf("rank %d out of range for world size %d", env.Rank, env.WorldSize))
	case env.MasterAddr == "":
		return nil, fail("no master address")
	case env.MasterPort < 0 || env.MasterPort > 65535:
		return nil, fail(fmt.Sprintf("master port %d is not a TCP port", env.MasterPort))
	}
	host := !env.UseAgentStore && env.Rank == 0
	if env.MasterPort == 0 && (!host || env.WorldSize > 1) {
		return nil, fail("no master port (only a job of one rank that hosts its store may pick a free one)")
	}
	if !host {
		// libtorch 2.x's TCPStore client retries a whole connection timeout
		// several times over; waiting here first keeps Init within timeout.
		if err := awaitStore(env.MasterAddr, env.MasterPort, timeout); err != nil {
			return nil, &Error{Op: "init", Rank: env.Rank, Timeout: timeout, TimedOut: true, Msg: err.Error()}
		}
	}
	addr := C.CString(env.MasterAddr)
	defer C.free(unsafe.Pointer(addr))
	prefix := C.CString(storePrefix(env.RestartCount))
	defer C.free(unsafe.Pointer(prefix))
	ifname := C.CString(env.SocketIfname)
	defer C.free(unsafe.Pointer(ifname))
	hostStore := C.int(0)
	if host {
		hostStore = 1
	}
	var h C.fer_dist_group
	msg := C.fer_dist_init(addr, C.int(env.MasterPort), C.int(env.Rank), C.int(env.WorldSize), hostStore, prefix, ifname,
		C.int(opts.Device.Type), C.int(opts.Device.Index), C.int64_t(timeout.Milliseconds()), &h)
	if err := takeError("init", env.Rank, timeout, msg); err != nil {
		return nil, err
	}
	g := &Group{h: h, rank: env.Rank, size: env.WorldSize, timeout: timeout, device: opts.Device}
	runtime.SetFinalizer(g, (*Group).Close)
	return g, nil
}

// awaitStore waits until something accepts TCP connections at host:port,
// for at most timeout.
func awaitStore(host string, port int, timeout time.Duration) error {
	where := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			left = time.Millisecond
		}
		c, err := net.DialTimeout("tcp", where, left)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Until(deadline) <= 0 {
			return fmt.Errorf("connecting to the store at %s: nothing accepted a connection (%v)", where, err)
		}
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
}

// Rank is this process's rank.
func (g *Group) Rank() int { return g.rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.size }

// Timeout is the timeout of every collective.
func (g *Group) Timeout() time.Duration { return g.timeout }

// Device is where the group's tensors live.
func (g *Group) Device() torch.Device { return g.device }

// Close leaves the job: the process group and the store (rank 0's stops
// serving) are released after their pending work, once no Reducer or
// AllReduceSumGrad graph still uses them. Closing twice is a no-op.
func (g *Group) Close() error {
	if g == nil || g.h == nil {
		return nil
	}
	runtime.SetFinalizer(g, nil)
	C.fer_dist_group_free(g.h)
	g.h = nil
	return nil
}

func (g *Group) err(op string, msg *C.char) error { return takeError(op, g.rank, g.timeout, msg) }

// handles is the shim handles of ts; a nil or released tensor is an error
// naming op.
func (g *Group) handles(op string, ts []*torch.Tensor) ([]C.fer_tensor, error) {
	if g == nil || g.h == nil {
		return nil, &Error{Op: op, Rank: -1, Msg: "the group is closed"}
	}
	hs := make([]C.fer_tensor, len(ts))
	for i, t := range ts {
		p := torch.UnsafeHandle(t)
		if p == nil {
			return nil, &Error{Op: op, Rank: g.rank, Timeout: g.timeout, Msg: fmt.Sprintf("tensor %d is nil or released", i)}
		}
		hs[i] = C.fer_tensor(p)
	}
	return hs, nil
}

// first is &hs[0], or nil for an empty list.
func first(hs []C.fer_tensor) *C.fer_tensor {
	if len(hs) == 0 {
		return nil
	}
	return &hs[0]
}

// Broadcast makes every tensor of ts, in place, equal to root's. Small
// tensors travel together in flat buffers of up to 64 MiB.
func (g *Group) Broadcast(ts []*torch.Tensor, root int) error {
	hs, err := g.handles("broadcast", ts)
	if err != nil {
		return err
	}
	msg := C.fer_dist_broadcast(g.h, first(hs), C.int(len(hs)), C.int(root))
	runtime.KeepAlive(ts)
	return g.err("broadcast", msg)
}

// AllReduceSum replaces every tensor of ts, in place, with its sum over
// ranks.
func (g *Group) AllReduceSum(ts []*torch.Tensor) error {
	hs, err := g.handles("all_reduce", ts)
	if err != nil {
		return err
	}
	msg := C.fer_dist_all_reduce_sum(g.h, first(hs), C.int(len(hs)))
	runtime.KeepAlive(ts)
	return g.err("all_reduce", msg)
}

// Barrier returns when every rank has called it.
func (g *Group) Barrier() error {
	if g == nil || g.h == nil {
		return &Error{Op: "barrier", Rank: -1, Msg: "the group is closed"}
	}
	return g.err("barrier", C.fer_dist_barrier(g.h))
}

// AllGather is every rank's t, in rank order (this rank's own included, as
// a copy). The results join t's scope.
func (g *Group) AllGather(t *torch.Tensor) ([]*torch.Tensor, error) {
	hs, err := g.handles("all_gather", []*torch.Tensor{t})
	if err != nil {
		return nil, err
	}
	out := make([]C.fer_tensor, g.size)
	msg := C.fer_dist_all_gather(g.h, hs[0], &out[0])
	runtime.KeepAlive(t)
	if err := g.err("all_gather", msg); err != nil {
		return nil, err
	}
	res := make([]*torch.Tensor, g.size)
	for i, h := range out {
		res[i] = torch.UnsafeWrap(unsafe.Pointer(h), t)
	}
	return res, nil
}

// AllReduceSumGrad is the sum over ranks of t, differentiable: its backward
// sums the incoming gradient over ranks, so every rank's t gets the
// gradient of the sum of every rank's loss. It is the building block of
// synchronized BatchNorm. Every rank must run the backward too (the graph
// keeps the process group alive until then). The result joins t's scope.
func (g *Group) AllReduceSumGrad(t *torch.Tensor) (*torch.Tensor, error) {
	hs, err := g.handles("all_reduce_grad", []*torch.Tensor{t})
	if err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_dist_all_reduce_sum_grad(g.h, hs[0], &out)
	runtime.KeepAlive(t)
	if err := g.err("all_reduce_grad", msg); err != nil {
		return nil, err
	}
	return torch.UnsafeWrap(unsafe.Pointer(out), t), nil
}
