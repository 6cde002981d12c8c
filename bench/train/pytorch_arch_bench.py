"""PyTorch peer of `fer benchmark --arch` for make bench-train's
architecture table.

Usage: pytorch_arch_bench.py ARCH SIZE BATCH STEPS WARMUP THREADS

torchvision's ARCH with fertorch's transfer head (Linear 1024, ReLU,
Dropout 0.5, Linear 8) in place of the module fertorch replaces (fc,
classifier, classifier[2] or heads), every parameter trainable, Adam (lr
1e-4, eps 1e-7), cross-entropy, on one synthetic batch (sin(i/1000) pixel
values, labels i mod 8) copied afresh every step, as `fer benchmark` does.
Prints "train N img/s" over STEPS timed steps after WARMUP untimed ones.
"""
import sys
import time

import torch
import torchvision

nn = torch.nn


def main():
    arch = sys.argv[1]
    size, batch, steps, warmup, threads = map(int, sys.argv[2:7])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    kwargs = {"image_size": size} if arch == "vit_b_16" else {}
    model = getattr(torchvision.models, arch)(num_classes=8, **kwargs)
    width = {"vgg16": 512 * (size >> 5) ** 2, "vgg16_bn": 512 * (size >> 5) ** 2, "resnet18": 512, "resnet50": 2048,
             "mobilenet_v3_large": 960, "efficientnet_b0": 1280, "convnext_tiny": 768, "vit_b_16": 768}[arch]
    head = nn.Sequential(nn.Linear(width, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 8))
    if arch.startswith("vgg"):
        model.avgpool = nn.Identity()  # the seed's head flattens the base's output
        model.classifier = head
    elif arch.startswith("resnet"):
        model.fc = head
    elif arch == "convnext_tiny":
        model.classifier[2] = head
    elif arch == "vit_b_16":
        model.heads = head
    else:
        model.classifier = head
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    n = batch * 3 * size * size
    host = torch.sin(torch.arange(n, dtype=torch.float64) * 0.001).float().reshape(batch, 3, size, size)
    labels = torch.arange(batch) % 8
    model.train()

    def step():
        x = host.clone()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    secs = time.perf_counter() - start
    print(f"train {steps * batch / secs:.3f} img/s ({steps} steps in {secs:.2f}s)")


if __name__ == "__main__":
    main()
