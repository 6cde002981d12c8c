// fertorch_dist.cpp: the C++ body of libfertorch's distributed unit (see
// fertorch_dist.h) over libtorch's c10d: TCPStore, PrefixStore,
// ProcessGroupGloo (CPU) and ProcessGroupNCCL (CUDA).
//
// The Makefile compiles it with -DFER_WITH_DIST=1 -DUSE_DISTRIBUTED
// -DUSE_C10D_GLOO when libtorch's c10d headers and gloo's are found (plus
// -DUSE_C10D_NCCL for a CUDA libtorch with nccl.h), else with
// -DFER_WITH_DIST=0 and FER_DIST_MISSING saying what was not found: then
// every function returns that error.
//
// Every exported function catches every exception and turns it into an error
// string; an error that reports an expired timeout starts with
// FER_DIST_TIMEOUT_PREFIX.

#include "fertorch_dist.h"
#include "fertorch_internal.hpp"

#include <cstdlib>
#include <dlfcn.h>
#include <string>

#ifndef FER_WITH_DIST
#define FER_WITH_DIST 0
#endif
#ifndef FER_WITH_CUDA
#define FER_WITH_CUDA 0
#endif
#ifndef FER_DIST_MISSING
#define FER_DIST_MISSING "the shim was compiled without FER_WITH_DIST"
#endif

#define FER_DIST_UNAVAILABLE \
  "this libtorch was built without distributed support (c10d/Gloo): " FER_DIST_MISSING

#if FER_WITH_DIST

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#if FER_WITH_CUDA && defined(USE_C10D_NCCL)
#define FER_DIST_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#else
#define FER_DIST_NCCL 0
#endif

#include <algorithm>
#include <cctype>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

// ---- libtorch version differences live here, and only here ---------------
//
//  - 1.13: ProcessGroupGloo/NCCL derive from c10d::ProcessGroup; 2.x: from
//    c10d::Backend. Only the concrete classes' own collectives are called,
//    which both have with the same signatures.
//  - 2.4+: TCPStoreOptions::useLibUV (default true) picks the libuv server,
//    which Debian's libtorch lacks; the classic server is asked for wherever
//    the option exists (set_classic_tcpstore_server).
//  - 2.x: ProcessGroupNCCL::shutdown() ends the group's communicators
//    cleanly (a group destroyed without it warns and aborts them); it is
//    called wherever it exists (shutdown_if_possible).

namespace {

template <typename O>
auto set_classic_tcpstore_server(O& o, int) -> decltype(o.useLibUV = false, void()) {
  o.useLibUV = false;
}
template <typename O>
void set_classic_tcpstore_server(O&, long) {}

template <typename PG>
auto shutdown_if_possible(PG& pg, int) -> decltype(pg.shutdown(), void()) {
  pg.shutdown();
}
template <typename PG>
void shutdown_if_possible(PG&, long) {}

using Millis = std::chrono::milliseconds;
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

// Failure is an error whose message is ready for the C interface: a stage
// ("connecting to the store at ...") and libtorch's words, and whether a
// timeout expired.
struct Failure : std::runtime_error {
  Failure(const std::string& what, bool timed_out) : std::runtime_error(what), timed_out(timed_out) {}
  bool timed_out;
};

std::string first_paragraph(std::string s) {
  auto cut = s.find("\nException raised from");
  if (cut != std::string::npos) s.resize(cut);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// looks_like_timeout recognises the words c10d and Gloo use when a timeout
// expires ("Operation timed out!", "Socket Timeout", "Timed out waiting
// 2000ms for recv operation to complete", "Wait timeout").
bool looks_like_timeout(const std::string& msg) {
  std::string lower(msg);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("timed out") != std::string::npos || lower.find("timeout") != std::string::npos;
}

// staged runs f, turning any exception into a Failure whose message starts
// with stage.
template <typename F>
auto staged(const std::string& stage, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Failure& e) {
    throw Failure(stage + ": " + e.what(), e.timed_out);
  } catch (const c10::Error& e) {
    std::string msg = first_paragraph(e.what_without_backtrace());
    throw Failure(stage + ": " + msg, looks_like_timeout(msg));
  } catch (const std::exception& e) {
    std::string msg = first_paragraph(e.what());
    throw Failure(stage + ": " + msg, looks_like_timeout(msg));
  }
}

char* failure_string(const Failure& e) {
  std::string msg = e.what();
  if (e.timed_out) msg = FER_DIST_TIMEOUT_PREFIX + msg;
  return fer::error_string(msg.c_str());
}

char* plain_error(const std::string& msg) {
  std::string m = first_paragraph(msg);
  if (looks_like_timeout(m)) m = FER_DIST_TIMEOUT_PREFIX + m;
  return fer::error_string(m.c_str());
}

}  // namespace

