#!/usr/bin/python3
# Writes tests/fixtures/golden_text_classifier.h5, the PyTorch reference for
# tests/core/test_golden_text_classifier.cpp.
#
# The model is core/models/text_classifier.h's TextClassifier written with torch modules
# whose attribute names are dtrain's, so the state_dict names map one to one:
#   embed = nn.Embedding(vocab, emb, padding_idx=0)
#   lstm  = nn.LSTM(emb, hidden, layers, batch_first=True, bidirectional=...) run on the
#           packed sequences (pack_padded_sequence with the lengths, enforce_sorted=False),
#           so each sample stops at its own length (the backward direction starts there)
#   fc    = nn.Linear(hidden * directions, classes) on the last layer's final h: h_n[-1],
#           or [h_n[-2]; h_n[-1]] (forward; backward) when bidirectional
# and the loss is softmax cross-entropy (the mean over the batch), as the text classifier
# recipe's (launcher/train/recipes/text_classifier.cpp).
# Sizes: vocabulary 10, emb 4, hidden 3, 2 layers, 3 classes; a batch of 4 samples of
# lengths 5, 2, 4, 1, padded with 0 (the padding id) past their lengths; torch's default
# initialization. Two variants, one group each: "unidirectional" and "bidirectional", on
# the same batch. Each runs two Adam steps (lr 2e-3 as configs/langid_words.toml, betas
# (0.9, 0.999), eps 1e-8) on the same batch. Everything is float64, so the test compares
# tightly.
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_text_classifier.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (all float tensors float64):
#   attributes on /: format_version, generator, torch_version, vocab, classes, emb_dim,
#                    hidden, layers, lr, beta1, beta2, eps (Adam)
#   /tokens (4, 5) int64, /lengths (4,) int64, /labels (4,) int64    the batch
#   per variant group /<v>: attribute bidirectional (0/1), and
#   /<v>/params/<state_dict name>  initial parameters
#   /<v>/logits (4, 3)             forward of the initial model
#   /<v>/loss ()                   cross-entropy of the initial model
#   /<v>/grads/<name>              gradients of that loss (embed.weight's row 0 is zero)
#   /<v>/step_losses (2,)          the loss before each of the two Adam steps ([0] = loss)
#   /<v>/final_params/<name>       parameters after the two Adam steps
#   /<v>/loss_after ()             the loss of the final model on the same batch
import os

import h5py
import torch
import torch.nn.functional as F
from torch import nn

FORMAT_VERSION = 1
VOCAB, CLASSES, EMB, HIDDEN, LAYERS, PAD = 10, 3, 4, 3, 2, 0
ADAM = dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8)
STEPS = 2
VARIANTS = [("unidirectional", False), ("bidirectional", True)]


class TextClassifier(nn.Module):
    def __init__(self, bidirectional):
        super().__init__()
        self.bidirectional = bidirectional
        self.embed = nn.Embedding(VOCAB, EMB, padding_idx=PAD)
        self.lstm = nn.LSTM(EMB, HIDDEN, LAYERS, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, tokens, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # h (layers * directions, B, H), layer-major
        h = torch.cat([h[-2], h[-1]], dim=-1) if self.bidirectional else h[-1]
        return self.fc(h)


def variant(grp, bidirectional, tokens, lengths, labels):
    model = TextClassifier(bidirectional)
    grp.attrs["bidirectional"] = int(bidirectional)
    for k, v in model.state_dict().items():
        grp[f"params/{k}"] = v.detach().numpy()
    opt = torch.optim.Adam(model.parameters(), **ADAM)
    step_losses = []
    for step in range(STEPS):
        opt.zero_grad()
        logits = model(tokens, lengths)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        if step == 0:
            grp["logits"] = logits.detach().numpy()
            grp["loss"] = loss.detach().numpy()
            for k, p in model.named_parameters():
                grp[f"grads/{k}"] = p.grad.detach().numpy()
        step_losses.append(loss.item())
        opt.step()
    with torch.no_grad():
        loss_after = F.cross_entropy(model(tokens, lengths), labels)
    grp["step_losses"] = torch.tensor(step_losses).numpy()
    for k, v in model.state_dict().items():
        grp[f"final_params/{k}"] = v.detach().numpy()
    grp["loss_after"] = loss_after.numpy()
    return step_losses + [loss_after.item()]


def main():
    torch.manual_seed(3)
    torch.set_default_dtype(torch.float64)
    # Four samples of lengths 5, 2, 4, 1, padded with PAD past their lengths.
    tokens = torch.tensor([[3, 7, 1, 9, 4], [5, 2, 0, 0, 0], [8, 6, 2, 3, 0], [9, 0, 0, 0, 0]], dtype=torch.int64)
    lengths = torch.tensor([5, 2, 4, 1], dtype=torch.int64)
    labels = torch.tensor([2, 0, 1, 2], dtype=torch.int64)

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                       "golden_text_classifier.h5")
    losses = {}
    with h5py.File(out, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_text_classifier.py"
        f.attrs["torch_version"] = str(torch.__version__)
        for k, v in dict(vocab=VOCAB, classes=CLASSES, emb_dim=EMB, hidden=HIDDEN, layers=LAYERS).items():
            f.attrs[k] = v
        f.attrs["lr"] = ADAM["lr"]
        f.attrs["beta1"], f.attrs["beta2"] = ADAM["betas"]
        f.attrs["eps"] = ADAM["eps"]
        f["tokens"] = tokens.numpy()
        f["lengths"] = lengths.numpy()
        f["labels"] = labels.numpy()
        for name, bidirectional in VARIANTS:
            losses[name] = variant(f.create_group(name), bidirectional, tokens, lengths, labels)
    size = os.path.getsize(out)
    print(f"wrote {os.path.normpath(out)} ({size} bytes): (step losses, loss after) {losses}")


if __name__ == "__main__":
    main()
