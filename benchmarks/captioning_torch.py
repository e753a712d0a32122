#!/usr/bin/python3
"""PyTorch reference of dtrain's image captioning recipe (core/models/captioner.h).

Trains the same convolutional encoder and LSTM decoder with attention over the encoder's
positions (docs/CAPTIONING.md) on an image-caption HDF5 file (`dtrain data synth
captions`, docs/DATASETS.md) with Adam, then evaluates on the test file: held-out loss
(teacher forcing, mean over the caption tokens after <s>, </s> included), greedy captions
scored by corpus BLEU-4, the exact-caption rate and per-item correctness (the caption
names the right item in the right cell; the grammar of datasets/captions.h). The
arguments mirror dtrain's config keys. Prints progress lines, the first --captions test
scenes' captions, and as the last line one JSON object:

  {"impl": "pytorch", "steps", "train_loss_last", "test_loss", "bleu", "exact",
   "item_accuracy", "cell_accuracy", "well_formed", "tokens_per_s", "images_per_s",
   "seconds", "threads", ...}

From the repository root, with Debian's python3-torch and python3-h5py:

    /usr/bin/python3 benchmarks/captioning_torch.py \\
        --train data/captions_fashion_mnist_train.h5 --test data/captions_fashion_mnist_test.h5 \\
        --steps 1500 --threads 2

Model: torch's default initialization of every module, drawn after torch.manual_seed(seed)
in registration order (encoder, init_h, init_c, embed, decoder, attn, ctx_proj, hid_proj,
out), as dtrain's model mimics (its own generator, so the values differ; the
distribution is the same). Inputs: (pixel / 255 - mean) / std with the file's attributes.
Training batches: a seeded shuffle per epoch, the last partial batch dropped, captions
trimmed to the batch's longest. tokens_per_s counts the non-pad target tokens of the
timed steps (after --warmup steps; evaluation excluded) over their wall time, batch
assembly included; images_per_s the scenes.
"""
import argparse
import collections
import json
import math
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS = 0, 1, 2


class Captioner(nn.Module):
    """core/models/captioner.h with torch modules named as dtrain's parameters."""

    def __init__(self, channels, vocab, conv_width, stages, emb_dim, hidden):
        super().__init__()
        layers, c_in = [], channels
        for s in range(stages):
            c_out = conv_width << s
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.encoder = nn.Sequential(*layers)
        d = c_in
        self.init_h = nn.Linear(d, hidden)
        self.init_c = nn.Linear(d, hidden)
        self.embed = nn.Embedding(vocab, emb_dim, padding_idx=PAD)
        self.decoder = nn.LSTM(emb_dim, hidden, batch_first=True)
        self.attn = nn.Linear(d, hidden, bias=False)
        self.ctx_proj = nn.Linear(d, hidden, bias=False)
        self.hid_proj = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, vocab)

    def encode(self, images):
        """-> positions (B, P, D), attention keys (B, P, H), (h0, c0) (1, B, H)."""
        f = self.encoder(images)  # (B, D, Y, X)
        pos = f.flatten(2).transpose(1, 2)  # (B, P, D), p = y * X + x
        pooled = pos.mean(1)
        state = (torch.tanh(self.init_h(pooled)).unsqueeze(0), torch.tanh(self.init_c(pooled)).unsqueeze(0))
        return pos, self.attn(pos), state

    def project(self, dec, pos, keys):
        """Decoder outputs (B, T, H) -> logits (B, T, V), attention (B, T, P)."""
        alpha = torch.softmax(torch.bmm(dec, keys.transpose(1, 2)), dim=-1)
        context = torch.bmm(alpha, pos)  # (B, T, D)
        return self.out(torch.tanh(self.ctx_proj(context) + self.hid_proj(dec))), alpha

    def forward(self, images, tgt_in):
        """Teacher forcing: logits (B * T, V), row b * T + t predicting tgt_out[b, t]."""
        pos, keys, state = self.encode(images)
        dec, _ = self.decoder(self.embed(tgt_in), state)
        logits, _ = self.project(dec, pos, keys)
        return logits.reshape(-1, logits.shape[-1])

    @torch.no_grad()
    def greedy_decode(self, images, max_len):
        """(B, max_len) int64: tokens up to and including the first </s>, <pad> after."""
        pos, keys, state = self.encode(images)
        b = images.shape[0]
        out = torch.full((b, max_len), PAD, dtype=torch.int64)
        prev = torch.full((b, 1), BOS, dtype=torch.int64)
        done = torch.zeros(b, dtype=torch.bool)
        for t in range(max_len):
            dec, state = self.decoder(self.embed(prev), state)
            nxt = self.project(dec, pos, keys)[0][:, 0].argmax(-1)
            out[:, t] = torch.where(done, torch.full_like(nxt, PAD), nxt)
            done |= nxt == EOS
            if bool(done.all()):
                break
            prev = nxt.unsqueeze(1)
        return out


