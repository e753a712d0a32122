#!/usr/bin/python3
"""PyTorch reference of dtrain's seq2seq translation recipe (core/models/seq2seq.h).

Trains the same LSTM encoder-decoder with Luong attention (docs/SEQ2SEQ.md) on a
sequence-pair HDF5 file (docs/DATASETS.md) with Adam, then evaluates on the test file:
held-out loss (teacher forcing, mean over non-pad target tokens), token accuracy, greedy
decoding and corpus BLEU-4. The arguments mirror dtrain's config keys. Prints progress
lines, the first --translations test pairs, and as the last line one JSON object:

  {"impl": "pytorch", "steps", "train_loss_last", "test_loss", "token_accuracy", "bleu",
   "tokens_per_s", "seconds", "threads", ...}

From the repository root, with Debian's python3-torch and python3-h5py:

    /usr/bin/python3 benchmarks/seq2seq_torch.py \\
        --train data/phrases_en_de_chars_train.h5 --test data/phrases_en_de_chars_test.h5 \\
        --steps 2000 --threads 2

Model: torch's default initialization of every module, drawn after torch.manual_seed(seed)
in registration order (src_embed, encoder, tgt_embed, decoder, [attn], concat, out), as
dtrain's model mimics (its own generator, so the values differ; the distribution is the
same). Training batches: a seeded shuffle per epoch, the last partial batch dropped, each
batch's columns trimmed to its longest source and target. tokens_per_s counts the
non-pad target tokens (tgt[:, 1:], </s> included) of the timed steps (after --warmup
steps; evaluation excluded) over their wall time, batch assembly included.

BLEU is corpus BLEU-4 on words, in [0, 100]: tokens up to </s> without <pad>/<s> are
detokenized (character files, root attribute tokens = "chars": concatenated; word files:
joined with spaces) and split on whitespace; clipped n-gram precisions (n = 1..4) are
summed over the corpus, combined by their geometric mean with the brevity penalty
exp(1 - r / c) when c < r; 0 when some order has no match (no smoothing).
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


class Seq2Seq(nn.Module):
    """core/models/seq2seq.h with torch modules named as dtrain's parameters."""

    def __init__(self, src_vocab, tgt_vocab, emb_dim, hidden, layers, bidirectional, attention):
        super().__init__()
        if bidirectional and hidden % 2:
            raise ValueError(f"--hidden must be even with a bidirectional encoder, got {hidden}")
        self.hidden, self.layers, self.bidirectional = hidden, layers, bidirectional
        self.src_embed = nn.Embedding(src_vocab, emb_dim, padding_idx=PAD)
        self.encoder = nn.LSTM(emb_dim, hidden // 2 if bidirectional else hidden, layers, batch_first=True,
                               bidirectional=bidirectional)
        self.tgt_embed = nn.Embedding(tgt_vocab, emb_dim, padding_idx=PAD)
        self.decoder = nn.LSTM(emb_dim, hidden, layers, batch_first=True)
        self.attn = nn.Linear(hidden, hidden, bias=False) if attention == "general" else None
        self.concat = nn.Linear(2 * hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, tgt_vocab)

    def encode(self, src, src_len):
        """-> encoder outputs (B, S, H), attention keys (B, S, H), mask (B, 1, S), (h, c) (layers, B, H)."""
        b, s = src.shape
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), src_len, batch_first=True,
                                                   enforce_sorted=False)
        enc_packed, (h, c) = self.encoder(packed)
        enc, _ = nn.utils.rnn.pad_packed_sequence(enc_packed, batch_first=True, total_length=s)
        if self.bidirectional:  # (layers * 2, B, H/2), [l0 fwd, l0 bwd, l1 fwd, ...] -> (layers, B, H)
            h = h.view(self.layers, 2, b, -1).permute(0, 2, 1, 3).reshape(self.layers, b, -1)
            c = c.view(self.layers, 2, b, -1).permute(0, 2, 1, 3).reshape(self.layers, b, -1)
        keys = self.attn(enc) if self.attn is not None else enc
        mask = (torch.arange(s)[None, :] >= src_len[:, None]).unsqueeze(1)  # (B, 1, S)
        return enc, keys, mask, (h.contiguous(), c.contiguous())

    def project(self, dec, enc, keys, mask):
        """Decoder outputs (B, T, H) -> logits (B, T, V)."""
        scores = torch.bmm(dec, keys.transpose(1, 2)).masked_fill(mask, float("-inf"))  # (B, T, S)
        context = torch.bmm(torch.softmax(scores, dim=-1), enc)
        return self.out(torch.tanh(self.concat(torch.cat([context, dec], dim=-1))))

    def forward(self, src, src_len, tgt_in):
        """Teacher forcing: logits (B * T, V), row b * T + t predicting tgt_out[b, t]."""
        enc, keys, mask, state = self.encode(src, src_len)
        dec, _ = self.decoder(self.tgt_embed(tgt_in), state)
        logits = self.project(dec, enc, keys, mask)
        return logits.reshape(-1, logits.shape[-1])

    @torch.no_grad()
    def greedy_decode(self, src, src_len, max_len):
        """(B, max_len) int64: tokens up to and including the first </s>, <pad> after."""
        enc, keys, mask, state = self.encode(src, src_len)
        b = src.shape[0]
        out = torch.full((b, max_len), PAD, dtype=torch.int64)
        prev = torch.full((b, 1), BOS, dtype=torch.int64)
        done = torch.zeros(b, dtype=torch.bool)
        for t in range(max_len):
            dec, state = self.decoder(self.tgt_embed(prev), state)
            nxt = self.project(dec, enc, keys, mask)[:, 0].argmax(-1)
            out[:, t] = torch.where(done, torch.full_like(nxt, PAD), nxt)
            done |= nxt == EOS
            if bool(done.all()):
                break
            prev = nxt.unsqueeze(1)
        return out