#define FER_DIST_TRY \
  try {              \
    fer::sync_thread_count();
#define FER_DIST_CATCH                                        \
  }                                                           \
  catch (const Failure& e) {                                  \
    return failure_string(e);                                 \
  }                                                           \
  catch (const c10::Error& e) {                               \
    return plain_error(e.what_without_backtrace());           \
  }                                                           \
  catch (const std::exception& e) {                           \
    return plain_error(e.what());                             \
  }                                                           \
  catch (...) {                                               \
    return fer::error_string("unknown C++ exception in c10d"); \
  }                                                           \
  return nullptr;

struct fer_dist_store_s {
  c10::intrusive_ptr<c10d::TCPStore> store;
};

namespace fer_dist {

// Comm is a process group and its settings. The group handle, its reducers
// and the autograd graphs of AllReduceSumGrad each hold a reference, so none
// of them outlives the process group it uses, whatever order they are
// released in.
struct Comm : torch::CustomClassHolder {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#if FER_DIST_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  int rank = 0;
  int size = 1;
  Millis timeout{0};
  at::Device device{at::kCPU};

  ~Comm() {
#if FER_DIST_NCCL
    if (nccl) {
      try {
        shutdown_if_possible(*nccl, 0);
      } catch (...) {
        // The group is going away either way; its destructor aborts it.
      }
    }
#endif
  }
};

}  // namespace fer_dist

using fer_dist::Comm;

struct fer_dist_group_s {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Comm> comm;
};

