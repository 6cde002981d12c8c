// fertorch.cpp: the C++ body of the libfertorch C shim (see fertorch.h).
//
// Every exported function catches every exception and turns it into an error
// string; nothing here may abort the process on bad input.

#include "fertorch.h"
#include "fertorch_internal.hpp"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

// ---- libtorch version differences live here, and only here ---------------

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define FER_AUTOCAST_BY_DEVICE 1
#else
#define FER_AUTOCAST_BY_DEVICE 0
#endif

// at::scaled_dot_product_attention (fused attention kernels) arrived in 2.0.
#if TORCH_VERSION_MAJOR >= 2
#define FER_FUSED_ATTENTION 1
#else
#define FER_FUSED_ATTENTION 0
#endif

#define FER_STR2(x) #x
#define FER_STR(x) FER_STR2(x)

namespace {

std::atomic<int64_t> live_tensors{0};

char* make_error(const char* msg) {
  if (msg == nullptr || *msg == '\0') msg = "unknown libtorch error";
  // Keep only the first paragraph: libtorch appends long backtraces.
  std::string s(msg);
  auto cut = s.find("\nException raised from");
  if (cut != std::string::npos) s.resize(cut);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) return nullptr;
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

fer_tensor wrap(at::Tensor t) {
  auto* h = new fer_tensor_s{std::move(t)};
  live_tensors.fetch_add(1, std::memory_order_relaxed);
  return h;
}

at::ScalarType to_scalar_type(int dtype) {
  switch (dtype) {
    case FER_FLOAT32: return at::kFloat;
    case FER_FLOAT64: return at::kDouble;
    case FER_FLOAT16: return at::kHalf;
    case FER_BFLOAT16: return at::kBFloat16;
    case FER_INT64: return at::kLong;
    case FER_INT32: return at::kInt;
    case FER_UINT8: return at::kByte;
    case FER_INT8: return at::kChar;
    case FER_BOOL: return at::kBool;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
}

int from_scalar_type(at::ScalarType st) {
  switch (st) {
    case at::kFloat: return FER_FLOAT32;
    case at::kDouble: return FER_FLOAT64;
    case at::kHalf: return FER_FLOAT16;
    case at::kBFloat16: return FER_BFLOAT16;
    case at::kLong: return FER_INT64;
    case at::kInt: return FER_INT32;
    case at::kByte: return FER_UINT8;
    case at::kChar: return FER_INT8;
    case at::kBool: return FER_BOOL;
    default: return -1;
  }
}

at::Device to_device(int device_type, int device_index) {
  switch (device_type) {
    case FER_CPU: return at::Device(at::kCPU);
    case FER_CUDA: return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index));
  }
  throw std::invalid_argument("unknown device type code " + std::to_string(device_type));
}

at::TensorOptions options(int dtype, int device_type, int device_index) {
  return at::TensorOptions().dtype(to_scalar_type(dtype)).device(to_device(device_type, device_index));
}

at::IntArrayRef ints(const int64_t* p, int n) {
  if (n < 0) throw std::invalid_argument("negative length");
  return at::IntArrayRef(p, static_cast<size_t>(n));
}

const at::Tensor& get(fer_tensor t, const char* what) {
  if (t == nullptr) throw std::invalid_argument(std::string("null tensor handle for ") + what);
  return t->t;
}

at::Tensor optional_tensor(fer_tensor t) { return t == nullptr ? at::Tensor() : t->t; }

void check_bytes(const at::Tensor& t, int64_t nbytes) {
  int64_t want = t.numel() * static_cast<int64_t>(t.element_size());
  if (want != nbytes) {
    throw std::invalid_argument("buffer holds " + std::to_string(nbytes) + " bytes, tensor needs " +
                                std::to_string(want));
  }
}

// binary applies an element-wise binary op to a tensor and a tensor or a
// scalar (with broadcasting). MATMUL is for two tensors only.
template <typename Other>
at::Tensor binary(int op, const at::Tensor& x, const Other& y) {
  switch (op) {
    case FER_ADD: return at::add(x, y);
    case FER_SUB: return at::sub(x, y);
    case FER_MUL: return at::mul(x, y);
    case FER_DIV: return at::div(x, y);
    case FER_EQ: return at::eq(x, y);
    case FER_NE: return at::ne(x, y);
    case FER_LT: return at::lt(x, y);
    case FER_LE: return at::le(x, y);
    case FER_GT: return at::gt(x, y);
    case FER_GE: return at::ge(x, y);
    case FER_POW: return at::pow(x, y);
  }
  if constexpr (std::is_same_v<Other, at::Tensor>) {
    switch (op) {
      case FER_MAXIMUM: return at::maximum(x, y);
      case FER_MINIMUM: return at::minimum(x, y);
      case FER_MATMUL: return at::matmul(x, y);
    }
  } else {
    switch (op) {
      case FER_MAXIMUM: return at::clamp_min(x, y);
      case FER_MINIMUM: return at::clamp_max(x, y);
    }
  }
  throw std::invalid_argument("unknown binary op code " + std::to_string(op));
}

}  // namespace

namespace fer {

fer_tensor wrap_tensor(at::Tensor t) { return wrap(std::move(t)); }

char* error_string(const char* message) { return make_error(message); }

const at::Tensor& tensor_of(fer_tensor t, const char* what) { return get(t, what); }

}  // namespace fer

namespace {

// thread_count is the count last set through fer_set_num_threads (0: never
// set), thread_count_generation how many times it was set, and
// seen_generation the generation the calling thread last applied.
std::atomic<int> thread_count{0};
std::atomic<uint64_t> thread_count_generation{0};
thread_local uint64_t seen_generation = 0;

}  // namespace

