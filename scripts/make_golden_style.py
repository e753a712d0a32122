#!/usr/bin/python3
# Writes tests/fixtures/golden_style.h5, the PyTorch reference for the neural style
# transfer losses (core/models/style_transfer.h; tests/core/test_golden_style.cpp).
#
# A small seeded VGG-style feature extractor stands in for VGG16 (same kinds of layers,
# a few channels, so the fixture stays a few kB):
#     0 conv(3->4) 1 relu 2 conv(4->4) 3 relu 4 maxpool 5 conv(4->6) 6 relu 7 maxpool
#     8 conv(6->8) 9 relu
# (3x3 convolutions with padding 1, 2x2 max pools, torch.nn's default initialization).
# The losses are those of dtrain style (and of PyTorch's neural style tutorial):
#     normalise  n(x) = (x - mean) / std per channel (ImageNet's mean and std)
#     gram       G(F) = F F^T / (C H W) with F = features reshaped (N, C, H*W)
#     content    mean((F_c(n(x)) - F_c(n(content)))^2)
#     style_l    mean((G(F_l(n(x))) - G(F_l(n(style))))^2)
#     total      content_weight * content + sum_l style_weight_l * style_l
# with the content at layer 5 and style at layers 0, 3, 6, 9; the style image is smaller
# than the content image (Gram matrices do not depend on the size).
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_style.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (float32 unless noted):
#   attributes on /: format_version, generator, torch_version, content_layer (int),
#                    style_layers (float64 list), style_weights, content_weight, mean, std,
#                    adam_lr
#   /params/<state_dict name>   the extractor's parameters ("0.weight", ...)
#   /content (1, 3, 16, 16), /style (1, 3, 12, 12), /image (1, 3, 16, 16), all in [0, 1]
#   /content_loss (), /style_losses (4,), /total ()   the losses at /image
#   /grad (1, 3, 16, 16)         d total / d image
#   /grams/<l> (1, C, C)         G(F_l(n(image))) per style layer
#   /adam_losses (5,) float64    total before each of five Adam steps on the image
#   /adam_image (1, 3, 16, 16)   the image after them
import os

import h5py
import numpy as np
import torch
from torch import nn

FORMAT_VERSION = 1
CONTENT_LAYER = 5
STYLE_LAYERS = [0, 3, 6, 9]
STYLE_WEIGHTS = [1e3, 1e5, 1e6, 1e7]
CONTENT_WEIGHT = 1.0
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
ADAM_LR = 0.01
STEPS = 5


def features():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())


def gram(f):
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def activations(net, x):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    h = (x - mean) / std
    out = {}
    for i, layer in enumerate(net):
        h = layer(h)
        out[i] = h
    return out


def losses(net, x, content_target, gram_targets):
    a = activations(net, x)
    content = torch.mean((a[CONTENT_LAYER] - content_target) ** 2)
    style = [torch.mean((gram(a[l]) - g) ** 2) for l, g in zip(STYLE_LAYERS, gram_targets)]
    total = CONTENT_WEIGHT * content + sum(w * s for w, s in zip(STYLE_WEIGHTS, style))
    return total, content, style, [gram(a[l]) for l in STYLE_LAYERS]


def main():
    torch.manual_seed(0)
    net = features()
    content = torch.rand(1, 3, 16, 16)
    style = torch.rand(1, 3, 12, 12)
    image = (content + 0.1 * torch.randn(1, 3, 16, 16)).clamp(0, 1)
    with torch.no_grad():
        content_target = activations(net, content)[CONTENT_LAYER]
        sa = activations(net, style)
        gram_targets = [gram(sa[l]) for l in STYLE_LAYERS]

    x = image.clone().requires_grad_(True)
    total, content_loss, style_losses, grams = losses(net, x, content_target, gram_targets)
    total.backward()
    grad = x.grad.clone()

    y = image.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=ADAM_LR)
    adam_losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        t = losses(net, y, content_target, gram_targets)[0]
        t.backward()
        adam_losses.append(t.item())
        opt.step()

    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden_style.h5")
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_style.py"
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["content_layer"] = CONTENT_LAYER
        f.attrs["style_layers"] = np.array(STYLE_LAYERS, dtype=np.float64)
        f.attrs["style_weights"] = np.array(STYLE_WEIGHTS, dtype=np.float64)
        f.attrs["content_weight"] = CONTENT_WEIGHT
        f.attrs["mean"] = np.array(MEAN, dtype=np.float64)
        f.attrs["std"] = np.array(STD, dtype=np.float64)
        f.attrs["adam_lr"] = ADAM_LR
        for name, p in net.state_dict().items():
            f["params/" + name] = p.numpy()
        f["content"] = content.numpy()
        f["style"] = style.numpy()
        f["image"] = image.numpy()
        f["content_loss"] = np.float32(content_loss.item())
        f["style_losses"] = np.array([s.item() for s in style_losses], dtype=np.float32)
        f["total"] = np.float32(total.item())
        f["grad"] = grad.numpy()
        for l, g in zip(STYLE_LAYERS, grams):
            f[f"grams/{l}"] = g.detach().numpy()
        f["adam_losses"] = np.array(adam_losses, dtype=np.float64)
        f["adam_image"] = y.detach().numpy()
    print(f"total {total.item():.6g} content {content_loss.item():.6g} style {[s.item() for s in style_losses]}")
    print("adam losses", adam_losses)
    print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