class Pairs:
    """A sequence-pair file (docs/DATASETS.md) held in memory."""

    def __init__(self, path):
        if not os.path.exists(path):
            sys.exit(f"seq2seq_torch: {path} not found; run scripts/prepare-data.sh to make the data files "
                     f"(or `dtrain data synth pairs --out FILE` for a synthetic one)")
        try:
            with h5py.File(path, "r") as f:
                for k in ("src", "tgt", "src_len", "tgt_len", "src_vocab", "tgt_vocab"):
                    if k not in f:
                        sys.exit(f"seq2seq_torch: {path}: dataset /{k} missing; not a sequence-pair file "
                                 f"(docs/DATASETS.md)")
                self.src = torch.from_numpy(f["src"][:].astype(np.int64))
                self.tgt = torch.from_numpy(f["tgt"][:].astype(np.int64))
                self.src_len = torch.from_numpy(f["src_len"][:].astype(np.int64))
                self.tgt_len = torch.from_numpy(f["tgt_len"][:].astype(np.int64))
                self.src_vocab = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in f["src_vocab"][:]]
                self.tgt_vocab = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in f["tgt_vocab"][:]]
                tokens = f.attrs.get("tokens", "words")
                self.tokens = tokens.decode() if isinstance(tokens, bytes) else str(tokens)
        except OSError as e:
            sys.exit(f"seq2seq_torch: cannot read {path}: {e}")
        if self.tokens not in ("words", "chars"):
            sys.exit(f"seq2seq_torch: {path}: root attribute tokens = '{self.tokens}'; expected 'words' or 'chars'")
        self.n = self.src.shape[0]

    def batch(self, idx):
        """Rows idx, columns trimmed to the batch's longest source and target."""
        src_len, tgt_len = self.src_len[idx], self.tgt_len[idx]
        return (self.src[idx, :int(src_len.max())], src_len, self.tgt[idx, :int(tgt_len.max())])

    def detok(self, ids, vocab):
        words = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            words.append(vocab[i])
        return "".join(words) if self.tokens == "chars" else " ".join(words)


