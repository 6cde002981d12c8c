package dist

/*
#include <stdlib.h>
#include "fertorch_dist.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// StoreServer is a TCPStore hosted by a launcher (fer train
// --nproc-per-node, like torchrun's agent): its workers run with
// UseAgentStore and connect to it as clients.
type StoreServer struct {
	h    C.fer_dist_store
	port int
}

// ServeStore hosts a TCPStore for a job of worldSize ranks on port (0: a
// free port, see Port) of every interface; host is the address by which this
// process reaches it (127.0.0.1 on one machine). timeout bounds the store's
// own waits.
func ServeStore(host string, port int, worldSize int, timeout time.Duration) (*StoreServer, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	fail := func(msg string) error { return &Error{Op: "serve_store", Rank: -1, Timeout: timeout, Msg: msg} }
	switch {
	case host == "":
		return nil, fail("no host address")
	case port < 0 || port > 65535:
		return nil, fail(fmt.Sprintf("port %d is not a TCP port", port))
	case worldSize < 1:
		return nil, fail(fmt.Sprintf("world size %d < 1", worldSize))
	case timeout < time.Millisecond:
		return nil, fail(fmt.Sprintf("timeout %s is not positive", timeout))
	}
	chost := C.CString(host)
	defer C.free(unsafe.Pointer(chost))
	var h C.fer_dist_store
	var got C.int
	msg := C.fer_dist_store_serve(chost, C.int(port), C.int(worldSize), C.int64_t(timeout.Milliseconds()), &h, &got)
	if err := takeError("serve_store", -1, timeout, msg); err != nil {
		return nil, err
	}
	s := &StoreServer{h: h, port: int(got)}
	runtime.SetFinalizer(s, (*StoreServer).Close)
	return s, nil
}

// Port is the port the store listens on.
func (s *StoreServer) Port() int { return s.port }

// Close stops serving. Closing twice is a no-op.
func (s *StoreServer) Close() error {
	if s == nil || s.h == nil {
		return nil
	}
	runtime.SetFinalizer(s, nil)
	C.fer_dist_store_free(s.h)
	s.h = nil
	return nil
}
