#!/usr/bin/env python3
"""PyTorch's image pipeline over a folder of images, as benchmarks/image_folder.sh measures it.

  image_folder_torch.py --root DIR [--workers 1] [--batch 64] [--batches 20] [--warmup 3]
                        [--image-size 224] [--no-augment]

torchvision.datasets.ImageFolder with RandomResizedCrop(image_size) + RandomHorizontalFlip()
+ ToTensor() (decoding through PIL), a DataLoader with `workers` worker processes,
shuffled, batch 64. Prints one JSON line {"impl": "torch", "workers": W, "images_per_s": x}
over `batches` batches after `warmup` batches (worker start-up excluded).
"""
import argparse
import json
import sys
import time

import torch
import torchvision
from torchvision import transforms


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--no-augment", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    if a.no_augment:
        t = transforms.Compose([transforms.Resize(a.image_size), transforms.CenterCrop(a.image_size),
                                transforms.ToTensor()])
    else:
        t = transforms.Compose([transforms.RandomResizedCrop(a.image_size), transforms.RandomHorizontalFlip(),
                                transforms.ToTensor()])
    ds = torchvision.datasets.ImageFolder(a.root, transform=t)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=True)
    need = a.warmup + a.batches
    if need * a.batch > len(ds):
        sys.exit(f"image_folder_torch.py: {len(ds)} images are fewer than {need} batches of {a.batch}")
    it = iter(dl)
    for _ in range(a.warmup):
        next(it)
    t0 = time.perf_counter()
    images = 0
    for _ in range(a.batches):
        x, _ = next(it)
        images += x.shape[0]
    s = time.perf_counter() - t0
    print(json.dumps({"impl": "torch", "workers": a.workers, "images_per_s": round(images / s, 1)}))


if __name__ == "__main__":
    main()
