"""Reference values for fertorch's op parity test, computed with PyTorch.

Usage: parity.py DIR. Reads DIR/cases.json and the raw input files the Go test
wrote, runs each case's op in PyTorch, and writes the outputs and the input
gradients of sum(out * cos(arange(numel))) as raw little-endian files plus
DIR/results.json describing them.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"float32": (np.float32, torch.float32), "int64": (np.int64, torch.int64),
          "bool": (np.bool_, torch.bool), "float64": (np.float64, torch.float64)}
NAMES = {torch.float32: "float32", torch.int64: "int64", torch.bool: "bool", torch.float64: "float64"}


def op_table():
    return {
        "conv2d": lambda i, a: F.conv2d(i["x"], i["w"], i.get("b"), a["stride"], a["padding"], a["dilation"], a["groups"]),
        "max_pool2d": lambda i, a: F.max_pool2d(i["x"], a["kernel"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"]),
        "adaptive_avg_pool2d": lambda i, a: F.adaptive_avg_pool2d(i["x"], a["size"]),
        "relu": lambda i, a: F.relu(i["x"]),
        "linear": lambda i, a: F.linear(i["x"], i["w"], i.get("b")),
        "matmul": lambda i, a: i["a"] @ i["b"],
        "dropout": lambda i, a: (torch.manual_seed(a["seed"]), F.dropout(i["x"], a["p"], a["train"]))[1],
        "add": lambda i, a: i["a"] + i["b"],
        "sub": lambda i, a: i["a"] - i["b"],
        "mul": lambda i, a: i["a"] * i["b"],
        "div": lambda i, a: i["a"] / i["b"],
        "add_scalar": lambda i, a: i["x"] + a["s"],
        "mul_scalar": lambda i, a: i["x"] * a["s"],
        "sum": lambda i, a: i["x"].sum(),
        "sum_dims": lambda i, a: i["x"].sum(a["dims"], keepdim=a["keepdim"]),
        "mean": lambda i, a: i["x"].mean(),
        "mean_dims": lambda i, a: i["x"].mean(a["dims"], keepdim=a["keepdim"]),
        "softmax": lambda i, a: F.softmax(i["x"], a["dim"]),
        "log_softmax": lambda i, a: F.log_softmax(i["x"], a["dim"]),
        "argmax": lambda i, a: i["x"].argmax(a["dim"], keepdim=a["keepdim"]),
        "topk": lambda i, a: torch.topk(i["x"], a["k"], a["dim"]),
        "eq": lambda i, a: i["a"] == i["b"],
        "exp": lambda i, a: i["x"].exp(),
        "log": lambda i, a: i["x"].log(),
        "sqrt": lambda i, a: i["x"].sqrt(),
        "sigmoid": lambda i, a: i["x"].sigmoid(),
        "tanh": lambda i, a: i["x"].tanh(),
        "cross_entropy": lambda i, a: F.cross_entropy(i["logits"], i["target"], weight=i.get("weight"),
                                                      reduction=a["reduction"], label_smoothing=a.get("label_smoothing", 0.0)),
        "reshape": lambda i, a: i["x"].reshape(a["shape"]),
        "flatten": lambda i, a: i["x"].flatten(a["start"], a["end"]),
        "permute": lambda i, a: i["x"].permute(a["dims"]),
        "transpose": lambda i, a: i["x"].transpose(a["d0"], a["d1"]),
        "narrow": lambda i, a: i["x"].narrow(a["dim"], a["start"], a["length"]),
        "index_select": lambda i, a: i["x"].index_select(a["dim"], i["index"]),
        "flip": lambda i, a: i["x"].flip(a["dims"]),
        "cat": lambda i, a: torch.cat([i["a"], i["b"]], a["dim"]),
        "stack": lambda i, a: torch.stack([i["a"], i["b"]], a["dim"]),
    }


def onednn_disagrees(op, inputs, args, w):
    """On libtorch 2.x, recomputes the gradients without oneDNN (the native
    kernels) and says how far oneDNN's are from them when they disagree:
    Debian's oneDNN 3.6 gets convolution backward wrong on some virtual CPUs,
    and then it is no reference. Returns "" when they agree."""
    if int(torch.__version__.split(".")[0]) < 2 or not torch.backends.mkldnn.is_available():
        return ""
    leaves = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in inputs.items()}
    torch.backends.mkldnn.enabled = False
    try:
        out = op(leaves, args)
        first = (list(out) if isinstance(out, (tuple, list)) else [out])[0]
        (first * w).sum().backward()
    finally:
        torch.backends.mkldnn.enabled = True
    for name, t in inputs.items():
        if t.grad is None or leaves[name].grad is None:
            continue
        diff = float((t.grad - leaves[name].grad).abs().max())
        scale = float(leaves[name].grad.abs().max()) or 1.0
        if diff > 1e-4 * scale:
            return "PyTorch %s's oneDNN gradient of %s is %.3g away from its native kernels' (largest %.3g)" % (torch.__version__, name, diff, scale)
    return ""


def main(d):
    torch.set_num_threads(1)
    ops = op_table()
    cases = json.load(open(os.path.join(d, "cases.json")))
    results = {}
    for case in cases:
        inputs = {}
        for inp in case["inputs"]:
            npdt, tdt = DTYPES[inp["dtype"]]
            arr = np.fromfile(os.path.join(d, inp["file"]), dtype=npdt).reshape(inp["shape"])
            t = torch.from_numpy(arr.copy())
            if inp.get("grad"):
                t.requires_grad_(True)
            inputs[inp["name"]] = t
        out = ops[case["op"]](inputs, case.get("args", {}))
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        res = {"outputs": [], "grads": {}}
        for k, o in enumerate(outs):
            fn = "%s.out%d.bin" % (case["name"], k)
            o.detach().contiguous().numpy().tofile(os.path.join(d, fn))
            res["outputs"].append({"file": fn, "shape": list(o.shape), "dtype": NAMES[o.dtype]})
        first = outs[0]
        if first.requires_grad:
            w = torch.cos(torch.arange(first.numel(), dtype=torch.float64)).to(first.dtype).reshape(first.shape)
            (first * w).sum().backward()
            for name, t in inputs.items():
                if t.requires_grad and t.grad is not None:
                    fn = "%s.grad.%s.bin" % (case["name"], name)
                    t.grad.contiguous().numpy().tofile(os.path.join(d, fn))
                    res["grads"][name] = fn
            why = onednn_disagrees(ops[case["op"]], inputs, case.get("args", {}), w)
            if why:
                res["unreliable"] = why
        results[case["name"]] = res
    json.dump(results, open(os.path.join(d, "results.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
