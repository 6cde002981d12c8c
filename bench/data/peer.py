"""Python peers for `make bench-data`: the same augmentation done the way
Keras' ImageDataGenerator does it, and with torchvision, on the same images.

usage: peer.py LIST PROCS
LIST is a file with one image path per line. PROCS worker processes start,
import their libraries and (for torchvision) decode their share of the
images once. Then each stdin line "KIND N SECONDS" (KIND keras or
torchvision) runs N workers for about SECONDS and prints "samples seconds"
(the wall time from the first worker's start to the last one's end).

keras:       per sample, as flow_from_directory + ImageDataGenerator do it:
             read the file, PIL open, convert("RGB"), NEAREST resize to
             224x224, float32 array, draw the 8 parameters with numpy,
             compose the matrix, scipy.ndimage.affine_transform (order=1,
             constant) per channel, flip, rescale, store in a batch array.
torchvision: images decoded and resized to 224x224 once beforehand (as
             fertorch's cache does), then per sample RandomAffine(20,
             translate=(0.1, 0.1), scale=(0.9, 1.1), shear=0.01, bilinear)
             + RandomHorizontalFlip + ToTensor, stored in a batch tensor.
"""
import io
import multiprocessing as mp
import sys
import time

PRELOAD = 768  # images each torchvision worker keeps decoded


def load(path):
    from PIL import Image
    with open(path, "rb") as f:
        img = Image.open(io.BytesIO(f.read()))
        img.load()
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (224, 224):
        img = img.resize((224, 224), Image.NEAREST)
    return img


def keras_matrix(np, theta, tx, ty, shear, zx, zy, h, w):
    t = np.deg2rad(theta)
    m = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    m = np.dot(m, np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]]))
    s = np.deg2rad(shear)
    m = np.dot(m, np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]))
    m = np.dot(m, np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]]))
    ox, oy = h / 2 + 0.5, w / 2 + 0.5
    off = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]])
    back = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    return np.dot(np.dot(off, m), back)


def worker(paths, offset, step, cmds, out):
    import numpy as np
    import torch
    import torchvision.transforms as T
    from scipy import ndimage
    torch.set_num_threads(1)
    torch.manual_seed(1234 + offset)
    rng = np.random.RandomState(1234 + offset)
    mine = paths[offset::step]
    imgs = [load(p) for p in mine[:PRELOAD]]
    tf = T.Compose([
        T.RandomAffine(20, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=0.01,
                       interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
    ])
    kbatch = np.zeros((64, 224, 224, 3), np.float32)
    tbatch = torch.empty(64, 3, 224, 224)
    out.put("ready")
    pos = 0
    while True:
        cmd = cmds.get()
        if cmd is None:
            return
        kind, seconds = cmd
        t0 = time.perf_counter()
        n = 0
        while True:
            if kind == "keras":
                x = np.asarray(load(mine[pos % len(mine)]), dtype=np.float32)
                theta = rng.uniform(-20, 20)
                tx = rng.uniform(-0.1, 0.1) * 224
                ty = rng.uniform(-0.1, 0.1) * 224
                shear = rng.uniform(-0.01, 0.01)
                zx, zy = rng.uniform(0.9, 1.1, 2)
                flip = rng.random() < 0.5
                rng.random()
                m = keras_matrix(np, theta, tx, ty, shear, zx, zy, 224, 224)
                x = np.stack([ndimage.affine_transform(x[:, :, k], m[:2, :2], m[:2, 2], order=1,
                                                       mode="constant", cval=0.0) for k in range(3)], axis=2)
                if flip:
                    x = x[:, ::-1, :]
                x *= np.float32(1.0 / 255.0)
                kbatch[n % 64] = x
            else:
                tbatch[n % 64] = tf(imgs[pos % len(imgs)])
            n += 1
            pos += 1
            if n % 4 == 0 and time.perf_counter() - t0 > seconds:
                break
        out.put((t0, time.perf_counter(), n))


def main():
    listfile, procs = sys.argv[1], int(sys.argv[2])
    with open(listfile) as f:
        paths = [l.rstrip("\n") for l in f if l.strip()]
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    cmds = [ctx.Queue() for _ in range(procs)]
    ps = [ctx.Process(target=worker, args=(paths, k, procs, cmds[k], out)) for k in range(procs)]
    for p in ps:
        p.start()
    for _ in ps:
        out.get()
    print("ready", flush=True)
    for line in sys.stdin:
        kind, n, seconds = line.split()
        n, seconds = int(n), float(seconds)
        for k in range(n):
            cmds[k].put((kind, seconds))
        res = [out.get() for _ in range(n)]
        start = min(r[0] for r in res)
        end = max(r[1] for r in res)
        print(sum(r[2] for r in res), end - start, flush=True)
    for q in cmds:
        q.put(None)
    for p in ps:
        p.join()


if __name__ == "__main__":
    main()
