#!/usr/bin/python3
"""Small VGG CPU training throughput, dtrain beside PyTorch in one run.

Runs the two implementations alternately (dtrain, PyTorch, dtrain, ...) as separate
processes with the same thread count, each doing warm-up steps and then timed steps of a
full SGD-momentum training step (conv64-conv64-pool-conv128-conv128-pool-conv256-pool-
fc512-fc10 on 3x32x32, batch 64, fp32), and prints the median images/s of each and the
ratio dtrain / PyTorch.

    /usr/bin/python3 benchmarks/compare_small_vgg.py --bench build/benchmarks/bench_small_vgg
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON result from: " + " ".join(cmd) + "\n" + out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", default=os.path.join("build", "benchmarks", "bench_small_vgg"),
                   help="the dtrain benchmark binary")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    if not os.path.exists(a.bench):
        sys.exit(f"compare_small_vgg: {a.bench} not found; build dtrain first (bash scripts/build.sh)")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    # PyTorch on the OpenBLAS build dtrain links (Note [One thread pool] in
    # cmake/DtrainDependencies.cmake), when installed.
    torch_env = dict(env)
    openmp_blas = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
    if os.path.exists(os.path.join(openmp_blas, "libopenblas.so.0")):
        torch_env["LD_LIBRARY_PATH"] = ":".join(x for x in (openmp_blas, os.environ.get("LD_LIBRARY_PATH", "")) if x)
    common = ["--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup)]
    ours, theirs = [], []
    for r in range(a.rounds):
        d = run([a.bench] + common, env)
        t = run([sys.executable, os.path.join(HERE, "small_vgg_torch.py")] + common, torch_env)
        ours += d["images_per_s"]
        theirs += t["images_per_s"]
        print(f"round {r + 1}/{a.rounds}: dtrain {statistics.median(d['images_per_s']):8.1f} img/s   "
              f"pytorch {statistics.median(t['images_per_s']):8.1f} img/s", flush=True)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"median over {len(ours)} steps each, {a.threads} threads: dtrain {mo:.1f} img/s, "
          f"pytorch {mt:.1f} img/s, ratio dtrain/pytorch {mo / mt:.3f}")


if __name__ == "__main__":
    main()
