#!/usr/bin/python3
# Writes tests/fixtures/golden_small_vgg.h5, the PyTorch reference for
# tests/core/test_golden_small_vgg.cpp.
#
# The model is a reduced-width version of the lecture's small VGG (models::small_vgg),
# so the fixture stays small: on 3x32x32 images,
#     conv8-conv8-pool-conv16-conv16-pool-conv32-pool-fc32-fc10
# with 3x3 convolutions (padding 1), ReLU after each convolution and after fc32, 2x2 max
# pools, flatten (32*4*4). No batch norm, no dropout. Names follow VGG: features.N,
# classifier.N.
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_small_vgg.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (all float tensors float32 unless noted):
#   attributes on /: format_version, generator, torch_version, layers (the channel list,
#                    0 = max pool), hidden, lr, momentum, weight_decay
#   /input (4, 3, 32, 32), /labels (4,) int64 in [0, 10)
#   /params/<state_dict name>        initial parameters
#   /logits (4, 10)                  forward of the initial model
#   /loss ()                         mean cross-entropy of /logits
#   /grads/<name>                    gradients of /loss
#   /step_losses (5,) float64        loss before each of five SGD steps (the first is /loss)
#   /final_params/<name>             parameters after the five steps
import os

import h5py
import torch
import torch.nn.functional as F
from torch import nn

FORMAT_VERSION = 1
STEPS = 5
BATCH = 4
LAYERS = [8, 8, 0, 16, 16, 0, 32, 0]
HIDDEN = 32
CLASSES = 10
SGD_OPTIONS = dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=False)


class SmallVgg(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c, size = [], 3, 32
        for v in LAYERS:
            if v == 0:
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(c * size * size, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def main():
    torch.manual_seed(2024)
    model = SmallVgg()
    x = torch.randn(BATCH, 3, 32, 32)
    labels = torch.randint(0, CLASSES, (BATCH,), dtype=torch.int64)

    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}

    opt = torch.optim.SGD(model.parameters(), **SGD_OPTIONS)
    step_losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        step_loss = F.cross_entropy(model(x), labels)
        step_loss.backward()
        step_losses.append(step_loss.item())
        opt.step()
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden_small_vgg.h5")
    with h5py.File(out, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_small_vgg.py"
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["layers"] = LAYERS
        f.attrs["hidden"] = HIDDEN
        for k in ("lr", "momentum", "weight_decay"):
            f.attrs[k] = SGD_OPTIONS[k]
        f["input"] = x.numpy()
        f["labels"] = labels.numpy()
        for k, v in initial.items():
            f[f"params/{k}"] = v.numpy()
        f["logits"] = logits.detach().numpy()
        f["loss"] = loss.detach().numpy()  # shape ()
        for k, v in grads.items():
            f[f"grads/{k}"] = v.numpy()
        f["step_losses"] = torch.tensor(step_losses, dtype=torch.float64).numpy()
        for k, v in final.items():
            f[f"final_params/{k}"] = v.numpy()
    size = os.path.getsize(out)
    print(f"wrote {os.path.normpath(out)} ({size} bytes): loss {loss.item():.6f}, step losses {step_losses}")


if __name__ == "__main__":
    main()
