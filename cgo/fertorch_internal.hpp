// fertorch_internal.hpp: what the C++ units of libfertorch.so share
// (fertorch.cpp and fertorch_dist.cpp). Never included by C or Go code.
#ifndef FERTORCH_INTERNAL_HPP
#define FERTORCH_INTERNAL_HPP

#include "fertorch.h"

#include <torch/torch.h>

#include <string>

// A fer_tensor owns one reference to a libtorch tensor.
struct fer_tensor_s {
  at::Tensor t;
};

namespace fer {

// wrap_tensor makes a new handle that owns t (counted by fer_live_tensors).
fer_tensor wrap_tensor(at::Tensor t);

// error_string is message's first paragraph (no backtrace) in a malloc'd
// string for the C interface.
char* error_string(const char* message);

// tensor_of is the tensor behind a handle; a null handle is an error naming
// what.
const at::Tensor& tensor_of(fer_tensor t, const char* what);

// sync_thread_count gives the calling OS thread the intra-op thread count
// last set through fer_set_num_threads. With OpenMP, libtorch's count is
// per OS thread (omp_set_num_threads), and a thread that ran parallel work
// before a later set keeps its old count; Go runs cgo calls on whichever
// thread is free, so without this a run would use different counts from
// call to call, which changes the chunking of reductions and so the
// results. Every entry point that runs operations calls it first; it costs
// one atomic load when nothing changed.
void sync_thread_count();

}  // namespace fer

#endif
