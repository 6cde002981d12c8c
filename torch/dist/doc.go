// Package dist is data-parallel training's communication layer: PyTorch's
// own c10d engine (TCPStore rendezvous, ProcessGroupGloo on the CPU,
// ProcessGroupNCCL on CUDA) through the shim's distributed unit
// (cgo/fertorch_dist.h, compiled into libfertorch.so). fertorch writes no
// networking of its own.
//
// # Availability
//
// The unit needs libtorch's c10d headers and gloo's (Debian: libgloo-dev);
// the Makefile compiles it without them when they are missing, and then
// Available, Init and ServeStore return "dist: this libtorch was built
// without distributed support (c10d/Gloo): ..." naming what was not found.
// NCCL additionally needs a CUDA libtorch, nccl.h and the CUDA headers.
//
// # The environment contract
//
// A job is started by torchrun, by Kubernetes' PyTorchJob or by fer itself
// (fer train --nproc-per-node), which all describe each process with
// torchrun's variables; FromEnv reads them and Env.Environ writes them:
//
//	RANK, WORLD_SIZE                 this process's rank and the number of ranks
//	LOCAL_RANK, LOCAL_WORLD_SIZE     the same within one node (default 0 and 1)
//	MASTER_ADDR, MASTER_PORT         where the TCPStore is
//	TORCHELASTIC_USE_AGENT_STORE     True: the launcher hosts the store
//	TORCHELASTIC_RESTART_COUNT       the restart attempt N (store prefix /worker/attempt_N)
//	GLOO_SOCKET_IFNAME               the network interface Gloo uses
//
// Without WORLD_SIZE the process runs alone (FromEnv's ok is false). Rank 0
// hosts the store on MASTER_PORT unless TORCHELASTIC_USE_AGENT_STORE=True,
// in which case every rank connects to the launcher's store (ServeStore).
// Gloo binds to MASTER_ADDR when it is a loopback address (a job on one
// machine), to GLOO_SOCKET_IFNAME when it is set, else to the address this
// host's name resolves to, as PyTorch does.
//
// # Collectives
//
// Init returns a Group once every rank has joined. Its collectives
// (Broadcast, AllReduceSum, AllGather, Barrier, AllReduceSumGrad) must be
// called by every rank in the same order with tensors of the same shapes and
// dtypes. A Reducer sums gradients across ranks in buckets launched from
// autograd hooks while backward still runs, as DistributedDataParallel does.
//
// # Errors and timeouts
//
// Every collective and the rendezvous give up after Options.Timeout
// (default 30 minutes) instead of hanging. Errors are *Error values naming
// the operation and the rank, for example
//
//	dist: all_reduce on rank 1 timed out after 30m (is another rank gone or stuck?): ...
//	dist: all_reduce on rank 0 failed (is another rank gone?): ... Connection closed by peer ...
//	dist: init on rank 1 timed out after 2s (is another rank gone or stuck?): connecting to the store at 10.0.0.1:29500: ...
//	dist: init on rank 0: hosting the store on port 29500: ... Address already in use ...
//
// followed by c10d's or Gloo's own words; Error.TimedOut tells a timeout
// apart. No C++ exception reaches Go.
package dist
