"""Reference values for the backbone operations' parity test.

Usage: parity_backbone.py DIR. Runs parity.py's protocol with its op table
extended by the operations of ResNet, MobileNetV3, EfficientNet, ConvNeXt
and ViT (activations, layer norm, stochastic depth, attention).
"""
import math
import sys

import torch
import torch.nn.functional as F
import torchvision.ops

import parity


def attention(q, k, v):
    """softmax(q kᵀ / sqrt(E)) v, written out."""
    return torch.softmax((q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1), dim=-1) @ v


def extra_ops():
    def depth(i, a):
        torch.manual_seed(a["seed"])
        return torchvision.ops.stochastic_depth(i["x"], a["p"], a["mode"], a["train"])

    return {
        "silu": lambda i, a: F.silu(i["x"]),
        "hardswish": lambda i, a: F.hardswish(i["x"]),
        "hardsigmoid": lambda i, a: F.hardsigmoid(i["x"]),
        "gelu": lambda i, a: F.gelu(i["x"]),
        "gelu_tanh": lambda i, a: F.gelu(i["x"], approximate="tanh"),
        "layer_norm": lambda i, a: F.layer_norm(i["x"], a["shape"], i.get("w"), i.get("b"), a["eps"]),
        "layer_norm_2d": lambda i, a: F.layer_norm(i["x"].permute(0, 2, 3, 1), i["x"].shape[1:2], i["w"], i["b"],
                                                   a["eps"]).permute(0, 3, 1, 2),
        "stochastic_depth": depth,
        "attention": lambda i, a: attention(i["q"], i["k"], i["v"]),
    }


base = parity.op_table
parity.op_table = lambda: {**base(), **extra_ops()}

if __name__ == "__main__":
    parity.main(sys.argv[1])
