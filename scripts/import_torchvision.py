#!/usr/bin/python3
# Converts a torchvision VGG16 state_dict file into an HDF5 weights file that dtrain reads
# (`dtrain style --weights FILE`; the /model layout of dtrain's checkpoints,
# docs/CHECKPOINTS.md). Nothing is downloaded: the input is a file you already have,
# written by
#     torch.save(torchvision.models.vgg16(weights=...).state_dict(), "vgg16.pth")
# (or torch.save(model.features.state_dict(), ...): keys "0.weight", ... are read as
# "features.0.weight", ...). A pickled whole model and a "module."-prefixed DataParallel
# state_dict are accepted too.
#
# Usage (Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/import_torchvision.py vgg16.pth vgg16.h5 [--features-only]
#
# Output: /model/<torchvision name> float32 datasets (features.0.weight (64, 3, 3, 3), ...,
# classifier.6.bias), in state_dict order; attributes on /: dtrain_weights_version (1),
# architecture ("vgg16"), source (the input's file name), torch_version.
# --features-only keeps the 26 tensors of the convolutional part (14.7M values, 59 MB),
# all that style transfer uses; the whole network is 138M values (553 MB).
#
# Every name and shape is checked against VGG16 (torchvision's configuration "D");
# anything else (VGG16 with batch norm, VGG19, a ResNet) is refused with the reason.
import argparse
import os
import sys

# torchvision's configuration "D" (VGG16): output channels of each 3x3 convolution, "M" a
# 2x2 max pool.
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_feature_shapes():
    shapes, index, channels = {}, 0, 3
    for v in VGG16_CFG:
        if v == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (v, channels, 3, 3)
        shapes[f"features.{index}.bias"] = (v,)
        channels = v
        index += 2  # the convolution and its ReLU
    return shapes


def classifier_shapes(num_classes):
    return {
        "classifier.0.weight": (4096, 512 * 7 * 7), "classifier.0.bias": (4096,),
        "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
        "classifier.6.weight": (num_classes, 4096), "classifier.6.bias": (num_classes,),
    }


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load_state_dict(path):
    import torch
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # a missing, truncated or foreign file
        fail(f"{path} could not be read by torch.load: {e}")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not obj:
        fail(f"{path} holds a {type(obj).__name__}, not a state_dict; write one with "
             "torch.save(model.state_dict(), PATH)")
    state = {}
    for name, t in obj.items():
        if not isinstance(t, torch.Tensor):
            fail(f"{path}: entry '{name}' is a {type(t).__name__}, not a tensor; is this a state_dict?")
        if name.startswith("module."):
            name = name[len("module."):]
        if name.split(".")[0].isdigit():  # model.features.state_dict()
            name = "features." + name
        state[name] = t
    return state


def check(state, path):
    expected = vgg16_feature_shapes()
    if any(n.endswith("running_mean") for n in state):
        fail(f"{path} has batch-norm statistics: it is a vgg16_bn; dtrain style uses plain VGG16")
    missing = [n for n in expected if n not in state]
    if missing:
        fail(f"{path} is not a VGG16 state_dict: it lacks {', '.join(missing[:3])}"
             f"{' ...' if len(missing) > 3 else ''} (it has {', '.join(list(state)[:3])} ...)")
    has_classifier = any(n.startswith("classifier.") for n in state)
    if has_classifier:
        if "classifier.6.weight" not in state:
            fail(f"{path}: the classifier lacks classifier.6.weight; is this a VGG16?")
        expected.update(classifier_shapes(state["classifier.6.weight"].shape[0]))
    for name, t in state.items():
        if name not in expected:
            fail(f"{path}: '{name}' is not a VGG16 parameter (VGG19 or another network?)")
        if tuple(t.shape) != expected[name]:
            fail(f"{path}: '{name}' has shape {tuple(t.shape)} but VGG16's is {expected[name]}: "
                 "another network")
        if not t.is_floating_point():
            fail(f"{path}: '{name}' is {t.dtype}, not a floating-point tensor")
    return has_classifier


def main():
    ap = argparse.ArgumentParser(description="Convert a torchvision VGG16 state_dict into dtrain's HDF5 weights.")
    ap.add_argument("state_dict", help="a file written by torch.save(model.state_dict(), PATH)")
    ap.add_argument("out", help="the HDF5 file to write (e.g. vgg16.h5)")
    ap.add_argument("--features-only", action="store_true",
                    help="keep only the convolutional part (features.*), all that dtrain style uses")
    args = ap.parse_args()
    if not os.path.exists(args.state_dict):
        fail(f"{args.state_dict} does not exist")

    import h5py
    import numpy as np
    import torch

    state = load_state_dict(args.state_dict)
    has_classifier = check(state, args.state_dict)
    if args.features_only:
        state = {n: t for n, t in state.items() if n.startswith("features.")}
    tmp = args.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["dtrain_weights_version"] = 1
        f.attrs["architecture"] = "vgg16"
        f.attrs["source"] = os.path.basename(args.state_dict)
        f.attrs["torch_version"] = str(torch.__version__)
        for name, t in state.items():
            f.create_dataset("model/" + name, data=t.detach().to(torch.float32).numpy().astype(np.float32))
    os.replace(tmp, args.out)
    values = sum(t.numel() for t in state.values())
    part = "features only" if args.features_only or not has_classifier else "features and classifier"
    print(f"wrote {args.out}: {len(state)} tensors, {values:,} values ({part})")


if __name__ == "__main__":
    main()
