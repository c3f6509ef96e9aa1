"""The benchmark's report: ratios measured in the same run, the targets, a markdown table, the
environment as JSON, and a log-log plot of throughput against batch size per backend.

Ratios are speed ratios, reference time / this time (> 1: faster than the reference), taken
between rows of the same run at the same point (preset, batch, width, dtype), because machines are
noisy and numbers from different runs do not compare.  Memory ratios are this peak / the hand step's.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

from .backends import preset_arch

__all__ = ["BASE_BATCH", "TARGETS", "add_ratios", "environment", "evaluate_targets", "markdown", "plot_throughput",
           "write_report"]

#: Batch size of the width and dtype sweeps and of the headline targets.
BASE_BATCH = 128
MB = 2**20

#: The performance targets of the benchmark issue: reported, never asserted.
TARGETS = {
    "hand": "NumPy step >= 0.9x the hand-written NumPy step (pytorch-example, float32, batch 128)",
    "torch_cpu": "NumPy step >= 1.0x PyTorch CPU (pytorch-example, float32, batch 128)",
    "overhead": "engine overhead per op (forward + backward) <= 15 us",
    "cupy": "CuPy step >= 0.8x PyTorch CUDA at batch >= 1024",
    "memory": "peak memory during a step <= 1.5x the hand-written NumPy step",
}


# --------------------------------------------------------------------------------------------------
# ratios and targets

def _key(r):
    return (r["workload"], r.get("preset"), r.get("batch"), r.get("width"), r.get("dtype"), r.get("k"))


def _time(r):
    return r.get("ms_median", r.get("s_median"))


def add_ratios(rows: list) -> list:
    """Add ``vs_hand`` and ``vs_torch`` (speed ratios) and ``mem_vs_hand`` to each timed row, in place.

    ``vs_torch`` compares against PyTorch on the same kind of device (torch-cpu for CPU rows,
    torch-cuda for GPU rows).
    """
    by_point = {}
    for r in rows:
        if r.get("status", "").startswith("ok"):
            by_point.setdefault(_key(r), {})[r["backend"]] = r
    for group in by_point.values():
        hand = group.get("hand-numpy")
        for r in group.values():
            t = _time(r)
            if t is None:
                continue
            if hand is not None and _time(hand):
                r["vs_hand"] = _time(hand) / t
                if r.get("peak_bytes") and hand.get("peak_bytes"):
                    r["mem_vs_hand"] = r["peak_bytes"] / hand["peak_bytes"]
            torch = group.get("torch-cuda" if r["device"] == "gpu" else "torch-cpu")
            if torch is not None and _time(torch):
                r["vs_torch"] = _time(torch) / t
    return rows


def _ok(rows, **match):
    return [r for r in rows if r.get("status", "").startswith("ok") and all(r.get(k) == v for k, v in match.items())]


def evaluate_targets(rows: list) -> list:
    """One entry per target: {"id", "target", "measured", "status"} with status met / missed / not measured."""
    out = []

    def add(tid, measured, ok, why=None):
        status = "not measured" if measured is None else ("met" if ok else "missed")
        out.append({"id": tid, "target": TARGETS[tid], "measured": measured if measured is not None else why,
                    "status": status})

    base = _ok(rows, workload="step", preset="pytorch-example", batch=BASE_BATCH, dtype="float32", backend="numpy",
               width=preset_arch("pytorch-example").hidden[0])
    r = base[0] if base else None
    v = r.get("vs_hand") if r else None
    add("hand", None if v is None else f"{v:.3f}x", v is not None and v >= 0.9, "needs numpy and hand-numpy at the base point")
    v = r.get("vs_torch") if r else None
    add("torch_cpu", None if v is None else f"{v:.3f}x", v is not None and v >= 1.0,
        "needs torch-cpu (python benchmarks/run.py with torch installed)")

    ov = _ok(rows, workload="overhead", backend="numpy")
    if ov:
        worst = max(ov, key=lambda r: r["overhead_us"])
        med = sorted(r["overhead_us"] for r in ov)[len(ov) // 2]
        add("overhead", f"median {med:.1f} us, worst {worst['overhead_us']:.1f} us ({worst['op']})",
            worst["overhead_us"] <= 15.0)
    else:
        add("overhead", None, False, "needs the overhead workload on numpy")

    gpu = [r for r in _ok(rows, workload="step", backend="cupy") if r["batch"] >= 1024 and "vs_torch" in r]
    if gpu:
        worst = min(gpu, key=lambda r: r["vs_torch"])
        add("cupy", f"worst {worst['vs_torch']:.3f}x ({worst['preset']}, batch {worst['batch']}, width "
                    f"{worst['width']}, {worst['dtype']})", worst["vs_torch"] >= 0.8)
    else:
        add("cupy", None, False, "needs cupy and torch-cuda (a GPU) at batch >= 1024")

    mem = [r for r in _ok(rows, workload="step", backend="numpy") if "mem_vs_hand" in r]
    if mem:
        worst = max(mem, key=lambda r: r["mem_vs_hand"])
        add("memory", f"worst {worst['mem_vs_hand']:.3f}x ({worst['preset']}, batch {worst['batch']}, width "
                      f"{worst['width']}, {worst['dtype']})", worst["mem_vs_hand"] <= 1.5)
    else:
        add("memory", None, False, "needs numpy and hand-numpy with memory measured")
    return out


# --------------------------------------------------------------------------------------------------
# the environment

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> dict:
    import numpy as np

    info = {}
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                        "architecture", "filepath")} for p in threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed (pip install threadpoolctl to record BLAS threads)"
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        info["numpy_build"] = {k: {kk: v.get(kk) for kk in ("name", "version")} for k, v in deps.items()
                               if k in ("blas", "lapack")}
    except Exception:  # older NumPy: no dict mode
        pass
    return info


def environment(specs=(), threads=None) -> dict:
    """Versions, BLAS and its threads, CPU model, thread settings, load; GPU facts from the backends' ``env``."""
    import numpy as np

    from .. import __version__

    env = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "scratchvae": __version__,
        "blas": _blas(),
        "threads_requested": threads,
        "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    if hasattr(os, "sched_getaffinity"):
        env["cpus_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        env["load_average_1_5_15"] = [round(v, 2) for v in os.getloadavg()]
    for spec in specs:
        if spec.env is not None:
            try:
                env.update(spec.env())
            except Exception as e:  # facts are optional; a failure is worth a line, not a crash
                env[f"{spec.name}_env_error"] = str(e)
    return env


# --------------------------------------------------------------------------------------------------
# markdown

def _f(v, fmt="{:.2f}", none="-"):
    return none if v is None else fmt.format(v)


def _n(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _mb(b):
    return "-" if b is None else f"{b / MB:.1f}"


def _status(r):
    s = r.get("status", "")
    return "" if s.startswith("ok") else s


def _step_tables(rows, presets):
    lines = []
    for preset in presets:
        rs = [r for r in rows if r["workload"] == "step" and r["preset"] == preset]
        if not rs:
            continue
        lines += [f"### One training step: {preset}", "",
                  ("| batch | width | dtype | backend | samples/s | ms/step median (min-max) | first call ms | "
                   "peak MB | x hand-numpy | x torch | memory / hand |"),
                  "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(rs, key=lambda r: (r["dtype"], r["width"], r["batch"], r["device"], r["backend"])):
            if not r.get("status", "").startswith("ok"):
                lines.append(f"| {r['batch']} | {r['width']} | {r['dtype']} | {r['backend']} | {_status(r)} "
                             "| | | | | | |")
                continue
            lines.append(
                f"| {r['batch']} | {r['width']} | {r['dtype']} | {r['backend']} | {_n(r['samples_per_s'])} | "
                f"{r['ms_median']:.3f} ({r['ms_min']:.3f}-{r['ms_max']:.3f}) | {r['first_call_ms']:.1f} | "
                f"{_mb(r.get('peak_bytes'))} | {_f(r.get('vs_hand'))} | {_f(r.get('vs_torch'))} | "
                f"{_f(r.get('mem_vs_hand'))} |")
        lines.append("")
    return lines


def _epoch_table(rows):
    rs = [r for r in rows if r["workload"] == "epoch"]
    if not rs:
        return []
    lines = ["### One epoch of training", "",
             ("| preset | dtype | batch | images | backend | s/epoch median (min-max) | images/s | first epoch s | "
              "x hand-numpy | x torch |"),
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in sorted(rs, key=lambda r: (r["preset"], r["device"], r["backend"])):
        if not r.get("status", "").startswith("ok"):
            lines.append(f"| {r['preset']} | {r['dtype']} | {r['batch']} | {r.get('images', '-')} | {r['backend']} | "
                         f"{_status(r)} | | | | |")
            continue
        lines.append(f"| {r['preset']} | {r['dtype']} | {r['batch']} | {r['images']:,} ({r['data']}) | {r['backend']} | "
                     f"{r['s_median']:.2f} ({r['s_min']:.2f}-{r['s_max']:.2f}) | {_n(r['samples_per_s'])} | "
                     f"{r['first_call_s']:.2f} | {_f(r.get('vs_hand'))} | {_f(r.get('vs_torch'))} |")
    return lines + [""]


def _eval_table(rows):
    rs = [r for r in rows if r["workload"] == "eval"]
    if not rs:
        return []
    lines = ["### Importance-sampled log p(x)", "",
             ("| preset | k | images | backend | seconds | samples/s | scaled to k=5000, 1000 images (s, estimate) | "
              "log p(x) | x hand-numpy | x torch |"),
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rs, key=lambda r: (r["preset"], r["device"], r["backend"])):
        if not r.get("status", "").startswith("ok"):
            lines.append(f"| {r['preset']} | {r['k']} | {r['images']} | {r['backend']} | {_status(r)} | | | | | |")
            continue
        scaled = "measured" if r["status"] == "ok (full protocol)" else f"{r['scaled_s']:.1f}"
        lines.append(f"| {r['preset']} | {r['k']} | {r['images']} | {r['backend']} | {r['s_median']:.2f} | "
                     f"{_n(r['samples_per_s'])} | {scaled} | {r['log_px']:.2f} | {_f(r.get('vs_hand'))} | "
                     f"{_f(r.get('vs_torch'))} |")
    return lines + ["", ("log p(x) of the untrained model (same initial parameters on every backend; differences "
                         "are Monte-Carlo noise)."), ""]


def _overhead_table(rows):
    rs = [r for r in rows if r["workload"] == "overhead"]
    if not rs:
        return []
    lines = ["### Engine overhead per op (1-element float32 arrays, forward + backward)", "",
             "| backend | op | engine (us) | same array calls, bare (us) | overhead (us) |", "|---|---|---:|---:|---:|"]
    for r in rs:
        if not r.get("status", "").startswith("ok"):
            lines.append(f"| {r['backend']} | - | {_status(r)} | | |")
            continue
        lines.append(f"| {r['backend']} | {r['op']} | {r['engine_us']:.1f} | {r['raw_us']:.1f} | {r['overhead_us']:.1f} |")
    return lines + [""]


def markdown(payload: dict) -> str:
    """The whole report as markdown: header, targets, one table per workload, the profile, notes."""
    env, rows, cfg = payload["env"], payload["results"], payload["config"]
    gpu = env.get("gpu")
    title = "quick run (reduced sizes)" if cfg.get("mode") == "quick" else "full run"
    lines = [f"## scratchvae benchmark: {title}", "",
             f"{env['date']}; {env['cpu_model']} ({env.get('cpus_usable', env['cpu_count'])} usable CPUs, load "
             f"{env.get('load_average_1_5_15', '?')}), NumPy {env['numpy']}"
             + (f", GPU {gpu} (CuPy {env.get('cupy')})" if gpu else ", no GPU")
             + (f", PyTorch {env['torch']}" if env.get("torch") else "")
             + f"; BLAS threads {_blas_threads(env)}.", ""]
    if payload.get("skipped"):
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in payload["skipped"].items()) + ".", ""]
    lines += ["### Targets (reported, not asserted)", "", "| target | measured | status |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t['status']} |" for t in payload["targets"]]
    lines.append("")
    lines += _step_tables(rows, cfg.get("presets", []))
    lines += _epoch_table(rows)
    lines += _eval_table(rows)
    lines += _overhead_table(rows)
    prof = payload.get("profile")
    if prof:
        lines += [f"### Where the time goes: scratchvae.profile() on {prof['backend']}, {prof['point']}", "",
                  prof["table"], ""]
    lines += ["Columns: medians over repeats (each repeat averages enough calls to last "
              f"{cfg.get('min_time', '?')} s), min-max beside them; the first call (kernel compilation, first "
              "allocations) is timed apart. x hand-numpy / x torch: that backend's time / this row's time at the "
              "same point in this run (> 1 is faster). numpy-gemm / cupy-gemm: only the step's matrix products "
              "(the floor). Peak memory: tracemalloc for NumPy, the CuPy pool for the GPU, torch.cuda's peak for "
              "torch-cuda; not measurable for torch-cpu. Engine distribution checks "
              + ("on." if cfg.get("validate") else "off (validate_args=False, as --no-validate)."), ""]
    return "\n".join(lines)


def _blas_threads(env):
    pools = env.get("blas", {}).get("threadpools")
    if isinstance(pools, list) and pools:
        return ", ".join(f"{p.get('internal_api')} {p.get('num_threads')}" for p in pools)
    return env.get("thread_env", {}).get("OPENBLAS_NUM_THREADS") or "unknown"


# --------------------------------------------------------------------------------------------------
# the plot

def plot_throughput(rows: list, path, presets=None) -> Path | None:
    """Samples/s against batch size, log-log, one line per backend and one panel per preset
    (float32, the preset's width).  Returns the path, or None when there is nothing to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    rs = [r for r in rows if r["workload"] == "step" and r.get("status", "").startswith("ok")
          and r["dtype"] == "float32"]
    presets = [p for p in (presets or sorted({r["preset"] for r in rs})) if any(r["preset"] == p for r in rs)]
    if not presets:
        return None
    fig = Figure(figsize=(5.5 * len(presets), 4.2), constrained_layout=True)
    FigureCanvasAgg(fig)
    names = sorted({r["backend"] for r in rs})
    colors = {b: f"C{i % 10}" for i, b in enumerate(names)}  # one colour per backend in every panel
    for i, preset in enumerate(presets):
        ax = fig.add_subplot(1, len(presets), i + 1)
        width = preset_arch(preset).hidden[0]  # the batch sweep is at the preset's own width
        mine = [r for r in rs if r["preset"] == preset and r["width"] == width]
        for backend in names:
            pts = sorted((r["batch"], r["samples_per_s"]) for r in mine if r["backend"] == backend)
            if not pts:
                continue
            style = "--" if backend.endswith("-gemm") else (":" if backend.startswith("hand") else "-")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, color=colors[backend],
                    label=backend)
        batches = sorted({r["batch"] for r in mine})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("batch size")
        ax.set_ylabel("training samples / s")
        ax.set_title(f"{preset} (width {width}, float32)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


# --------------------------------------------------------------------------------------------------
# writing

def write_report(payload: dict, out_dir, plot: bool = True) -> dict:
    """Write bench.json, bench.md and (with ``plot``) throughput.png into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md"}
    with open(paths["json"], "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")
    paths["markdown"].write_text(markdown(payload) + "\n")
    if plot:
        png = plot_throughput(payload["results"], out / "throughput.png", payload["config"].get("presets"))
        if png is not None:
            paths["plot"] = png
    return paths
