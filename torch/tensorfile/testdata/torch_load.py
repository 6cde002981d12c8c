"""Loads a .pth file with torch.load and prints its tensors as JSON: name,
dtype, shape, sha256 of the contiguous little-endian bytes.

usage: torch_load.py PATH [weights_only]
"""
import hashlib
import json
import sys

import torch

kwargs = {"weights_only": True} if sys.argv[2:] == ["weights_only"] else {}
sd = torch.load(sys.argv[1], **kwargs)
assert type(sd).__name__ == "OrderedDict", type(sd)
entries = []
for name, t in sd.items():
    b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    entries.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                    "contiguous": t.is_contiguous(), "sha256": hashlib.sha256(b).hexdigest(),
                    "hex": b.hex() if len(b) <= 64 else ""})
print(json.dumps({"entries": entries}))
