"""Engine overhead: what the autograd adds on top of the array library.

1. Per-op overhead: a tiny op (forward + backward) through the engine vs the raw NumPy call(s) the
   op itself makes, on 1-element arrays so the arithmetic costs nothing.
2. An MLP 784-400-20 (ReLU) forward + backward, float32, at batch 32/128/1024, through the engine
   vs the same computation written by hand in NumPy with hand-derived gradients.

Prints a markdown table and writes JSON.  Not a test: targets (<= 15 us per op; MLP within 1.15x
of hand-written NumPy at batch 128) are reported, never asserted.

    python benchmarks/engine_overhead.py [--out results/engine_overhead.json] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scratchvae as sv  # noqa: E402
import scratchvae.functional as F  # noqa: E402


def timeit(fn, number, repeats):
    """Median, min and max seconds per call over ``repeats`` runs of ``number`` calls."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times), min(times), max(times)


def op_overheads(repeats):
    """Engine forward+backward of one op on tiny float32 arrays vs the same array calls made bare.

    The "raw" column performs exactly the NumPy calls the op's forward and backward make, so the
    difference is the engine's own cost: building the node, the topological sort, the gradient
    bookkeeping and releasing the graph.
    """
    from scratchvae.bench.workloads import _op_cases  # the same op table `scratchvae bench` uses

    a_np = np.full((1, 1), 0.5, np.float32)
    b_np = np.full((1, 1), 0.25, np.float32)
    cases = _op_cases(np, F, a_np, b_np, np.ones((1, 1), np.float32), np.ones((), np.float32))
    rows = []
    a = sv.tensor(a_np, requires_grad=True)
    b = sv.tensor(b_np, requires_grad=True)
    for name, (engine_op, raw, grad) in cases.items():
        def step():
            engine_op(a, b).backward(grad)
        t_engine, _, _ = timeit(step, 3000, repeats)
        t_raw, _, _ = timeit(raw, 3000, repeats)
        rows.append({"op": name, "engine_fwd_bwd_us": t_engine * 1e6, "raw_numpy_fwd_bwd_us": t_raw * 1e6,
                     "overhead_us": (t_engine - t_raw) * 1e6})
        a.grad = b.grad = None
    return rows


def mlp_params(rng, sizes=(784, 400, 20)):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))
    return params


def mlp_engine(params, x_np):
    """784-400-20 forward + backward through the engine; the loss is sum(out^2) / 2."""
    W1, b1, W2, b2 = params
    x = sv.tensor(x_np)

    def step():
        for p in params:
            p.grad = None
        h = F.relu(x @ W1 + b1)
        out = h @ W2 + b2
        loss = F.sum(out * out) * 0.5
        loss.backward()
    return step


def mlp_numpy(params, x):
    """The same step by hand: forward, then the hand-derived gradients."""
    W1, b1, W2, b2 = params

    def step():
        a1 = x @ W1 + b1
        h = np.maximum(a1, 0)
        out = h @ W2 + b2
        _ = np.sum(out * out) * 0.5
        g_out = out
        gW2 = h.T @ g_out
        gb2 = g_out.sum(axis=0)
        gh = g_out @ W2.T
        ga1 = gh * (a1 > 0)
        gW1 = x.T @ ga1
        gb1 = ga1.sum(axis=0)
        return gW1, gb1, gW2, gb2
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/engine_overhead.json")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batches", default="32,128,1024")
    args = ap.parse_args(argv)
    sv.set_backend("numpy")
    sv.set_default_dtype("float32")

    ops = op_overheads(args.repeats)
    print("## Per-op overhead (tiny float32 arrays; forward + backward)\n")
    print("| op | engine fwd+bwd (us) | same NumPy calls, bare (us) | engine overhead (us) |")
    print("|---|---:|---:|---:|")
    for r in ops:
        print(f"| {r['op']} | {r['engine_fwd_bwd_us']:.1f} | {r['raw_numpy_fwd_bwd_us']:.1f} | {r['overhead_us']:.1f} |")
    print("\nTarget: engine overhead <= 15 us per op.\n")

    rng = np.random.default_rng(0)
    host = mlp_params(rng)
    mlp_rows = []
    print("## MLP 784-400-20 ReLU, float32, forward + backward\n")
    print("| batch | engine median (ms) | hand NumPy median (ms) | engine / hand | engine min-max (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for batch in [int(b) for b in args.batches.split(",")]:
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        params = [sv.tensor(p, requires_grad=True) for p in host]
        number = max(3, int(2000 / batch))
        t_e, lo, hi = timeit(mlp_engine(params, x), number, args.repeats)
        t_h, _, _ = timeit(mlp_numpy(host, x), number, args.repeats)
        mlp_rows.append({"batch": batch, "engine_ms": t_e * 1e3, "numpy_ms": t_h * 1e3, "ratio": t_e / t_h,
                         "engine_min_ms": lo * 1e3, "engine_max_ms": hi * 1e3})
        print(f"| {batch} | {t_e*1e3:.3f} | {t_h*1e3:.3f} | {t_e/t_h:.3f} | {lo*1e3:.3f}-{hi*1e3:.3f} |")
    print("\nTarget: engine / hand <= 1.15 at batch 128.")

    env = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
           "processor": platform.processor(), "cpus": os.cpu_count(),
           "threads": os.environ.get("OMP_NUM_THREADS"), "scratchvae": sv.__version__}
    try:
        from threadpoolctl import threadpool_info
        env["blas"] = [{k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                       for i in threadpool_info()]
    except ImportError:
        env["blas"] = "threadpoolctl not installed"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "ops": ops, "mlp": mlp_rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