def strings(ds):
    return [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in ds]


class Scenes:
    """An image-caption file (docs/DATASETS.md) held in memory, images normalized."""

    def __init__(self, path):
        if not os.path.exists(path):
            sys.exit(f"captioning_torch: {path} not found; make it with `dtrain data synth captions` "
                     f"(scripts/prepare-data.sh writes data/captions_fashion_mnist_{{train,test}}.h5)")
        try:
            with h5py.File(path, "r") as f:
                for k in ("images", "captions", "caption_len", "vocab"):
                    if k not in f:
                        sys.exit(f"captioning_torch: {path}: dataset /{k} missing; not an image-caption file "
                                 f"(docs/DATASETS.md)")
                images = f["images"][:]  # (N, H, W, C) u8
                mean = np.asarray(f.attrs["mean"], dtype=np.float64).reshape(-1)
                std = np.asarray(f.attrs["std"], dtype=np.float64).reshape(-1)
                self.captions = torch.from_numpy(f["captions"][:].astype(np.int64))
                self.lengths = torch.from_numpy(f["caption_len"][:].astype(np.int64))
                self.vocab = strings(f["vocab"][:])
                self.classes = strings(f.attrs["classes"])
        except OSError as e:
            sys.exit(f"captioning_torch: cannot read {path}: {e}")
        x = (images.astype(np.float32) / np.float32(255.0) - mean.astype(np.float32)) / std.astype(np.float32)
        self.images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # (N, C, H, W)
        self.n = self.images.shape[0]

    def batch(self, idx):
        """Rows idx, captions trimmed to the batch's longest."""
        return self.images[idx], self.captions[idx, :int(self.lengths[idx].max())]

    def words(self, ids):
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.vocab[i])
        return out


def item_word(name):
    return name.split("/")[0].lower().replace(" ", "-")


def parse_caption(words, classes):
    """datasets/captions.h's parse_caption: 4 class ids (-1 empty), or None."""
    items = {item_word(c): k for k, c in enumerate(classes)}
    cells, i = [-1] * 4, 0

    def take(w):
        nonlocal i
        if i < len(words) and words[i] == w:
            i += 1
            return True
        return False

    def item():
        nonlocal i
        if not take("a") or i >= len(words) or words[i] not in items:
            return None
        i += 1
        return items[words[i - 1]]

    for r in range(2):
        if not take("nothing"):
            k = item()
            if k is None:
                return None
            if take("and"):
                cells[2 * r] = k
                k2 = item()
                if k2 is None:
                    return None
                cells[2 * r + 1] = k2
            elif take("on") and take("the"):
                if take("left"):
                    cells[2 * r] = k
                elif take("right"):
                    cells[2 * r + 1] = k
                else:
                    return None
            else:
                return None
        if not (take("above") and take(",") if r == 0 else take("below")):
            return None
    return cells if i == len(words) else None