namespace fer {

void sync_thread_count() {
  const uint64_t generation = thread_count_generation.load(std::memory_order_acquire);
  if (generation == seen_generation) return;
  seen_generation = generation;
  const int n = thread_count.load(std::memory_order_acquire);
  // With a process-wide pool (libtorch's native backend) the count is
  // already n, and setting it again after parallel work would warn.
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

}  // namespace fer

#define FER_TRY \
  try {         \
    fer::sync_thread_count();
#define FER_CATCH                                          \
  }                                                        \
  catch (const c10::Error& e) {                            \
    return make_error(e.what_without_backtrace());         \
  }                                                        \
  catch (const std::exception& e) {                        \
    return make_error(e.what());                           \
  }                                                        \
  catch (...) {                                            \
    return make_error("unknown C++ exception in libtorch"); \
  }                                                        \
  return nullptr;

extern "C" {

// ---- library, memory and runtime ------------------------------------------

void fer_free_string(char* s) { std::free(s); }

const char* fer_torch_version(void) {
  return FER_STR(TORCH_VERSION_MAJOR) "." FER_STR(TORCH_VERSION_MINOR) "." FER_STR(TORCH_VERSION_PATCH);
}

#ifndef FER_WITH_CUDA
#define FER_WITH_CUDA 0
#endif
int fer_built_with_cuda(void) { return FER_WITH_CUDA; }

int64_t fer_live_tensors(void) { return live_tensors.load(std::memory_order_relaxed); }

void fer_tensor_free(fer_tensor t) {
  if (t == nullptr) return;
  delete t;
  live_tensors.fetch_sub(1, std::memory_order_relaxed);
}

char* fer_set_num_threads(int n) {
  FER_TRY
  if (n < 1) throw std::invalid_argument("thread count must be >= 1, got " + std::to_string(n));
  at::set_num_threads(n);
  thread_count.store(n, std::memory_order_release);
  thread_count_generation.fetch_add(1, std::memory_order_acq_rel);
  seen_generation = thread_count_generation.load(std::memory_order_acquire);
  FER_CATCH
}

int fer_get_num_threads(void) {
  fer::sync_thread_count();
  return at::get_num_threads();
}

char* fer_manual_seed(uint64_t seed) {
  FER_TRY
  torch::manual_seed(seed);
  FER_CATCH
}

int fer_cuda_is_available(void) {
  try {
    return torch::cuda::is_available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int fer_cuda_device_count(void) {
  try {
    return static_cast<int>(torch::cuda::device_count());
  } catch (...) {
    return 0;
  }
}

int fer_cudnn_is_available(void) {
  try {
    return torch::cuda::cudnn_is_available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

char* fer_cuda_synchronize(int device_index) {
  FER_TRY
  torch::cuda::synchronize(device_index);
  FER_CATCH
}

void fer_set_cudnn_benchmark(int on) { at::globalContext().setBenchmarkCuDNN(on != 0); }

char* fer_set_deterministic(int on) {
  FER_TRY
  at::globalContext().setDeterministicCuDNN(on != 0);
  at::globalContext().setDeterministicAlgorithms(on != 0, /*warn_only=*/true);
  FER_CATCH
}

int fer_onednn_available(void) { return at::hasMKLDNN() ? 1 : 0; }

int fer_onednn_enabled(void) { return at::globalContext().userEnabledMkldnn() ? 1 : 0; }

void fer_set_onednn(int on) { at::globalContext().setUserEnabledMkldnn(on != 0); }

namespace {

// The convolutions fer_onednn_probe tries: input channels, output channels,
// kernel, stride and groups on a 2 x in x 8x8 input with "same" padding, and
// their names. Some oneDNN builds get exactly such small convolutions wrong
// on some CPUs (Debian's oneDNN 3.6 under libtorch 2.6 on AVX-512 machines:
// the forward pass with 24 input channels, the input gradient with 4 or 8
// output channels; capped to AVX2, stride-1 convolutions with 4 output
// channels, NaN for 5x5 ones from 16 channels).
struct OneDNNProbeCase {
  int64_t in, out, kernel, stride, groups;
  const char* name;
};
constexpr OneDNNProbeCase kOneDNNProbeCases[] = {
    {24, 16, 3, 1, 1, "3x3 convolution 24->16 channels"},
    {16, 8, 3, 1, 1, "3x3 convolution 16->8 channels"},
    {3, 4, 5, 2, 1, "5x5 stride-2 convolution 3->4 channels"},
    {64, 64, 3, 1, 1, "3x3 convolution 64->64 channels"},
    {32, 32, 3, 1, 32, "3x3 depthwise convolution 32 channels"},
    {64, 32, 1, 1, 1, "1x1 convolution 64->32 channels"},
    {16, 4, 5, 1, 1, "5x5 convolution 16->4 channels"},
};

// A deterministic pattern in [-scale, scale] with the given shape (no random
// generator is touched).
torch::Tensor probe_pattern(at::IntArrayRef shape, double freq, double scale) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return torch::sin(torch::arange(n, torch::kFloat64) * freq).to(torch::kFloat32).mul(scale).reshape(shape);
}

// Restores the oneDNN switch when it goes out of scope.
struct OneDNNRestore {
  bool was = at::globalContext().userEnabledMkldnn();
  ~OneDNNRestore() { at::globalContext().setUserEnabledMkldnn(was); }
};

}  // namespace

char* fer_onednn_probe(double* max_rel_diff, int* worst_case) {
  FER_TRY
  *max_rel_diff = 0;
  *worst_case = -1;
  if (!at::hasMKLDNN()) return nullptr;
  OneDNNRestore restore;
  at::AutoGradMode grad(true);
  int index = 0;
  for (const auto& c : kOneDNNProbeCases) {
    auto x0 = probe_pattern({2, c.in, 8, 8}, 0.37, 1.0);
    auto w0 = probe_pattern({c.out, c.in / c.groups, c.kernel, c.kernel}, 0.11, 0.2);
    std::vector<torch::Tensor> results[2];
    for (int on = 0; on < 2; on++) {
      at::globalContext().setUserEnabledMkldnn(on != 0);
      auto x = x0.clone().set_requires_grad(true);
      auto w = w0.clone().set_requires_grad(true);
      auto y = torch::conv2d(x, w, {}, c.stride, c.kernel / 2, 1, c.groups);
      auto gy = probe_pattern(y.sizes(), 0.7, 1.0);
      auto grads = torch::autograd::grad({y}, {x, w}, {gy});
      results[on] = {y.detach(), grads[0], grads[1]};
    }
    for (size_t i = 0; i < results[0].size(); i++) {
      const auto& native = results[0][i];
      double scale = native.abs().max().item<double>();
      double diff = (results[1][i] - native).abs().max().item<double>() / std::max(scale, 1e-12);
      if (!(diff <= *max_rel_diff)) {  // NaN counts as the worst
        *max_rel_diff = std::isnan(diff) ? INFINITY : diff;
        *worst_case = index;
      }
    }
    index++;
  }
  FER_CATCH
}

const char* fer_onednn_probe_case(int i) {
  constexpr int n = sizeof(kOneDNNProbeCases) / sizeof(kOneDNNProbeCases[0]);
  return i >= 0 && i < n ? kOneDNNProbeCases[i].name : "";
}

int fer_grad_enabled(void) { return at::GradMode::is_enabled() ? 1 : 0; }

void fer_set_grad_enabled(int on) { at::GradMode::set_enabled(on != 0); }

char* fer_autocast_set(int device_type, int enabled, int dtype) {
  FER_TRY
  at::ScalarType st = to_scalar_type(dtype);
  if (st != at::kHalf && st != at::kBFloat16) {
    throw std::invalid_argument("autocast dtype must be float16 or bfloat16");
  }
  bool was = fer_autocast_enabled(device_type) != 0;
#if FER_AUTOCAST_BY_DEVICE
  at::DeviceType dt = device_type == FER_CUDA ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_dtype(dt, st);
  at::autocast::set_autocast_enabled(dt, enabled != 0);
#else
  if (device_type == FER_CUDA) {
    at::autocast::set_autocast_gpu_dtype(st);
    at::autocast::set_enabled(enabled != 0);
  } else {
    at::autocast::set_autocast_cpu_dtype(st);
    at::autocast::set_cpu_enabled(enabled != 0);
  }
#endif
  // Casts are cached while any autocast region is open; leaving the
  // outermost region must drop the cache, as torch.autocast does.
  if (enabled && !was) {
    at::autocast::increment_nesting();
  } else if (!enabled && was) {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  }
  FER_CATCH
}

int fer_autocast_enabled(int device_type) {
#if FER_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(device_type == FER_CUDA ? at::kCUDA : at::kCPU) ? 1 : 0;
#else
  return (device_type == FER_CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled()) ? 1 : 0;
#endif
}

void fer_autocast_clear_cache(void) { at::autocast::clear_cache(); }

// ---- creation and metadata --------------------------------------------------

char* fer_from_data(const void* data, int64_t nbytes, const int64_t* shape, int ndim, int dtype,
                    int device_type, int device_index, fer_tensor* out) {
  FER_TRY
  auto opts = at::TensorOptions().dtype(to_scalar_type(dtype));
  at::Tensor t = at::empty(ints(shape, ndim), opts);
  check_bytes(t, nbytes);
  if (nbytes > 0) std::memcpy(t.data_ptr(), data, static_cast<size_t>(nbytes));
  at::Device dev = to_device(device_type, device_index);
  if (!dev.is_cpu()) t = t.to(dev);
  *out = wrap(std::move(t));
  FER_CATCH
}

char* fer_empty(const int64_t* shape, int ndim, int dtype, int device_type, int device_index,
                int pin_memory, fer_tensor* out) {
  FER_TRY
  auto opts = options(dtype, device_type, device_index);
  if (pin_memory) {
    if (device_type != FER_CPU) throw std::invalid_argument("only CPU tensors can be pinned");
    opts = opts.pinned_memory(true);
  }
  *out = wrap(at::empty(ints(shape, ndim), opts));
  FER_CATCH
}

char* fer_full(const int64_t* shape, int ndim, double value, int dtype, int device_type,
               int device_index, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::full(ints(shape, ndim), value, options(dtype, device_type, device_index)));
  FER_CATCH
}

char* fer_rand(const int64_t* shape, int ndim, int normal, int dtype, int device_type,
               int device_index, fer_tensor* out) {
  FER_TRY
  auto opts = options(dtype, device_type, device_index);
  *out = wrap(normal ? at::randn(ints(shape, ndim), opts) : at::rand(ints(shape, ndim), opts));
  FER_CATCH
}

char* fer_arange(int64_t n, int dtype, int device_type, int device_index, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::arange(n, options(dtype, device_type, device_index)));
  FER_CATCH
}

int fer_dim(fer_tensor t) { return t == nullptr ? 0 : static_cast<int>(t->t.dim()); }

void fer_shape(fer_tensor t, int64_t* shape) {
  if (t == nullptr) return;
  for (int64_t i = 0; i < t->t.dim(); i++) shape[i] = t->t.size(i);
}

int fer_dtype(fer_tensor t) { return t == nullptr ? -1 : from_scalar_type(t->t.scalar_type()); }

void fer_device(fer_tensor t, int* device_type, int* device_index) {
  if (t == nullptr) return;
  at::Device d = t->t.device();
  *device_type = d.is_cuda() ? FER_CUDA : FER_CPU;
  *device_index = d.has_index() ? d.index() : 0;
}

int64_t fer_numel(fer_tensor t) { return t == nullptr ? 0 : t->t.numel(); }

int fer_is_contiguous(fer_tensor t) { return t != nullptr && t->t.is_contiguous() ? 1 : 0; }

int fer_is_pinned(fer_tensor t) {
  try {
    return t != nullptr && t->t.is_pinned() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

void* fer_data_ptr(fer_tensor t) {
  if (t == nullptr || !t->t.device().is_cpu() || !t->t.is_contiguous()) return nullptr;
  return t->t.data_ptr();
}

char* fer_copy_to_host(fer_tensor t, void* dst, int64_t nbytes) {
  FER_TRY
  at::Tensor src = get(t, "copy_to_host").detach();
  check_bytes(src, nbytes);
  if (!src.device().is_cpu()) src = src.to(at::kCPU);
  src = src.contiguous();
  if (nbytes > 0) std::memcpy(dst, src.data_ptr(), static_cast<size_t>(nbytes));
  FER_CATCH
}

char* fer_copy_from_host(fer_tensor t, const void* src, int64_t nbytes) {
  FER_TRY
  at::Tensor dst = get(t, "copy_from_host");
  check_bytes(dst, nbytes);
  at::NoGradGuard no_grad;
  if (dst.device().is_cpu() && dst.is_contiguous()) {
    if (nbytes > 0) std::memcpy(dst.data_ptr(), src, static_cast<size_t>(nbytes));
  } else {
    at::Tensor host = at::empty(dst.sizes(), at::TensorOptions().dtype(dst.scalar_type()));
    if (nbytes > 0) std::memcpy(host.data_ptr(), src, static_cast<size_t>(nbytes));
    dst.copy_(host);
  }
  FER_CATCH
}

char* fer_item(fer_tensor t, double* out) {
  FER_TRY
  *out = get(t, "item").item<double>();
  FER_CATCH
}

char* fer_to(fer_tensor t, int dtype, int device_type, int device_index, int non_blocking,
             fer_tensor* out) {
  FER_TRY
  const at::Tensor& x = get(t, "to");
  at::ScalarType st = dtype < 0 ? x.scalar_type() : to_scalar_type(dtype);
  at::Device dev = device_type < 0 ? x.device() : to_device(device_type, device_index);
  *out = wrap(x.to(dev, st, non_blocking != 0, /*copy=*/false));
  FER_CATCH
}

char* fer_clone(fer_tensor t, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "clone").clone());
  FER_CATCH
}

char* fer_detach(fer_tensor t, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "detach").detach());
  FER_CATCH
}

char* fer_share(fer_tensor t, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "share"));
  FER_CATCH
}