namespace {

// Chunks above this size are not copied into a flat buffer: a contiguous
// tensor of at least this many bytes travels on its own, in place.
constexpr int64_t kFlatChunkBytes = 64 << 20;

int64_t nbytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// with_backend calls f with the group's process group (Gloo or NCCL).
template <typename F>
WorkPtr with_backend(Comm& g, F&& f) {
#if FER_DIST_NCCL
  if (g.nccl) return f(*g.nccl);
#endif
  if (!g.gloo) throw std::invalid_argument("the process group is closed");
  return f(*g.gloo);
}

// wait_work waits for w within the group's timeout.
void wait_work(const WorkPtr& w, Millis timeout) {
  bool ok = false;
  try {
    ok = w->wait(timeout);
  } catch (const c10::Error& e) {
    std::string msg = first_paragraph(e.what_without_backtrace());
    throw Failure(msg, looks_like_timeout(msg));
  } catch (const std::exception& e) {
    std::string msg = first_paragraph(e.what());
    throw Failure(msg, looks_like_timeout(msg));
  }
  if (!ok) throw Failure("the operation was aborted", false);
}

void check_device(const Comm& g, const at::Tensor& t, size_t i) {
  if (t.device().type() != g.device.type()) {
    throw std::invalid_argument("tensor " + std::to_string(i) + " is on " + t.device().str() + ", the group works on " +
                                c10::DeviceTypeName(g.device.type(), true) + " tensors");
  }
  if (t.is_sparse()) throw std::invalid_argument("tensor " + std::to_string(i) + " is sparse");
}

// Chunk is what one collective carries: a flat copy of several small
// tensors, or one contiguous tensor in place.
struct Chunk {
  at::Tensor buf;
  std::vector<at::Tensor> members;  // empty when buf is the tensor itself
  WorkPtr work;
};

std::vector<Chunk> make_chunks(const std::vector<at::Tensor>& ts) {
  std::vector<Chunk> chunks;
  std::vector<at::Tensor> pending;
  int64_t pending_bytes = 0;
  auto flush = [&]() {
    if (pending.empty()) return;
    if (pending.size() == 1 && pending.front().is_contiguous()) {
      // One contiguous tensor travels in place.
      Chunk c;
      c.buf = pending.front();
      chunks.push_back(std::move(c));
      pending.clear();
      pending_bytes = 0;
      return;
    }
    std::vector<at::Tensor> flat;
    flat.reserve(pending.size());
    for (const auto& t : pending) flat.push_back(t.reshape({-1}));
    Chunk c;
    c.buf = at::cat(flat);
    c.members = std::move(pending);
    chunks.push_back(std::move(c));
    pending.clear();
    pending_bytes = 0;
  };
  for (const auto& t : ts) {
    if (t.is_contiguous() && nbytes(t) >= kFlatChunkBytes) {
      flush();
      Chunk c;
      c.buf = t;
      chunks.push_back(std::move(c));
      continue;
    }
    if (!pending.empty() &&
        (pending.front().scalar_type() != t.scalar_type() || pending.front().device() != t.device() ||
         pending_bytes + nbytes(t) > kFlatChunkBytes)) {
      flush();
    }
    pending.push_back(t);
    pending_bytes += nbytes(t);
  }
  flush();
  return chunks;
}

void unflatten(const Chunk& c) {
  int64_t off = 0;
  for (const auto& t : c.members) {
    int64_t n = t.numel();
    t.copy_(c.buf.narrow(0, off, n).view(t.sizes()));
    off += n;
  }
}

std::vector<at::Tensor> tensors_of(const Comm& g, const fer_tensor* ts, int n) {
  if (n < 0) throw std::invalid_argument("negative tensor count");
  if (n > 0 && ts == nullptr) throw std::invalid_argument("null tensor list");
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    const at::Tensor& t = fer::tensor_of(ts[i], "tensor");
    check_device(g, t, static_cast<size_t>(i));
    out.push_back(t);
  }
  return out;
}

// all_reduce_sum_inplace sums every tensor of ts across ranks, in place.
void all_reduce_sum_inplace(Comm& g, const std::vector<at::Tensor>& ts) {
  at::NoGradGuard no_grad;
  auto chunks = make_chunks(ts);
  for (auto& c : chunks) {
    std::vector<at::Tensor> v{c.buf};
    c10d::AllreduceOptions o;
    o.timeout = g.timeout;
    c.work = with_backend(g, [&](auto& pg) { return pg.allreduce(v, o); });
  }
  for (auto& c : chunks) {
    wait_work(c.work, g.timeout);
    unflatten(c);
  }
}

void broadcast_inplace(Comm& g, const std::vector<at::Tensor>& ts, int root) {
  at::NoGradGuard no_grad;
  auto chunks = make_chunks(ts);
  for (auto& c : chunks) {
    std::vector<at::Tensor> v{c.buf};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = g.timeout;
    c.work = with_backend(g, [&](auto& pg) { return pg.broadcast(v, o); });
  }
  for (auto& c : chunks) {
    wait_work(c.work, g.timeout);
    unflatten(c);
  }
}

// join_store counts this rank in at the store and waits until every rank
// has (TCPStore's own wait for workers ends silently at its timeout in
// libtorch 1.13, and only on the rank that hosts it).
void join_store(c10d::Store& store, int world_size, Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string key = "fer/joined";
  int64_t joined = store.add(key, 1);
  while (joined < world_size) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Failure(std::to_string(joined) + " of " + std::to_string(world_size) + " ranks joined", true);
    }
    std::this_thread::sleep_for(Millis(10));
    joined = store.add(key, 0);
  }
}

