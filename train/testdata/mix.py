"""Reference for the Mixup/CutMix test: one SGD step of a linear model on a
batch mixed as timm's Mixup does in 'batch' mode (timm/data/mixup.py:
rand_bbox, cutmix_bbox_and_lam with correct_lam, _mix_batch; timm itself
is not installed, so its formulas are written out), from the draws Go
recorded, with the loss lam*L(y) + (1-lam)*L(y.flip(0)), L being
fertorch's class-weighted cross-entropy. Reads one JSON object from argv[1],
prints one."""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
shape = cfg["shape"]
x = torch.tensor(cfg["x"], dtype=torch.float32).reshape(shape)
y = torch.tensor(cfg["y"], dtype=torch.int64)
d = cfg["draw"]
lam = d["lambda"]
box = None
if d["mixed"]:
    if d["cutmix"]:
        # rand_bbox(img_shape, lam) with the recorded centre, then
        # cutmix_bbox_and_lam's correction.
        img_h, img_w = shape[-2:]
        ratio = np.sqrt(1 - lam)
        cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
        cy, cx = d["cy"], d["cx"]
        yl = int(np.clip(cy - cut_h // 2, 0, img_h))
        yh = int(np.clip(cy + cut_h // 2, 0, img_h))
        xl = int(np.clip(cx - cut_w // 2, 0, img_w))
        xh = int(np.clip(cx + cut_w // 2, 0, img_w))
        bbox_area = (yh - yl) * (xh - xl)
        lam = 1. - bbox_area / float(img_h * img_w)
        x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
        box = [yl, yh, xl, xh]
    else:
        x_flipped = x.flip(0).mul_(1. - lam)
        x.mul_(lam).add_(x_flipped)
else:
    lam = 1.

k = cfg["classes"]
weight = torch.tensor(cfg["W"], dtype=torch.float32).reshape(k, -1).requires_grad_()
bias = torch.tensor(cfg["b"], dtype=torch.float32).requires_grad_()
cw = None if cfg["class_weights"] is None else torch.tensor(cfg["class_weights"], dtype=torch.float32)
opt = torch.optim.SGD([weight, bias], lr=cfg["lr"])
logits = F.linear(x.flatten(1), weight, bias)


def loss_of(labels):
    s = cfg["smoothing"]
    if cw is not None and cfg["keras"]:
        # Keras' class_weight: sum(w_i * CE_i) / batch size.
        return F.cross_entropy(logits, labels, weight=cw, reduction="none", label_smoothing=s).mean()
    return F.cross_entropy(logits, labels, weight=cw, label_smoothing=s)


partner = y.flip(0)
loss = loss_of(y) if lam == 1. else lam * loss_of(y) + (1 - lam) * loss_of(partner)
opt.zero_grad()
loss.backward()
opt.step()
dominant = y if lam >= 0.5 else partner
correct = int((logits.argmax(1) == dominant).sum())
print(json.dumps({
    "mixed": x.flatten().tolist(), "lambda": lam, "box": box, "loss": float(loss),
    "correct": correct, "W": weight.detach().flatten().tolist(), "b": bias.detach().tolist(),
}))
