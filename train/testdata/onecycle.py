"""Rates and momenta of torch.optim.lr_scheduler.OneCycleLR stepped once per
batch, for the schedule test: prints one JSON object."""
import json
import sys

import torch

cfg = json.loads(sys.argv[1])
params = [torch.nn.Parameter(torch.zeros(1)) for _ in cfg["max_lr"]]
groups = [{"params": [p], "lr": lr} for p, lr in zip(params, cfg["max_lr"])]
if cfg["optimizer"] == "adam":
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999))
else:
    opt = torch.optim.SGD(groups, lr=cfg["max_lr"][0], momentum=0.9)
sched = torch.optim.lr_scheduler.OneCycleLR(
    opt, max_lr=cfg["max_lr"], epochs=cfg["epochs"], steps_per_epoch=cfg["steps_per_epoch"],
    pct_start=cfg["pct_start"], div_factor=cfg["div_factor"], final_div_factor=cfg["final_div_factor"],
    base_momentum=cfg["momentum"][0], max_momentum=cfg["momentum"][1])
lrs, moms = [], []
for _ in range(cfg["epochs"] * cfg["steps_per_epoch"]):
    g = opt.param_groups
    lrs.append([x["lr"] for x in g])
    moms.append(g[0]["betas"][0] if cfg["optimizer"] == "adam" else g[0]["momentum"])
    opt.step()
    sched.step()
print(json.dumps({"lr": lrs, "momentum": moms}))
