"""``scratchvae bench``: run the benchmark sweeps and write bench.md, bench.json and throughput.png.

Sweeps (one training step of each preset's VAE): batch size at the preset's width; hidden width at
batch 128; dtype at batch 128 and the preset's width.  Plus one epoch of training, the
importance-sampled evaluation, and the engine's per-op overhead.  Every backend runs each point
right after the others, so their ratios come from the same minutes of the same machine.

``--quick`` (the default) finishes in a few minutes on a 2-core CPU; ``--full`` runs the whole
sweep (batch 16 ... 4096, width 200 ... 4096, k = 5000 on 1,000 test images).
"""

from __future__ import annotations

import argparse
import contextlib
import time

from .backends import (
    BACKENDS,
    Problem,
    backend_names,
    get_backend_spec,
    host_parameters,
    preset_arch,
)
from .report import (
    BASE_BATCH,
    add_ratios,
    environment,
    evaluate_targets,
    markdown,
    write_report,
)
from .workloads import (
    Settings,
    bench_epoch,
    bench_eval,
    bench_overhead,
    bench_step,
    load_images,
    profile_step,
    step_inputs,
)

__all__ = ["MODES", "WORKLOADS", "add_arguments", "build_parser", "main", "plan_points", "run", "run_from_args"]

WORKLOADS = ("step", "epoch", "eval", "overhead")
PRESETS = ("pytorch-example", "iwae-paper")
MODES = {
    "quick": {"batches": (16, 128, 1024), "widths": (200, 400, 1024), "dtypes": ("float32", "float64"),
              "repeats": 5, "min_time": 0.05, "epoch_repeats": 1, "k": 500, "n_test": 200},
    "full": {"batches": (16, 32, 64, 128, 256, 512, 1024, 2048, 4096), "widths": (200, 400, 1024, 2048, 4096),
             "dtypes": ("float32", "float64"), "repeats": 7, "min_time": 0.2, "epoch_repeats": 3, "k": 5000,
             "n_test": 1000},
}

EPILOG = """\
examples:
  scratchvae bench                                   # quick CPU run: results/bench/bench.md, .json, .png
  scratchvae bench --full --out results/bench-full   # the whole sweep (long on a CPU)
  scratchvae bench --workloads step --presets pytorch-example --batch-sizes 64,128,256
  scratchvae bench --backends numpy,cupy --dtypes float32 --threads 1
  python benchmarks/run.py                           # the same, plus the PyTorch references (torch-cpu/cuda)

Backends: numpy and cupy (the engine), hand-numpy (hand-derived gradients: the speed limit of any
NumPy engine), numpy-gemm / cupy-gemm (only the step's matrix products: the floor). cupy rows are
skipped, with the reason, where there is no GPU. The PyTorch references live in benchmarks/ (torch is
never a dependency of the library).
"""


