#!/usr/bin/python3
"""PyTorch reference of dtrain's DCGAN recipe (core/models/dcgan.h, docs/GAN.md).

Trains the DCGAN generator and discriminator, laid out and initialized as dtrain's
(torch's default initialization, then the DCGAN paper's: N(0, 0.02) convolution weights,
N(1, 0.02) batch-norm weights, zero batch-norm biases; G first, then D), on the images of
an HDF5 image file (docs/DATASETS.md; labels ignored), with pixels mapped to
2 * p / 255 - 1. Each step is dtrain's GanStep (distributed/gan.h):

    fake = G(z), z ~ N(0, 1)
    loss_d = bce(D(real), 1) + bce(D(fake.detach()), 0); Adam step of D
    loss_g = bce(D(fake), 1) through the updated D (its parameters frozen); Adam step of G

with Adam(lr 2e-4, betas (0.5, 0.999), eps 1e-8) for both networks. After training it
writes --export-n samples of G (eval mode, noise from --export-seed) as an image-only
dataset file for `dtrain score`, and prints as the last line one JSON object:

  {"impl": "pytorch", "steps", "loss_d", "loss_g", "images_per_s", "seconds", "export", ...}

From the repository root, with Debian's python3-torch and python3-h5py:

    /usr/bin/python3 benchmarks/dcgan_torch.py --steps 2000 --threads 2 \\
        --export runs/compare_recipes/dcgan_pytorch_samples.h5

images_per_s counts the real images of the timed steps (after --warmup steps) over their
wall time, batch assembly included, export excluded. loss_d and loss_g are the means over
the last --log-interval steps.
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def generator(size, channels, z_dim, g, bn):
    k = 4 if size == 32 else 3
    layers = []
    for cin, cout, kernel, stride, pad in [(z_dim, 4 * g, 4, 1, 0), (4 * g, 2 * g, k, 2, 1), (2 * g, g, 4, 2, 1)]:
        layers.append(nn.ConvTranspose2d(cin, cout, kernel, stride, pad, bias=False))
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU())
    layers += [nn.ConvTranspose2d(g, channels, 4, 2, 1, bias=False), nn.Tanh()]
    m = nn.Module()
    m.main = nn.Sequential(*layers)
    return m


def discriminator(size, channels, d, bn):
    k = 4 if size == 32 else 3
    layers = []
    for cin, cout, kernel, use_bn in [(channels, d, 4, False), (d, 2 * d, 4, bn), (2 * d, 4 * d, k, bn)]:
        layers.append(nn.Conv2d(cin, cout, kernel, 2, 1, bias=False))
        if use_bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2))
    layers.append(nn.Conv2d(4 * d, 1, 4, 1, 0, bias=False))
    m = nn.Module()
    m.main = nn.Sequential(*layers)
    return m


def weights_init(m):
    """dtrain's dcgan_init (the DCGAN example's weights_init), in parameter order."""
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(mod.weight, 0.0, 0.02)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.normal_(mod.weight, 1.0, 0.02)
            nn.init.zeros_(mod.bias)


def load_images(path):
    if not os.path.exists(path):
        sys.exit(f"dcgan_torch: {path} not found; run scripts/prepare-data.sh to make the data files")
    try:
        with h5py.File(path, "r") as f:
            if "images" not in f:
                sys.exit(f"dcgan_torch: {path}: dataset /images missing; not an image file (docs/DATASETS.md)")
            images = f["images"][:]
    except OSError as e:
        sys.exit(f"dcgan_torch: cannot read {path}: {e}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2] or \
            images.shape[1] not in (28, 32):
        sys.exit(f"dcgan_torch: {path}: /images is {images.dtype} {images.shape}; expected uint8 (N, S, S, C) "
                 f"with S = 28 or 32")
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, C, S, S) uint8


def export(G, path, n, z_dim, seed, chunk_rows=64, batch=500):
    """n samples of G (eval mode) as an image-only dataset file: /images uint8 (N, S, S, C)."""
    G.eval()
    noise = torch.Generator().manual_seed(seed)
    parts = []
    with torch.no_grad():
        for start in range(0, n, batch):
            z = torch.randn(min(batch, n - start), z_dim, 1, 1, generator=noise)
            x = G.main(z)
            parts.append(torch.clamp(torch.round((x + 1) * 127.5), 0, 255).to(torch.uint8))
    G.train()
    pixels = torch.cat(parts).permute(0, 2, 3, 1).contiguous().numpy()  # (N, S, S, C)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    scaled = pixels.astype(np.float64) / 255.0
    std = scaled.std(axis=(0, 1, 2))
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=pixels, chunks=(min(chunk_rows, n),) + pixels.shape[1:])
        f.attrs["format"] = "dtrain image dataset v1"
        f.attrs["source"] = "benchmarks/dcgan_torch.py (samples of G)"
        f.attrs["mean"] = scaled.mean(axis=(0, 1, 2))
        f.attrs["std"] = np.where(std > 0, std, 1.0)  # the schema wants std > 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", default="data/fashion_mnist_train.h5", help="image file (labels ignored)")
    p.add_argument("--z-dim", type=int, default=100, help="model.z_dim (nz)")
    p.add_argument("--g-channels", type=int, default=64, help="model.g_channels (ngf)")
    p.add_argument("--d-channels", type=int, default=64, help="model.d_channels (ndf)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True, help="model.batch_norm")
    p.add_argument("--batch-size", type=int, default=64, help="batch_size")
    p.add_argument("--steps", type=int, default=1000, help="steps (one D and one G update each)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate of both networks")
    p.add_argument("--seed", type=int, default=0, help="seed of initialization, data order and training noise")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--memory-format", choices=["contiguous", "channels_last"], default="contiguous",
                   help="layout of the networks and batches (a speed knob; the computation is the same)")
    p.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True) (a speed knob; dtrain does not flush denormals)")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of images_per_s")
    p.add_argument("--log-interval", type=int, default=50, help="steps between progress lines")
    p.add_argument("--export", default="", help="HDF5 file for the samples of G; '' = none")
    p.add_argument("--export-n", type=int, default=10000, help="samples in --export (gan.export_n)")
    p.add_argument("--export-seed", type=int, default=1234, help="seed of the export noise")
    a = p.parse_args()
    for name in ("z_dim", "g_channels", "d_channels", "batch_size", "steps", "threads", "log_interval", "export_n"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.warmup < 0 or a.warmup >= a.steps:
        p.error(f"--warmup must be in [0, --steps), got {a.warmup}")

    torch.set_num_threads(a.threads)
    if a.flush_denormal and not torch.set_flush_denormal(True):
        sys.exit("dcgan_torch: --flush-denormal: this CPU does not support flushing denormals")
    images = load_images(a.train)
    n, channels, size = images.shape[0], images.shape[1], images.shape[2]
    if n < a.batch_size:
        sys.exit(f"dcgan_torch: {a.train} has {n} images, fewer than one batch of {a.batch_size}")
    torch.manual_seed(a.seed)
    G = generator(size, channels, a.z_dim, a.g_channels, a.batch_norm)
    weights_init(G)
    D = discriminator(size, channels, a.d_channels, a.batch_norm)
    weights_init(D)
    fmt = torch.channels_last if a.memory_format == "channels_last" else torch.contiguous_format
    G.to(memory_format=fmt)
    D.to(memory_format=fmt)
    G.train()
    D.train()
    opt_g = torch.optim.Adam(G.parameters(), lr=a.lr, betas=(0.5, 0.999), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=a.lr, betas=(0.5, 0.999), eps=1e-8)
    print(f"dcgan pytorch {torch.__version__}: {n} images {channels}x{size}x{size}, z {a.z_dim}, ngf {a.g_channels}, "
          f"ndf {a.d_channels}, batch norm {'on' if a.batch_norm else 'off'}, G {sum(q.numel() for q in G.parameters())}"
          f" / D {sum(q.numel() for q in D.parameters())} parameters, batch {a.batch_size}, {a.steps} steps, "
          f"{a.threads} threads, {a.memory_format}", flush=True)

    order_gen = torch.Generator().manual_seed(a.seed)
    noise_gen = torch.Generator().manual_seed(a.seed + 1)
    ones, zeros = torch.ones(a.batch_size), torch.zeros(a.batch_size)
    d = lambda x: D.main(x).reshape(-1)
    per_epoch = n // a.batch_size
    order, pos = None, per_epoch
    timed_images, timed_s = 0, 0.0
    iv = dict(loss_d=0.0, loss_g=0.0, steps=0, s=0.0)
    last = {}
    start = time.perf_counter()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        if pos == per_epoch:
            order, pos = torch.randperm(n, generator=order_gen), 0
        idx = order[pos * a.batch_size:(pos + 1) * a.batch_size]
        pos += 1
        real = (images[idx].float() * (2.0 / 255.0) - 1.0).contiguous(memory_format=fmt)
        z = torch.randn(a.batch_size, a.z_dim, 1, 1, generator=noise_gen).contiguous(memory_format=fmt)

        fake = G.main(z)
        loss_d = F.binary_cross_entropy_with_logits(d(real), ones) + \
            F.binary_cross_entropy_with_logits(d(fake.detach()), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        for q in D.parameters():
            q.requires_grad_(False)
        loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for q in D.parameters():
            q.requires_grad_(True)
        ld, lg = float(loss_d), float(loss_g)
        dt = time.perf_counter() - t0

        if step > a.warmup:
            timed_images += a.batch_size
            timed_s += dt
        iv["loss_d"] += ld
        iv["loss_g"] += lg
        iv["steps"] += 1
        iv["s"] += dt
        if step % a.log_interval == 0 or step == a.steps:
            k = iv["steps"]
            last = {"loss_d": iv["loss_d"] / k, "loss_g": iv["loss_g"] / k}
            print(f"step {step}/{a.steps} | loss_d {last['loss_d']:.4f} | loss_g {last['loss_g']:.4f} | "
                  f"{k * a.batch_size / iv['s']:.0f} img/s", flush=True)
            iv = dict(loss_d=0.0, loss_g=0.0, steps=0, s=0.0)
    seconds = time.perf_counter() - start
    if a.export:
        t_export = time.perf_counter()
        export(G, a.export, a.export_n, a.z_dim, a.export_seed)
        print(f"export: {a.export} ({a.export_n} samples of G in eval mode, {time.perf_counter() - t_export:.1f} s)",
              flush=True)
    print(json.dumps({"impl": "pytorch", "version": torch.__version__, "steps": a.steps, "loss_d": last["loss_d"],
                      "loss_g": last["loss_g"], "images_per_s": timed_images / timed_s if timed_s > 0 else None,
                      "timed_steps": a.steps - a.warmup, "seconds": seconds, "threads": a.threads,
                      "memory_format": a.memory_format,
                      "flush_denormal": a.flush_denormal, "export": a.export or None}))


if __name__ == "__main__":
    main()
