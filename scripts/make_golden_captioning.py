#!/usr/bin/python3
# Writes tests/fixtures/golden_captioning.h5, the PyTorch reference for
# tests/core/test_golden_captioning.cpp.
#
# The model is benchmarks/captioning_torch.py's Captioner (the architecture of
# core/models/captioner.h, docs/CAPTIONING.md, with torch modules named as dtrain's
# parameters), so the fixture checks dtrain's model and the reference that its quality
# bar is measured against in one go: a small float64 network (1x8x8 images, 2 conv stages
# from 2 channels -> a 2x2 map of 4 channels, emb 3, hidden 5, vocabulary 7) on a batch of
# three captions of different lengths (PAD-padded targets).
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_captioning.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (all float tensors float64):
#   attributes on /: format_version, generator, torch_version, channels, height, width,
#                    vocab, conv_width, stages, emb_dim, hidden, pad_id, lr, beta1, beta2, eps
#   /images (3, 1, 8, 8)                     the batch, already normalized
#   /tgt_in (3, 4) int64, /tgt_out (3, 4) int64   decoder input and target (PAD-padded)
#   /params/<state_dict name>                initial parameters
#   /logits (12, 7)                          teacher-forced logits, row b * T + t
#   /alpha (3, 4, 4)                         attention over the 2x2 map's positions per step
#   /loss ()                                 cross-entropy of logits against /tgt_out, PAD ignored
#   /grads/<name>                            gradients of loss
#   /final_params/<name>                     parameters after one Adam step with those gradients
#   /loss_after ()                           the loss of the updated model on the same batch
import os
import sys

import h5py
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
from captioning_torch import PAD, Captioner  # noqa: E402

FORMAT_VERSION = 1
SIZES = dict(channels=1, height=8, width=8, vocab=7, conv_width=2, stages=2, emb_dim=3, hidden=5)
ADAM = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)


def main():
    torch.manual_seed(11)
    torch.set_default_dtype(torch.float64)
    s = SIZES
    model = Captioner(s["channels"], s["vocab"], s["conv_width"], s["stages"], s["emb_dim"], s["hidden"])
    images = torch.randn(3, s["channels"], s["height"], s["width"])
    # Captions "<s> w.. </s>" of 5, 3 and 4 tokens.
    tgt = torch.tensor([[1, 4, 5, 6, 2], [1, 3, 2, 0, 0], [1, 6, 4, 2, 0]], dtype=torch.int64)
    tgt_in, tgt_out = tgt[:, :-1].contiguous(), tgt[:, 1:].contiguous()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    pos, keys, state = model.encode(images)
    dec, _ = model.decoder(model.embed(tgt_in), state)
    logits, alpha = model.project(dec, pos, keys)
    logits = logits.reshape(-1, s["vocab"])
    assert torch.equal(logits, model(images, tgt_in))
    loss = F.cross_entropy(logits, tgt_out.reshape(-1), ignore_index=PAD)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), **ADAM)
    opt.step()
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        loss_after = F.cross_entropy(model(images, tgt_in), tgt_out.reshape(-1), ignore_index=PAD)

    out = os.path.join(HERE, "..", "tests", "fixtures", "golden_captioning.h5")
    with h5py.File(out, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_captioning.py"
        f.attrs["torch_version"] = str(torch.__version__)
        for k, v in dict(s, pad_id=PAD).items():
            f.attrs[k] = v
        f.attrs["lr"] = ADAM["lr"]
        f.attrs["beta1"], f.attrs["beta2"] = ADAM["betas"]
        f.attrs["eps"] = ADAM["eps"]
        f["images"] = images.numpy()
        f["tgt_in"] = tgt_in.numpy()
        f["tgt_out"] = tgt_out.numpy()
        for k, v in initial.items():
            f[f"params/{k}"] = v.numpy()
        f["logits"] = logits.detach().numpy()
        f["alpha"] = alpha.detach().numpy()
        f["loss"] = loss.detach().numpy()
        for k, v in grads.items():
            f[f"grads/{k}"] = v.numpy()
        for k, v in final.items():
            f[f"final_params/{k}"] = v.numpy()
        f["loss_after"] = loss_after.numpy()
    print(f"wrote {os.path.normpath(out)} ({os.path.getsize(out)} bytes): loss {loss.item():.6f}, "
          f"after one Adam step {loss_after.item():.6f}")


if __name__ == "__main__":
    main()