Comm& comm_of(fer_dist_group g) {
  if (g == nullptr || !g->comm) throw std::invalid_argument("null group");
  return *g->comm;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// AllReduceSum is the differentiable sum across ranks: backward sums the
// gradient across ranks too.
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const c10::intrusive_ptr<Comm>& comm) {
    ctx->saved_data["comm"] = c10::IValue::make_capsule(comm);
    at::Tensor y = x.detach().clone(at::MemoryFormat::Contiguous);
    all_reduce_sum_inplace(*comm, {y});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto holder = ctx->saved_data["comm"].toCapsule();
    auto* comm = static_cast<Comm*>(holder.get());
    at::Tensor dx = grads[0].detach().clone(at::MemoryFormat::Contiguous);
    all_reduce_sum_inplace(*comm, {dx});
    return {dx, at::Tensor()};
  }
};

// ReducerState is what the gradient hooks share with the reducer. Buckets
// hold parameters in reverse order (backward produces gradients roughly in
// that order) and are launched strictly in bucket order, so that every rank
// issues the same collectives in the same order.
struct ReducerState {
  c10::intrusive_ptr<Comm> g;
  std::vector<at::Tensor> params;
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;
    bool ready = false;
  };
  struct Bucket {
    at::Tensor flat;
    std::vector<size_t> params;
    size_t pending = 0;
    WorkPtr work;
  };
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  size_t next_bucket = 0;
  bool active = false;
  std::string error;
  std::mutex mu;

  at::Tensor slice(size_t i) {
    const Slot& s = slots[i];
    return buckets[s.bucket].flat.narrow(0, s.offset, params[i].numel());
  }

  void launch(size_t b) {
    std::vector<at::Tensor> v{buckets[b].flat};
    c10d::AllreduceOptions o;
    o.timeout = g->timeout;
    buckets[b].work = with_backend(*g, [&](auto& pg) { return pg.allreduce(v, o); });
  }

  // launch_ready launches, in order, the buckets whose gradients are all in.
  void launch_ready() {
    while (next_bucket < buckets.size() && buckets[next_bucket].pending == 0) {
      launch(next_bucket);
      next_bucket++;
    }
  }

  void on_grad(size_t i, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mu);
    if (!active || !error.empty()) return;
    try {
      at::NoGradGuard no_grad;
      Slot& s = slots[i];
      if (s.ready) {
        throw std::runtime_error("parameter " + std::to_string(i) +
                                 " received a second gradient before Finish (one backward per Prepare/Finish)");
      }
      if (!grad.defined()) return;
      // The bucket takes the gradient .grad will hold after this backward:
      // what earlier backwards of the step accumulated (gradient
      // accumulation) plus this one's.
      at::Tensor flat = slice(i);
      flat.copy_(grad.reshape({-1}));
      const at::Tensor& acc = params[i].grad();
      if (acc.defined()) flat.add_(acc.reshape({-1}));
      s.ready = true;
      buckets[s.bucket].pending--;
      launch_ready();
    } catch (const c10::Error& e) {
      error = first_paragraph(e.what_without_backtrace());
    } catch (const std::exception& e) {
      error = first_paragraph(e.what());
    } catch (...) {
      error = "unknown C++ exception in a gradient hook";
    }
  }
};

}  // namespace

namespace {

// quiet_c10d_logging keeps libtorch's own log lines (c10d's "W... socket.cpp"
// and "E..." lines, glog's "Logging before InitGoogleLogging") off stderr:
// every failure they describe reaches the caller as this unit's error, so a
// user sees one line. The level is a global of libc10 (glog's minloglevel in
// builds that use glog; c10's caffe2_log_level otherwise, which 2.x checks),
// found by name because which one exists depends on the build.
// TORCH_CPP_LOG_LEVEL, PyTorch's own setting, keeps libtorch's logging as
// configured.
void quiet_c10d_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::getenv("TORCH_CPP_LOG_LEVEL") != nullptr) return;
    const int fatal_only = 3;
    for (const char* name : {"_ZN3fLI17FLAGS_minloglevelE", "FLAGS_minloglevel", "_ZN3fLI22FLAGS_caffe2_log_levelE",
                             "FLAGS_caffe2_log_level"}) {
      if (auto* level = static_cast<int*>(dlsym(RTLD_DEFAULT, name))) *level = fatal_only;
    }
  });
}

}  // namespace

