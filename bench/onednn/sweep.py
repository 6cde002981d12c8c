"""Checks libtorch's oneDNN convolutions against its native kernels.

Runs 1,296 convolutions (input and output channels, kernel 1/3/5, stride
1/2, dense or depthwise, batch 1/5, 7x7 or 16x16 inputs) forward and
backward with oneDNN on and off, counts the cases whose output, input
gradient, weight gradient or bias gradient differ by more than 1e-4 of
the native result's largest magnitude, then times a 64-channel 3x3
convolution (batch 16, 32x32) both ways. oneDNN caps its instruction sets
by ONEDNN_MAX_CPU_ISA, read once at its first use, so run it once per cap:

    for isa in "" AVX2 AVX; do ONEDNN_MAX_CPU_ISA=$isa /usr/bin/python3 bench/onednn/sweep.py; done

(`make bench-onednn` does that with this machine's /usr/bin/python3).
"""
import itertools
import os
import time

import torch


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    bad = cases = 0
    for cin, cout, k, stride, depthwise, batch, hw in itertools.product(
            (3, 4, 8, 16, 24, 32), (4, 8, 16, 24, 32, 64), (1, 3, 5), (1, 2), (False, True), (1, 5), (7, 16)):
        groups = cin if depthwise else 1
        if depthwise and cout % cin:
            continue
        x = torch.randn(batch, cin, hw, hw, requires_grad=True)
        w = torch.randn(cout, cin // groups, k, k, requires_grad=True)
        b = torch.randn(cout, requires_grad=True)
        results = []
        for onednn in (True, False):
            torch.backends.mkldnn.enabled = onednn
            for t in (x, w, b):
                t.grad = None
            y = torch.nn.functional.conv2d(x, w, b, stride=stride, padding=k // 2, groups=groups)
            (y * y.detach().sin()).sum().backward()
            results.append([y.detach().clone(), x.grad.clone(), w.grad.clone(), b.grad.clone()])
        cases += 1
        for got, want in zip(*results):
            diff = ((got - want).abs().max() / want.abs().max().clamp_min(1e-6)).item()
            if not diff <= 1e-4:
                bad += 1
                break
    x, w = torch.randn(16, 64, 32, 32), torch.randn(64, 64, 3, 3)
    seconds = {}
    for onednn in (True, False):
        torch.backends.mkldnn.enabled = onednn
        for _ in range(2):
            torch.nn.functional.conv2d(x, w, padding=1)
        start = time.perf_counter()
        for _ in range(10):
            torch.nn.functional.conv2d(x, w, padding=1)
        seconds[onednn] = (time.perf_counter() - start) / 10
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or "(none)"
    print(f"torch {torch.__version__} ONEDNN_MAX_CPU_ISA={cap}: {bad} of {cases} convolutions wrong; "
          f"64-channel 3x3: oneDNN {seconds[True] * 1e3:.1f} ms, native {seconds[False] * 1e3:.1f} ms "
          f"(native/oneDNN {seconds[False] / seconds[True]:.1f})")


if __name__ == "__main__":
    main()