char* fer_contiguous(fer_tensor t, int channels_last, fer_tensor* out) {
  FER_TRY
  auto fmt = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  *out = wrap(get(t, "contiguous").contiguous(fmt));
  FER_CATCH
}

char* fer_convert_(fer_tensor t, int dtype, int device_type, int device_index, int channels_last) {
  FER_TRY
  const at::Tensor& x = get(t, "convert_");
  bool requires_grad = x.requires_grad();
  at::ScalarType st = dtype < 0 ? x.scalar_type() : to_scalar_type(dtype);
  at::Device dev = device_type < 0 ? x.device() : to_device(device_type, device_index);
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = x.detach().to(dev, st, /*non_blocking=*/false, /*copy=*/false);
    if (channels_last && y.dim() == 4) y = y.contiguous(at::MemoryFormat::ChannelsLast);
  }
  if (requires_grad && at::isFloatingType(st)) y.set_requires_grad(true);
  t->t = y;
  FER_CATCH
}

// ---- shapes and indexing ------------------------------------------------------

char* fer_reshape(fer_tensor t, const int64_t* shape, int ndim, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "reshape").reshape(ints(shape, ndim)));
  FER_CATCH
}

char* fer_view(fer_tensor t, const int64_t* shape, int ndim, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "view").view(ints(shape, ndim)));
  FER_CATCH
}

