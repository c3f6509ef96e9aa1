"""Reproduce the two MNIST numbers reported in README.md (docs/training.md#the-reported-numbers).

1. ``pytorch-example``: the preset for 10 epochs on the full MNIST; the test loss per image after
   every epoch (one sampled z per image, as pytorch/examples computes it; anchor ~105.5 nats after
   epoch 10) and the seconds per training epoch.
2. ``iwae-paper``: the preset shortened to a time budget (``--budget-minutes``, default 60: training
   stops after the last epoch that fits), then the test NLL by importance sampling with k = 5000
   (the paper's full 3280-epoch schedule reaches 86.76 nats).

Writes ``OUT/results.json`` and ``OUT/results.md`` (a markdown table), plus one run folder per
experiment (``OUT/pytorch-example``, ``OUT/iwae-paper``) that ``scratchvae evaluate`` / ``plot`` read.

    python benchmarks/mnist_results.py                          # both, full length
    python benchmarks/mnist_results.py --only pytorch-example --epochs 1     # a quick check
    python benchmarks/mnist_results.py --only iwae-paper --budget-minutes 2 --k 100 --n-test 1000

The full MNIST files are taken from --data-dir, else ../shared/data/mnist next to the repository
when present, else the user cache (downloading them if needed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
PYTORCH_ANCHOR = [127.30, 115.79, 112.22, 109.64, 108.54, 107.70, 107.07, 106.66, 106.04, 105.56]
IWAE_ANCHOR = 86.76


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["pytorch-example", "iwae-paper"], help="run one experiment only")
    p.add_argument("--data-dir", help="folder with the four MNIST .gz files")
    p.add_argument("--out", default=str(ROOT / "results" / "mnist"), help="output folder (default results/mnist)")
    p.add_argument("--epochs", type=int, default=10, help="pytorch-example epochs (default 10)")
    p.add_argument("--budget-minutes", type=float, default=60.0, help="iwae-paper training budget (default 60)")
    p.add_argument("--k", type=int, default=5000, help="importance samples for the iwae-paper NLL (default 5000)")
    p.add_argument("--n-test", type=int, help="evaluate the NLL on the first N test images only")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--blas-threads", type=int,
                   help="set OPENBLAS/OMP/MKL_NUM_THREADS before NumPy loads (1 is often fastest on a busy machine)")
    p.add_argument("--resume", action="store_true", help="continue existing run folders instead of refusing")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    sys.path.insert(0, str(ROOT))
    # NumPy (and with it BLAS) is imported only now, after the thread settings.
    import numpy as np  # noqa: F401

    from scratchvae.evaluate import evaluate
    from scratchvae.random import Generator
    from scratchvae.train import load_config, load_test_data, make_config, train

    data_dir = args.data_dir or (str(SHARED_MNIST) if (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file() else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "backend": args.backend, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}
    results = {"environment": env}
    results_path = out / "results.json"
    if results_path.is_file():
        results = {**json.loads(results_path.read_text()), "environment": env}

    def run(name, **over):
        folder = out / name
        common = {"data": "mnist", "data_dir": data_dir, "backend": args.backend, "figures": True}
        t0 = time.perf_counter()
        if folder.exists() and (folder / "checkpoint.npz").is_file():
            if not args.resume:
                raise SystemExit(f"{folder} exists; pass --resume to continue it, or delete it to start over")
            r = train(run_dir=folder, resume=True, epochs=over.get("epochs"), time_budget=over.get("time_budget"),
                      progress=not args.no_progress)
        else:
            r = train(make_config(name, **common, **over), folder, progress=not args.no_progress)
        return r, time.perf_counter() - t0

    if args.only in (None, "pytorch-example"):
        r, wall = run("pytorch-example", epochs=args.epochs)
        m = r.metrics
        results["pytorch-example"] = {
            "command": f"scratchvae train --preset pytorch-example --data-dir DIR --epochs {args.epochs}",
            "epochs": len(m), "test_loss_per_epoch": [row["test_loss"] for row in m],
            "train_loss_per_epoch": [row["train_loss"] for row in m],
            "seconds_per_epoch": [row["train_seconds"] for row in m],
            "mean_seconds_per_epoch": sum(row["train_seconds"] for row in m) / len(m),
            "anchor_test_loss_per_epoch": PYTORCH_ANCHOR[: len(m)], "wall_seconds": wall,
        }
        _write(out, results)

    if args.only in (None, "iwae-paper"):
        r, wall = run("iwae-paper", time_budget=args.budget_minutes)
        m = r.metrics
        x, _ = load_test_data(load_config(out / "iwae-paper"), "mnist", n_test=args.n_test)
        t0 = time.perf_counter()
        ev = evaluate(r.model, x, k=args.k, generator=Generator(0), progress=not args.no_progress)
        results["iwae-paper"] = {
            "command": f"scratchvae train --preset iwae-paper --data-dir DIR --time-budget {args.budget_minutes:g}"
                       f" && scratchvae evaluate RUN --k {args.k}",
            "budget_minutes": args.budget_minutes, "epochs_reached": r.epochs_done, "status": r.status,
            "train_minutes": sum(row["train_seconds"] for row in m) / 60,
            "elapsed_minutes": m[-1]["elapsed_seconds"] / 60 if m else 0.0,
            "mean_seconds_per_epoch": sum(row["train_seconds"] for row in m) / max(len(m), 1),
            "test_nll": ev["nll"], "test_nll_stderr": ev["nll_stderr"], "k": args.k, "n_test": ev["n"],
            "test_elbo": ev["elbo"], "active_units": ev["active_units"], "ess_mean": ev["ess_mean"],
            "eval_minutes": (time.perf_counter() - t0) / 60, "anchor_nll_full_schedule": IWAE_ANCHOR,
            "wall_seconds": wall,
        }
        _write(out, results)
    print((out / "results.md").read_text())
    return 0


def _write(out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = [f"Machine: {env['cpus']} CPUs ({env['machine']}), backend {env['backend']}, "
             f"BLAS threads {env['blas_threads']}, Python {env['python']}.", ""]
    pt = results.get("pytorch-example")
    if pt:
        lines += ["**pytorch-example** (full MNIST, test loss per image in nats, one sampled z per image; "
                  "Bernoulli on grey levels, so not a log-likelihood)", "",
                  "| epoch | test loss | pytorch/examples | seconds |", "| ---: | ---: | ---: | ---: |"]
        for i, (loss, sec) in enumerate(zip(pt["test_loss_per_epoch"], pt["seconds_per_epoch"])):
            anchor = f"{PYTORCH_ANCHOR[i]:.2f}" if i < len(PYTORCH_ANCHOR) else ""
            lines.append(f"| {i + 1} | {loss:.2f} | {anchor} | {sec:.1f} |")
        lines += ["", f"Mean {pt['mean_seconds_per_epoch']:.1f} s per training epoch.  Command: "
                      f"`{pt['command']}`", ""]
    iw = results.get("iwae-paper")
    if iw:
        lines += ["**iwae-paper** shortened to a time budget (dynamic binarization; test NLL by importance "
                  "sampling)", "",
                  "| budget | epochs reached | training time | test NLL (k) | test ELBO | active units | paper (3280 "
                  "epochs) |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                  f"| {iw['budget_minutes']:g} min | {iw['epochs_reached']} | {iw['train_minutes']:.1f} min | "
                  f"{iw['test_nll']:.2f} +- {iw['test_nll_stderr']:.2f} (k={iw['k']}, {iw['n_test']} images) | "
                  f"{-iw['test_elbo']:.2f} | {iw['active_units']} | {IWAE_ANCHOR} |", "",
                  f"Mean {iw['mean_seconds_per_epoch']:.1f} s per training epoch; the NLL evaluation took "
                  f"{iw['eval_minutes']:.1f} min.  Command: `{iw['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
