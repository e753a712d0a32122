#!/usr/bin/python3
# Writes tests/fixtures/golden_autoencoder.h5, the PyTorch reference for
# tests/core/test_golden_autoencoder.cpp.
#
# The model is core/models/autoencoder.h's ConvAutoencoder written with torch modules whose
# attribute names are dtrain's, so the state_dict names map one to one:
#   encoder      = Sequential(Conv2d(C, w, 3, 2, 1), ReLU, Conv2d(w, 2w, 3, 2, 1), ReLU,
#                             Flatten, Linear(2w H/4 W/4, code))
#   decoder      = Sequential(Linear(code, 2w H/4 W/4), ReLU)   then a view (N, 2w, H/4, W/4)
#   decoder_conv = Sequential(ConvTranspose2d(2w, w, 4, 2, 1), ReLU, ConvTranspose2d(w, C, 4, 2, 1))
# giving logits (N, C, H, W); pixels are sigmoid(logits). The loss is the autoencoder
# recipe's (launcher/train/recipes/autoencoder.cpp) against the clean pixels in [0, 1], the
# mean over pixels: "bce" = binary_cross_entropy_with_logits(logits, x), "mse" =
# mse_loss(sigmoid(logits), x). No denoising noise (the input is the target).
# Sizes: 1x8x8 images, width 3, code 4, a batch of 3, torch's default initialization.
# Two variants, one group each: "bce" and "mse", from the same initial parameters and batch.
# Each runs two Adam steps (lr 1e-3 as configs/autoencoder_fashion_mnist.toml, betas
# (0.9, 0.999), eps 1e-8) on the same batch. Everything is float64, so the test compares
# tightly.
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_autoencoder.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (all float tensors float64):
#   attributes on /: format_version, generator, torch_version, channels, height, width,
#                    width_mult, code, lr, beta1, beta2, eps (Adam)
#   /input (3, 1, 8, 8)            the batch, uniform in [0, 1) (also the target)
#   /params/<state_dict name>      initial parameters (shared by both variants)
#   /codes (3, 4)                  encoder output of the initial model
#   /logits (3, 1, 8, 8)           forward of the initial model
#   per variant group /<v> (attribute loss = "bce" or "mse"):
#   /<v>/loss ()                   the loss of the initial model
#   /<v>/grads/<name>              gradients of that loss
#   /<v>/step_losses (2,)          the loss before each of the two Adam steps ([0] = loss)
#   /<v>/final_params/<name>       parameters after the two Adam steps
#   /<v>/loss_after ()             the loss of the final model on the same batch
import os

import h5py
import torch
import torch.nn.functional as F
from torch import nn

FORMAT_VERSION = 1
BATCH, CHANNELS, HEIGHT, WIDTH, WIDTH_MULT, CODE = 3, 1, 8, 8, 3, 4
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
STEPS = 2
LOSSES = ["bce", "mse"]


class ConvAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        w, flat = WIDTH_MULT, 2 * WIDTH_MULT * (HEIGHT // 4) * (WIDTH // 4)
        self.encoder = nn.Sequential(nn.Conv2d(CHANNELS, w, 3, 2, 1), nn.ReLU(), nn.Conv2d(w, 2 * w, 3, 2, 1),
                                     nn.ReLU(), nn.Flatten(), nn.Linear(flat, CODE))
        self.decoder = nn.Sequential(nn.Linear(CODE, flat), nn.ReLU())
        self.decoder_conv = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(),
                                          nn.ConvTranspose2d(w, CHANNELS, 4, 2, 1))

    def forward(self, x):
        h = self.decoder(self.encoder(x))
        return self.decoder_conv(h.reshape(h.shape[0], 2 * WIDTH_MULT, HEIGHT // 4, WIDTH // 4))


def pixel_loss(kind, logits, clean):
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(logits), clean)
    return F.binary_cross_entropy_with_logits(logits, clean)


def variant(grp, kind, initial, x):
    model = ConvAutoencoder()
    model.load_state_dict(initial)
    opt = torch.optim.Adam(model.parameters(), **ADAM)
    step_losses = []
    for step in range(STEPS):
        opt.zero_grad()
        logits = model(x)
        loss = pixel_loss(kind, logits, x)
        loss.backward()
        if step == 0:
            grp["loss"] = loss.detach().numpy()
            for k, p in model.named_parameters():
                grp[f"grads/{k}"] = p.grad.detach().numpy()
        step_losses.append(loss.item())
        opt.step()
    with torch.no_grad():
        loss_after = pixel_loss(kind, model(x), x)
    grp.attrs["loss"] = kind
    grp["step_losses"] = torch.tensor(step_losses).numpy()
    for k, v in model.state_dict().items():
        grp[f"final_params/{k}"] = v.detach().numpy()
    grp["loss_after"] = loss_after.numpy()
    return step_losses + [loss_after.item()]


def main():
    torch.manual_seed(11)  # a seed with few dead ReLUs: ~3/4 of the gradients are nonzero
    torch.set_default_dtype(torch.float64)
    model = ConvAutoencoder()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.rand(BATCH, CHANNELS, HEIGHT, WIDTH)
    with torch.no_grad():
        codes = model.encoder(x)
        logits = model(x)

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden_autoencoder.h5")
    losses = {}
    with h5py.File(out, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_autoencoder.py"
        f.attrs["torch_version"] = str(torch.__version__)
        for k, v in dict(channels=CHANNELS, height=HEIGHT, width=WIDTH, width_mult=WIDTH_MULT, code=CODE).items():
            f.attrs[k] = v
        f.attrs["lr"] = ADAM["lr"]
        f.attrs["beta1"], f.attrs["beta2"] = ADAM["betas"]
        f.attrs["eps"] = ADAM["eps"]
        f["input"] = x.numpy()
        for k, v in initial.items():
            f[f"params/{k}"] = v.numpy()
        f["codes"] = codes.numpy()
        f["logits"] = logits.numpy()
        for kind in LOSSES:
            losses[kind] = variant(f.create_group(kind), kind, initial, x)
    size = os.path.getsize(out)
    print(f"wrote {os.path.normpath(out)} ({size} bytes): (step losses, loss after) {losses}")


if __name__ == "__main__":
    main()