char* fer_flatten(fer_tensor t, int64_t start_dim, int64_t end_dim, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "flatten").flatten(start_dim, end_dim));
  FER_CATCH
}

char* fer_permute(fer_tensor t, const int64_t* dims, int ndim, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "permute").permute(ints(dims, ndim)));
  FER_CATCH
}

char* fer_transpose(fer_tensor t, int64_t dim0, int64_t dim1, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "transpose").transpose(dim0, dim1));
  FER_CATCH
}

char* fer_squeeze(fer_tensor t, int64_t dim, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "squeeze").squeeze(dim));
  FER_CATCH
}

char* fer_unsqueeze(fer_tensor t, int64_t dim, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "unsqueeze").unsqueeze(dim));
  FER_CATCH
}

char* fer_narrow(fer_tensor t, int64_t dim, int64_t start, int64_t length, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "narrow").narrow(dim, start, length));
  FER_CATCH
}

char* fer_select(fer_tensor t, int64_t dim, int64_t index, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "select").select(dim, index));
  FER_CATCH
}

char* fer_index_select(fer_tensor t, int64_t dim, fer_tensor index, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "index_select").index_select(dim, get(index, "index_select index")));
  FER_CATCH
}

char* fer_flip(fer_tensor t, const int64_t* dims, int ndim, fer_tensor* out) {
  FER_TRY
  *out = wrap(get(t, "flip").flip(ints(dims, ndim)));
  FER_CATCH
}