def _list(kind):
    def parse(text):
        items = [s.strip() for s in str(text).split(",") if s.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        if kind is int:
            try:
                values = [int(s) for s in items]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
            if any(v < 1 for v in values):
                raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
            return values
        return items
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench options, added to ``p`` (shared by ``scratchvae bench`` and ``benchmarks/run.py``)."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="reduced sizes that finish in a few minutes on a 2-core CPU (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="batch 16..4096, width 200..4096, float32 and float64, k=5000 on 1000 test images")
    p.set_defaults(mode="quick")
    p.add_argument("--out", metavar="DIR", default="results/bench",
                   help="folder for bench.md, bench.json and throughput.png (default results/bench)")
    p.add_argument("--backends", type=_list(str), metavar="LIST",
                   help="comma-separated, from: " + ", ".join(BACKENDS) + " (and torch-cpu, torch-cuda with "
                        "benchmarks/run.py); default: all but array-api-strict; unavailable ones are skipped")
    p.add_argument("--presets", type=_list(str), metavar="LIST", help="default: " + ",".join(PRESETS))
    p.add_argument("--workloads", type=_list(str), metavar="LIST", help="default: " + ",".join(WORKLOADS))
    p.add_argument("--batch-sizes", type=_list(int), metavar="LIST", help="batch sweep (quick: 16,128,1024)")
    p.add_argument("--widths", type=_list(int), metavar="LIST", help="hidden-width sweep at batch 128 "
                                                                     "(quick: 200,400,1024)")
    p.add_argument("--dtypes", type=_list(str), metavar="LIST", help="dtype sweep (default float32,float64)")
    p.add_argument("--repeats", type=int, metavar="N", help="timed repeats per point (quick 5, full 7)")
    p.add_argument("--min-time", type=float, metavar="S", help="seconds each repeat lasts at least (quick 0.05)")
    p.add_argument("--epoch-repeats", type=int, metavar="N", help="timed epochs after the first (quick 1, full 3)")
    p.add_argument("--k", type=int, help="importance samples per image for eval (quick 500, full 5000)")
    p.add_argument("--n-test", type=int, metavar="N", help="test images for eval (quick 200, full 1000)")
    p.add_argument("--data-dir", metavar="DIR", help="full MNIST .gz files for the epoch and eval workloads "
                                                     "(default: the embedded 10,000 + 2,000 image subset)")
    p.add_argument("--n-train", type=int, metavar="N", help="epoch over the first N training images only "
                                                             "(default: all of them)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="BLAS threads (through threadpoolctl when installed; otherwise set OPENBLAS_NUM_THREADS)")
    p.add_argument("--validate", action="store_true", help="keep the distributions' argument checks on in the engine")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--no-plot", action="store_true", help="do not draw throughput.png")
    p.add_argument("--seed", type=int, default=0, help="seed for parameters, data order and noise (default 0)")


def build_parser(prog: str = "scratchvae bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


# --------------------------------------------------------------------------------------------------

def plan_points(presets, batches, widths, dtypes, base_batch: int = BASE_BATCH) -> list:
    """The step sweep as distinct :class:`Problem` s: batches at the preset's width in float32, widths at
    ``base_batch`` in float32, dtypes at ``base_batch`` and the preset's width (shared points once)."""
    points = []
    for preset in presets:
        own = preset_arch(preset).hidden[0]
        first = "float32" if "float32" in dtypes else dtypes[0]
        cand = [(b, own, first) for b in batches] + [(base_batch, w, first) for w in widths] + \
               [(base_batch, own, d) for d in dtypes]
        seen = set()
        for b, w, d in cand:
            if (b, w, d) not in seen:
                seen.add((b, w, d))
                points.append(Problem(preset, int(b), None if w == own else int(w), d))
    return points


def _resolve(args):
    cfg = dict(MODES[args.mode])
    for name, key in (("batch_sizes", "batches"), ("widths", "widths"), ("dtypes", "dtypes"), ("repeats", "repeats"),
                      ("min_time", "min_time"), ("epoch_repeats", "epoch_repeats"), ("k", "k"), ("n_test", "n_test")):
        v = getattr(args, name)
        if v is not None:
            cfg[key] = tuple(v) if isinstance(v, list) else v
    for name, value in (("repeats", cfg["repeats"]), ("epoch-repeats", cfg["epoch_repeats"]), ("k", cfg["k"]),
                        ("n-test", cfg["n_test"]), ("threads", args.threads), ("n-train", args.n_train)):
        if value is not None and value < 1:
            raise ValueError(f"bench: --{name} must be >= 1, got {value}")
    if cfg["min_time"] < 0:
        raise ValueError(f"bench: --min-time must be >= 0, got {cfg['min_time']}")
    bad = [d for d in cfg["dtypes"] if d not in ("float32", "float64")]
    if bad:
        raise ValueError(f"bench: unknown dtype(s) {bad}; use float32 and/or float64")
    presets = args.presets or list(PRESETS)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise ValueError(f"bench: unknown preset(s) {unknown}; use {', '.join(PRESETS)}")
    workloads = args.workloads or list(WORKLOADS)
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ValueError(f"bench: unknown workload(s) {unknown}; use {', '.join(WORKLOADS)}")
    names = args.backends or backend_names(default_only=True)
    specs = [get_backend_spec(n) for n in dict.fromkeys(names)]  # raises for an unknown name
    cfg.update(mode=args.mode, presets=presets, workloads=workloads, backends=[s.name for s in specs],
               validate=bool(args.validate), memory=not args.no_memory, seed=args.seed, threads=args.threads,
               data_dir=args.data_dir, n_train=args.n_train)
    return cfg, specs


def _threads(n, log):
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log(f"note: threadpoolctl is not installed, so --threads {n} cannot change BLAS threads in a running "
            f"process; start with OPENBLAS_NUM_THREADS={n} OMP_NUM_THREADS={n} instead")
        return contextlib.nullcontext()
    return threadpool_limits(limits=n)


def _say(r) -> str:
    if not r.get("status", "").startswith("ok"):
        return r["status"]
    if r["workload"] == "step":
        return f"{r['ms_median']:.3f} ms/step ({r['ms_min']:.3f}-{r['ms_max']:.3f}), {r['samples_per_s']:,.0f} samples/s"
    if r["workload"] == "overhead":
        return f"{r['op']}: {r['engine_us']:.1f} us vs {r['raw_us']:.1f} us bare"
    return f"{r['s_median']:.2f} s, {r['samples_per_s']:,.0f} samples/s"


def run(args, log=print) -> dict:
    """Run the benchmark described by parsed ``args``; write the report; return the payload."""
    from ..autograd.fastpath import is_enabled, set_enabled
    from ..backend import get_backend, get_default_dtype, set_backend, set_default_dtype

    cfg, specs = _resolve(args)
    skipped, usable = {}, []
    for s in specs:
        why = s.unavailable()
        if why:
            skipped[s.name] = why
            log(f"skipping {s.name}: {why}")
        else:
            usable.append(s)
    prev_backend, prev_dtype = get_backend(), get_default_dtype()
    fast_before = is_enabled()
    rows, prof = [], None
    t_start = time.perf_counter()
    settings = Settings(repeats=cfg["repeats"], min_time=cfg["min_time"], epoch_repeats=cfg["epoch_repeats"],
                        memory=cfg["memory"], validate=cfg["validate"], seed=cfg["seed"])
    try:
        with _threads(cfg["threads"], log):
            env = environment(usable, cfg["threads"])
            if "step" in cfg["workloads"]:
                train_images, _ = load_images("train", None)  # a step's timing does not depend on which images
                for pb in plan_points(cfg["presets"], cfg["batches"], cfg["widths"], cfg["dtypes"]):
                    host = host_parameters(pb, cfg["seed"])
                    x, eps = step_inputs(pb, train_images, cfg["seed"])
                    for r in bench_step([s for s in usable if "step" in s.workloads], pb, host, x, eps, settings):
                        rows.append(r)
                        log(f"step  {pb.label():<44} {r['backend']:<12} {_say(r)}")
                numpy_spec = next((s for s in usable if s.name == "numpy"), None)
                if numpy_spec is not None and "pytorch-example" in cfg["presets"]:
                    pb = Problem("pytorch-example", BASE_BATCH)
                    x, eps = step_inputs(pb, train_images, cfg["seed"])
                    prof = profile_step(numpy_spec, pb, host_parameters(pb, cfg["seed"]), x, eps)
            if "epoch" in cfg["workloads"]:
                images, source = load_images("train", cfg["data_dir"])
                images = images[: cfg["n_train"]] if cfg["n_train"] else images
                for preset in cfg["presets"]:
                    for s in usable:
                        if "epoch" in s.workloads:
                            r = bench_epoch(s, preset, "float32", images, source, settings)
                            rows.append(r)
                            log(f"epoch {preset:<44} {s.name:<12} {_say(r)}")
            if "eval" in cfg["workloads"]:
                images, source = load_images("test", cfg["data_dir"])
                for preset in cfg["presets"]:
                    for s in usable:
                        if "eval" in s.workloads:
                            r = bench_eval(s, preset, "float32", images, source, cfg["k"], cfg["n_test"], settings)
                            rows.append(r)
                            log(f"eval  {preset + ' k=' + str(cfg['k']) + ' n=' + str(cfg['n_test']):<44} "
                                f"{s.name:<12} {_say(r)}")
            if "overhead" in cfg["workloads"]:
                for s in usable:
                    if "overhead" in s.workloads:
                        for r in bench_overhead(s, settings):
                            rows.append(r)
                            log(f"op    {s.name:<12} {_say(r)}")
    finally:
        set_backend(prev_backend)
        set_default_dtype(prev_dtype)
        set_enabled(fast_before)  # a numpy-reference runner switched the fast layer off
    add_ratios(rows)
    cfg["base_batch"] = BASE_BATCH
    cfg["seconds"] = round(time.perf_counter() - t_start, 1)
    payload = {"config": cfg, "env": env, "skipped": skipped, "results": rows, "profile": prof}
    payload["targets"] = evaluate_targets(rows)
    paths = write_report(payload, args.out, plot=not args.no_plot)
    log("")
    log(markdown(payload))
    log("wrote " + ", ".join(str(p) for p in paths.values()) + f" ({cfg['seconds']:.0f} s)")
    return payload


def run_from_args(args, log=print) -> int:
    run(args, log=log)
    return 0


def main(argv=None, prog: str = "scratchvae bench") -> int:
    """Parse ``argv`` and run; returns the exit code (0 ok, 1 an error printed as one line, 2 usage)."""
    import sys

    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    from ..fast.host import tune_host_allocator

    tune_host_allocator()  # the same allocator setting as scratchvae train, for every backend alike
    try:
        return run_from_args(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
