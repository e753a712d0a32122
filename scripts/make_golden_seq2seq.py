#!/usr/bin/python3
# Writes tests/fixtures/golden_seq2seq.h5, the PyTorch reference for
# tests/core/test_golden_seq2seq.cpp.
#
# The model is the architecture of core/models/seq2seq.h (docs/SEQ2SEQ.md) written by hand
# with torch modules whose attribute names are dtrain's, so the state_dict names map one to
# one: src_embed / tgt_embed = nn.Embedding(padding_idx=PAD), encoder / decoder = nn.LSTM
# (1 layer, batch_first), attention masked by the source lengths (dot: h_t . h_s; general:
# h_t . attn(h_s) with attn = Linear(H, H, bias=False)), concat = Linear(2H, H, bias=False)
# on [context; h_t], out = Linear(H, Vt). No input feeding: the decoder LSTM runs over the
# whole decoder input at once from the encoder's final state. The encoder runs on packed
# sequences, so its final state is each sample's state at its own length (for the
# backward direction: after reading back to the first token). A bidirectional encoder has
# H/2 units per direction; its outputs and final (h, c) are [forward; backward].
# Two variants, one group each: "unidirectional_dot" and "bidirectional_general", on the
# same batch. Everything is float64, so the test compares tightly.
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_seq2seq.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Layout (all float tensors float64):
#   attributes on /: format_version, generator, torch_version, src_vocab, tgt_vocab,
#                    emb_dim, hidden, pad_id, lr, beta1, beta2, eps (Adam)
#   /src (3, 5) int64, /src_len (3,) int64     source batch, padded with PAD past src_len
#   /tgt_in (3, 4) int64, /tgt_out (3, 4) int64 decoder input and target (PAD-padded)
#   per variant group /<v>: attributes bidirectional_encoder (0/1), attention ("dot" or
#     "general"), and
#   /<v>/params/<state_dict name>    initial parameters
#   /<v>/logits (12, 11)             forward_teacher of the initial model, row b * T + t
#   /<v>/loss ()                     cross-entropy of logits against /tgt_out, PAD ignored
#   /<v>/grads/<name>                gradients of loss
#   /<v>/final_params/<name>         parameters after one Adam step with those gradients
#   /<v>/loss_after ()               the loss of the updated model on the same batch
import os

import h5py
import torch
import torch.nn.functional as F
from torch import nn

FORMAT_VERSION = 1
SRC_VOCAB, TGT_VOCAB, EMB, HIDDEN, PAD = 10, 11, 6, 8, 0
ADAM = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)
# (group, bidirectional encoder, attention)
VARIANTS = [("unidirectional_dot", False, "dot"), ("bidirectional_general", True, "general")]


class Seq2Seq(nn.Module):
    def __init__(self, bidirectional, attention):
        super().__init__()
        enc_hidden = HIDDEN // 2 if bidirectional else HIDDEN
        self.bidirectional = bidirectional
        self.src_embed = nn.Embedding(SRC_VOCAB, EMB, padding_idx=PAD)
        self.encoder = nn.LSTM(EMB, enc_hidden, 1, batch_first=True, bidirectional=bidirectional)
        self.tgt_embed = nn.Embedding(TGT_VOCAB, EMB, padding_idx=PAD)
        self.decoder = nn.LSTM(EMB, HIDDEN, 1, batch_first=True)
        if attention == "general":
            self.attn = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.concat = nn.Linear(2 * HIDDEN, HIDDEN, bias=False)
        self.out = nn.Linear(HIDDEN, TGT_VOCAB)

    def forward(self, src, src_len, tgt_in):
        s = src.shape[1]
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), src_len, batch_first=True,
                                                   enforce_sorted=False)
        enc_packed, (h, c) = self.encoder(packed)
        enc, _ = nn.utils.rnn.pad_packed_sequence(enc_packed, batch_first=True, total_length=s)  # (B, S, H)
        if self.bidirectional:  # (2, B, H/2) -> (1, B, H): [forward; backward]
            h = torch.cat([h[0], h[1]], dim=-1).unsqueeze(0)
            c = torch.cat([c[0], c[1]], dim=-1).unsqueeze(0)
        dec, _ = self.decoder(self.tgt_embed(tgt_in), (h, c))  # (B, T, H)
        keys = self.attn(enc) if hasattr(self, "attn") else enc
        scores = torch.bmm(dec, keys.transpose(1, 2))  # (B, T, S)
        mask = torch.arange(s)[None, None, :] >= src_len[:, None, None]
        weights = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        context = torch.bmm(weights, enc)  # (B, T, H)
        a = torch.tanh(self.concat(torch.cat([context, dec], dim=-1)))
        return self.out(a).reshape(-1, TGT_VOCAB)


def variant(grp, bidirectional, attention, src, src_len, tgt_in, tgt_out):
    model = Seq2Seq(bidirectional, attention)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    logits = model(src, src_len, tgt_in)
    loss = F.cross_entropy(logits, tgt_out.reshape(-1), ignore_index=PAD)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}

    opt = torch.optim.Adam(model.parameters(), **ADAM)
    opt.step()
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        loss_after = F.cross_entropy(model(src, src_len, tgt_in), tgt_out.reshape(-1), ignore_index=PAD)

    grp.attrs["bidirectional_encoder"] = int(bidirectional)
    grp.attrs["attention"] = attention
    for k, v in initial.items():
        grp[f"params/{k}"] = v.numpy()
    grp["logits"] = logits.detach().numpy()
    grp["loss"] = loss.detach().numpy()
    for k, v in grads.items():
        grp[f"grads/{k}"] = v.numpy()
    for k, v in final.items():
        grp[f"final_params/{k}"] = v.numpy()
    grp["loss_after"] = loss_after.numpy()
    return loss.item(), loss_after.item()


def main():
    torch.manual_seed(7)
    torch.set_default_dtype(torch.float64)
    # Three samples of source lengths 5, 2, 3 (PAD past them) and target lengths 4, 2, 3.
    src = torch.tensor([[3, 4, 5, 6, 2], [7, 2, 0, 0, 0], [8, 9, 2, 0, 0]], dtype=torch.int64)
    src_len = torch.tensor([5, 2, 3], dtype=torch.int64)
    tgt = torch.tensor([[1, 5, 6, 7, 2], [1, 3, 2, 0, 0], [1, 8, 10, 2, 0]], dtype=torch.int64)
    tgt_in, tgt_out = tgt[:, :-1].contiguous(), tgt[:, 1:].contiguous()

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden_seq2seq.h5")
    losses = {}
    with h5py.File(out, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_seq2seq.py"
        f.attrs["torch_version"] = str(torch.__version__)
        for k, v in dict(src_vocab=SRC_VOCAB, tgt_vocab=TGT_VOCAB, emb_dim=EMB, hidden=HIDDEN, pad_id=PAD).items():
            f.attrs[k] = v
        f.attrs["lr"] = ADAM["lr"]
        f.attrs["beta1"], f.attrs["beta2"] = ADAM["betas"]
        f.attrs["eps"] = ADAM["eps"]
        f["src"] = src.numpy()
        f["src_len"] = src_len.numpy()
        f["tgt_in"] = tgt_in.numpy()
        f["tgt_out"] = tgt_out.numpy()
        for name, bidirectional, attention in VARIANTS:
            losses[name] = variant(f.create_group(name), bidirectional, attention, src, src_len, tgt_in, tgt_out)
    size = os.path.getsize(out)
    print(f"wrote {os.path.normpath(out)} ({size} bytes): (loss, loss after Adam) {losses}")


if __name__ == "__main__":
    main()
