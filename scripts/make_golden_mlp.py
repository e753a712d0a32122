#!/usr/bin/python3
# Writes tests/fixtures/golden_mlp.h5, the PyTorch reference for tests/core/test_golden_mlp.cpp.
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_mlp.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (all float tensors float32 unless noted):
#   attributes on /: format_version, generator, torch_version
#   /input (8, 6), /labels (8,) int64 in [0, 4)
#   /params/<state_dict name>        initial parameters ("0.weight", "0.bias", "2.weight", ...)
#   /logits (8, 4)                   forward of the initial model
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
SGD_OPTIONS = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=False)


def main():
    torch.manual_seed(1234)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(8, 6)
    labels = torch.randint(0, 4, (8,), dtype=torch.int64)

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

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden_mlp.h5")
    with h5py.File(out, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_mlp.py"
        f.attrs["torch_version"] = str(torch.__version__)
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
    print(f"wrote {os.path.normpath(out)}: loss {loss.item():.6f}, step losses {step_losses}")


if __name__ == "__main__":
    main()