struct fer_dist_reducer_s {
  std::shared_ptr<ReducerState> state;
  std::vector<unsigned> hooks;
};

extern "C" {

char* fer_dist_check(void) { return nullptr; }

int fer_dist_has_nccl(void) { return FER_DIST_NCCL; }

char* fer_dist_store_serve(const char* host, int port, int world_size, int64_t timeout_ms, fer_dist_store* out,
                           int* out_port) {
  FER_DIST_TRY
  quiet_c10d_logging();
  if (out == nullptr || out_port == nullptr) throw std::invalid_argument("null output");
  if (host == nullptr) throw std::invalid_argument("null host");
  if (port < 0 || port > 65535) throw std::invalid_argument("port " + std::to_string(port) + " out of range");
  if (world_size < 1) throw std::invalid_argument("world size " + std::to_string(world_size) + " < 1");
  if (timeout_ms <= 0) throw std::invalid_argument("timeout must be positive");
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = true;
  o.numWorkers = static_cast<std::size_t>(world_size);
  o.waitWorkers = false;
  o.timeout = Millis(timeout_ms);
  set_classic_tcpstore_server(o, 0);
  auto store = staged("hosting the store on port " + std::to_string(port),
                      [&] { return c10::make_intrusive<c10d::TCPStore>(std::string(host), o); });
  auto* s = new fer_dist_store_s{store};
  *out = s;
  *out_port = static_cast<int>(store->getPort());
  FER_DIST_CATCH
}

void fer_dist_store_free(fer_dist_store s) {
  try {
    delete s;
  } catch (...) {
  }
}

char* fer_dist_init(const char* master_addr, int master_port, int rank, int world_size, int host_store,
                    const char* store_prefix, const char* ifname, int device_type, int device_index,
                    int64_t timeout_ms, fer_dist_group* out) {
  FER_DIST_TRY
  quiet_c10d_logging();
  if (out == nullptr) throw std::invalid_argument("null output");
  if (master_addr == nullptr || *master_addr == '\0') throw std::invalid_argument("empty master address");
  if (master_port < (host_store ? 0 : 1) || master_port > 65535) {
    throw std::invalid_argument("master port " + std::to_string(master_port) + " out of range 1..65535");
  }
  if (world_size < 1) throw std::invalid_argument("world size " + std::to_string(world_size) + " < 1");
  if (rank < 0 || rank >= world_size) {
    throw std::invalid_argument("rank " + std::to_string(rank) + " out of range for world size " +
                                std::to_string(world_size));
  }
  if (timeout_ms <= 0) throw std::invalid_argument("timeout must be positive");
  const std::string addr(master_addr);
  const Millis timeout(timeout_ms);
  auto g = std::make_unique<fer_dist_group_s>();
  auto comm = c10::make_intrusive<Comm>();
  comm->rank = rank;
  comm->size = world_size;
  comm->timeout = timeout;

  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(master_port);
  so.isServer = host_store != 0;
  so.numWorkers = static_cast<std::size_t>(world_size);
  so.waitWorkers = false;
  so.timeout = timeout;
  set_classic_tcpstore_server(so, 0);
  const std::string where = addr + ":" + std::to_string(master_port);
  auto tcp = staged(host_store ? "hosting the store on port " + std::to_string(master_port)
                               : "connecting to the store at " + where,
                    [&] { return c10::make_intrusive<c10d::TCPStore>(addr, so); });
  c10::intrusive_ptr<c10d::Store> store = tcp;
  if (store_prefix != nullptr && *store_prefix != '\0') {
    store = c10::make_intrusive<c10d::PrefixStore>(std::string(store_prefix), store);
  }
  g->store = store;
  staged("waiting at the store " + where + " for every rank", [&] { join_store(*store, world_size, timeout); });

  if (device_type == FER_CUDA) {
#if FER_DIST_NCCL
    comm->device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index));
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = timeout;
    comm->nccl = staged("creating the NCCL process group",
                     [&] { return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, o); });
#else
    throw std::invalid_argument(
        "this shim was built without NCCL (a CUDA libtorch and nccl.h are needed), so it cannot run a CUDA group");