static std::vector<at::Tensor> tensor_list(const fer_tensor* ts, int n, const char* what) {
  if (n <= 0) throw std::invalid_argument(std::string(what) + " needs at least one tensor");
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) v.push_back(get(ts[i], what));
  return v;
}

char* fer_cat(const fer_tensor* ts, int n, int64_t dim, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::cat(tensor_list(ts, n, "cat"), dim));
  FER_CATCH
}

char* fer_stack(const fer_tensor* ts, int n, int64_t dim, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::stack(tensor_list(ts, n, "stack"), dim));
  FER_CATCH
}

// ---- math --------------------------------------------------------------------------

char* fer_unary(int op, fer_tensor t, fer_tensor* out) {
  FER_TRY
  const at::Tensor& x = get(t, "unary op");
  at::Tensor r;
  switch (op) {
    case FER_RELU: r = at::relu(x); break;
    case FER_NEG: r = at::neg(x); break;
    case FER_EXP: r = at::exp(x); break;
    case FER_LOG: r = at::log(x); break;
    case FER_SQRT: r = at::sqrt(x); break;
    case FER_ABS: r = at::abs(x); break;
    case FER_SIGMOID: r = at::sigmoid(x); break;
    case FER_TANH: r = at::tanh(x); break;
    case FER_SQUARE: r = at::square(x); break;
    case FER_RECIPROCAL: r = at::reciprocal(x); break;
    default: throw std::invalid_argument("unknown unary op code " + std::to_string(op));
  }
  *out = wrap(std::move(r));
  FER_CATCH
}

char* fer_unary_(int op, fer_tensor t, fer_tensor* out) {
  FER_TRY
  at::Tensor x = get(t, "in-place unary op");
  switch (op) {
    case FER_RELU: at::relu_(x); break;
    default: throw std::invalid_argument("op code " + std::to_string(op) + " has no in-place form");
  }
  *out = wrap(x);
  FER_CATCH
}

char* fer_binary(int op, fer_tensor a, fer_tensor b, fer_tensor* out) {
  FER_TRY
  *out = wrap(binary(op, get(a, "binary op"), get(b, "binary op")));
  FER_CATCH
}

char* fer_binary_scalar(int op, fer_tensor a, double s, fer_tensor* out) {
  FER_TRY
  *out = wrap(binary(op, get(a, "scalar op"), at::Scalar(s)));
  FER_CATCH
}

char* fer_reduce(int op, fer_tensor t, const int64_t* dims, int ndims, int keepdim, fer_tensor* out) {
  FER_TRY
  const at::Tensor& x = get(t, "reduce");
  bool keep = keepdim != 0;
  at::Tensor r;
  if (op == FER_ARGMAX || op == FER_ARGMIN) {
    if (ndims > 1) throw std::invalid_argument("argmax/argmin take at most one dimension");
    c10::optional<int64_t> dim;
    if (ndims == 1) dim = dims[0];
    r = op == FER_ARGMAX ? at::argmax(x, dim, keep) : at::argmin(x, dim, keep);
  } else if (ndims == 0) {
    switch (op) {
      case FER_SUM: r = keep ? x.sum(at::IntArrayRef(), true) : x.sum(); break;
      case FER_MEAN: r = x.mean(); break;
      case FER_AMAX: r = x.amax(); break;
      case FER_AMIN: r = x.amin(); break;
      default: throw std::invalid_argument("unknown reduction code " + std::to_string(op));
    }
    if (keep && op != FER_SUM) {
      std::vector<int64_t> ones(static_cast<size_t>(x.dim()), 1);
      r = r.reshape(ones);
    }
  } else {
    auto d = ints(dims, ndims);
    switch (op) {
      case FER_SUM: r = x.sum(d, keep); break;
      case FER_MEAN: r = x.mean(d, keep); break;
      case FER_AMAX: r = x.amax(d, keep); break;
      case FER_AMIN: r = x.amin(d, keep); break;
      default: throw std::invalid_argument("unknown reduction code " + std::to_string(op));
    }
  }
  *out = wrap(std::move(r));
  FER_CATCH
}

char* fer_clamp(fer_tensor t, double lo, double hi, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::clamp(get(t, "clamp"), lo, hi));
  FER_CATCH
}

char* fer_softmax(fer_tensor t, int64_t dim, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::softmax(get(t, "softmax"), dim));
  FER_CATCH
}

char* fer_log_softmax(fer_tensor t, int64_t dim, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::log_softmax(get(t, "log_softmax"), dim));
  FER_CATCH
}

char* fer_topk(fer_tensor t, int64_t k, int64_t dim, int largest, fer_tensor* values,
               fer_tensor* indices) {
  FER_TRY
  auto r = at::topk(get(t, "topk"), k, dim, largest != 0, /*sorted=*/true);
  *values = wrap(std::get<0>(r));
  *indices = wrap(std::get<1>(r));
  FER_CATCH
}

// ---- neural-network functions -----------------------------------------------------

char* fer_conv2d(fer_tensor input, fer_tensor weight, fer_tensor bias, const int64_t* stride,
                 const int64_t* padding, const int64_t* dilation, int64_t groups, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::conv2d(get(input, "conv2d input"), get(weight, "conv2d weight"),
                         optional_tensor(bias), ints(stride, 2), ints(padding, 2), ints(dilation, 2),
                         groups));
  FER_CATCH
}

