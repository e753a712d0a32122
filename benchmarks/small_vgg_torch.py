#!/usr/bin/python3
"""PyTorch baseline for the small VGG training step (the same model, batch and optimizer
as benchmarks/bench_small_vgg.cpp). Prints one JSON line: per-step images/s.

    /usr/bin/python3 benchmarks/small_vgg_torch.py --threads 2 --steps 10 --warmup 3
"""
import argparse
import json
import time

import torch
import torch.nn as nn


def small_vgg(classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256 * 4 * 4, 512), nn.ReLU(),
        nn.Linear(512, classes),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = small_vgg()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch,))
    rates = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            rates.append(a.batch / dt)
    print(json.dumps({"impl": "pytorch", "version": torch.__version__, "threads": a.threads,
                      "images_per_s": rates, "final_loss": float(loss)}))


if __name__ == "__main__":
    main()
