#!/usr/bin/python3
"""PyTorch reference of dtrain's text classifier recipe (core/models/text_classifier.h, docs/TEXT_CLASSIFIER.md).

The same recurrent classifier (torch's default initialization, drawn after
torch.manual_seed(seed) in registration order: embed, lstm, fc), trained with Adam and
softmax cross-entropy (the mean over the batch) on a sequence-classification HDF5 file
(docs/DATASETS.md: /tokens int32 (N, L) with <pad> = 0 after each sequence, /lengths,
/labels, /vocab, attribute classes):

    embed:  Embedding(vocab, emb_dim, padding_idx=0)
    lstm:   LSTM(emb_dim, hidden, layers, batch_first, bidirectional) on the packed
            sequences (pack_padded_sequence with the lengths), so the padding never matters
    fc:     Linear(hidden * directions, classes) on the last layer's final states
            [forward, backward]

Training batches: a seeded shuffle per epoch, the last partial batch dropped. After
training it evaluates on --test (every sample once, in file order): held-out accuracy,
loss (the mean over samples) and the majority-class accuracy (the share of the test
file's most frequent class), and prints as the last line one JSON object:

  {"impl": "pytorch", "steps", "loss", "test_accuracy", "test_loss", "majority_accuracy",
   "samples_per_s", "seconds", "threads", ...}

From the repository root, with Debian's python3-torch and python3-h5py:

    /usr/bin/python3 benchmarks/text_classifier_torch.py --steps 2000 --threads 2

samples_per_s counts the sequences of the timed steps (after --warmup steps) over their
wall time, batch assembly included, evaluation excluded; it is what dtrain's metrics
records call images_per_s (the training loop's default unit, one unit = one sample).
loss is the mean over the last --log-interval steps.
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PAD = 0


class TextClassifier(nn.Module):
    """core/models/text_classifier.h with torch modules named as dtrain's parameters."""

    def __init__(self, vocab, classes, emb_dim, hidden, layers, bidirectional):
        super().__init__()
        self.directions = 2 if bidirectional else 1
        self.embed = nn.Embedding(vocab, emb_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(emb_dim, hidden, layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * self.directions, classes)

    def forward(self, tokens, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # h: (layers * directions, B, hidden), [l0 fwd, l0 bwd, l1 fwd, ...]
        last = h[-self.directions:]   # the last layer's final states: forward[, backward]
        return self.fc(torch.cat(list(last), dim=1))


class Sequences:
    """A sequence-classification file (docs/DATASETS.md), checked as dtrain checks it."""

    def __init__(self, path, what):
        if not os.path.exists(path):
            sys.exit(f"text_classifier_torch: {what} {path} not found; run scripts/prepare-data.sh to make the data "
                     f"files")
        try:
            with h5py.File(path, "r") as f:
                missing = [d for d in ("tokens", "lengths", "labels", "vocab") if d not in f]
                if missing:
                    sys.exit(f"text_classifier_torch: {path}: dataset(s) {', '.join('/' + d for d in missing)} "
                             f"missing; not a sequence-classification file (docs/DATASETS.md)")
                tokens, lengths, labels = f["tokens"][:], f["lengths"][:], f["labels"][:]
                self.vocab = [v.decode() if isinstance(v, bytes) else str(v) for v in f["vocab"][:]]
                classes = f.attrs.get("classes")
                self.classes = [c.decode() if isinstance(c, bytes) else str(c) for c in classes] \
                    if classes is not None else []
        except OSError as e:
            sys.exit(f"text_classifier_torch: cannot read {path}: {e}")
        n = tokens.shape[0] if tokens.ndim == 2 else -1
        if n < 1 or tokens.shape[1] < 1 or lengths.shape != (n,) or labels.shape != (n,) or not self.classes:
            sys.exit(f"text_classifier_torch: {path}: /tokens {tokens.shape}, /lengths {lengths.shape}, /labels "
                     f"{labels.shape}, {len(self.classes)} classes; expected (N, L), (N,), (N,) and a classes "
                     f"attribute")
        if lengths.min() < 1 or lengths.max() > tokens.shape[1]:
            sys.exit(f"text_classifier_torch: {path}: /lengths outside [1, {tokens.shape[1]}]")
        if labels.min() < 0 or labels.max() >= len(self.classes):
            sys.exit(f"text_classifier_torch: {path}: /labels outside [0, {len(self.classes)})")
        if tokens.min() < 0 or tokens.max() >= len(self.vocab):
            sys.exit(f"text_classifier_torch: {path}: token ids outside the vocabulary of {len(self.vocab)}")
        self.n = n
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.lengths = torch.from_numpy(lengths.astype(np.int64))
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def batch(self, idx):
        """Rows idx, columns trimmed to the batch's longest sequence (packing ignores the rest)."""
        lengths = self.lengths[idx]
        return self.tokens[idx, :int(lengths.max())], lengths, self.labels[idx]


def evaluate(model, test, batch):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, test.n, batch):
            tokens, lengths, labels = test.batch(torch.arange(s, min(s + batch, test.n)))
            logits = model(tokens, lengths)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(dim=1) == labels).sum())
    model.train()
    majority = int(torch.bincount(test.labels, minlength=len(test.classes)).max())
    return {"test_accuracy": correct / test.n, "test_loss": loss_sum / test.n, "majority_accuracy": majority / test.n,
            "test_samples": test.n}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", default="data/langid_words_train.h5", help="training sequence-classification file")
    p.add_argument("--test", default="data/langid_words_test.h5",
                   help="held-out sequence-classification file (same vocabulary and classes); '' = no evaluation")
    p.add_argument("--emb-dim", type=int, default=32, help="text.emb_dim")
    p.add_argument("--hidden", type=int, default=128, help="text.hidden (units per direction)")
    p.add_argument("--layers", type=int, default=1, help="text.layers")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True, help="text.bidirectional")
    p.add_argument("--batch-size", type=int, default=64, help="batch_size")
    p.add_argument("--eval-batch-size", type=int, default=0, help="eval.batch_size; 0 = --batch-size")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    p.add_argument("--lr", type=float, default=2e-3, help="optimizer.lr (Adam, betas 0.9 0.999, eps 1e-8)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialization and data order")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of samples_per_s")
    p.add_argument("--log-interval", type=int, default=100, help="steps between progress lines")
    a = p.parse_args()
    for name in ("emb_dim", "hidden", "layers", "batch_size", "steps", "threads", "log_interval"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.eval_batch_size < 0:
        p.error("--eval-batch-size must be >= 0")
    if a.warmup < 0 or a.warmup >= a.steps:
        p.error(f"--warmup must be in [0, --steps), got {a.warmup}")

    torch.set_num_threads(a.threads)
    train = Sequences(a.train, "--train")
    test = Sequences(a.test, "--test") if a.test else None
    if train.n < a.batch_size:
        sys.exit(f"text_classifier_torch: {a.train} has {train.n} sequences, fewer than one batch of {a.batch_size}")
    if test is not None and (test.vocab != train.vocab or test.classes != train.classes):
        sys.exit(f"text_classifier_torch: {a.test} and {a.train} have different vocabularies or classes; use a "
                 f"train/test pair written together")
    torch.manual_seed(a.seed)
    model = TextClassifier(len(train.vocab), len(train.classes), a.emb_dim, a.hidden, a.layers, a.bidirectional)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    nparams = sum(q.numel() for q in model.parameters())
    print(f"text_classifier pytorch {torch.__version__}: {train.n} sequences of up to {train.tokens.shape[1]}, vocab "
          f"{len(train.vocab)}, {len(train.classes)} classes ({' '.join(train.classes)}), emb {a.emb_dim}, "
          f"{'bidirectional ' if a.bidirectional else ''}LSTM {a.hidden} x {a.layers}, {nparams} parameters, batch "
          f"{a.batch_size}, {a.steps} steps, {a.threads} threads", flush=True)

    order_gen = torch.Generator().manual_seed(a.seed)
    per_epoch = train.n // a.batch_size
    order, pos = None, per_epoch
    timed_samples, timed_s = 0, 0.0
    iv = dict(loss=0.0, steps=0, s=0.0)
    last = None
    start = time.perf_counter()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        if pos == per_epoch:
            order, pos = torch.randperm(train.n, generator=order_gen), 0
        tokens, lengths, labels = train.batch(order[pos * a.batch_size:(pos + 1) * a.batch_size])
        pos += 1
        loss = F.cross_entropy(model(tokens, lengths), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss)
        dt = time.perf_counter() - t0
        if step > a.warmup:
            timed_samples += a.batch_size
            timed_s += dt
        iv["loss"] += value
        iv["steps"] += 1
        iv["s"] += dt
        if step % a.log_interval == 0 or step == a.steps:
            last = iv["loss"] / iv["steps"]
            print(f"step {step}/{a.steps} | loss {last:.4f} | {iv['steps'] * a.batch_size / iv['s']:.0f} samples/s",
                  flush=True)
            iv = dict(loss=0.0, steps=0, s=0.0)
    seconds = time.perf_counter() - start

    result = {"impl": "pytorch", "version": torch.__version__, "steps": a.steps, "loss": last,
              "samples_per_s": timed_samples / timed_s if timed_s > 0 else None, "timed_steps": a.steps - a.warmup,
              "seconds": seconds, "threads": a.threads, "parameters": nparams}
    if test is not None:
        t_eval = time.perf_counter()
        result.update(evaluate(model, test, a.eval_batch_size or a.batch_size))
        print(f"eval | test accuracy {100 * result['test_accuracy']:.2f}% ({test.n} samples; majority class "
              f"{100 * result['majority_accuracy']:.2f}%) | test loss {result['test_loss']:.4f} | "
              f"{time.perf_counter() - t_eval:.1f} s", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