#endif
  } else if (device_type == FER_CPU) {
    auto o = c10d::ProcessGroupGloo::Options::create(timeout);
    const std::string ifn = ifname == nullptr ? "" : ifname;
    std::string what;
    if (!ifn.empty()) {
      what = "interface " + ifn + " (GLOO_SOCKET_IFNAME)";
      o->devices.push_back(staged("gloo device on " + what,
                                  [&] { return c10d::ProcessGroupGloo::createDeviceForInterface(ifn); }));
    } else if (is_loopback(addr)) {
      what = addr;
      o->devices.push_back(staged("gloo device on " + what,
                                  [&] { return c10d::ProcessGroupGloo::createDeviceForHostname(addr); }));
    } else {
      what = "this host's address";
      o->devices.push_back(
          staged("gloo device on " + what, [&] { return c10d::ProcessGroupGloo::createDefaultDevice(); }));
    }
    comm->gloo = staged("connecting the Gloo process group of " + std::to_string(world_size) + " ranks",
                     [&] { return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, o); });
  } else {
    throw std::invalid_argument("unknown device type code " + std::to_string(device_type));
  }
  g->comm = comm;
  *out = g.release();
  FER_DIST_CATCH
}

void fer_dist_group_free(fer_dist_group g) {
  try {
    delete g;
  } catch (...) {
  }
}

char* fer_dist_broadcast(fer_dist_group g, const fer_tensor* ts, int n, int root) {
  FER_DIST_TRY
  Comm& c = comm_of(g);
  if (root < 0 || root >= c.size) {
    throw std::invalid_argument("root " + std::to_string(root) + " out of range for world size " +
                                std::to_string(c.size));
  }
  broadcast_inplace(c, tensors_of(c, ts, n), root);
  FER_DIST_CATCH
}

char* fer_dist_all_reduce_sum(fer_dist_group g, const fer_tensor* ts, int n) {
  FER_DIST_TRY
  Comm& c = comm_of(g);
  all_reduce_sum_inplace(c, tensors_of(c, ts, n));
  FER_DIST_CATCH
}

char* fer_dist_barrier(fer_dist_group g) {
  FER_DIST_TRY
  Comm& c = comm_of(g);
#if FER_DIST_NCCL
  if (c.nccl) {
    // A one-element all-reduce on the group's device: NCCL's own barrier
    // guesses the device from the rank.
    all_reduce_sum_inplace(c, {at::zeros({1}, at::TensorOptions().device(c.device))});
    return nullptr;
  }
#endif
  c10d::BarrierOptions o;
  o.timeout = c.timeout;
  WorkPtr w = with_backend(c, [&](auto& pg) { return pg.barrier(o); });
  wait_work(w, c.timeout);
  FER_DIST_CATCH
}

char* fer_dist_all_gather(fer_dist_group g, fer_tensor t, fer_tensor* out) {
  FER_DIST_TRY
  Comm& c = comm_of(g);
  if (out == nullptr) throw std::invalid_argument("null output");
  at::NoGradGuard no_grad;
  at::Tensor x = fer::tensor_of(t, "input");
  check_device(c, x, 0);
  x = x.detach().contiguous();
  std::vector<std::vector<at::Tensor>> outs(1);
  for (int i = 0; i < c.size; i++) outs[0].push_back(at::empty_like(x, at::MemoryFormat::Contiguous));
  std::vector<at::Tensor> in{x};
  c10d::AllgatherOptions o;
  o.timeout = c.timeout;
  WorkPtr w = with_backend(c, [&](auto& pg) { return pg.allgather(outs, in, o); });
  wait_work(w, c.timeout);
  for (int i = 0; i < c.size; i++) out[i] = fer::wrap_tensor(outs[0][static_cast<size_t>(i)]);
  FER_DIST_CATCH
}

char* fer_dist_all_reduce_sum_grad(fer_dist_group g, fer_tensor t, fer_tensor* out) {
  FER_DIST_TRY
  Comm& c = comm_of(g);
  if (out == nullptr) throw std::invalid_argument("null output");
  const at::Tensor& x = fer::tensor_of(t, "input");
  check_device(c, x, 0);
  at::Tensor y = AllReduceSum::apply(x, g->comm);
  *out = fer::wrap_tensor(std::move(y));
  FER_DIST_CATCH
}

