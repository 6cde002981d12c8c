package dist

/*
#include "fertorch_dist.h"
*/
import "C"

import (
	"runtime"

	"github.com/fertorch/fertorch/torch"
)

// DefaultBucketBytes is the bucket size PyTorch's DistributedDataParallel
// uses (25 MiB).
const DefaultBucketBytes = 25 << 20

// Reducer sums the gradients of a model's trainable parameters across ranks
// the way DistributedDataParallel does: gradient hooks copy each gradient,
// as backward produces it, into flattened buckets of about bucketBytes
// (parameters in reverse order, the order backward reaches them), and a
// bucket's all-reduce starts as soon as it is full, while backward still
// runs. Every rank must build its Reducer from the same parameters in the
// same order. Use per step:
//
//	r.Prepare()   // before backward
//	loss.Backward()
//	r.Finish()    // .grad of every parameter = sum over ranks
//
// Finish overwrites .grad with the sum, over ranks, of what .grad holds
// after the one backward since Prepare: that backward's gradient plus what
// earlier backwards outside Prepare/Finish accumulated (gradient
// accumulation: run the last micro-batch's backward inside Prepare/Finish);
// a parameter with neither counts as zeros. Divide the loss by the global
// denominator to get the single-process gradient.
type Reducer struct {
	h C.fer_dist_reducer
	g *Group
}

// NewReducer hooks params (all must require grad). bucketBytes <= 0 means
// DefaultBucketBytes. The reducer keeps the group's process group alive
// until it is freed, even if the group is closed first.
func (g *Group) NewReducer(params []*torch.Tensor, bucketBytes int64) (*Reducer, error) {
	hs, err := g.handles("reducer", params)
	if err != nil {
		return nil, err
	}
	if bucketBytes <= 0 {
		bucketBytes = DefaultBucketBytes
	}
	var h C.fer_dist_reducer
	msg := C.fer_dist_reducer_new(g.h, first(hs), C.int(len(hs)), C.int64_t(bucketBytes), &h)
	runtime.KeepAlive(params)
	if err := g.err("reducer", msg); err != nil {
		return nil, err
	}
	r := &Reducer{h: h, g: g}
	runtime.SetFinalizer(r, (*Reducer).Free)
	return r, nil
}

// Buckets is the number of buckets.
func (r *Reducer) Buckets() int { return int(C.fer_dist_reducer_buckets(r.h)) }

// Prepare arms the hooks for the next backward.
func (r *Reducer) Prepare() error {
	if r == nil || r.h == nil {
		return &Error{Op: "reducer prepare", Rank: -1, Msg: "the reducer is freed"}
	}
	return r.g.err("reducer prepare", C.fer_dist_reducer_prepare(r.h))
}

// Finish waits for every bucket's all-reduce (launching those that backward
// did not fill) and writes the sums into the parameters' .grad (creating
// it where it is undefined). An error inside a hook is reported here.
func (r *Reducer) Finish() error {
	if r == nil || r.h == nil {
		return &Error{Op: "gradient all_reduce", Rank: -1, Msg: "the reducer is freed"}
	}
	msg := C.fer_dist_reducer_finish(r.h)
	runtime.KeepAlive(r.g)
	return r.g.err("gradient all_reduce", msg)
}

// Free removes the hooks and releases the buckets. Freeing twice is a
// no-op.
func (r *Reducer) Free() {
	if r == nil || r.h == nil {
		return
	}
	runtime.SetFinalizer(r, nil)
	C.fer_dist_reducer_free(r.h)
	r.h = nil
}
