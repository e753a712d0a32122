#!/usr/bin/python3
# Writes tests/fixtures/golden_dcgan.h5, the PyTorch reference for
# tests/core/test_golden_dcgan.cpp: one DCGAN training step (dist::GanStep,
# distributed/gan.h) of a tiny generator and discriminator laid out as
# core/models/dcgan.h (the PyTorch DCGAN example's networks, one Sequential "main" each,
# so the state_dict names are dtrain's), in float64.
#
# The step, exactly as GanStep runs it:
#   fake = G(z)                                   (once; reused by the generator step)
#   loss_d = bce(D(real), 1) + bce(D(fake.detach()), 0)   (two D forwards, one backward)
#   opt_d.step()
#   loss_g = bce(D(fake), 1) through the UPDATED D, whose parameters are frozen
#            (requires_grad False: they get no gradient)
#   opt_g.step()
# with Adam(lr 2e-4, betas (0.5, 0.999)) for both networks, all modules in training mode
# (batch norm uses batch statistics, so the running statistics do not change the losses;
# they are stored after the step all the same).
#
# Two variants, one group each: "batch_norm" (28x28 images, batch norm on) and
# "no_batch_norm" (32x32 images, batch norm off), both with z_dim 4, 1 image channel,
# g_channels = d_channels = 4, a batch of 4. The batch norm variant has the DCGAN
# initialization (weights_init: N(0, 0.02) convolutions, N(1, 0.02) batch norm weights);
# the other keeps torch's default initialization, whose larger weights keep the
# gradients well above Adam's eps (with N(0, 0.02) and no batch norm they are ~1e-8).
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_dcgan.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (all float tensors float64):
#   attributes on /: format_version, generator, torch_version, lr, beta1, beta2, eps
#   per variant group /<v>: attributes image_size, channels, z_dim, g_channels, d_channels,
#     batch_norm (0/1)
#   /<v>/real (4, 1, S, S) in (-1, 1), /<v>/z (4, 4, 1, 1)
#   /<v>/params_g/<name>, /<v>/params_d/<name>      initial parameters
#   /<v>/loss_d (), /<v>/loss_g ()                  the step's two losses
#   /<v>/grads_d/<name>       gradients of loss_d (the discriminator step)
#   /<v>/grads_g/<name>       gradients of loss_g (the generator step)
#   /<v>/final_g/<name>, /<v>/final_d/<name>        parameters after the step
#   /<v>/buffers_g/<name>, /<v>/buffers_d/<name>    batch norm running_mean, running_var and
#                                                   num_batches_tracked (int64) after the
#                                                   step (batch_norm only)
import os

import h5py
import torch
import torch.nn.functional as F
from torch import nn

FORMAT_VERSION = 1
BATCH, CHANNELS, Z_DIM, G_CH, D_CH = 4, 1, 4, 4, 4
ADAM = dict(lr=2e-4, betas=(0.5, 0.999), eps=1e-8)


def generator(size, bn):
    g, k = G_CH, (4 if size == 32 else 3)
    layers = []
    for cin, cout, kernel, stride, pad in [(Z_DIM, 4 * g, 4, 1, 0), (4 * g, 2 * g, k, 2, 1), (2 * g, g, 4, 2, 1)]:
        layers.append(nn.ConvTranspose2d(cin, cout, kernel, stride, pad, bias=False))
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU())
    layers += [nn.ConvTranspose2d(g, CHANNELS, 4, 2, 1, bias=False), nn.Tanh()]
    m = nn.Module()
    m.main = nn.Sequential(*layers)
    return m


def discriminator(size, bn):
    d, k = D_CH, (4 if size == 32 else 3)
    layers = []
    for cin, cout, kernel, use_bn in [(CHANNELS, d, 4, False), (d, 2 * d, 4, bn), (2 * d, 4 * d, k, bn)]:
        layers.append(nn.Conv2d(cin, cout, kernel, 2, 1, bias=False))
        if use_bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2))
    layers.append(nn.Conv2d(4 * d, 1, 4, 1, 0, bias=False))
    m = nn.Module()
    m.main = nn.Sequential(*layers)
    return m


def weights_init(m):
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(mod.weight, 0.0, 0.02)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.normal_(mod.weight, 1.0, 0.02)
            nn.init.zeros_(mod.bias)


def snapshot(m):
    return {k: v.detach().clone() for k, v in m.named_parameters()}


def buffers(m):
    return {k: v.detach().clone() for k, v in m.named_buffers()}


def variant(grp, size, bn):
    G, D = generator(size, bn), discriminator(size, bn)
    if bn:  # without batch norm the N(0, 0.02) weights give gradients near Adam's eps
        weights_init(G)
        weights_init(D)
    G.train()
    D.train()
    real = torch.tanh(torch.randn(BATCH, CHANNELS, size, size))
    z = torch.randn(BATCH, Z_DIM, 1, 1)
    init_g, init_d = snapshot(G), snapshot(D)
    opt_g = torch.optim.Adam(G.parameters(), **ADAM)
    opt_d = torch.optim.Adam(D.parameters(), **ADAM)
    d = lambda x: D.main(x).reshape(-1)
    ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)

    fake = G.main(z)
    loss_d = F.binary_cross_entropy_with_logits(d(real), ones) + \
        F.binary_cross_entropy_with_logits(d(fake.detach()), zeros)
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    grads_d = {k: p.grad.detach().clone() for k, p in D.named_parameters()}

    for p in D.parameters():
        p.requires_grad_(False)
    loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    for p in D.parameters():
        p.requires_grad_(True)
    assert all(torch.equal(p.grad, grads_d[k]) for k, p in D.named_parameters())  # frozen: untouched
    grads_g = {k: p.grad.detach().clone() for k, p in G.named_parameters()}

    grp.attrs["image_size"] = size
    grp.attrs["channels"] = CHANNELS
    grp.attrs["z_dim"] = Z_DIM
    grp.attrs["g_channels"] = G_CH
    grp.attrs["d_channels"] = D_CH
    grp.attrs["batch_norm"] = int(bn)
    grp["real"] = real.numpy()
    grp["z"] = z.numpy()
    for prefix, tensors in [("params_g", init_g), ("params_d", init_d), ("grads_d", grads_d), ("grads_g", grads_g),
                            ("final_g", snapshot(G)), ("final_d", snapshot(D))]:
        for k, v in tensors.items():
            grp[f"{prefix}/{k}"] = v.numpy()
    if bn:
        for prefix, m in [("buffers_g", G), ("buffers_d", D)]:
            for k, v in buffers(m).items():
                grp[f"{prefix}/{k}"] = v.numpy()
    grp["loss_d"] = loss_d.detach().numpy()
    grp["loss_g"] = loss_g.detach().numpy()
    return loss_d.item(), loss_g.item()


def main():
    torch.manual_seed(11)
    torch.set_default_dtype(torch.float64)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden_dcgan.h5")
    with h5py.File(out, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_dcgan.py"
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["lr"] = ADAM["lr"]
        f.attrs["beta1"], f.attrs["beta2"] = ADAM["betas"]
        f.attrs["eps"] = ADAM["eps"]
        losses = {}
        losses["batch_norm"] = variant(f.create_group("batch_norm"), 28, True)
        losses["no_batch_norm"] = variant(f.create_group("no_batch_norm"), 32, False)
    size = os.path.getsize(out)
    print(f"wrote {os.path.normpath(out)} ({size} bytes): (loss_d, loss_g) {losses}")


if __name__ == "__main__":
    main()
