#!/usr/bin/python3
"""dtrain beside its PyTorch reference on the seq2seq, DCGAN, autoencoder, text classifier and captioning recipes, on this machine.

Both implementations run as separate single processes with the same thread count, the
same settings (taken from the recipe's config file, with the same --set overrides applied
to both) and the same number of steps. dtrain runs as `dtrain train CONFIG --set ...`;
PyTorch as benchmarks/<recipe>_torch.py (seq2seq, dcgan, autoencoder, text_classifier, captioning).

  throughput   alternates dtrain, PyTorch, dtrain, ... for --rounds rounds, evaluation
               off; prints each round's rates and the median tokens/s (seq2seq, captioning),
               images/s (dcgan, autoencoder) or samples/s (text_classifier: dtrain's
               metrics records call it images_per_s) of each, with the ratio dtrain / PyTorch.
  quality      one full run of each. seq2seq: held-out loss, token accuracy and BLEU of
               both, and whether dtrain's held-out loss is within 5% of PyTorch's. dcgan:
               both export samples, `dtrain score --classifier CKPT --json` scores them
               (and the real test images), and whether dtrain's score is within 10% of
               PyTorch's. autoencoder: held-out loss, pixel MSE and PSNR of both, and
               whether dtrain's held-out loss is within 5% of PyTorch's. text_classifier:
               held-out accuracy, loss and the majority-class accuracy of both, and whether
               dtrain's accuracy is within 1 percentage point of PyTorch's and at least
               --above-majority above the majority class. captioning: held-out loss, BLEU-4,
               exact-caption rate and per-item correctness of both, and whether dtrain's
               held-out loss is within 5% of PyTorch's.

From the repository root, with Debian's python3-torch and python3-h5py:

    /usr/bin/python3 benchmarks/compare_recipes.py throughput --recipe seq2seq --steps 30 --rounds 3 --threads 2
    /usr/bin/python3 benchmarks/compare_recipes.py throughput --recipe dcgan --steps 30 --rounds 3 --threads 2
    /usr/bin/python3 benchmarks/compare_recipes.py quality --recipe seq2seq --steps 2000
    /usr/bin/python3 benchmarks/compare_recipes.py quality --recipe dcgan --steps 2000 --classifier CKPT
    /usr/bin/python3 benchmarks/compare_recipes.py throughput --recipe autoencoder --steps 30 --rounds 3 --threads 2
    /usr/bin/python3 benchmarks/compare_recipes.py quality --recipe autoencoder --steps 2000
    /usr/bin/python3 benchmarks/compare_recipes.py throughput --recipe text_classifier --steps 30 --rounds 3 --threads 2
    /usr/bin/python3 benchmarks/compare_recipes.py quality --recipe text_classifier --steps 3000
    /usr/bin/python3 benchmarks/compare_recipes.py throughput --recipe captioning --steps 30 --rounds 3 --threads 2
    /usr/bin/python3 benchmarks/compare_recipes.py quality --recipe captioning --steps 3000

Logs, dtrain's metrics files, the samples and a summary JSON go to --out
(runs/compare_recipes by default), in a folder per mode and recipe.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES = ["seq2seq", "dcgan", "autoencoder", "text_classifier", "captioning"]
CONFIGS = {"seq2seq": "configs/seq2seq_en_de.toml", "dcgan": "configs/dcgan_fashion_mnist.toml",
           "autoencoder": "configs/autoencoder_fashion_mnist.toml", "text_classifier": "configs/langid_words.toml",
           "captioning": "configs/captioning_fashion_mnist.toml"}
SCRIPTS = {r: r + "_torch.py" for r in RECIPES}
# The rate's key in dtrain's train records, and in the reference's JSON line. dtrain's text
# classifier counts samples (words) under the training loop's default key, images_per_s.
UNIT = {"seq2seq": "tokens_per_s", "dcgan": "images_per_s", "autoencoder": "images_per_s",
        "text_classifier": "images_per_s", "captioning": "tokens_per_s"}
TORCH_UNIT = {"seq2seq": "tokens_per_s", "dcgan": "images_per_s", "autoencoder": "images_per_s",
              "text_classifier": "samples_per_s", "captioning": "tokens_per_s"}
OPENMP_BLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
SHORT = {"seq2seq": "tok/s", "dcgan": "img/s", "autoencoder": "img/s", "text_classifier": "samples/s",
         "captioning": "tok/s"}


def fail(msg):
    sys.exit("compare_recipes: " + msg)


# ---------------------------------------------------------------------------------------
# The config: the recipe's TOML file plus --set overrides, as flat dotted keys.

def flatten(table, prefix=""):
    out = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def parse_value(text):
    """A --set value as dtrain reads it: TOML, or bare text as a string."""
    if text == "":
        return ""
    try:
        return tomllib.loads("v = " + text)["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path, sets):
    if not os.path.exists(path):
        fail(f"config {path} not found; pass the recipe's dtrain config with --config")
    with open(path, "rb") as f:
        try:
            cfg = flatten(tomllib.load(f))
        except tomllib.TOMLDecodeError as e:
            fail(f"{path}: {e}")
    for item in sets:
        if "=" not in item or item.startswith("="):
            fail(f"--set '{item}': expected KEY=VALUE")
        k, v = item.split("=", 1)
        cfg[k] = parse_value(v)
    return cfg


def check_same(cfg, key, want, default, why):
    got = cfg.get(key, default)
    if isinstance(want, list):
        ok = isinstance(got, list) and len(got) == len(want) and all(math.isclose(g, w) for g, w in zip(got, want))
    elif isinstance(want, float):
        ok = isinstance(got, (int, float)) and math.isclose(got, want)
    else:
        ok = got == want
    if not ok:
        fail(f"{key} = {got!r}: the PyTorch reference supports only {want!r} ({why})")


def check_adam(cfg):
    check_same(cfg, "optimizer.name", "adam", "sgd", "Adam")
    check_same(cfg, "optimizer.betas", [0.9, 0.999], [0.9, 0.999], "Adam's default betas")
    check_same(cfg, "optimizer.eps", 1e-8, 1e-8, "Adam's default eps")
    check_same(cfg, "optimizer.weight_decay", 0.0, 0.0, "no weight decay")


def torch_args(recipe, cfg):
    """The PyTorch script's arguments for the config's settings (dtrain's defaults where unset)."""
    check_same(cfg, "grad_accum", 1, 1, "one micro-batch per step")
    check_same(cfg, "schedule.name", "constant", "constant", "a constant learning rate")
    if "data.train" not in cfg:
        fail("the config sets no data.train")
    common = ["--train", str(cfg["data.train"]), "--test", str(cfg.get("data.test", "")),
              "--batch-size", str(cfg.get("batch_size", 64)), "--eval-batch-size", str(cfg.get("eval.batch_size", 0)),
              "--lr", repr(float(cfg.get("optimizer.lr", 0.01))), "--seed", str(cfg.get("seed", 0))]
    if recipe == "autoencoder":
        check_same(cfg, "model.name", "autoencoder", "small_cnn", "the autoencoder recipe")
        check_adam(cfg)
        check_same(cfg, "data.normalize", "auto", "auto", "pixels p / 255 in [0, 1]")
        check_same(cfg, "data.augment.pad_crop", 0, 0, "no augmentation")
        check_same(cfg, "data.augment.hflip", False, False, "no augmentation")
        return common + ["--code", str(cfg.get("autoencoder.code", 32)), "--width", str(cfg.get("autoencoder.width", 32)),
                         "--loss", str(cfg.get("autoencoder.loss", "bce")),
                         "--noise", str(cfg.get("autoencoder.noise", "none")),
                         "--noise-level", repr(float(cfg.get("autoencoder.noise_level", 0.3)))]
    if recipe == "text_classifier":
        check_same(cfg, "model.name", "text_classifier", "small_cnn", "the text classifier recipe")
        check_adam(cfg)
        check_same(cfg, "data.augment.pad_crop", 0, 0, "no augmentation")
        check_same(cfg, "data.augment.hflip", False, False, "no augmentation")
        return common + ["--emb-dim", str(cfg.get("text.emb_dim", 32)), "--hidden", str(cfg.get("text.hidden", 128)),
                         "--layers", str(cfg.get("text.layers", 1)),
                         "--bidirectional" if cfg.get("text.bidirectional", True) else "--no-bidirectional"]
    if recipe == "captioning":
        check_same(cfg, "model.name", "captioning", "small_cnn", "the captioning recipe")
        check_adam(cfg)
        check_same(cfg, "data.normalize", "auto", "auto", "the file's mean and std")
        return common + ["--conv-width", str(cfg.get("caption.conv_width", 16)),
                         "--stages", str(cfg.get("caption.stages", 3)), "--emb-dim", str(cfg.get("caption.emb_dim", 32)),
                         "--hidden", str(cfg.get("caption.hidden", 128)), "--captions", str(cfg.get("caption.captions", 5)),
                         "--max-decode-len", str(cfg.get("caption.max_decode_len", 0))]
    if recipe == "seq2seq":
        check_same(cfg, "model.name", "seq2seq", "small_cnn", "the seq2seq recipe")
        check_adam(cfg)
        hidden = int(cfg.get("model.hidden", 0)) or 256
        return ["--train", str(cfg["data.train"]), "--test", str(cfg.get("data.test", "")),
                "--emb-dim", str(cfg.get("model.emb_dim", 64)), "--hidden", str(hidden),
                "--layers", str(cfg.get("model.layers", 1)),
                "--bidirectional" if cfg.get("model.bidirectional", True) else "--no-bidirectional",
                "--attention", str(cfg.get("model.attention", "dot")),
                "--batch-size", str(cfg.get("batch_size", 64)), "--lr", repr(float(cfg.get("optimizer.lr", 0.01))),
                "--seed", str(cfg.get("seed", 0)), "--eval-batch-size", str(cfg.get("eval.batch_size", 0)),
                "--translations", str(cfg.get("seq2seq.translations", 5)),
                "--max-decode-len", str(cfg.get("seq2seq.max_decode_len", 0))]
    check_same(cfg, "model.name", "dcgan", "small_cnn", "the dcgan recipe")
    for side in ("optimizer_g", "optimizer_d"):
        check_same(cfg, side + ".name", "adam", "adam", "Adam for both networks")
        check_same(cfg, side + ".betas", [0.5, 0.999], [0.5, 0.999], "the DCGAN paper's betas")
        check_same(cfg, side + ".eps", 1e-8, 1e-8, "Adam's default eps")
        check_same(cfg, side + ".weight_decay", 0.0, 0.0, "no weight decay")
    lr = float(cfg.get("optimizer_g.lr", 2e-4))
    check_same(cfg, "optimizer_d.lr", lr, 2e-4, "one learning rate for both networks")
    return ["--train", str(cfg["data.train"]), "--z-dim", str(cfg.get("model.z_dim", 100)),
            "--g-channels", str(cfg.get("model.g_channels", 64)), "--d-channels", str(cfg.get("model.d_channels", 64)),
            "--batch-norm" if cfg.get("model.batch_norm", True) else "--no-batch-norm",
            "--batch-size", str(cfg.get("batch_size", 64)), "--lr", repr(lr), "--seed", str(cfg.get("seed", 0))]


# ---------------------------------------------------------------------------------------
# Running the two sides.

def run_logged(cmd, log_path, env):
    """Runs cmd, its stdout and stderr into log_path; exits with the log's tail on failure."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    with open(log_path) as log:
        text = log.read()
    if rc != 0:
        tail = "\n".join(text.splitlines()[-25:])
        fail(f"command failed (exit {rc}), log {log_path}:\n{tail}")
    return text, time.perf_counter() - t0


def last_json(text, what, log_path):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    fail(f"no JSON result line from {what}; see {log_path}")


def read_metrics(path):
    if not os.path.exists(path):
        fail(f"dtrain wrote no metrics file {path}")
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    fail(f"{path}:{n}: not JSON ({e})")
    return records


def timed_rate(records, key, warmup, path):
    """dtrain's rate over the train records after the warm-up steps, weighted by each
    record's wall time (time_s differences when present, else steps / rate)."""
    train = [r for r in records if r.get("kind") == "train"]
    if not train or any(key not in r for r in train):
        fail(f"{path}: no train records with '{key}'")
    timed = [(i, r) for i, r in enumerate(train) if r["step"] > warmup]
    if not timed:
        fail(f"{path}: no train record after the {warmup} warm-up steps; run more steps")
    num = den = 0.0
    for i, r in timed:
        prev = train[i - 1] if i > 0 else None
        steps = r.get("steps_logged", r["step"] - (prev["step"] if prev else 0))
        if prev is not None and "time_s" in r and "time_s" in prev:
            wall = r["time_s"] - prev["time_s"]
        else:
            wall = steps / r[key] if r[key] > 0 else 0.0
        num += r[key] * wall
        den += wall
    return num / den if den > 0 else float("nan")


class Runner:
    def __init__(self, a, recipe, mode):
        self.a, self.recipe = a, recipe
        self.config = a.config or CONFIGS[recipe]
        if not os.path.exists(a.dtrain):
            fail(f"{a.dtrain} not found; build dtrain first (bash scripts/build.sh) or pass --dtrain")
        self.cfg = load_config(self.config, a.set)
        self.torch_base = torch_args(recipe, self.cfg)
        self.dir = os.path.join(a.out, f"{mode}_{recipe}")
        os.makedirs(self.dir, exist_ok=True)
        self.env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
        # Both on OpenBLAS's OpenMP build, which dtrain links (Note [One thread pool] in
        # cmake/DtrainDependencies.cmake): Debian's torch takes the system OpenBLAS, by
        # default the pthread build, whose threads fight OpenMP's spinning workers.
        self.torch_env = dict(self.env)
        if a.torch_blas == "openmp":
            if not os.path.exists(os.path.join(OPENMP_BLAS, "libopenblas.so.0")):
                fail(f"{OPENMP_BLAS} has no libopenblas.so.0: apt-get install libopenblas0-openmp, "
                     "or pass --torch-blas system")
            self.torch_env["LD_LIBRARY_PATH"] = ":".join(
                x for x in (OPENMP_BLAS, os.environ.get("LD_LIBRARY_PATH", "")) if x)
        print(f"PyTorch's BLAS: {'OpenBLAS OpenMP build' if a.torch_blas == 'openmp' else 'the system default'}",
              flush=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def dtrain(self, tag, steps, extra):
        metrics = self.path(f"dtrain_{tag}.jsonl")
        if os.path.exists(metrics):
            os.remove(metrics)
        cmd = [self.a.dtrain, "train", self.config] + [x for s in self.a.set for x in ("--set", s)]
        for s in [f"steps={steps}", f"threads={self.a.threads}", f"log.metrics={metrics}"] + extra:
            cmd += ["--set", s]
        text, seconds = run_logged(cmd, self.path(f"dtrain_{tag}.log"), self.env)
        return read_metrics(metrics), metrics, seconds

    def torch(self, tag, steps, extra):
        script = os.path.join(HERE, SCRIPTS[self.recipe])
        cmd = [self.a.python, script] + self.torch_base + ["--steps", str(steps), "--threads", str(self.a.threads),
                                                           "--warmup", str(self.a.warmup)] + extra
        log = self.path(f"pytorch_{tag}.log")
        text, seconds = run_logged(cmd, log, self.torch_env)
        return last_json(text, "the PyTorch reference", log), seconds


def cmd_throughput(a):
    r = Runner(a, a.recipe, "throughput")
    if a.steps <= a.warmup:
        fail(f"--steps ({a.steps}) must exceed --warmup ({a.warmup})")
    interval = max(a.warmup, 1)  # dtrain's first record then covers exactly the warm-up steps
    if a.recipe in ("seq2seq", "captioning"):
        d_extra, t_extra = ["data.test=", f"log.interval={interval}"], ["--test", "", "--log-interval", str(a.steps)]
        if a.recipe == "captioning":
            d_extra += ["caption.samples=", "caption.attention="]
    elif a.recipe == "dcgan":
        d_extra = ["gan.samples=", "gan.export=", f"log.interval={interval}", f"eval.interval={a.steps}"]
        t_extra = ["--log-interval", str(a.steps)]
    else:  # autoencoder, text_classifier: no evaluation, no picture, no checkpoint
        side = "autoencoder.samples=" if a.recipe == "autoencoder" else "text.confusion="
        d_extra = ["data.test=", side, "checkpoint.dir=", f"log.interval={interval}"]
        t_extra = ["--test", "", "--log-interval", str(a.steps)]
    key, tkey = UNIT[a.recipe], TORCH_UNIT[a.recipe]
    ours, theirs = [], []
    for i in range(1, a.rounds + 1):
        records, metrics, _ = r.dtrain(f"r{i}", a.steps, d_extra)
        ours.append(timed_rate(records, key, a.warmup, metrics))
        res, _ = r.torch(f"r{i}", a.steps, t_extra)
        if res.get(tkey) is None:
            fail(f"the PyTorch reference reported no {tkey}; see {r.path(f'pytorch_r{i}.log')}")
        theirs.append(res[tkey])
        print(f"round {i}/{a.rounds}: dtrain {ours[-1]:10.1f} {SHORT[a.recipe]}   pytorch {theirs[-1]:10.1f} "
              f"{SHORT[a.recipe]}", flush=True)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"\n{a.recipe}, {a.steps} steps ({a.warmup} warm-up) x {a.rounds} rounds, {a.threads} threads, "
          f"config {r.config}")
    print(f"| implementation | median {SHORT[a.recipe]} | rounds |")
    print("|---|---|---|")
    print(f"| dtrain | {mo:.1f} | {', '.join(f'{x:.1f}' for x in ours)} |")
    print(f"| pytorch | {mt:.1f} | {', '.join(f'{x:.1f}' for x in theirs)} |")
    print(f"ratio dtrain / pytorch: {mo / mt:.3f}")
    summary = {"mode": "throughput", "recipe": a.recipe, "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds,
               "threads": a.threads, "config": r.config, "sets": a.set, "unit": key, "pytorch_unit": tkey, "dtrain": ours,
               "pytorch": theirs, "dtrain_median": mo, "pytorch_median": mt, "ratio": mo / mt}
    with open(r.path("summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"summary: {r.path('summary.json')}")


def fmt(v, spec=".4f"):
    return "n/a" if v is None else format(v, spec)


def quality_seq2seq(a, r):
    if not r.cfg.get("data.test"):
        fail("the config sets no data.test; the quality comparison needs the held-out file")
    records, metrics, d_sec = r.dtrain("run", a.steps, [f"eval.interval={a.steps}"])
    evals = [x for x in records if x.get("kind") == "eval"]
    if not evals:
        fail(f"{metrics}: dtrain wrote no eval record")
    d = evals[-1]
    for k in ("test_loss", "token_accuracy", "bleu"):
        if k not in d:
            fail(f"{metrics}: the last eval record has no '{k}'")
    trains = [x for x in records if x.get("kind") == "train"]
    d_rate = timed_rate(records, "tokens_per_s", 0, metrics) if trains and "tokens_per_s" in trains[0] else None
    t, t_sec = r.torch("run", a.steps, ["--log-interval", str(r.cfg.get("log.interval", 50))])
    rel = (d["test_loss"] - t["test_loss"]) / t["test_loss"]
    ok = abs(rel) <= 0.05
    print(f"\nseq2seq quality, {a.steps} steps, {a.threads} threads, config {r.config}")
    print("| | dtrain | pytorch |")
    print("|---|---|---|")
    print(f"| held-out loss | {d['test_loss']:.4f} | {t['test_loss']:.4f} |")
    print(f"| token accuracy | {d['token_accuracy']:.4f} | {t['token_accuracy']:.4f} |")
    print(f"| BLEU-4 | {d['bleu']:.2f} | {t['bleu']:.2f} |")
    print(f"| train tokens/s (indicative; use throughput) | {fmt(d_rate, '.1f')} | {fmt(t.get('tokens_per_s'), '.1f')} |")
    print(f"| run seconds (process) | {d_sec:.1f} | {t_sec:.1f} |")
    print(f"held-out loss: dtrain {100 * rel:+.2f}% against pytorch; within 5%: {'yes' if ok else 'NO'}")
    return {"dtrain": d, "pytorch": t, "dtrain_tokens_per_s": d_rate, "relative_loss_difference": rel,
            "within_5_percent": ok}


def quality_captioning(a, r):
    if not r.cfg.get("data.test"):
        fail("the config sets no data.test; the quality comparison needs the held-out file")
    records, metrics, d_sec = r.dtrain("run", a.steps, [f"eval.interval={a.steps}",
                                                        f"caption.samples={r.path('dtrain_scenes.png')}",
                                                        f"caption.attention={r.path('dtrain_attention.png')}"])
    evals = [x for x in records if x.get("kind") == "eval"]
    if not evals:
        fail(f"{metrics}: dtrain wrote no eval record")
    d = dict(evals[-1])
    for k in ("test_loss", "bleu", "exact", "item_accuracy", "cell_accuracy", "well_formed"):
        if k not in d:
            fail(f"{metrics}: the last eval record has no '{k}'")
    d_rate = timed_rate(records, "tokens_per_s", 0, metrics)
    t, t_sec = r.torch("run", a.steps, ["--log-interval", str(r.cfg.get("log.interval", 50))])
    rel = (d["test_loss"] - t["test_loss"]) / t["test_loss"]
    ok = abs(rel) <= 0.05
    print(f"\ncaptioning quality, {a.steps} steps, {a.threads} threads, config {r.config}")
    print("| | dtrain | pytorch |")
    print("|---|---|---|")
    print(f"| held-out loss per token | {d['test_loss']:.4f} | {t['test_loss']:.4f} |")
    print(f"| BLEU-4 | {d['bleu']:.2f} | {t['bleu']:.2f} |")
    print(f"| exact captions | {100 * d['exact']:.2f}% | {100 * t['exact']:.2f}% |")
    print(f"| items named in the right place | {100 * d['item_accuracy']:.2f}% | {100 * t['item_accuracy']:.2f}% |")
    print(f"| cells right (empty ones included) | {100 * d['cell_accuracy']:.2f}% | {100 * t['cell_accuracy']:.2f}% |")
    print(f"| well-formed captions | {100 * d['well_formed']:.2f}% | {100 * t['well_formed']:.2f}% |")
    print(f"| train tokens/s (indicative; use throughput) | {fmt(d_rate, '.1f')} | {fmt(t.get('tokens_per_s'), '.1f')} |")
    print(f"| run seconds (process) | {d_sec:.1f} | {t_sec:.1f} |")
    print(f"held-out loss: dtrain {100 * rel:+.2f}% against pytorch; within 5%: {'yes' if ok else 'NO'}")
    return {"dtrain": d, "pytorch": t, "dtrain_tokens_per_s": d_rate, "relative_loss_difference": rel,
            "within_5_percent": ok}


def quality_dcgan(a, r):
    if not a.classifier:
        fail("quality --recipe dcgan needs --classifier CKPT (the classifier checkpoint for `dtrain score`)")
    if not os.path.exists(a.classifier):
        fail(f"classifier checkpoint {a.classifier} not found")
    if not os.path.exists(a.real):
        fail(f"{a.real} not found; run scripts/prepare-data.sh to make the data files (or pass --real)")
    d_file, t_file = r.path("dtrain_samples.h5"), r.path("pytorch_samples.h5")
    for f in (d_file, t_file):
        if os.path.exists(f):
            os.remove(f)
    records, metrics, d_sec = r.dtrain("run", a.steps, [f"gan.export={d_file}", f"gan.export_n={a.export_n}",
                                                        f"gan.samples={r.path('dtrain_grid.png')}",
                                                        f"eval.interval={a.steps}"])
    if not os.path.exists(d_file):
        fail(f"dtrain wrote no {d_file} (gan.export)")
    d_rate = timed_rate(records, "images_per_s", 0, metrics)
    d_last = [x for x in records if x.get("kind") == "train"][-1]
    t, t_sec = r.torch("run", a.steps, ["--export", t_file, "--export-n", str(a.export_n),
                                        "--log-interval", str(r.cfg.get("log.interval", 50))])
    files = [d_file, t_file, a.real]
    cmd = [a.dtrain, "score", "--classifier", a.classifier, "--json"] + files
    text, _ = run_logged(cmd, r.path("score.log"), r.env)
    scores = {}
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "file" in rec and "score" in rec:
                scores[os.path.normpath(rec["file"])] = rec
    missing = [f for f in files if os.path.normpath(f) not in scores]
    if missing:
        fail(f"`dtrain score --json` printed no JSON line with \"file\" and \"score\" for {', '.join(missing)}; "
             f"see {r.path('score.log')}")
    sd, st, sr = (scores[os.path.normpath(f)]["score"] for f in files)
    ratio = sd / st
    ok = abs(ratio - 1) <= 0.10
    print(f"\ndcgan quality, {a.steps} steps, {a.export_n} samples each, {a.threads} threads, config {r.config}, "
          f"classifier {a.classifier}")
    print("| | dtrain | pytorch |")
    print("|---|---|---|")
    print(f"| score exp(E[KL(p(y|x) || p(y))]) | {sd:.4f} | {st:.4f} |")
    print(f"| last loss_d / loss_g | {d_last.get('loss_d', float('nan')):.4f} / {d_last.get('loss_g', float('nan')):.4f}"
          f" | {t['loss_d']:.4f} / {t['loss_g']:.4f} |")
    print(f"| train images/s (indicative; use throughput) | {d_rate:.1f} | {fmt(t.get('images_per_s'), '.1f')} |")
    print(f"| run seconds (process) | {d_sec:.1f} | {t_sec:.1f} |")
    print(f"real test images ({a.real}): score {sr:.4f}")
    print(f"score ratio dtrain / pytorch: {ratio:.3f}; within 10%: {'yes' if ok else 'NO'}")
    return {"dtrain_score": sd, "pytorch_score": st, "real_score": sr, "ratio": ratio, "within_10_percent": ok,
            "dtrain_images_per_s": d_rate, "pytorch": t, "dtrain_last_train": d_last, "scores": list(scores.values())}


def last_eval(records, metrics, keys):
    evals = [x for x in records if x.get("kind") == "eval"]
    if not evals:
        fail(f"{metrics}: dtrain wrote no eval record")
    for k in keys:
        if k not in evals[-1]:
            fail(f"{metrics}: the last eval record has no '{k}'")
    return evals[-1]


def torch_result(t, keys, log):
    for k in keys:
        if t.get(k) is None:
            fail(f"the PyTorch reference reported no {k}; see {log}")
    return t


def quality_autoencoder(a, r):
    if not r.cfg.get("data.test"):
        fail("the config sets no data.test; the quality comparison needs the held-out file")
    keys = ("test_loss", "test_mse", "psnr")
    # No checkpoints (not part of the comparison, and the reference writes none); the
    # reconstruction grid goes beside the logs.
    records, metrics, d_sec = r.dtrain("run", a.steps, [f"eval.interval={a.steps}", "checkpoint.dir=",
                                                        f"autoencoder.samples={r.path('dtrain_reconstructions.png')}"])
    d = last_eval(records, metrics, keys)
    d_rate = timed_rate(records, UNIT["autoencoder"], 0, metrics)
    t, t_sec = r.torch("run", a.steps, ["--log-interval", str(r.cfg.get("log.interval", 100))])
    t = torch_result(t, keys, r.path("pytorch_run.log"))
    rel = (d["test_loss"] - t["test_loss"]) / t["test_loss"]
    ok = abs(rel) <= 0.05
    print(f"\nautoencoder quality, {a.steps} steps, {a.threads} threads, config {r.config}")
    print("| | dtrain | pytorch |")
    print("|---|---|---|")
    print(f"| held-out loss ({r.cfg.get('autoencoder.loss', 'bce')}) | {d['test_loss']:.4f} | {t['test_loss']:.4f} |")
    print(f"| pixel MSE | {d['test_mse']:.5f} | {t['test_mse']:.5f} |")
    print(f"| PSNR (dB) | {d['psnr']:.2f} | {t['psnr']:.2f} |")
    print(f"| train images/s (indicative; use throughput) | {d_rate:.1f} | {fmt(t.get('images_per_s'), '.1f')} |")
    print(f"| run seconds (process) | {d_sec:.1f} | {t_sec:.1f} |")
    print(f"held-out loss: dtrain {100 * rel:+.2f}% against pytorch; within 5%: {'yes' if ok else 'NO'}")
    return {"dtrain": d, "pytorch": t, "dtrain_images_per_s": d_rate, "relative_loss_difference": rel,
            "within_5_percent": ok}


def quality_text_classifier(a, r):
    if not r.cfg.get("data.test"):
        fail("the config sets no data.test; the quality comparison needs the held-out file")
    keys = ("test_accuracy", "majority_accuracy", "test_loss")
    records, metrics, d_sec = r.dtrain("run", a.steps, [f"eval.interval={a.steps}", "checkpoint.dir=",
                                                        f"text.confusion={r.path('dtrain_confusion.png')}"])
    d = last_eval(records, metrics, keys)
    d_rate = timed_rate(records, UNIT["text_classifier"], 0, metrics)
    t, t_sec = r.torch("run", a.steps, ["--log-interval", str(r.cfg.get("log.interval", 100))])
    t = torch_result(t, keys, r.path("pytorch_run.log"))
    # dtrain writes 6 significant digits.
    if not math.isclose(d["majority_accuracy"], t["majority_accuracy"], rel_tol=1e-5, abs_tol=1e-6):
        fail(f"majority-class accuracy differs (dtrain {d['majority_accuracy']}, pytorch {t['majority_accuracy']}): "
             f"the two did not evaluate the same test file")
    diff = d["test_accuracy"] - t["test_accuracy"]
    close = abs(diff) <= 0.01
    margin = d["test_accuracy"] - d["majority_accuracy"]
    above = margin >= a.above_majority
    print(f"\ntext_classifier quality, {a.steps} steps, {a.threads} threads, config {r.config}")
    print("| | dtrain | pytorch |")
    print("|---|---|---|")
    print(f"| held-out accuracy | {100 * d['test_accuracy']:.2f}% | {100 * t['test_accuracy']:.2f}% |")
    print(f"| held-out loss | {d['test_loss']:.4f} | {t['test_loss']:.4f} |")
    print(f"| majority class | {100 * d['majority_accuracy']:.2f}% | {100 * t['majority_accuracy']:.2f}% |")
    print(f"| train samples/s (indicative; use throughput) | {d_rate:.1f} | {fmt(t.get('samples_per_s'), '.1f')} |")
    print(f"| run seconds (process) | {d_sec:.1f} | {t_sec:.1f} |")
    print(f"held-out accuracy: dtrain {100 * diff:+.2f} points against pytorch; within 1 point: "
          f"{'yes' if close else 'NO'}; {100 * margin:+.2f} points above the majority class (bar "
          f"{100 * a.above_majority:.0f}): {'yes' if above else 'NO'}")
    return {"dtrain": d, "pytorch": t, "dtrain_samples_per_s": d_rate, "accuracy_difference": diff,
            "within_1_point": close, "above_majority": margin, "above_majority_bar": a.above_majority,
            "well_above_majority": above}


QUALITY = {"seq2seq": quality_seq2seq, "dcgan": quality_dcgan, "autoencoder": quality_autoencoder,
           "text_classifier": quality_text_classifier, "captioning": quality_captioning}


def cmd_quality(a):
    r = Runner(a, a.recipe, "quality")
    result = QUALITY[a.recipe](a, r)
    result.update({"mode": "quality", "recipe": a.recipe, "steps": a.steps, "threads": a.threads, "config": r.config,
                   "sets": a.set})
    with open(r.path("summary.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"summary: {r.path('summary.json')}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--recipe", choices=RECIPES, required=True)
    common.add_argument("--dtrain", default=os.path.join("build", "launcher", "dtrain"), help="the dtrain binary")
    common.add_argument("--python", default=sys.executable, help="the Python that runs the PyTorch references")
    common.add_argument("--config", default="", help="dtrain config; default " + ", ".join(
        f"{CONFIGS[x]} ({x})" for x in RECIPES))
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to both implementations (repeatable)")
    common.add_argument("--threads", type=int, default=2, help="CPU threads of each process")
    common.add_argument("--torch-blas", choices=["openmp", "system"], default="openmp",
                        help="OpenBLAS build PyTorch runs on: openmp (the one dtrain links) or the system default")
    common.add_argument("--warmup", type=int, default=5, help="steps left out of the throughput")
    common.add_argument("--out", default=os.path.join("runs", "compare_recipes"), help="output folder")
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput", parents=[common], help="alternating runs, median rate of each")
    t.add_argument("--steps", type=int, default=30, help="steps per run, warm-up included")
    t.add_argument("--rounds", type=int, default=3)
    q = sub.add_parser("quality", parents=[common], help="one full run of each, quality side by side")
    q.add_argument("--steps", type=int, required=True, help="training steps of each run")
    q.add_argument("--classifier", default="", help="dcgan: classifier checkpoint for `dtrain score`")
    q.add_argument("--export-n", type=int, default=10000, help="dcgan: samples exported by each implementation")
    q.add_argument("--real", default=os.path.join("data", "fashion_mnist_test.h5"),
                   help="dcgan: real images scored alongside, as a reference")
    q.add_argument("--above-majority", type=float, default=0.2,
                   help="text_classifier: the margin (a fraction: 0.2 = 20 points) by which dtrain's held-out "
                        "accuracy must exceed the majority class's")
    a = p.parse_args()
    if a.threads < 1 or a.steps < 1 or a.warmup < 0:
        p.error("--threads and --steps must be >= 1, --warmup >= 0")
    if a.mode == "throughput" and a.rounds < 1:
        p.error("--rounds must be >= 1")
    (cmd_throughput if a.mode == "throughput" else cmd_quality)(a)


if __name__ == "__main__":
    main()
