"""Loads a fertorch weights checkpoint into torchvision's model with
load_state_dict(strict=True), as a PyTorch user would, and writes its
eval-mode logits for the input fertorch used.

usage: tv_checkpoint.py CHECKPOINT ARCH HEAD CLASSES HIDDEN SIZE DIR

HEAD is torchvision (the architecture's own classifier), transfer
(Linear-ReLU-Dropout-Linear) or gap (Dropout-Linear) in place of the module
fertorch's head replaces: fc (ResNet), classifier (MobileNetV3). DIR holds
x.bin (float32, [2, 3, SIZE, SIZE]); logits.bin and result.json are
written there.
"""
import json
import struct
import sys

import numpy as np
import torch
import torchvision

path, arch, head, classes, hidden, size, out = sys.argv[1:8]
classes, hidden, size = int(classes), int(hidden), int(size)

# safetensors without the safetensors package: an 8-byte little-endian
# header length, a JSON header, then the raw tensor bytes.
with open(path, "rb") as f:
    raw = f.read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + n])
body = raw[8 + n :]
dtypes = {"F32": np.float32, "I64": np.int64, "F64": np.float64}
state = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    a, b = info["data_offsets"]
    arr = np.frombuffer(body[a:b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    state[name] = torch.from_numpy(arr.copy())

model = getattr(torchvision.models, arch)(num_classes=classes)
attr = {"resnet18": "fc", "mobilenet_v3_large": "classifier"}[arch]
width = {"resnet18": 512, "mobilenet_v3_large": 960}[arch]
nn = torch.nn
if head == "transfer":
    setattr(model, attr, nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, classes)))
elif head == "gap":
    setattr(model, attr, nn.Sequential(nn.Dropout(0.5), nn.Linear(width, classes)))
model.load_state_dict(state, strict=True)
model.eval()
x = torch.from_numpy(np.fromfile(f"{out}/x.bin", dtype=np.float32).reshape(2, 3, size, size))
with torch.no_grad():
    logits = model(x)
logits.numpy().astype(np.float32).tofile(f"{out}/logits.bin")
json.dump({"keys": len(state), "params": sum(p.numel() for p in model.parameters())}, open(f"{out}/result.json", "w"))