char* fer_max_pool2d(fer_tensor input, const int64_t* kernel, const int64_t* stride,
                     const int64_t* padding, const int64_t* dilation, int ceil_mode, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::max_pool2d(get(input, "max_pool2d"), ints(kernel, 2), ints(stride, 2),
                             ints(padding, 2), ints(dilation, 2), ceil_mode != 0));
  FER_CATCH
}

char* fer_adaptive_avg_pool2d(fer_tensor input, const int64_t* output_size, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::adaptive_avg_pool2d(get(input, "adaptive_avg_pool2d"), ints(output_size, 2)));
  FER_CATCH
}

char* fer_linear(fer_tensor input, fer_tensor weight, fer_tensor bias, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::linear(get(input, "linear input"), get(weight, "linear weight"), optional_tensor(bias)));
  FER_CATCH
}

char* fer_dropout(fer_tensor input, double p, int train, fer_tensor* out) {
  FER_TRY
  if (p < 0 || p > 1) throw std::invalid_argument("dropout probability must be in [0, 1], got " + std::to_string(p));
  *out = wrap(at::dropout(get(input, "dropout"), p, train != 0));
  FER_CATCH
}

char* fer_batch_norm(fer_tensor input, fer_tensor weight, fer_tensor bias, fer_tensor running_mean,
                     fer_tensor running_var, int training, double momentum, double eps,
                     fer_tensor* out) {
  FER_TRY
  *out = wrap(at::batch_norm(get(input, "batch_norm input"), optional_tensor(weight), optional_tensor(bias),
                             optional_tensor(running_mean), optional_tensor(running_var), training != 0,
                             momentum, eps, /*cudnn_enabled=*/true));
  FER_CATCH
}

char* fer_cross_entropy(fer_tensor logits, fer_tensor target, fer_tensor weight, int reduction,
                        int64_t ignore_index, double label_smoothing, fer_tensor* out) {
  FER_TRY
  int64_t red;
  switch (reduction) {
    case FER_REDUCTION_NONE: red = at::Reduction::None; break;
    case FER_REDUCTION_MEAN: red = at::Reduction::Mean; break;
    case FER_REDUCTION_SUM: red = at::Reduction::Sum; break;
    default: throw std::invalid_argument("unknown reduction code " + std::to_string(reduction));
  }
  *out = wrap(at::cross_entropy_loss(get(logits, "cross_entropy logits"), get(target, "cross_entropy target"),
                                     optional_tensor(weight), red, ignore_index, label_smoothing));
  FER_CATCH
}

// ---- autograd -------------------------------------------------------------------------

char* fer_set_requires_grad(fer_tensor t, int on) {
  FER_TRY
  get(t, "set_requires_grad").set_requires_grad(on != 0);
  FER_CATCH
}

int fer_requires_grad(fer_tensor t) { return t != nullptr && t->t.requires_grad() ? 1 : 0; }

int fer_is_leaf(fer_tensor t) { return t != nullptr && t->t.is_leaf() ? 1 : 0; }

char* fer_backward(fer_tensor t, fer_tensor grad, int retain_graph) {
  FER_TRY
  const at::Tensor& x = get(t, "backward");
  if (!x.requires_grad()) throw std::invalid_argument("backward on a tensor that does not require grad");
  c10::optional<bool> retain;  // empty: PyTorch's default (keep the graph only for create_graph)
  if (retain_graph) retain = true;
  x.backward(optional_tensor(grad), retain, /*create_graph=*/false);
  FER_CATCH
}

char* fer_grad(fer_tensor t, fer_tensor* out) {
  FER_TRY
  const at::Tensor& g = get(t, "grad").grad();
  *out = g.defined() ? wrap(g) : nullptr;
  FER_CATCH
}

char* fer_zero_grad(fer_tensor t, int set_to_none) {
  FER_TRY
  at::Tensor& g = get(t, "zero_grad").mutable_grad();
  if (!g.defined()) return nullptr;
  if (set_to_none) {
    g.reset();
  } else {
    if (g.grad_fn()) {
      g.detach_();
    } else {
      g.requires_grad_(false);
    }
    g.zero_();
  }
  FER_CATCH
}

// ---- in-place updates ----------------------------------------------------------------

char* fer_copy_(fer_tensor dst, fer_tensor src) {
  FER_TRY
  at::NoGradGuard no_grad;
  get(dst, "copy_ destination").copy_(get(src, "copy_ source"));
  FER_CATCH
}

char* fer_init(fer_tensor t, int kind, double a, double b) {
  FER_TRY
  at::NoGradGuard no_grad;
  at::Tensor x = get(t, "init");
  switch (kind) {
    case FER_INIT_UNIFORM: torch::nn::init::uniform_(x, a, b); break;
    case FER_INIT_NORMAL: torch::nn::init::normal_(x, a, b); break;
    case FER_INIT_CONSTANT: torch::nn::init::constant_(x, a); break;
    case FER_INIT_KAIMING_UNIFORM:
      torch::nn::init::kaiming_uniform_(x, a, torch::kFanIn, torch::kLeakyReLU);
      break;
    case FER_INIT_KAIMING_NORMAL:
      torch::nn::init::kaiming_normal_(x, 0, torch::kFanOut, torch::kReLU);
      break;
    case FER_INIT_XAVIER_UNIFORM: torch::nn::init::xavier_uniform_(x, a); break;
    default: throw std::invalid_argument("unknown init code " + std::to_string(kind));
  }
  FER_CATCH
}

char* fer_add_(fer_tensor t, fer_tensor other, double alpha) {
  FER_TRY
  at::NoGradGuard no_grad;
  at::Tensor x = get(t, "add_");
  // Integer tensors take an integer alpha.
  at::Scalar a = at::isIntegralType(x.scalar_type(), /*includeBool=*/true)
                     ? at::Scalar(static_cast<int64_t>(alpha))
                     : at::Scalar(alpha);
  x.add_(get(other, "add_ other"), a);
  FER_CATCH
}

