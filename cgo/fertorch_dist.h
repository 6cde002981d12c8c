/*
 * fertorch_dist.h: the C interface of libfertorch.so's distributed unit, a
 * thin shim over libtorch's c10d (TCPStore, PrefixStore, ProcessGroupGloo,
 * ProcessGroupNCCL).
 *
 * Same rules as fertorch.h: plain C, opaque handles, every function that can
 * fail returns NULL or an error message to release with fer_free_string, and
 * no C++ exception leaves the library. When the libtorch the shim was built
 * against lacks c10d/Gloo, every function returns the error that
 * fer_dist_check returns.
 *
 * An error message that starts with FER_DIST_TIMEOUT_PREFIX reports an
 * operation that did not complete within its timeout.
 */
#ifndef FERTORCH_DIST_H
#define FERTORCH_DIST_H

#include <stdint.h>

#include "fertorch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FER_DIST_TIMEOUT_PREFIX "timeout: "

typedef struct fer_dist_store_s* fer_dist_store;
typedef struct fer_dist_group_s* fer_dist_group;
typedef struct fer_dist_reducer_s* fer_dist_reducer;

/* NULL when the shim was built with c10d and Gloo, else why not. */
char* fer_dist_check(void);
/* 1 when the shim was built with ProcessGroupNCCL. */
int fer_dist_has_nccl(void);

/* A TCPStore server on port (0: any free port) of every interface, for
 * world_size workers that connect as clients; host is the address this
 * process itself uses to reach it. *out_port is the port it listens on. */
char* fer_dist_store_serve(const char* host, int port, int world_size, int64_t timeout_ms,
                           fer_dist_store* out, int* out_port);
void fer_dist_store_free(fer_dist_store s);

/* Joins a job of world_size ranks as rank: a TCPStore at master_addr:
 * master_port (hosted by this process when host_store is 1, which rank 0
 * does unless a launcher hosts it; port 0 then picks a free port), under the
 * key prefix store_prefix, then a
 * process group: Gloo for device_type FER_CPU (over the interface ifname when
 * it is not empty), NCCL on CUDA device device_index for FER_CUDA. Every
 * collective, and the rendezvous, gives up after timeout_ms. */
char* fer_dist_init(const char* master_addr, int master_port, int rank, int world_size, int host_store,
                    const char* store_prefix, const char* ifname, int device_type, int device_index,
                    int64_t timeout_ms, fer_dist_group* out);
/* Releases the group handle; its process group and store go (after their
 * pending work) once no reducer or autograd graph uses them either. */
void fer_dist_group_free(fer_dist_group g);

/* In place on every rank: ts[i] becomes root's ts[i]. */
char* fer_dist_broadcast(fer_dist_group g, const fer_tensor* ts, int n, int root);
/* In place on every rank: ts[i] becomes the sum over ranks of ts[i]. */
char* fer_dist_all_reduce_sum(fer_dist_group g, const fer_tensor* ts, int n);
char* fer_dist_barrier(fer_dist_group g);
/* out (world_size handles) receives every rank's t, in rank order. */
char* fer_dist_all_gather(fer_dist_group g, fer_tensor t, fer_tensor* out);
/* *out is the sum over ranks of t; its gradient is the sum over ranks of the
 * gradients that reach *out. */
char* fer_dist_all_reduce_sum_grad(fer_dist_group g, fer_tensor t, fer_tensor* out);

/* A reducer sums the gradients of params (all requiring grad) across ranks
 * in flattened buckets of about bucket_bytes, launched from autograd hooks
 * while backward runs. It keeps the group's process group alive until it is
 * freed. */
char* fer_dist_reducer_new(fer_dist_group g, const fer_tensor* params, int n, int64_t bucket_bytes,
                           fer_dist_reducer* out);
/* Before each backward. */
char* fer_dist_reducer_prepare(fer_dist_reducer r);
/* After backward: waits for the buckets (launching those not launched, where
 * parameters without a gradient count as zeros) and writes the sums into the
 * parameters' .grad. */
char* fer_dist_reducer_finish(fer_dist_reducer r);
/* The number of buckets. */
int fer_dist_reducer_buckets(fer_dist_reducer r);
/* Removes the hooks and releases the reducer. */
void fer_dist_reducer_free(fer_dist_reducer r);

#ifdef __cplusplus
}
#endif

#endif
