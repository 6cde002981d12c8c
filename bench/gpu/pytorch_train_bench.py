#!/usr/bin/env python3
"""PyTorch eager peer of `fer benchmark`: training images/s of the same model.

The model is torchvision's VGG16 base (`vgg16(weights=None).features`) with
the seed's head (Flatten -> Linear(512*(s/32)^2, 1024) -> ReLU -> Dropout(0.5)
-> Linear(1024, 8)); only features.24/26/28 (block 5's convolutions) and the
head train, as in Keras with "all but the last 4 base layers frozen". Adam
(lr 1e-4, eps 1e-7), cross-entropy on float32 logits.

Each step does what `fer benchmark` does: copy a synthetic batch from pinned
host memory (non_blocking), convert it to channels-last if asked, run the
forward pass (under torch.autocast for bf16/fp16, with a GradScaler for
fp16), backward, optimizer step, count the correct predictions and read the
loss value. Warm-up steps are not timed; the timed steps are bracketed by
device synchronisation.

    python3 bench/gpu/pytorch_train_bench.py --device cuda --precision bf16 \\
        --channels-last --batch-size 64 --input-size 224 --steps 40 --warmup 8 --json out.json

The JSON uses the field names of `fer benchmark --json`, plus the wall-clock
bounds of the timed steps (timed_start_unix, timed_end_unix).
"""

import argparse
import contextlib
import json
import math
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description="PyTorch eager training throughput of the seed's VGG16 transfer model")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for the model and the batch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default="", help="also write the result as JSON to this file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.warmup < 0:
        p.error("need at least one step, one image per batch and no negative warm-up")
    if args.input_size < 32:
        p.error("input size must be at least 32 (VGG16 halves it five times)")
    return args


def vgg16_features(nn):
    """torchvision's VGG16 `features`; the same layers built here when
    torchvision is not installed."""
    try:
        import torchvision

        return torchvision.models.vgg16(weights=None).features, "torchvision " + torchvision.__version__
    except ImportError:
        layers, cin = [], 3
        for c in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if c == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                conv = nn.Conv2d(cin, c, kernel_size=3, padding=1)
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(conv.bias)
                layers += [conv, nn.ReLU(inplace=True)]
                cin = c
        return nn.Sequential(*layers), "inline (torchvision not installed)"


def main(argv):
    args = parse_args(argv)
    import torch
    from torch import nn

    if not hasattr(torch, "__version__"):
        sys.exit("pytorch_train_bench: 'import torch' found a directory named torch, not PyTorch; run from another folder")
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("pytorch_train_bench: CUDA requested but torch.cuda.is_available() is False (torch %s, built for CUDA %s)"
                 % (torch.__version__, torch.version.cuda))
    torch.manual_seed(args.seed)
    if cuda:
        torch.backends.cudnn.benchmark = True

    class Model(nn.Module):
        def __init__(self, features, side, classes):
            super().__init__()
            self.features = features
            self.classifier = nn.Sequential(
                nn.Linear(512 * side * side, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(1024, classes))
            for m in self.classifier:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    features, source = vgg16_features(nn)
    model = Model(features, args.input_size // 32, args.classes)
    for p in model.features.parameters():
        p.requires_grad_(False)
    for i in (24, 26, 28):
        for p in model.features[i].parameters():
            p.requires_grad_(True)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(dev, memory_format=memory_format)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-7)
    criterion = nn.CrossEntropyLoss()
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = None
    if args.precision == "fp16" and cuda:
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=amp_dtype)

    n, s = args.batch_size, args.input_size
    host_x = torch.sin(torch.arange(n * 3 * s * s, dtype=torch.float64) * 0.001).float().reshape(n, 3, s, s)
    host_y = torch.arange(n, dtype=torch.int64) % args.classes
    if cuda:
        host_x, host_y = host_x.pin_memory(), host_y.pin_memory()

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def step():
        x = host_x.to(dev, non_blocking=True)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = host_y.to(dev, non_blocking=True)
        with autocast():
            logits = model(x)
        loss = criterion(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        correct = (logits.argmax(1) == y).sum()
        return loss.item(), correct

    for _ in range(args.warmup):
        step()
    sync()
    start_unix, start = time.time(), time.perf_counter()
    last = float("nan")
    for _ in range(args.steps):
        last, _ = step()
    sync()
    secs = time.perf_counter() - start
    end_unix = time.time()

    result = {
        "device": str(dev),
        "precision": args.precision,
        "channels_last": args.channels_last,
        "batch_size": n,
        "input_size": s,
        "steps": args.steps,
        "seconds": secs,
        "images_per_sec": args.steps * n / secs,
        "final_loss": last if math.isfinite(last) else None,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "gpu_name": torch.cuda.get_device_name(dev) if cuda else None,
        "vgg16_source": source,
        "host_to_device_copy_per_step": True,
        "trainable_base_layers": "4",
        "timed_start_unix": start_unix,
        "timed_end_unix": end_unix,
    }
    print("pytorch %s %s channels-last=%s batch %d at %dx%d: %.1f images/s (%d steps in %.2fs, loss %.4f)"
          % (result["device"], args.precision, args.channels_last, n, s, s, result["images_per_sec"], args.steps, secs, last))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
