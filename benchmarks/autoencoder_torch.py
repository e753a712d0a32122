#!/usr/bin/python3
"""PyTorch reference of dtrain's autoencoder recipe (core/models/autoencoder.h, docs/AUTOENCODER.md).

The same convolutional autoencoder (torch's default initialization), trained with Adam on
the images of an HDF5 image file (docs/DATASETS.md; labels ignored), pixels p / 255 in
[0, 1] as inputs and targets:

    encoder: Conv2d(C, w, 3, 2, 1), ReLU, Conv2d(w, 2w, 3, 2, 1), ReLU, Flatten, Linear(., code)
    decoder: Linear(code, .), ReLU, view, ConvTranspose2d(2w, w, 4, 2, 1), ReLU, ConvTranspose2d(w, C, 4, 2, 1)
    loss:    bce(logits, x) or mse(sigmoid(logits), x), the mean over pixels

with optional denoising (Gaussian noise of std --noise-level, or a mask zeroing pixels
with probability --noise-level, on the inputs only). After training it evaluates on
--test (the held-out loss, the pixel MSE and PSNR = 10 log10(1 / MSE) over the whole set,
the inputs corrupted with their own seeded noise when denoising) and prints as the last
line one JSON object:

  {"impl": "pytorch", "steps", "loss", "test_loss", "test_mse", "psnr", "images_per_s", "seconds", ...}

From the repository root, with Debian's python3-torch and python3-h5py:

    /usr/bin/python3 benchmarks/autoencoder_torch.py --steps 2000 --threads 2

images_per_s counts the images of the timed steps (after --warmup steps) over their wall
time, batch assembly included, evaluation excluded. loss is the mean over the last
--log-interval steps.
"""
import argparse
import json
import math
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Autoencoder(nn.Module):
    def __init__(self, channels, height, width, w, code):
        super().__init__()
        self.shape = (2 * w, height // 4, width // 4)
        flat = 2 * w * (height // 4) * (width // 4)
        self.encoder = nn.Sequential(nn.Conv2d(channels, w, 3, 2, 1), nn.ReLU(), nn.Conv2d(w, 2 * w, 3, 2, 1),
                                     nn.ReLU(), nn.Flatten(), nn.Linear(flat, code))
        self.decoder = nn.Sequential(nn.Linear(code, flat), nn.ReLU())
        self.decoder_conv = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(),
                                          nn.ConvTranspose2d(w, channels, 4, 2, 1))

    def forward(self, x):
        h = self.decoder(self.encoder(x))
        return self.decoder_conv(h.reshape(h.shape[0], *self.shape))


def load_images(path, what):
    if not os.path.exists(path):
        sys.exit(f"autoencoder_torch: {what} {path} not found; run scripts/prepare-data.sh to make the data files")
    try:
        with h5py.File(path, "r") as f:
            if "images" not in f:
                sys.exit(f"autoencoder_torch: {path}: dataset /images missing; not an image file (docs/DATASETS.md)")
            images = f["images"][:]
    except OSError as e:
        sys.exit(f"autoencoder_torch: cannot read {path}: {e}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] % 4 or images.shape[2] % 4:
        sys.exit(f"autoencoder_torch: {path}: /images is {images.dtype} {images.shape}; expected uint8 (N, H, W, C) "
                 f"with H and W divisible by 4")
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W) uint8


def corrupt(x, kind, level, gen):
    if kind == "gaussian":
        return x + level * torch.randn(x.shape, generator=gen)
    if kind == "mask":
        return x * (torch.rand(x.shape, generator=gen) >= level).to(x.dtype)
    return x


def loss_of(logits, x, kind):
    return F.mse_loss(torch.sigmoid(logits), x) if kind == "mse" else F.binary_cross_entropy_with_logits(logits, x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", default="data/fashion_mnist_train.h5", help="image file (labels ignored)")
    p.add_argument("--test", default="data/fashion_mnist_test.h5", help="held-out image file; '' = no evaluation")
    p.add_argument("--code", type=int, default=32, help="autoencoder.code")
    p.add_argument("--width", type=int, default=32, help="autoencoder.width")
    p.add_argument("--loss", choices=["bce", "mse"], default="bce", help="autoencoder.loss")
    p.add_argument("--noise", choices=["none", "gaussian", "mask"], default="none", help="autoencoder.noise")
    p.add_argument("--noise-level", type=float, default=0.3, help="autoencoder.noise_level")
    p.add_argument("--batch-size", type=int, default=64, help="batch_size")
    p.add_argument("--eval-batch-size", type=int, default=0, help="eval.batch_size; 0 = --batch-size")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of initialization, data order and noise")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of images_per_s")
    p.add_argument("--log-interval", type=int, default=100, help="steps between progress lines")
    a = p.parse_args()
    for name in ("code", "width", "batch_size", "steps", "threads", "log_interval"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.warmup < 0 or a.warmup >= a.steps:
        p.error(f"--warmup must be in [0, --steps), got {a.warmup}")

    torch.set_num_threads(a.threads)
    images = load_images(a.train, "--train")
    n, channels, height, width = images.shape
    if n < a.batch_size:
        sys.exit(f"autoencoder_torch: {a.train} has {n} images, fewer than one batch of {a.batch_size}")
    torch.manual_seed(a.seed)
    model = Autoencoder(channels, height, width, a.width, a.code)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    print(f"autoencoder pytorch {torch.__version__}: {n} images {channels}x{height}x{width}, code {a.code}, width "
          f"{a.width}, loss {a.loss}, noise {a.noise}, {sum(q.numel() for q in model.parameters())} parameters, batch "
          f"{a.batch_size}, {a.steps} steps, {a.threads} threads", flush=True)

    order_gen = torch.Generator().manual_seed(a.seed)
    noise_gen = torch.Generator().manual_seed(a.seed + 1)
    per_epoch = n // a.batch_size
    order, pos = None, per_epoch
    timed_images, timed_s = 0, 0.0
    iv = dict(loss=0.0, steps=0, s=0.0)
    last = None
    start = time.perf_counter()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        if pos == per_epoch:
            order, pos = torch.randperm(n, generator=order_gen), 0
        idx = order[pos * a.batch_size:(pos + 1) * a.batch_size]
        pos += 1
        x = images[idx].float() / 255.0
        loss = loss_of(model(corrupt(x, a.noise, a.noise_level, noise_gen)), x, a.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss)
        dt = time.perf_counter() - t0
        if step > a.warmup:
            timed_images += a.batch_size
            timed_s += dt
        iv["loss"] += value
        iv["steps"] += 1
        iv["s"] += dt
        if step % a.log_interval == 0 or step == a.steps:
            last = iv["loss"] / iv["steps"]
            print(f"step {step}/{a.steps} | loss {last:.4f} | {iv['steps'] * a.batch_size / iv['s']:.0f} img/s",
                  flush=True)
            iv = dict(loss=0.0, steps=0, s=0.0)
    seconds = time.perf_counter() - start

    result = {"impl": "pytorch", "version": torch.__version__, "steps": a.steps, "loss": last,
              "images_per_s": timed_images / timed_s if timed_s > 0 else None, "timed_steps": a.steps - a.warmup,
              "seconds": seconds, "threads": a.threads}
    if a.test:
        test = load_images(a.test, "--test")
        eval_gen = torch.Generator().manual_seed(a.seed + 2)
        batch = a.eval_batch_size or a.batch_size
        model.eval()
        loss_sum = sq_sum = pixels = 0.0
        with torch.no_grad():
            for s in range(0, test.shape[0], batch):
                x = test[s:s + batch].float() / 255.0
                logits = model(corrupt(x, a.noise, a.noise_level, eval_gen))
                loss_sum += float(loss_of(logits, x, a.loss)) * x.shape[0]
                sq_sum += float(F.mse_loss(torch.sigmoid(logits), x, reduction="sum"))
                pixels += x.numel()
        mse = sq_sum / pixels
        result.update(test_loss=loss_sum / test.shape[0], test_mse=mse, psnr=10 * math.log10(1 / mse),
                      test_samples=test.shape[0])
        print(f"eval | held-out loss {result['test_loss']:.4f} | pixel MSE {mse:.5f} | PSNR {result['psnr']:.2f} dB "
              f"({test.shape[0]} images)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
