"""Reference for the augmentation parity tests: a replica of what Keras'
ImageDataGenerator does to one image for given transform parameters
(keras-preprocessing 1.1.2 "legacy" conventions, or the later "fixed" ones),
with scipy.ndimage.affine_transform doing the resampling, one channel at a
time, as Keras does.

usage: keras_ref.py DIR
DIR/cases.json lists cases; each names a raw uint8 HWC input file, its
shape, the parameters, and the output file to write (float32 little-endian
HWC, after flip and rescale by float32(1/255)).
"""
import json
import os
import sys

import numpy as np
from scipy import ndimage


def matrix(p, h, w):
    """The 3x3 pull matrix Keras builds, or None when every factor is the
    identity. Factors are multiplied left to right with np.dot."""
    parts = []
    if p["theta"] != 0:
        t = np.deg2rad(p["theta"])
        parts.append(np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]))
    if p["tx"] != 0 or p["ty"] != 0:
        parts.append(np.array([[1, 0, p["tx"]], [0, 1, p["ty"]], [0, 0, 1]]))
    if p["shear"] != 0:
        s = np.deg2rad(p["shear"])
        parts.append(np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]))
    if p["zx"] != 1 or p["zy"] != 1:
        parts.append(np.array([[p["zx"], 0, 0], [0, p["zy"], 0], [0, 0, 1]]))
    if not parts:
        return None
    m = parts[0]
    for q in parts[1:]:
        m = np.dot(m, q)
    shift = 0.5 if p["semantics"] == "legacy" else -0.5
    ox, oy = float(h) / 2 + shift, float(w) / 2 + shift
    off = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]])
    back = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    m = np.dot(np.dot(off, m), back)
    if p["semantics"] == "fixed":
        m[:, [0, 1]] = m[:, [1, 0]]
        m[[0, 1]] = m[[1, 0]]
    return m


def augment(x, p):
    h, w = x.shape[0], x.shape[1]
    m = matrix(p, h, w)
    if m is not None:
        chans = [
            ndimage.affine_transform(x[:, :, k], m[:2, :2], m[:2, 2], order=1,
                                     mode=p["fill_mode"], cval=p["cval"])
            for k in range(x.shape[2])
        ]
        x = np.stack(chans, axis=2)
    if p["flip_h"]:
        x = x[:, ::-1, :]
    if p["flip_v"]:
        x = x[::-1, :, :]
    return np.ascontiguousarray(x) * np.float32(1.0 / 255.0)


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "cases.json")) as f:
        cases = json.load(f)
    for c in cases:
        raw = np.fromfile(os.path.join(d, c["input"]), dtype=np.uint8)
        x = raw.reshape(c["h"], c["w"], c["c"]).astype(np.float32)
        if c["c"] == 1:
            x = np.repeat(x, 3, axis=2)  # PIL convert("RGB") of an L image
        y = augment(x, c).astype("<f4")
        y.tofile(os.path.join(d, c["out"]))
    print(len(cases))


if __name__ == "__main__":
    main()
