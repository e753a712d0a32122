#!/usr/bin/python3
# Writes tests/fixtures/vgg16_torchvision_params.txt: the parameter names and shapes of
# torchvision.models.vgg16() in state_dict order, one "name shape" line each (shape as
# comma-separated sizes, e.g. "features.0.weight 64,3,3,3"). tests/core/test_vgg.cpp
# checks that dtrain's vgg16 has exactly this list.
#
# Regenerate (from the repository root, with Debian's python3-torchvision):
#     /usr/bin/python3 scripts/make_vgg16_names.py
import os

import torchvision


def main():
    model = torchvision.models.vgg16()  # random initialization; no weights are downloaded
    lines = [f"{name} {','.join(str(s) for s in p.shape)}" for name, p in model.named_parameters()]
    total = sum(p.numel() for p in model.parameters())
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                       "vgg16_torchvision_params.txt")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.normpath(out)}: {len(lines)} parameters, {total} elements "
          f"(torchvision {torchvision.__version__})")


if __name__ == "__main__":
    main()
