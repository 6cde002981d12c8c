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


def load_inputs(d, case):
    inputs = {}
    for inp in case["inputs"]:
        npdt, tdt = DTYPES[inp["dtype"]]
        arr = np.fromfile(os.path.join(d, inp["file"]), dtype=npdt).reshape(inp["shape"])
        t = torch.from_numpy(arr.copy())
        if inp.get("grad"):
            t.requires_grad_(True)
        inputs[inp["name"]] = t
    return inputs


def compute(op, d, case):
    """Runs a case forward and, when its first output needs one, backward
    with the weights cos(i): returns the outputs and the inputs' gradients."""
    inputs = load_inputs(d, case)
    out = op(inputs, case.get("args", {}))
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    grads = {}
    first = outs[0]
    if first.requires_grad:
        w = torch.cos(torch.arange(first.numel(), dtype=torch.float64)).to(first.dtype).reshape(first.shape)
        (first * w).sum().backward()
        grads = {name: t.grad for name, t in inputs.items() if t.requires_grad and t.grad is not None}
    return [o.detach() for o in outs], grads


def onednn_disagrees(with_onednn, native):
    """Says how far oneDNN's results are from the native kernels' when they
    disagree (Debian's oneDNN 3.6 under PyTorch 2.6 gets some convolutions
    wrong on some AVX-512 CPUs), else ""."""
    pairs = [("output %d" % k, a, b) for k, (a, b) in enumerate(zip(with_onednn[0], native[0]))]
    pairs += [("gradient of " + name, g, native[1][name]) for name, g in with_onednn[1].items()]
    for what, a, b in pairs:
        if not a.is_floating_point():
            continue
        diff = float((a - b).abs().max()) if a.numel() else 0.0
        scale = float(b.abs().max()) if b.numel() else 0.0
        if diff > 1e-4 * (scale or 1.0):
            return "PyTorch %s's oneDNN %s is %.3g away from its native kernels' (largest %.3g)" % (
                torch.__version__, what, diff, scale)
    return ""


def main(d):
    torch.set_num_threads(1)
    ops = op_table()
    cases = json.load(open(os.path.join(d, "cases.json")))
    check_onednn = int(torch.__version__.split(".")[0]) >= 2 and torch.backends.mkldnn.is_available()
    results = {}
    for case in cases:
        op = ops[case["op"]]
        outs, grads = compute(op, d, case)
        res = {"outputs": [], "grads": {}}
        if check_onednn:
            # Where oneDNN disagrees with the native kernels, the native
            # kernels' results are the reference, and fertorch is compared
            # with its oneDNN off.
            torch.backends.mkldnn.enabled = False
            try:
                native = compute(op, d, case)
            finally:
                torch.backends.mkldnn.enabled = True
            why = onednn_disagrees((outs, grads), native)
            if why:
                outs, grads = native
                res["native"] = why
        for k, o in enumerate(outs):
            fn = "%s.out%d.bin" % (case["name"], k)
            o.contiguous().numpy().tofile(os.path.join(d, fn))
            res["outputs"].append({"file": fn, "shape": list(o.shape), "dtype": NAMES[o.dtype]})
        for name, g in grads.items():
            fn = "%s.grad.%s.bin" % (case["name"], name)
            g.contiguous().numpy().tofile(os.path.join(d, fn))
            res["grads"][name] = fn
        results[case["name"]] = res
    json.dump(results, open(os.path.join(d, "results.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
