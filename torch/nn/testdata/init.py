"""Default initialisations of torch.nn layers after torch.manual_seed(SEED).

Usage: init.py DIR SEED. Writes conv.weight.bin, conv.bias.bin,
linear.weight.bin, linear.bias.bin (float32) into DIR, creating
Conv2d(3, 8, 3) then Linear(20, 5) in that order.
"""
import os
import sys

import torch

d, seed = sys.argv[1], int(sys.argv[2])
torch.manual_seed(seed)
conv = torch.nn.Conv2d(3, 8, 3)
linear = torch.nn.Linear(20, 5)
for name, t in [("conv.weight", conv.weight), ("conv.bias", conv.bias),
                ("linear.weight", linear.weight), ("linear.bias", linear.bias)]:
    t.detach().numpy().tofile(os.path.join(d, name + ".bin"))
