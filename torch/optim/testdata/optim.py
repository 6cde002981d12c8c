"""Reference trajectories for fertorch's optimizer parity test.

Usage: optim.py DIR. Reads DIR/spec.json (parameter shapes, step count,
optimizer configurations) and the raw float32 files the Go test wrote
(initial parameters, one gradient per parameter per step); runs each
configuration with torch.optim and writes the parameters after every step to
DIR/<config>.traj.bin (step-major, parameters in order, float32).
"""
import json
import os
import sys

import numpy as np
import torch


def load(d, name, shape):
    return torch.from_numpy(np.fromfile(os.path.join(d, name), dtype=np.float32).reshape(shape).copy())


def main(d):
    torch.set_num_threads(1)
    spec = json.load(open(os.path.join(d, "spec.json")))
    shapes = spec["shapes"]
    steps = spec["steps"]
    for cfg in spec["configs"]:
        params = [load(d, "p%d.init.bin" % i, s).requires_grad_(True) for i, s in enumerate(shapes)]
        groups = [{"params": [p], "lr": lr} for p, lr in zip(params, cfg["lrs"])]
        kind = cfg["kind"]
        if kind == "adam":
            opt = torch.optim.Adam(groups, betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                                   weight_decay=cfg["weight_decay"], amsgrad=cfg["amsgrad"])
        elif kind == "adamw":
            opt = torch.optim.AdamW(groups, betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                                    weight_decay=cfg["weight_decay"], amsgrad=cfg["amsgrad"])
        elif kind == "sgd":
            opt = torch.optim.SGD(groups, lr=cfg["lrs"][0], momentum=cfg["momentum"], dampening=cfg["dampening"],
                                  weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])
        else:
            raise ValueError(kind)
        out = []
        for k in range(steps):
            opt.zero_grad()
            for i, (p, s) in enumerate(zip(params, shapes)):
                p.grad = load(d, "p%d.grad%d.bin" % (i, k), s)
            opt.step()
            for p in params:
                out.append(p.detach().numpy().copy().ravel())
        np.concatenate(out).astype(np.float32).tofile(os.path.join(d, cfg["name"] + ".traj.bin"))


if __name__ == "__main__":
    main(sys.argv[1])