char* fer_dist_reducer_new(fer_dist_group g, const fer_tensor* params, int n, int64_t bucket_bytes,
                           fer_dist_reducer* out) {
  FER_DIST_TRY
  Comm& c = comm_of(g);
  if (out == nullptr) throw std::invalid_argument("null output");
  if (bucket_bytes <= 0) throw std::invalid_argument("bucket size must be positive, got " + std::to_string(bucket_bytes));
  auto st = std::make_shared<ReducerState>();
  st->g = g->comm;
  st->params = tensors_of(c, params, n);
  for (size_t i = 0; i < st->params.size(); i++) {
    const at::Tensor& p = st->params[i];
    if (!p.requires_grad()) {
      throw std::invalid_argument("parameter " + std::to_string(i) + " " + c10::str(p.sizes()) +
                                  " does not require grad (pass only trainable parameters)");
    }
    if (!p.is_leaf()) throw std::invalid_argument("parameter " + std::to_string(i) + " is not a leaf tensor");
  }
  // Buckets in reverse parameter order; a new one starts when the current
  // one is full or the dtype/device changes.
  st->slots.resize(st->params.size());
  int64_t fill = 0;
  for (size_t k = st->params.size(); k-- > 0;) {
    const at::Tensor& p = st->params[k];
    bool fresh = st->buckets.empty() || fill >= bucket_bytes;
    if (!fresh) {
      const at::Tensor& first = st->params[st->buckets.back().params.front()];
      fresh = first.scalar_type() != p.scalar_type() || first.device() != p.device();
    }
    if (fresh) {
      st->buckets.emplace_back();
      fill = 0;
    }
    auto& b = st->buckets.back();
    st->slots[k].bucket = st->buckets.size() - 1;
    st->slots[k].offset = 0;
    for (size_t j : b.params) st->slots[k].offset += st->params[j].numel();
    b.params.push_back(k);
    fill += nbytes(p);
  }
  for (auto& b : st->buckets) {
    int64_t numel = 0;
    for (size_t j : b.params) numel += st->params[j].numel();
    const at::Tensor& first = st->params[b.params.front()];
    b.flat = at::zeros({numel}, first.options().requires_grad(false));
  }
  auto r = std::make_unique<fer_dist_reducer_s>();
  r->state = st;
  std::weak_ptr<ReducerState> weak = st;
  for (size_t i = 0; i < st->params.size(); i++) {
    r->hooks.push_back(st->params[i].register_hook([weak, i](const at::Tensor& grad) {
      if (auto s = weak.lock()) s->on_grad(i, grad);
    }));
  }
  *out = r.release();
  FER_DIST_CATCH
}

char* fer_dist_reducer_prepare(fer_dist_reducer r) {
  FER_DIST_TRY
  if (r == nullptr) throw std::invalid_argument("null reducer");
  ReducerState& st = *r->state;
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.active && st.next_bucket > 0) {
    throw std::runtime_error("Prepare called again while " + std::to_string(st.next_bucket) +
                             " buckets of the last backward are in flight (call Finish after each backward)");
  }
  for (auto& s : st.slots) s.ready = false;
  for (auto& b : st.buckets) {
    b.pending = b.params.size();
    b.work.reset();
  }
  st.next_bucket = 0;
  st.error.clear();
  st.active = true;
  FER_DIST_CATCH
}