def corpus_bleu(hyps, refs, max_n=4):
    """Corpus BLEU-4 in [0, 100] of word lists, no smoothing."""
    matches, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for h, rf in zip(hyps, refs):
        c += len(h)
        r += len(rf)
        for n in range(1, max_n + 1):
            hc = collections.Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            rc = collections.Counter(tuple(rf[i:i + n]) for i in range(len(rf) - n + 1))
            matches[n - 1] += sum(min(k, rc[g]) for g, k in hc.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if c == 0 or min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    bp = 1.0 if c >= r else math.exp(1.0 - r / c)
    return 100.0 * bp * math.exp(log_p)


@torch.no_grad()
def evaluate(model, data, batch_size, max_len, captions):
    model.eval()
    loss_sum, tokens = 0.0, 0
    hyps, refs = [], []
    for start in range(0, data.n, batch_size):
        idx = torch.arange(start, min(start + batch_size, data.n))
        images, caps = data.batch(idx)
        tgt_in, tgt_out = caps[:, :-1], caps[:, 1:].reshape(-1)
        logits = model(images, tgt_in)
        loss_sum += float(F.cross_entropy(logits, tgt_out, ignore_index=PAD, reduction="sum"))
        tokens += int((tgt_out != PAD).sum())
        out = model.greedy_decode(images, max_len)
        for row in range(len(idx)):
            hyps.append(data.words(out[row]))
            refs.append(data.words(caps[row]))
    model.train()
    exact = well = items = items_right = cells_right = 0
    for h, r in zip(hyps, refs):
        want, got = parse_caption(r, data.classes), parse_caption(h, data.classes)
        exact += h == r
        well += got is not None
        for c in range(4):
            right = got is not None and got[c] == want[c]
            items += want[c] >= 0
            items_right += right and want[c] >= 0
            cells_right += right
    shown = [f"#{i + 1} {' '.join(hyps[i])}  ({' '.join(refs[i])})" for i in range(min(captions, data.n))]
    n = max(len(hyps), 1)
    return {"test_loss": loss_sum / max(tokens, 1), "bleu": corpus_bleu(hyps, refs), "exact": exact / n,
            "item_accuracy": items_right / max(items, 1), "cell_accuracy": cells_right / (4 * n),
            "well_formed": well / n, "test_tokens": tokens}, shown


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", default="data/captions_fashion_mnist_train.h5", help="training image-caption file")
    p.add_argument("--test", default="data/captions_fashion_mnist_test.h5",
                   help="held-out image-caption file (same vocabulary); '' skips evaluation")
    p.add_argument("--conv-width", type=int, default=16, help="caption.conv_width")
    p.add_argument("--stages", type=int, default=3, help="caption.stages")
    p.add_argument("--emb-dim", type=int, default=32, help="caption.emb_dim")
    p.add_argument("--hidden", type=int, default=128, help="caption.hidden")
    p.add_argument("--batch-size", type=int, default=32, help="batch_size")
    p.add_argument("--steps", type=int, default=1000, help="steps (Adam updates)")
    p.add_argument("--lr", type=float, default=2e-3, help="optimizer.lr (Adam, betas 0.9 0.999, eps 1e-8)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialization and data order")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--eval-batch-size", type=int, default=0, help="eval.batch_size; 0 = --batch-size")
    p.add_argument("--eval-interval", type=int, default=0, help="also evaluate every N steps; 0 = only at the end")
    p.add_argument("--captions", type=int, default=5, help="caption.captions: test scenes printed")
    p.add_argument("--max-decode-len", type=int, default=0,
                   help="caption.max_decode_len; 0 = the test file's caption width less one (the <s> column)")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of tokens_per_s")
    p.add_argument("--log-interval", type=int, default=50, help="steps between progress lines")
    a = p.parse_args()
    for name in ("conv_width", "stages", "emb_dim", "hidden", "batch_size", "steps", "threads", "log_interval"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.warmup < 0 or a.warmup >= a.steps:
        p.error(f"--warmup must be in [0, --steps), got {a.warmup}")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train = Scenes(a.train)
    test = Scenes(a.test) if a.test else None
    if train.n < a.batch_size:
        sys.exit(f"captioning_torch: {a.train} has {train.n} scenes, fewer than one batch of {a.batch_size}")
    if test is not None and test.vocab != train.vocab:
        sys.exit(f"captioning_torch: {a.test}: another vocabulary than {a.train}'s; use a train/test pair "
                 f"written together")
    model = Captioner(train.images.shape[1], len(train.vocab), a.conv_width, a.stages, a.emb_dim, a.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    nparams = sum(q.numel() for q in model.parameters())
    print(f"captioning pytorch {torch.__version__}: {train.n} train scenes {tuple(train.images.shape[1:])}, vocab "
          f"{len(train.vocab)}, conv {a.conv_width} x {a.stages} stages, emb {a.emb_dim}, hidden {a.hidden}, "
          f"{nparams} parameters, batch {a.batch_size}, {a.steps} steps, {a.threads} threads", flush=True)

    eval_bs = a.eval_batch_size or a.batch_size
    max_len = a.max_decode_len or (test.captions.shape[1] - 1 if test is not None else 0)
    order_gen = torch.Generator().manual_seed(a.seed)
    per_epoch = train.n // a.batch_size
    order, pos = None, per_epoch
    timed_tokens, timed_images, timed_s = 0, 0, 0.0
    iv_loss, iv_tok, iv_steps, iv_s = 0.0, 0, 0, 0.0
    train_loss_last = None
    result = {}
    start = time.perf_counter()
    model.train()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        if pos == per_epoch:
            order, pos = torch.randperm(train.n, generator=order_gen), 0
        images, caps = train.batch(order[pos * a.batch_size:(pos + 1) * a.batch_size])
        pos += 1
        tgt_in, tgt_out = caps[:, :-1], caps[:, 1:].reshape(-1)
        ntok = int((tgt_out != PAD).sum())
        loss = F.cross_entropy(model(images, tgt_in), tgt_out, ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = float(loss)
        dt = time.perf_counter() - t0
        if step > a.warmup:
            timed_tokens += ntok
            timed_images += a.batch_size
            timed_s += dt
        iv_loss += lv * ntok
        iv_tok += ntok
        iv_steps += 1
        iv_s += dt
        if step % a.log_interval == 0 or step == a.steps:
            train_loss_last = iv_loss / max(iv_tok, 1)
            print(f"step {step}/{a.steps} | loss {train_loss_last:.4f} | {iv_tok / iv_s:.0f} tok/s | "
                  f"{1e3 * iv_s / iv_steps:.1f} ms/step", flush=True)
            iv_loss, iv_tok, iv_steps, iv_s = 0.0, 0, 0, 0.0
        if test is not None and (step == a.steps or (a.eval_interval and step % a.eval_interval == 0)):
            t_eval = time.perf_counter()
            result, shown = evaluate(model, test, eval_bs, max_len, a.captions if step == a.steps else 0)
            for line in shown:
                print("  " + line)
            print(f"eval step {step}/{a.steps} | test_loss {result['test_loss']:.4f} | bleu {result['bleu']:.2f} | "
                  f"exact {100 * result['exact']:.2f}% | items right {100 * result['item_accuracy']:.2f}% "
                  f"(cells {100 * result['cell_accuracy']:.2f}%, well-formed {100 * result['well_formed']:.2f}%) | "
                  f"{time.perf_counter() - t_eval:.1f} s", flush=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch", "version": torch.__version__, "steps": a.steps,
                      "train_loss_last": train_loss_last, "test_loss": result.get("test_loss"),
                      "bleu": result.get("bleu"), "exact": result.get("exact"),
                      "item_accuracy": result.get("item_accuracy"), "cell_accuracy": result.get("cell_accuracy"),
                      "well_formed": result.get("well_formed"),
                      "tokens_per_s": timed_tokens / timed_s if timed_s > 0 else None,
                      "images_per_s": timed_images / timed_s if timed_s > 0 else None,
                      "timed_steps": a.steps - a.warmup, "seconds": seconds, "threads": a.threads,
                      "parameters": nparams}))


if __name__ == "__main__":
    main()
