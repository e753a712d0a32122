#!/usr/bin/python3
# Writes tests/fixtures/golden_lbfgs.h5, the PyTorch reference for the L-BFGS optimizer
# (tests/core/test_lbfgs.cpp): torch.optim.LBFGS in float64 on Rosenbrock functions.
#
# Regenerate (from the repository root, with Debian's python3-torch and python3-h5py):
#     /usr/bin/python3 scripts/make_golden_lbfgs.py
# and commit the new fixture. Bump FORMAT_VERSION (and the check in the test) whenever the
# layout of the file changes.
#
# Problems (parameters are n separate one-element tensors x0 .. x{n-1}, so that the
# optimizer also flattens several parameters):
#   rosenbrock2   f = (1 - x0)^2 + 100 (x1 - x0^2)^2 from (-1.5, 2)
#   rosenbrock6   f = sum_i 100 (x{i+1} - x_i^2)^2 + (1 - x_i)^2 from (-1.2, 1, -1.2, 1, -1.2, 1)
# Runs, each a group /<run> with attributes problem, lr, max_iter, history_size,
# line_search ("none" or "strong_wolfe"), steps (calls of step()):
#   /<run>/x0 (n,)                  the start
#   /<run>/x (steps, n)             the parameters after each step() call
#   /<run>/loss (steps,)            the value step() returned (the loss at its start)
#   /<run>/func_evals (steps,) i64  the optimizer's func_evals after each call
#   /<run>/n_iter (steps,) i64      the optimizer's n_iter after each call
# All float64.
import os

import h5py
import numpy as np
import torch

FORMAT_VERSION = 1

PROBLEMS = {
    "rosenbrock2": [-1.5, 2.0],
    "rosenbrock6": [-1.2, 1.0, -1.2, 1.0, -1.2, 1.0],
}

RUNS = [
    # name, problem, lr, max_iter, history_size, line_search, steps
    ("fixed_step", "rosenbrock2", 0.05, 20, 100, "none", 4),
    ("fixed_step_short_history", "rosenbrock6", 0.02, 10, 3, "none", 5),
    ("strong_wolfe", "rosenbrock2", 1.0, 20, 100, "strong_wolfe", 3),
    ("strong_wolfe_6", "rosenbrock6", 1.0, 15, 5, "strong_wolfe", 3),
]


def rosenbrock(xs):
    f = 0
    for i in range(len(xs) - 1):
        f = f + 100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2
    return f.sum()


def run(problem, lr, max_iter, history_size, line_search, steps):
    xs = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in PROBLEMS[problem]]
    opt = torch.optim.LBFGS(xs, lr=lr, max_iter=max_iter, history_size=history_size,
                            line_search_fn=None if line_search == "none" else line_search)

    def closure():
        opt.zero_grad()
        f = rosenbrock(xs)
        f.backward()
        return f

    out = {"x": [], "loss": [], "func_evals": [], "n_iter": []}
    for _ in range(steps):
        loss = opt.step(closure)
        state = opt.state[xs[0]]
        out["x"].append([x.item() for x in xs])
        out["loss"].append(float(loss))
        out["func_evals"].append(state["func_evals"])
        out["n_iter"].append(state["n_iter"])
    return out


def main():
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden_lbfgs.h5")
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generator"] = "scripts/make_golden_lbfgs.py"
        f.attrs["torch_version"] = str(torch.__version__)
        for name, problem, lr, max_iter, history, ls, steps in RUNS:
            r = run(problem, lr, max_iter, history, ls, steps)
            g = f.create_group(name)
            g.attrs["problem"] = problem
            g.attrs["lr"] = lr
            g.attrs["max_iter"] = max_iter
            g.attrs["history_size"] = history
            g.attrs["line_search"] = ls
            g.attrs["steps"] = steps
            g["x0"] = np.array(PROBLEMS[problem], dtype=np.float64)
            g["x"] = np.array(r["x"], dtype=np.float64)
            g["loss"] = np.array(r["loss"], dtype=np.float64)
            g["func_evals"] = np.array(r["func_evals"], dtype=np.int64)
            g["n_iter"] = np.array(r["n_iter"], dtype=np.int64)
            print(f"{name}: x {r['x'][-1]} loss {r['loss']} evals {r['func_evals']} iters {r['n_iter']}")
    print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