char* fer_mul_scalar_(fer_tensor t, double s) {
  FER_TRY
  at::NoGradGuard no_grad;
  get(t, "mul_").mul_(s);
  FER_CATCH
}

// ---- optimizers ---------------------------------------------------------------------------

char* fer_adam_step(fer_tensor param, fer_tensor exp_avg, fer_tensor exp_avg_sq,
                    fer_tensor max_exp_avg_sq, int64_t step, double lr, double beta1, double beta2,
                    double eps, double weight_decay, int decoupled, int* updated) {
  FER_TRY
  *updated = 0;
  at::NoGradGuard no_grad;
  at::Tensor p = get(param, "adam param");
  at::Tensor grad = p.grad();
  if (!grad.defined()) return nullptr;
  if (step < 1) throw std::invalid_argument("adam step count must be >= 1");
  at::Tensor m = get(exp_avg, "adam exp_avg");
  at::Tensor v = get(exp_avg_sq, "adam exp_avg_sq");
  // Same order of operations as torch.optim.Adam/AdamW (single-tensor path).
  if (weight_decay != 0) {
    if (decoupled) {
      p.mul_(1 - lr * weight_decay);
    } else {
      grad = grad.add(p, weight_decay);
    }
  }
  m.mul_(beta1).add_(grad, 1 - beta1);
  v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
  double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
  double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
  double step_size = lr / bias_correction1;
  double bias_correction2_sqrt = std::sqrt(bias_correction2);
  at::Tensor denom;
  if (max_exp_avg_sq != nullptr) {
    at::Tensor vmax = get(max_exp_avg_sq, "adam max_exp_avg_sq");
    at::maximum_out(vmax, vmax, v);
    denom = (vmax.sqrt() / bias_correction2_sqrt).add_(eps);
  } else {
    denom = (v.sqrt() / bias_correction2_sqrt).add_(eps);
  }
  p.addcdiv_(m, denom, -step_size);
  *updated = 1;
  FER_CATCH
}

char* fer_sgd_step(fer_tensor param, fer_tensor buf, double lr, double momentum, double dampening,
                   double weight_decay, int nesterov, fer_tensor* new_buf, int* updated) {
  FER_TRY
  *updated = 0;
  *new_buf = nullptr;
  at::NoGradGuard no_grad;
  at::Tensor p = get(param, "sgd param");
  at::Tensor d_p = p.grad();
  if (!d_p.defined()) return nullptr;
  if (weight_decay != 0) d_p = d_p.add(p, weight_decay);
  if (momentum != 0) {
    at::Tensor b;
    if (buf == nullptr) {
      b = d_p.clone().detach();
      *new_buf = wrap(b);
    } else {
      b = buf->t;
      b.mul_(momentum).add_(d_p, 1 - dampening);
    }
    d_p = nesterov ? d_p.add(b, momentum) : b;
  }
  p.add_(d_p, -lr);
  *updated = 1;
  FER_CATCH
}

char* fer_unscale_grads(const fer_tensor* params, int n, double inv_scale, int* found_inf) {
  FER_TRY
  *found_inf = 0;
  at::NoGradGuard no_grad;
  // Gradients are grouped by device; CUDA groups use the fused kernel that
  // torch.cuda.amp.GradScaler uses, others the same arithmetic unfused.
  std::vector<at::Tensor> cuda_grads;
  at::Tensor cpu_found;
  for (int i = 0; i < n; i++) {
    at::Tensor g = get(params[i], "unscale_grads").grad();
    if (!g.defined()) continue;
    if (g.is_cuda()) {
      cuda_grads.push_back(g);
      continue;
    }
    g.mul_(inv_scale);
    at::Tensor bad = g.isfinite().logical_not().any();
    cpu_found = cpu_found.defined() ? cpu_found.logical_or(bad) : bad;
  }
  if (cpu_found.defined() && cpu_found.item<bool>()) *found_inf = 1;
  if (!cuda_grads.empty()) {
    auto dev = cuda_grads[0].device();
    at::Tensor found = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(dev));
    at::Tensor inv = at::full({1}, inv_scale, at::TensorOptions().dtype(at::kFloat).device(dev));
    at::_amp_foreach_non_finite_check_and_unscale_(cuda_grads, found, inv);
    if (found.item<float>() != 0) *found_inf = 1;
  }
  FER_CATCH
}

// ---- backbone operations ----------------------------------------------------------------

char* fer_activation(int op, fer_tensor t, fer_tensor* out) {
  FER_TRY
  const at::Tensor& x = get(t, "activation");
  at::Tensor r;
  switch (op) {
    case FER_SILU: r = at::silu(x); break;
    case FER_HARDSWISH: r = at::hardswish(x); break;
    case FER_HARDSIGMOID: r = at::hardsigmoid(x); break;
    case FER_GELU: r = at::gelu(x, "none"); break;
    case FER_GELU_TANH: r = at::gelu(x, "tanh"); break;
    default: throw std::invalid_argument("unknown activation code " + std::to_string(op));
  }
  *out = wrap(std::move(r));
  FER_CATCH
}

char* fer_layer_norm(fer_tensor input, const int64_t* normalized_shape, int ndim, fer_tensor weight,
                     fer_tensor bias, double eps, fer_tensor* out) {
  FER_TRY
  *out = wrap(at::layer_norm(get(input, "layer_norm input"), ints(normalized_shape, ndim),
                             optional_tensor(weight), optional_tensor(bias), eps, /*cudnn_enable=*/true));
  FER_CATCH
}

