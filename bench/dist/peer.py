"""The PyTorch peer of bench/dist: the same all-reduces through
torch.distributed (Gloo), one process per rank, started by bench/dist with
torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    peer.py ROUNDS BUCKET_BYTES NUMEL...

NUMEL... are the parameter sizes in model order. Rank 0 prints one line:
"result <best seconds, one tensor> <best seconds, buckets> <bucket count>".
The buckets are timed doing what fertorch's Reducer.Finish does when no
backward ran before it: zeros into the buckets, the all-reduces, the sums
copied into each parameter's .grad.
"""
import sys
import time

import torch
import torch.distributed as dist


def main():
    rounds, bucket_bytes = int(sys.argv[1]), int(sys.argv[2])
    sizes = [int(s) for s in sys.argv[3:]]
    dist.init_process_group("gloo")
    total = sum(sizes)
    # Buckets as fertorch's Reducer (and DDP) make them: parameters in
    # reverse order, a new bucket once the current one holds bucket_bytes.
    buckets, fill = [], bucket_bytes
    for n in reversed(sizes):
        if fill >= bucket_bytes:
            buckets.append(0)
            fill = 0
        buckets[-1] += n
        fill += 4 * n
    flat = torch.ones(total)
    parts = [torch.ones(n) for n in buckets]
    # Each bucket's parameters, in bucket order, as views of the bucket.
    params = [torch.zeros(n, requires_grad=True) for n in sizes]
    views, k = [], len(sizes)
    for b in parts:
        off = 0
        while off < b.numel():
            k -= 1
            views.append((params[k], b.narrow(0, off, sizes[k])))
            off += sizes[k]
    best_one = best_buckets = float("inf")
    for _ in range(rounds):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(flat)
        best_one = min(best_one, time.perf_counter() - start)
        dist.barrier()
        start = time.perf_counter()
        # What fertorch's Reducer.Finish does without a backward before it:
        # zeros into every bucket, the all-reduces, the sums into .grad.
        with torch.no_grad():
            for _, v in views:
                v.zero_()
            works = [dist.all_reduce(p, async_op=True) for p in parts]
            for w in works:
                w.wait()
            for p, v in views:
                if p.grad is None:
                    p.grad = v.clone()
                else:
                    p.grad.copy_(v)
        best_buckets = min(best_buckets, time.perf_counter() - start)
    if flat[0].item() != dist.get_world_size() ** rounds:
        raise SystemExit(f"all_reduce gave {flat[0].item()}, want {dist.get_world_size() ** rounds}")
    dist.barrier()
    if dist.get_rank() == 0:
        print(f"result {best_one} {best_buckets} {len(parts)}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
