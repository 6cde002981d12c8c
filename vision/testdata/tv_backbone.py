"""torchvision reference for fertorch's backbone parity tests.

Usage: tv_backbone.py DIR ARCH NUM_CLASSES HEAD [IMAGE_SIZE]

Builds torchvision.models.ARCH(weights=None, num_classes=NUM_CLASSES) (and
image_size=IMAGE_SIZE when given, for ViT) with seed 0, randomises what
torchvision initialises to constants (batch-norm and layer-norm affine
parameters, ConvNeXt's layer scales, ViT's class token and zero head) so
that every tensor matters, sets the batch-norm statistics to those of a
random batch (so that activations keep the scale of a trained network's),
and writes to DIR:

  state.pth       the state dict (zip format)
  keys.json       [[name, shape, dtype], ...] in state_dict order, the
                  parameter count, and the count with 1000 classes
  For DIR/xeval.bin (float32 [2,3,S,S], S in DIR/sizes.json "eval"):
  logits_eval.bin, features_eval.bin   eval-mode logits and the input of the
                  module HEAD (torchvision's classifier), flattened
  For DIR/xgrad.bin and DIR/labels.bin (int64): one training-mode forward
  after torch.manual_seed(123), cross-entropy, backward:
  loss.bin, grads.bin (every parameter's gradient, named_parameters
  order, concatenated), buffers.bin (every float buffer after the step)

It runs with DIR/sizes.json's "threads" intra-op threads, the count the Go
side uses: libtorch picks some convolution algorithms (1x1 kernels on small
batches) by thread count, and the same algorithms give the same bits.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

d, arch, num_classes, head = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
kwargs = {}
if len(sys.argv) > 5:
    kwargs["image_size"] = int(sys.argv[5])
sizes = json.load(open(os.path.join(d, "sizes.json")))
torch.set_num_threads(sizes["threads"])
torch.backends.mkldnn.enabled = sizes.get("onednn", True)
torch.manual_seed(0)
build = getattr(torchvision.models, arch)
model = build(weights=None, num_classes=num_classes, **kwargs)
with torch.no_grad():
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) or type(m).__name__ == "LayerNorm2d":
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
    for name, p in model.named_parameters():
        if name.endswith("layer_scale"):
            p.uniform_(0.05, 0.2)
        elif name == "class_token":
            p.normal_(0, 0.5)
        elif name.startswith("heads.") and float(p.abs().max()) == 0:
            p.uniform_(-0.05, 0.05)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momentum = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the calibration batch
    model.train()
    model(torch.randn(4, 3, sizes["grad"], sizes["grad"]))
    for m, v in zip(norms, momentum):
        m.momentum = v
        m.num_batches_tracked.zero_()
sd = model.state_dict()
torch.save(sd, os.path.join(d, "state.pth"))
default_count = sum(p.numel() for p in build(weights=None).parameters())  # 1000 classes, 224x224
json.dump({
    "keys": [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()],
    "params": sum(p.numel() for p in model.parameters()),
    "params_1000": default_count,
}, open(os.path.join(d, "keys.json"), "w"))

captured = {}
dict(model.named_modules())[head].register_forward_pre_hook(lambda m, inp: captured.__setitem__("x", inp[0]))

s = sizes["eval"]
x = torch.from_numpy(np.fromfile(os.path.join(d, "xeval.bin"), dtype=np.float32).reshape(2, 3, s, s))
model.eval()
with torch.no_grad():
    model(x).numpy().tofile(os.path.join(d, "logits_eval.bin"))
captured["x"].flatten(1).numpy().tofile(os.path.join(d, "features_eval.bin"))

s = sizes["grad"]
n = sizes["batch"]
x = torch.from_numpy(np.fromfile(os.path.join(d, "xgrad.bin"), dtype=np.float32).reshape(n, 3, s, s))
labels = torch.from_numpy(np.fromfile(os.path.join(d, "labels.bin"), dtype=np.int64))
model.train()
torch.manual_seed(123)
loss = F.cross_entropy(model(x), labels)
loss.backward()
loss.detach().reshape(1).numpy().tofile(os.path.join(d, "loss.bin"))
torch.cat([p.grad.flatten() for p in model.parameters()]).numpy().tofile(os.path.join(d, "grads.bin"))
bufs = [b.flatten() for b in model.buffers() if b.dtype.is_floating_point]
torch.cat(bufs if bufs else [torch.zeros(0)]).numpy().tofile(os.path.join(d, "buffers.bin"))