char* fer_dist_reducer_finish(fer_dist_reducer r) {
  FER_DIST_TRY
  if (r == nullptr) throw std::invalid_argument("null reducer");
  ReducerState& st = *r->state;
  std::lock_guard<std::mutex> lock(st.mu);
  if (!st.active) throw std::runtime_error("Finish without Prepare");
  st.active = false;
  if (!st.error.empty()) throw std::runtime_error("in a gradient hook: " + st.error);
  at::NoGradGuard no_grad;
  // Parameters that got no gradient in this backward contribute what they
  // hold (earlier backwards' accumulation), or zeros.
  for (size_t b = st.next_bucket; b < st.buckets.size(); b++) {
    for (size_t i : st.buckets[b].params) {
      if (!st.slots[i].ready) {
        const at::Tensor& acc = st.params[i].grad();
        if (acc.defined()) {
          st.slice(i).copy_(acc.reshape({-1}));
        } else {
          st.slice(i).zero_();
        }
        st.slots[i].ready = true;
      }
    }
    st.buckets[b].pending = 0;
    st.launch_ready();
  }
  for (size_t b = 0; b < st.buckets.size(); b++) {
    staged("gradient bucket " + std::to_string(b + 1) + " of " + std::to_string(st.buckets.size()),
           [&] { wait_work(st.buckets[b].work, st.g->timeout); });
    st.buckets[b].work.reset();
  }
  for (size_t i = 0; i < st.params.size(); i++) {
    at::Tensor& p = st.params[i];
    at::Tensor sum = st.slice(i).view(p.sizes());
    at::Tensor& grad = p.mutable_grad();
    if (grad.defined() && grad.sizes() == p.sizes() && grad.is_contiguous()) {
      grad.copy_(sum);
    } else {
      grad = sum.clone(at::MemoryFormat::Contiguous);
    }
  }
  FER_DIST_CATCH
}

int fer_dist_reducer_buckets(fer_dist_reducer r) {
  return r == nullptr ? 0 : static_cast<int>(r->state->buckets.size());
}

void fer_dist_reducer_free(fer_dist_reducer r) {
  if (r == nullptr) return;
  try {
    {
      ReducerState& st = *r->state;
      std::lock_guard<std::mutex> lock(st.mu);
      // Work still in flight writes into the buckets: let it end first.
      for (auto& b : st.buckets) {
        if (b.work) {
          try {
            b.work->wait(st.g->timeout);
          } catch (...) {
          }
        }
      }
      for (size_t i = 0; i < st.params.size() && i < r->hooks.size(); i++) st.params[i].remove_hook(r->hooks[i]);
    }
    delete r;
  } catch (...) {
  }
}

}  // extern "C"

#else  // FER_WITH_DIST

// Without c10d: every function says why not.

struct fer_dist_store_s {};
struct fer_dist_group_s {};
struct fer_dist_reducer_s {};

namespace {
char* unavailable() { return fer::error_string(FER_DIST_UNAVAILABLE); }
}  // namespace

extern "C" {

char* fer_dist_check(void) { return unavailable(); }
int fer_dist_has_nccl(void) { return 0; }
char* fer_dist_store_serve(const char*, int, int, int64_t, fer_dist_store*, int*) { return unavailable(); }
void fer_dist_store_free(fer_dist_store) {}
char* fer_dist_init(const char*, int, int, int, int, const char*, const char*, int, int, int64_t, fer_dist_group*) {
  return unavailable();
}
void fer_dist_group_free(fer_dist_group) {}
char* fer_dist_broadcast(fer_dist_group, const fer_tensor*, int, int) { return unavailable(); }
char* fer_dist_all_reduce_sum(fer_dist_group, const fer_tensor*, int) { return unavailable(); }
char* fer_dist_barrier(fer_dist_group) { return unavailable(); }
char* fer_dist_all_gather(fer_dist_group, fer_tensor, fer_tensor*) { return unavailable(); }
char* fer_dist_all_reduce_sum_grad(fer_dist_group, fer_tensor, fer_tensor*) { return unavailable(); }
char* fer_dist_reducer_new(fer_dist_group, const fer_tensor*, int, int64_t, fer_dist_reducer*) {
  return unavailable();
}
char* fer_dist_reducer_prepare(fer_dist_reducer) { return unavailable(); }
char* fer_dist_reducer_finish(fer_dist_reducer) { return unavailable(); }
int fer_dist_reducer_buckets(fer_dist_reducer) { return 0; }
void fer_dist_reducer_free(fer_dist_reducer) {}

}  // extern "C"

#endif  // FER_WITH_DIST