char* fer_stochastic_depth(fer_tensor input, double p, int row_mode, int train, fer_tensor* out) {
  FER_TRY
  const at::Tensor& x = get(input, "stochastic_depth");
  if (p < 0 || p > 1) {
    throw std::invalid_argument("stochastic depth probability must be in [0, 1], got " + std::to_string(p));
  }
  if (!train || p == 0) {
    *out = wrap(x);
    return nullptr;
  }
  // The same calls, in the same order, as torchvision.ops.stochastic_depth,
  // so that a seed gives torchvision's mask.
  double survival = 1.0 - p;
  std::vector<int64_t> size(static_cast<size_t>(x.dim()), 1);
  if (row_mode) {
    if (x.dim() == 0) throw std::invalid_argument("row-mode stochastic depth needs a batch dimension");
    size[0] = x.size(0);
  }
  at::Tensor noise = at::empty(size, at::TensorOptions().dtype(x.scalar_type()).device(x.device()));
  noise.bernoulli_(survival);
  if (survival > 0) noise.div_(survival);
  *out = wrap(x * noise);
  FER_CATCH
}

char* fer_scaled_dot_product_attention(fer_tensor q, fer_tensor k, fer_tensor v, fer_tensor* out) {
  FER_TRY
  const at::Tensor& query = get(q, "attention query");
  const at::Tensor& key = get(k, "attention key");
  const at::Tensor& value = get(v, "attention value");
  if (query.dim() < 2) throw std::invalid_argument("attention query needs at least 2 dimensions");
#if FER_FUSED_ATTENTION
  *out = wrap(at::scaled_dot_product_attention(query, key, value));
#else
  // PyTorch 1.13's math path (F._scaled_dot_product_attention): scale q, then
  // q kᵀ, softmax, times v.
  at::Tensor scaled = query / std::sqrt(static_cast<double>(query.size(-1)));
  at::Tensor attn = at::softmax(at::matmul(scaled, key.transpose(-2, -1)), -1);
  *out = wrap(at::matmul(attn, value));
#endif
  FER_CATCH
}

int fer_has_fused_attention(void) { return FER_FUSED_ATTENTION; }


// ---- build and CUDA environment ---------------------------------------------

int fer_cxx11_abi(void) {
#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
  return 1;
#else
  return 0;
#endif
}

// Both versions are libtorch's compile-time values, reported through the CUDA
// hooks that libtorch_cuda registers; a CPU-only libtorch throws, hence 0.
int64_t fer_cuda_runtime_version(void) {
  try {
    return static_cast<int64_t>(at::detail::getCUDAHooks().versionCUDART());
  } catch (...) {
    return 0;
  }
}

int64_t fer_cudnn_version(void) {
  try {
    if (!at::detail::getCUDAHooks().hasCuDNN()) return 0;
    return static_cast<int64_t>(at::detail::getCUDAHooks().versionCuDNN());
  } catch (...) {
    return 0;
  }
}

int fer_cuda_driver_probe(int* driver_version, int* device_count, char** detail) {
  *driver_version = 0;
  *device_count = 0;
  *detail = nullptr;
  // The driver API's entry points, declared here so that no CUDA header is
  // needed: CUresult is an int, 0 is CUDA_SUCCESS, 100 CUDA_ERROR_NO_DEVICE.
  using init_fn = int (*)(unsigned int);
  using int_fn = int (*)(int*);
  using name_fn = int (*)(int, const char**);
  dlerror();
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    *detail = make_error(why != nullptr ? why : "libcuda.so.1 cannot be loaded");
    return FER_DRIVER_MISSING;
  }
  auto init = reinterpret_cast<init_fn>(dlsym(lib, "cuInit"));
  auto get_version = reinterpret_cast<int_fn>(dlsym(lib, "cuDriverGetVersion"));
  auto get_count = reinterpret_cast<int_fn>(dlsym(lib, "cuDeviceGetCount"));
  auto error_name = reinterpret_cast<name_fn>(dlsym(lib, "cuGetErrorName"));
  auto error_string = reinterpret_cast<name_fn>(dlsym(lib, "cuGetErrorString"));
  if (init == nullptr || get_version == nullptr || get_count == nullptr) {
    *detail = make_error("libcuda.so.1 lacks cuInit, cuDriverGetVersion or cuDeviceGetCount");
    return FER_DRIVER_ERROR;
  }
  if (get_version(driver_version) != 0) *driver_version = 0;
  auto describe = [&](const char* call, int rc) {
    const char* name = nullptr;
    const char* text = nullptr;
    if (error_name == nullptr || error_name(rc, &name) != 0) name = nullptr;
    if (error_string == nullptr || error_string(rc, &text) != 0) text = nullptr;
    std::string s = std::string(call) + ": " + (name != nullptr ? name : "CUresult " + std::to_string(rc));
    if (text != nullptr) s += std::string(" (") + text + ")";
    return make_error(s.c_str());
  };
  int rc = init(0);
  if (rc != 0) {
    *detail = describe("cuInit", rc);
    return rc == 100 ? FER_DRIVER_NO_DEVICE : FER_DRIVER_ERROR;
  }
  rc = get_count(device_count);
  if (rc != 0) {
    *device_count = 0;
    *detail = describe("cuDeviceGetCount", rc);
    return FER_DRIVER_ERROR;
  }
  if (*device_count == 0) {
    *detail = make_error("cuDeviceGetCount: 0 devices");
    return FER_DRIVER_NO_DEVICE;
  }
  return FER_DRIVER_OK;
}

}  // extern "C"
