"""Reproduce the MNIST numbers reported in README.md (docs/training.md#the-reported-numbers).

1. ``pytorch-example``: the preset for 10 epochs on the full MNIST; the test loss per image after
   every epoch (one sampled z per image, as pytorch/examples computes it; anchor ~105.5 nats after
   epoch 10) and the seconds per training epoch.
2. ``table``: the IWAE paper's table (Burda, Grosse & Salakhutdinov 2016) in a budget.  Each row is
   the paper's recipe (the ``iwae-paper`` / ``iwae-paper-2layer`` presets: dynamic binarization,
   Adam, the 3^i-epoch schedule) truncated to the same ``--budget-minutes`` of this process's CPU
   time (``--budget-clock cpu``, so rows run side by side on a shared machine get the same compute),
   then the test NLL by importance sampling with k = ``--k`` (5000) on all 10,000 test images.

   rows: vae-k1, vae-k5, iwae-k5, iwae-k5-dreg (one stochastic layer), vae2-k1, iwae2-k5 (two).

Each row writes its own run folder, ``OUT/ROW/row.json`` and ``OUT/ROW/test_log_px.npy`` (the
per-image log p(x)); ``OUT/results.md`` (the table, rebuilt from every finished row, and the paired
differences between rows, whose standard errors are far smaller than the rows' own because every row
is evaluated on the same images with the same noise seed) and ``OUT/curves.png`` (test -IWAE_k per
epoch against CPU minutes).

    python benchmarks/mnist_results.py --blas-threads 1                       # everything, one after another
    python benchmarks/mnist_results.py --only table --rows vae-k1,iwae-k5 --blas-threads 1   # some rows
    python benchmarks/mnist_results.py --only table --report                  # rebuild the table only
    python benchmarks/mnist_results.py --only pytorch-example --epochs 1     # a quick check
    python benchmarks/mnist_results.py --only table --rows vae-k1 --budget-minutes 1 --k 100 --n-test 500

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

# name: (label, preset, overrides, the paper's test NLL (3280 epochs), or None where the paper has none)
ROWS = {
    "vae-k1": ("VAE, k=1", "iwae-paper", {"objective": "elbo", "n_samples": 1}, 86.76),
    "vae-k5": ("VAE, k=5", "iwae-paper", {"objective": "elbo", "n_samples": 5}, 86.47),
    "iwae-k5": ("IWAE, k=5", "iwae-paper", {"objective": "iwae", "n_samples": 5}, 85.54),
    "iwae-k5-dreg": ("IWAE, k=5, DReG", "iwae-paper", {"objective": "iwae", "n_samples": 5,
                                                        "grad_estimator": "dreg"}, None),
    "vae2-k1": ("2 layers: VAE, k=1", "iwae-paper-2layer", {"objective": "elbo", "n_samples": 1}, 85.33),
    "iwae2-k5": ("2 layers: IWAE, k=5", "iwae-paper-2layer", {"objective": "iwae", "n_samples": 5}, 83.89),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["pytorch-example", "table"], help="run one experiment only")
    p.add_argument("--rows", help=f"comma-separated table rows (default all: {','.join(ROWS)})")
    p.add_argument("--report", action="store_true", help="only rebuild the table from the finished rows")
    p.add_argument("--curve-n-test", type=int, default=1000,
                   help="test images for the per-epoch ELBO / IWAE_k curve during training (default 1000)")
    p.add_argument("--data-dir", help="folder with the four MNIST .gz files")
    p.add_argument("--out", default=str(ROOT / "results" / "mnist"), help="output folder (default results/mnist)")
    p.add_argument("--epochs", type=int, default=10, help="pytorch-example epochs (default 10)")
    p.add_argument("--budget-minutes", type=float, default=15.0,
                   help="CPU minutes of training (+ its per-epoch evaluation) per table row (default 15)")
    p.add_argument("--k", type=int, default=5000, help="importance samples for the test NLL (default 5000)")
    p.add_argument("--n-test", type=int, help="evaluate the NLL on the first N test images only (default all)")
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
    import numpy as np

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

    def run(name, preset=None, **over):
        folder = out / name
        common = {"data": "mnist", "data_dir": data_dir, "backend": args.backend, "figures": True}
        t0 = time.perf_counter()
        if folder.exists() and (folder / "checkpoint.npz").is_file():
            if not args.resume:
                raise SystemExit(f"{folder} exists; pass --resume to continue it, or delete it to start over")
            r = train(run_dir=folder, resume=True, epochs=over.get("epochs"), time_budget=over.get("time_budget"),
                      progress=not args.no_progress)
        else:
            r = train(make_config(preset or name, **common, **over), folder, progress=not args.no_progress)
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

    if args.only in (None, "table"):
        names = list(ROWS) if not args.rows else args.rows.split(",")
        unknown = [n for n in names if n not in ROWS]
        if unknown:
            raise SystemExit(f"unknown row(s) {unknown}; rows: {', '.join(ROWS)}")
        for name in names if not args.report else []:
            if (out / name / "row.json").is_file() and not args.resume:
                print(f"{name}: done already ({out / name / 'row.json'}); delete it to run again")
                continue
            label, preset, over, _ = ROWS[name]
            r, wall = run(name, preset=preset, time_budget=args.budget_minutes, budget_clock="cpu",
                          n_test=args.curve_n_test, **over)
            m = r.metrics
            x, _ = load_test_data(load_config(out / name), "mnist", n_test=args.n_test or 10**9)
            t0 = time.perf_counter()
            ev = evaluate(r.model, x, k=args.k, generator=Generator(0), progress=not args.no_progress,
                          per_image=True)
            # Every row is evaluated on the same images with the same noise seed, so the per-image
            # estimates make paired comparisons (PAIRS) far sharper than the rows' own standard errors.
            np.save(out / name / "test_log_px.npy", ev.pop("log_px_images"))
            row = {"name": name, "label": label, "preset": preset, "overrides": over,
                   "command": f"scratchvae train --preset {preset} --data-dir DIR "
                              + " ".join(f"--{k.replace('_', '-') if k != 'n_samples' else 'k'} {v}"
                                         for k, v in over.items())
                              + f" --time-budget {args.budget_minutes:g} --budget-clock cpu"
                              + f" --n-test {args.curve_n_test}"
                              + f" && scratchvae evaluate RUN --k {args.k} --n-test {ev['n']}",
                   "budget_cpu_minutes": args.budget_minutes, "epochs_reached": r.epochs_done, "status": r.status,
                   "cpu_minutes": sum(row.get("cpu_seconds", 0.0) for row in m) / 60,
                   "wall_minutes": wall / 60, "test_nll": ev["nll"], "test_nll_stderr": ev["nll_stderr"],
                   "k": args.k, "n_test": ev["n"], "test_elbo": ev["elbo"], "active_units": ev["active_units"],
                   "active_units_z2": ev.get("active_units_z2"), "latent_dim": ev["latent_dim"],
                   "ess_mean": ev["ess_mean"], "eval_minutes": (time.perf_counter() - t0) / 60,
                   "paper_nll": ROWS[name][3],
                   "curve": [{"epoch": row["epoch"], "cpu_minutes": sum(q.get("cpu_seconds", 0.0)
                                                                        for q in m[: i + 1]) / 60,
                              "test_elbo": row.get("test_elbo"), "test_iwae": row.get("test_iwae"),
                              "train_elbo": row.get("train_elbo")} for i, row in enumerate(m)]}
            (out / name / "row.json").write_text(json.dumps(row, indent=2) + "\n")
        results["table"] = {n: json.loads((out / n / "row.json").read_text()) for n in ROWS
                            if (out / n / "row.json").is_file()}
        results["table_k_curve_n_test"] = args.curve_n_test
        results["pairs"] = paired_differences(out, results["table"])
        _write(out, results)
        _curves(out, results["table"])
    print((out / "results.md").read_text())
    return 0


# (a, b): the paper's claim is NLL(a) < NLL(b).
PAIRS = [("iwae-k5", "vae-k5"), ("iwae-k5-dreg", "iwae-k5"), ("vae-k5", "vae-k1"), ("vae2-k1", "vae-k1"),
         ("iwae2-k5", "iwae-k5")]


def paired_differences(out: Path, table: dict) -> list:
    """NLL(a) - NLL(b) over the same test images, mean +- the standard error of the per-image differences."""
    import numpy as np
    pairs = []
    for a, b in PAIRS:
        fa, fb = out / a / "test_log_px.npy", out / b / "test_log_px.npy"
        if a not in table or b not in table or not (fa.is_file() and fb.is_file()):
            continue
        d = np.load(fb) - np.load(fa)  # -log p_a(x) - (-log p_b(x)), image by image
        pa, pb = table[a].get("paper_nll"), table[b].get("paper_nll")
        pairs.append({"a": a, "b": b, "label_a": table[a]["label"], "label_b": table[b]["label"],
                      "n": int(d.size), "diff": float(d.mean()), "stderr": float(d.std() / np.sqrt(d.size)),
                      "paper_diff": (pa - pb) if pa and pb else None})
    return pairs


def _curves(out: Path, table: dict) -> None:
    """test -IWAE_k (k of the row's training) per epoch against CPU minutes, one line per row."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in table.values():
        pts = [(c["cpu_minutes"], -c["test_iwae"]) for c in row["curve"] if c.get("test_iwae") is not None]
        if pts:
            ax.plot(*zip(*pts), marker=".", label=row["label"])
    ax.set_xlabel("CPU minutes of training")
    ax.set_ylabel("test -IWAE_k (nats; k of the row's training)")
    ax.set_ylim(top=110)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)


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
    table = results.get("table")
    if table:
        lines += ["**The IWAE paper's table in a budget** (full MNIST, dynamic binarization, the paper's optimizer "
                  "and schedule cut to the same CPU-time budget per row, one BLAS thread; test NLL by importance "
                  "sampling)", "",
                  "| model | budget (CPU) | epochs reached | test NLL +- s.e. | test -ELBO | active units | "
                  "paper (3280 epochs) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in table.values():
            au = str(row["active_units"]) + (f" + {row['active_units_z2']}" if row.get("active_units_z2") is not None
                                             else "")
            paper = f"{row['paper_nll']:.2f}" if row.get("paper_nll") else "-"
            lines.append(f"| {row['label']} | {row['budget_cpu_minutes']:g} min | {row['epochs_reached']} | "
                         f"{row['test_nll']:.2f} +- {row['test_nll_stderr']:.2f} | {-row['test_elbo']:.2f} | {au} | "
                         f"{paper} |")
        first = next(iter(table.values()))
        lines += ["", f"k = {first['k']} importance samples on {first['n_test']} test images.  Commands:", ""]
        lines += [f"- {row['label']}: `{row['command']}`" for row in table.values()]
        lines.append("")
    pairs = results.get("pairs")
    if pairs:
        lines += ["**Paired differences** (the same test images and noise seed for every row; the standard "
                  "error is that of the per-image differences, so it is much smaller than the rows' own)", "",
                  "| comparison | NLL(a) - NLL(b) +- s.e. | z | paper |", "| --- | ---: | ---: | ---: |"]
        for p in pairs:
            paper = f"{p['paper_diff']:+.2f}" if p.get("paper_diff") is not None else "-"
            lines.append(f"| a = {p['label_a']}, b = {p['label_b']} | {p['diff']:+.2f} +- {p['stderr']:.2f} | "
                         f"{p['diff'] / p['stderr']:+.1f} | {paper} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
