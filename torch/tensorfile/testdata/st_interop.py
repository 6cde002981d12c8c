"""A minimal safetensors reader and writer built on json, struct and torch,
for checking tensorfile's safetensors files against an independent
implementation.

usage: st_interop.py read PATH     prints {"metadata": ..., "tensors": [...]}
       st_interop.py write PATH    writes a file and prints the same listing
"""
import json
import struct
import sys

import torch

DTYPES = {
    "F32": torch.float32, "F64": torch.float64, "F16": torch.float16,
    "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
    "U8": torch.uint8, "I8": torch.int8, "BOOL": torch.bool,
}
CODES = {v: k for k, v in DTYPES.items()}


def values(t):
    """Exact values as JSON: floats as float32/float64 bit patterns via
    float(), others as ints or bools."""
    flat = t.reshape(-1)
    if t.dtype in (torch.float16, torch.bfloat16):
        flat = flat.to(torch.float32)
    out = []
    for x in flat.tolist():
        if isinstance(x, float) and x != x:
            out.append("nan")
        elif isinstance(x, float) and x in (float("inf"), float("-inf")):
            out.append(str(x))
        else:
            out.append(x)
    return out


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = data[8 + n:]
    meta = header.pop("__metadata__", None)
    tensors = []
    for name, info in header.items():
        b, e = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        shape = info["shape"]
        if e == b:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(buf[b:e]), dtype=dtype).reshape(shape)
        tensors.append({"name": name, "dtype": str(dtype).replace("torch.", ""), "shape": shape,
                        "values": values(t), "aligned": b % t.element_size() == 0})
    return {"metadata": meta, "header_len": n, "tensors": tensors}


def write(path):
    torch.manual_seed(1)
    tensors = {
        "z.weight": torch.randn(3, 2),
        "a.half": torch.tensor([1.0, -0.5, 65504.0], dtype=torch.float16),
        "b.bf16": torch.tensor([[1.0, 3.0]], dtype=torch.bfloat16),
        "ids": torch.tensor([-5, 2**40], dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "bytes": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "scalar": torch.tensor(0.25, dtype=torch.float64),
        "none": torch.zeros(0, 4, dtype=torch.int32),
    }
    header, chunks, pos = {"__metadata__": {"format": "pt", "note": "written by python"}}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": [pos, pos + len(raw)]}
        chunks.append(raw)
        pos += len(raw)
    h = json.dumps(header).encode("utf-8")
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    return read(path)


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    print(json.dumps(read(path) if cmd == "read" else write(path)))
