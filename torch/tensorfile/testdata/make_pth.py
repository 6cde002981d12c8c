"""Writes reference .pth files with PyTorch for the tensorfile tests.

usage: make_pth.py OUTDIR MARKER

For every file NAME.pth it writes NAME.json: the entries as torch.load reads
them back (name, dtype, shape, sha256 of the contiguous little-endian bytes,
and the bytes themselves in hex when short). MARKER is the path that the
malicious files would create if they were ever executed.
"""
import collections
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys

import torch
import torchvision

out, marker = sys.argv[1], sys.argv[2]
torch.manual_seed(0)


def contiguous_bytes(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def flatten(obj, prefix=""):
    """Tensors of nested dicts, named like tensorfile's Flatten option."""
    if torch.is_tensor(obj):
        return [(prefix, obj)]
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            name = str(k) if prefix == "" else prefix + "." + str(k)
            items += flatten(v, name)
        return items
    return []


def manifest(path, obj):
    entries = []
    for name, t in flatten(obj):
        b = contiguous_bytes(t)
        entries.append({
            "name": name,
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "contiguous": t.is_contiguous(),
            "sha256": hashlib.sha256(b).hexdigest(),
            "hex": b.hex() if len(b) <= 64 else "",
        })
    with open(path, "w") as f:
        json.dump({"entries": entries}, f, indent=1)


def save_both(name, obj):
    zip_path = os.path.join(out, name + "_zip.pth")
    legacy_path = os.path.join(out, name + "_legacy.pth")
    torch.save(obj, zip_path)
    torch.save(obj, legacy_path, _use_new_zipfile_serialization=False)
    for p in (zip_path, legacy_path):
        # The reference is what torch.load reads back.
        manifest(p[:-4] + ".json", torch.load(p))


# A torchvision VGG16 convolutional base with a small head, random weights.
features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
head = torch.nn.Sequential(torch.nn.Linear(512, 32), torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(32, 8))
sd = collections.OrderedDict()
for k, v in features.state_dict().items():
    sd["features." + k] = v
for k, v in head.state_dict().items():
    sd["classifier." + k] = v
save_both("vgg", sd)

# Every dtype, with awkward values.
dt = collections.OrderedDict()
dt["f32"] = torch.tensor([1.5, -0.0, float("inf"), float("-inf"), float("nan"), 3.4e38, 1e-45], dtype=torch.float32)
dt["f64"] = torch.randn(3, 5, dtype=torch.float64)
dt["f16"] = torch.tensor([1.0, -2.5, 65504.0, 6e-8, float("inf"), float("nan")], dtype=torch.float16)
dt["bf16"] = torch.randn(4, 3).to(torch.bfloat16)
dt["i64"] = torch.tensor([-(2**63), 2**63 - 1, 0, -1, 123456789012345], dtype=torch.int64)
dt["i32"] = torch.tensor([-(2**31), 2**31 - 1, 7], dtype=torch.int32)
dt["u8"] = torch.arange(0, 256, dtype=torch.int32).to(torch.uint8).reshape(16, 16)
dt["i8"] = torch.tensor([-128, 127, 0, -1], dtype=torch.int8)
dt["bool"] = torch.tensor([[True, False, True], [False, False, True]])
save_both("dtypes", dt)

# Views, shared storages, scalars and empty tensors.
base = torch.arange(40, dtype=torch.float32)
grid = torch.arange(24, dtype=torch.int64).reshape(2, 3, 4)
row = torch.tensor([1.0, 2.0, 3.0])
conv = torch.randn(8, 3, 3, 3)
vw = collections.OrderedDict()
vw["transposed"] = base.reshape(5, 8).t()                # non-contiguous
vw["slice_offset"] = base[10:20]                         # contiguous, storage offset 10
vw["slice_2d"] = base.reshape(5, 8)[1:4, 2:7:2]          # non-contiguous with offset
vw["first_half"] = base[:20]                             # shares base's storage
vw["same_a"] = row
vw["same_b"] = row                                       # one tensor under two keys
vw["expanded"] = row.expand(4, 3)                        # stride 0
vw["permuted"] = grid.permute(2, 0, 1)                   # 3-d non-contiguous
vw["channels_last"] = conv.to(memory_format=torch.channels_last)
vw["scalar"] = torch.tensor(2.25)
vw["scalar_i64"] = torch.tensor(-7, dtype=torch.int64)
vw["empty"] = torch.empty(0)
vw["empty_2d"] = torch.zeros(3, 0, 2)
vw["empty_slice"] = base[40:]
vw["bool_t"] = torch.tensor([[True, False], [False, False], [True, True]]).t()
vw["half_view"] = torch.randn(6, 4).to(torch.float16)[:, 1]
vw["param"] = torch.nn.Parameter(torch.randn(2, 3))
save_both("views", vw)

# A training checkpoint with nested dicts and non-tensor values.
model = collections.OrderedDict(w=torch.randn(3, 2), b=torch.randn(3))
nested = {
    "epoch": 3,
    "state_dict": model,
    "optimizer": {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.randn(3, 2)}},
                  "param_groups": [{"lr": 0.1, "params": [0]}]},
    "name": "run-1",
    "ema": {"inner": {"w": torch.randn(2)}},
}
save_both("nested", nested)


