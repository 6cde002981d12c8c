"""PyTorch peer of `fer train` for make bench-train.

Usage: pytorch_train.py LAYOUT SIZE BATCH EPOCHS WORKERS THREADS

The same training as fertorch's defaults at a given size: torchvision's
VGG16 features with all but Keras' last 4 base layers frozen, the seed's
head (Flatten, Linear 1024, ReLU, Dropout 0.5, Linear classes), Adam
(lr 1e-3, eps 1e-7), class-weighted cross-entropy with Keras' normalisation,
Keras-like augmentation done by torchvision (RandomAffine: rotation 20,
translate 0.1, scale 0.9-1.1, shear 0.01, bilinear, fill 0; horizontal
flip) on images resized with NEAREST, ImageNet normalisation, read by an
ImageFolder through a DataLoader with worker processes. It prints one line
per epoch with the training images per second (time of the training loop,
data loading included).
"""
import sys
import time

import torch
import torchvision
from torchvision import transforms as T


def main():
    layout, size, batch, epochs, workers, threads = sys.argv[1], *map(int, sys.argv[2:7])
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    tf = T.Compose([
        T.Resize((size, size), interpolation=T.InterpolationMode.NEAREST),
        T.RandomAffine(20, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=0.01,
                       interpolation=T.InterpolationMode.BILINEAR, fill=0),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = torchvision.datasets.ImageFolder(layout + "/train", tf, loader=lambda p: torchvision.datasets.folder.pil_loader(p))
    counts = torch.bincount(torch.tensor(ds.targets), minlength=len(ds.classes)).float()
    weights = torch.clamp(counts.max() / counts.clamp(min=1), max=3.0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    vgg = torchvision.models.vgg16()
    # Keras' last 4 base layers: block5's three convolutions (features.24, 26, 28) and its pool.
    for name, p in vgg.features.named_parameters():
        p.requires_grad = int(name.split(".")[0]) >= 24
    side = size >> 5
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(512 * side * side, 1024), torch.nn.ReLU(),
                               torch.nn.Dropout(0.5), torch.nn.Linear(1024, len(ds.classes)))
    model = torch.nn.Sequential(vgg.features, head)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, eps=1e-7)
    model.train()
    for epoch in range(epochs):
        start = time.perf_counter()
        n = 0
        for x, y in loader:
            opt.zero_grad()
            loss = (torch.nn.functional.cross_entropy(model(x), y, reduction="none") * weights[y]).mean()
            loss.backward()
            opt.step()
            loss.item()
            n += len(y)
        secs = time.perf_counter() - start
        print("epoch %d: %d images in %.2fs, train %.2f img/s" % (epoch + 1, n, secs, n / secs), flush=True)


if __name__ == "__main__":
    main()