def corpus_bleu(hyps, refs, max_n=4):
    """Corpus BLEU-4 in [0, 100] of whitespace-split strings, no smoothing."""
    matches, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, ref in zip(hyps, refs):
        h, rf = hyp.split(), ref.split()
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
def evaluate(model, data, batch_size, max_len, translations):
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    hyps, refs = [], []
    for start in range(0, data.n, batch_size):
        idx = torch.arange(start, min(start + batch_size, data.n))
        src, src_len, tgt = data.batch(idx)
        tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:].reshape(-1)
        logits = model(src, src_len, tgt_in)
        keep = tgt_out != PAD
        loss_sum += float(F.cross_entropy(logits, tgt_out, ignore_index=PAD, reduction="sum"))
        tokens += int(keep.sum())
        correct += int(((logits.argmax(-1) == tgt_out) & keep).sum())
        out = model.greedy_decode(src, src_len, max_len)
        for row in range(len(idx)):
            hyps.append(data.detok(out[row], data.tgt_vocab))
            refs.append(data.detok(tgt[row], data.tgt_vocab))
    model.train()
    shown = []
    for i in range(min(translations, data.n)):
        shown.append(f"{data.detok(data.src[i], data.src_vocab)} => {hyps[i]} ({refs[i]})")
    return {"test_loss": loss_sum / max(tokens, 1), "token_accuracy": correct / max(tokens, 1),
            "bleu": corpus_bleu(hyps, refs), "test_tokens": tokens}, shown


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", default="data/phrases_en_de_chars_train.h5", help="training sequence-pair file")
    p.add_argument("--test", default="data/phrases_en_de_chars_test.h5",
                   help="held-out sequence-pair file (same vocabularies); '' skips evaluation")
    p.add_argument("--emb-dim", type=int, default=64, help="model.emb_dim")
    p.add_argument("--hidden", type=int, default=256, help="model.hidden")
    p.add_argument("--layers", type=int, default=1, help="model.layers")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True,
                   help="model.bidirectional (hidden / 2 units per direction)")
    p.add_argument("--attention", choices=["dot", "general"], default="dot", help="model.attention")
    p.add_argument("--batch-size", type=int, default=64, help="batch_size")
    p.add_argument("--steps", type=int, default=1000, help="steps (Adam updates)")
    p.add_argument("--lr", type=float, default=1e-3, help="optimizer.lr (Adam, betas 0.9 0.999, eps 1e-8)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialization and data order")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--eval-batch-size", type=int, default=0, help="eval.batch_size; 0 = --batch-size")
    p.add_argument("--eval-interval", type=int, default=0, help="also evaluate every N steps; 0 = only at the end")
    p.add_argument("--translations", type=int, default=5, help="seq2seq.translations: test pairs printed")
    p.add_argument("--max-decode-len", type=int, default=0,
                   help="seq2seq.max_decode_len; 0 = the test file's target width less one (the <s> column)")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of tokens_per_s")
    p.add_argument("--log-interval", type=int, default=50, help="steps between progress lines")
    a = p.parse_args()
    for name in ("emb_dim", "hidden", "layers", "batch_size", "steps", "threads", "log_interval"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.warmup < 0 or a.warmup >= a.steps:
        p.error(f"--warmup must be in [0, --steps), got {a.warmup}")
    if a.bidirectional and a.hidden % 2:
        p.error("--hidden must be even with --bidirectional")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train = Pairs(a.train)
    test = Pairs(a.test) if a.test else None
    if train.n < a.batch_size:
        sys.exit(f"seq2seq_torch: {a.train} has {train.n} pairs, fewer than one batch of {a.batch_size}")
    if test is not None and (len(test.src_vocab) != len(train.src_vocab) or len(test.tgt_vocab) != len(train.tgt_vocab)):
        sys.exit(f"seq2seq_torch: {a.test}: vocabularies differ in size from {a.train}'s; use a train/test pair "
                 f"written together")
    model = Seq2Seq(len(train.src_vocab), len(train.tgt_vocab), a.emb_dim, a.hidden, a.layers, a.bidirectional,
                    a.attention)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    nparams = sum(q.numel() for q in model.parameters())
    print(f"seq2seq pytorch {torch.__version__}: {train.n} train pairs ({train.tokens}), vocab "
          f"{len(train.src_vocab)}/{len(train.tgt_vocab)}, emb {a.emb_dim}, hidden {a.hidden}, layers {a.layers}, "
          f"{'bidirectional' if a.bidirectional else 'unidirectional'}, {a.attention} attention, "
          f"{nparams} parameters, batch {a.batch_size}, {a.steps} steps, {a.threads} threads", flush=True)

    eval_bs = a.eval_batch_size or a.batch_size
    # The decoder writes the tokens after <s>: at most the target width less one.
    max_len = a.max_decode_len or (test.tgt.shape[1] - 1 if test is not None else 0)
    order_gen = torch.Generator().manual_seed(a.seed)
    per_epoch = train.n // a.batch_size
    order, pos = None, per_epoch
    timed_tokens, timed_s = 0, 0.0
    iv_loss, iv_tok, iv_steps, iv_s = 0.0, 0, 0, 0.0
    train_loss_last = None
    result = {}
    start = time.perf_counter()
    model.train()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        if pos == per_epoch:
            order, pos = torch.randperm(train.n, generator=order_gen), 0
        src, src_len, tgt = train.batch(order[pos * a.batch_size:(pos + 1) * a.batch_size])
        pos += 1
        tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:].reshape(-1)
        ntok = int((tgt_out != PAD).sum())
        loss = F.cross_entropy(model(src, src_len, tgt_in), tgt_out, ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = float(loss)
        dt = time.perf_counter() - t0
        if step > a.warmup:
            timed_tokens += ntok
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
            result, shown = evaluate(model, test, eval_bs, max_len, a.translations if step == a.steps else 0)
            print(f"eval step {step}/{a.steps} | test_loss {result['test_loss']:.4f} | token_accuracy "
                  f"{result['token_accuracy']:.4f} | bleu {result['bleu']:.2f} | {time.perf_counter() - t_eval:.1f} s",
                  flush=True)
            for line in shown:
                print("  " + line)
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch", "version": torch.__version__, "steps": a.steps,
                      "train_loss_last": train_loss_last, "test_loss": result.get("test_loss"),
                      "token_accuracy": result.get("token_accuracy"), "bleu": result.get("bleu"),
                      "tokens_per_s": timed_tokens / timed_s if timed_s > 0 else None,
                      "timed_steps": a.steps - a.warmup, "seconds": seconds, "threads": a.threads,
                      "parameters": nparams}))


if __name__ == "__main__":
    main()
