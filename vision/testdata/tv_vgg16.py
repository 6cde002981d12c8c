"""torchvision VGG16 reference for fertorch's model parity test.

Usage: tv_vgg16.py DIR ARCH. Builds torchvision.models.ARCH (vgg16 or
vgg16_bn) with random weights (seed 0; batch-norm statistics randomised),
saves its state dict in the zip format (DIR/zip.pth) and in the legacy
format (DIR/legacy.pth), and for each input DIR/x<size>.bin (float32,
shape [2,3,size,size]) present writes the eval-mode logits to
DIR/logits<size>.bin.
"""
import os
import sys

import numpy as np
import torch
import torchvision

d, arch = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
torch.set_num_threads(1)
model = getattr(torchvision.models, arch)()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
model.eval()
sd = model.state_dict()
torch.save(sd, os.path.join(d, "zip.pth"))
torch.save(sd, os.path.join(d, "legacy.pth"), _use_new_zipfile_serialization=False)
for size in (224, 64):
    path = os.path.join(d, "x%d.bin" % size)
    if not os.path.exists(path):
        continue
    x = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(2, 3, size, size))
    with torch.no_grad():
        model(x).numpy().tofile(os.path.join(d, "logits%d.bin" % size))