# A legacy file as PyTorch before 0.4 wrote it: tensors rebuilt by
# torch._utils._rebuild_tensor (4 arguments), and one storage whose
# persistent ID carries view metadata (view_key, offset, view_size).
class OldTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor, self.args)


class StorageView:
    def __init__(self, storage_type, root_key, root_numel, view_key, offset, size):
        self.pid = ("storage", storage_type, root_key, "cpu", root_numel, (view_key, offset, size))


class OldPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageView):
            return obj.pid
        if isinstance(obj, str) and obj.startswith("STORAGE:"):
            key = obj[len("STORAGE:"):]
            return ("storage", roots[key][0], key, "cpu", roots[key][1].numel(), None)
        return None


roots = {
    "100": (torch.FloatStorage, torch.arange(12, dtype=torch.float32) * 0.5),
    "200": (torch.LongStorage, torch.arange(6, dtype=torch.int64) - 3),
}
old = collections.OrderedDict()
old["weight"] = OldTensor("STORAGE:100", 0, (3, 4), (4, 1))
old["weight_t"] = OldTensor("STORAGE:100", 0, (4, 3), (1, 4))
old["tail"] = OldTensor(StorageView(torch.FloatStorage, "100", 12, "101", 8, 4), 1, (3,), (1,))
old["ids"] = OldTensor("STORAGE:200", 2, (2, 2), (1, 2))
old_path = os.path.join(out, "old_legacy.pth")
with open(old_path, "wb") as f:
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
    OldPickler(f, protocol=2).dump(old)
    keys = sorted(roots)
    pickle.dump(keys, f, protocol=2)
    for k in keys:
        t = roots[k][1]
        f.write(struct.pack("<q", t.numel()))
        f.write(contiguous_bytes(t))
manifest(old_path[:-4] + ".json", torch.load(old_path))


# Malicious files: loading them with torch.load would run a command.
class EvilSystem:
    def __reduce__(self):
        return (os.system, ("touch " + marker,))


class EvilPopen:
    def __reduce__(self):
        return (subprocess.Popen, (["touch", marker],))


for name, evil in (("evil_system", EvilSystem()), ("evil_popen", EvilPopen())):
    obj = collections.OrderedDict(w=torch.ones(2), x=evil)
    torch.save(obj, os.path.join(out, name + "_zip.pth"))
    torch.save(obj, os.path.join(out, name + "_legacy.pth"), _use_new_zipfile_serialization=False)
assert not os.path.exists(marker)
