"""The ``scratchvae`` command: train | evaluate | sample | plot | bench (docs/training.md).

``main(argv=None)`` returns the exit code: 0 success, 1 an error (printed as one line, no
traceback; ``--traceback`` shows it), 2 a usage error, 3 training diverged (NaN/Inf loss),
130 interrupted by Ctrl-C (143 by SIGTERM) after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_train_options import TRAIN_EPILOG, add_train_options

__all__ = ["build_parser", "main"]

EXAMPLES = """\
examples:
  scratchvae train                                  # a VAE on the embedded MNIST subset (offline)
  scratchvae train --preset pytorch-example --data-dir ~/mnist --out runs/pt
  scratchvae train --preset iwae-paper --time-budget 60 --out runs/iwae
  scratchvae train --resume runs/pt                 # continue a stopped run exactly
  scratchvae evaluate runs/pt --k 5000              # test ELBO, log p(x), active units
  scratchvae plot runs/pt                           # figures into runs/pt/figures
  scratchvae sample runs/pt -n 64 --out samples.png
  scratchvae bench                                  # NumPy vs CuPy vs the hand-written step (quick sizes)

Every command has its own --help (e.g. `scratchvae train --help`).  See docs/training.md.
"""

def _add_train(sub):
    p = sub.add_parser(
        "train", help="train a VAE and write a run folder",
        description="Train a VAE on MNIST. Shows a progress bar, writes a run folder, checkpoints every epoch.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_options(p)
    p.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_train)


def _add_run_arg(p):
    p.add_argument("run", metavar="RUN", help="a run folder (from `scratchvae train`) or a checkpoint .npz file")
    p.add_argument("--backend", choices=["numpy", "cupy", "array_api_strict"], help="default: the run's backend")
    p.add_argument("--seed", type=int, default=0, help="seed for the sampled z (default 0)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the run's MNIST files are now (if they moved); checked against the sha256 the run "
                        "recorded of its data")
    p.add_argument("--no-verify", action="store_true",
                   help="accept MNIST .gz files whose sha256 is not the published one")
    p.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)


def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate", help="test ELBO, importance-sampled log p(x), active units",
        description="Evaluate a trained run on the test set (nats per image): the ELBO with one sampled z per "
                    "image and its reconstruction and KL parts, log p(x) by importance sampling with k samples, "
                    "active units and the KL per latent dim. Prints a table and writes JSON.")
    _add_run_arg(p)
    p.add_argument("--k", type=int, default=5000, help="importance samples per image for log p(x) (default 5000; "
                                                       "0 skips it)")
    p.add_argument("--n-test", type=int, metavar="N", help="evaluate on the first N test images only")
    p.add_argument("--batch-size", type=int, default=1000, help="images per batch for the ELBO (default 1000)")
    p.add_argument("--out", metavar="FILE", help="JSON file to write (default RUN/eval.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)


def _add_sample(sub):
    p = sub.add_parser("sample", help="draw images from the model's prior",
                       description="Decode z ~ p(z) into images and save them as a PNG grid (and optionally .npy).")
    _add_run_arg(p)
    p.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", metavar="FILE", help="PNG to write (default RUN/figures/samples.png)")
    p.add_argument("--npy", metavar="FILE", help="also save the images as an (n, 784) .npy array")
    p.set_defaults(func=_cmd_sample)


def _add_plot(sub):
    p = sub.add_parser("plot", help="draw the figures of a run",
                       description="Reconstructions, prior samples, the latent space coloured by digit, the 2-D "
                                   "latent manifold (latent = 2) and the training curves, as PNG files.")
    _add_run_arg(p)
    p.add_argument("--out", metavar="DIR", help="folder for the PNG files (default RUN/figures)")
    p.add_argument("--what", nargs="+", choices=["reconstructions", "samples", "latent", "manifold", "curves"],
                   help="which figures (default: all that apply)")
    p.add_argument("--n-test", type=int, default=2000, help="test images for the latent scatter (default 2000)")
    p.set_defaults(func=_cmd_plot)


def _add_bench(sub):
    from .bench.cli import EPILOG, add_arguments

    p = sub.add_parser(
        "bench", help="benchmark the training step, an epoch, evaluation and per-op overhead",
        description="Time the VAE training step (batch, width and dtype sweeps), an epoch of training, "
                    "importance-sampled evaluation and the engine's per-op overhead on NumPy and CuPy, against a "
                    "hand-written NumPy step and the step's matrix products alone. Writes bench.md, bench.json "
                    "and throughput.png.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scratchvae",
        description="Train and inspect variational autoencoders on MNIST, on a from-scratch autograd engine.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"scratchvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_evaluate(sub)
    _add_sample(sub)
    _add_plot(sub)
    _add_bench(sub)
    return parser


# --------------------------------------------------------------------------------------------------
# commands

_TRAIN_KEYS = ["seed", "backend", "dtype", "time_budget", "eval_every", "data", "data_dir", "binarize",
               "bernoulli_on_grey", "validation", "n_train", "n_test", "hidden", "latent_dim", "hidden2", "latent_dim2",
               "activation", "objective", "grad_estimator", "budget_clock",
               "likelihood", "gaussian_scale", "fixed_scale", "encoder_head", "init", "output_bias", "beta",
               "warmup_epochs", "free_bits", "n_samples", "epochs", "batch_size", "optimizer", "lr", "adam_eps",
               "weight_decay", "momentum", "schedule", "step_size", "gamma", "clip_grad", "loss_reduction",
               "keep_checkpoints"]
_RESUME_KEYS = {"epochs", "time_budget", "data_dir", "verify_data", "keep_checkpoints", "figures"}


def _cmd_train(args) -> int:
    from .train import TrainingDiverged, make_config, train

    given = {k: getattr(args, k) for k in _TRAIN_KEYS if getattr(args, k) is not None}
    if args.no_validate:
        given["validate_args"] = False
    if args.no_figures:
        given["figures"] = False
    if args.no_verify:
        given["verify_data"] = False
    if args.resume:
        extra = sorted(set(given) - _RESUME_KEYS)
        if args.preset or args.out or extra:
            names = ", ".join("--" + k.replace("_", "-") for k in extra + (["preset"] if args.preset else [])
                              + (["out"] if args.out else []))
            raise ValueError(f"--resume continues the run with its saved settings; only --epochs, --time-budget, "
                             f"--data-dir, --no-verify and --keep-checkpoints can change (got {names})")
        call = {"run_dir": args.resume, "resume": True, "epochs": given.get("epochs"),
                "time_budget": given.get("time_budget"), "data_dir": given.get("data_dir"),
                "verify_data": given.get("verify_data"), "keep_checkpoints": given.get("keep_checkpoints")}
    else:
        config = make_config(args.preset, **given)
        call = {"config": config, "run_dir": args.out}
    try:
        result = train(**call, progress=not args.no_progress, log=_log)
    except TrainingDiverged as e:
        _error(str(e))
        return 3
    if result.status == "interrupted":  # 128 + the signal, as the shell reports a process it stopped
        return 128 + (result.signal or 2)
    _log(f"run folder: {result.run_dir} ({result.status} after {result.epochs_done} epochs, "
         f"{result.global_step} steps)")
    return 0


def _with_data_dir(args, config, meta):
    """The run's config with the command's --data-dir (made absolute) and --no-verify; a --data-dir
    for a run on the embedded subset is an error."""
    import dataclasses

    changed = {}
    if getattr(args, "data_dir", None) is not None:
        if meta.get("data_source") == "embedded":
            raise ValueError(f"{args.run} was trained on the embedded subset; --data-dir does not apply to it")
        changed["data_dir"] = str(Path(args.data_dir).expanduser().resolve())
    if getattr(args, "no_verify", False):
        changed["verify_data"] = False
    return dataclasses.replace(config, **changed) if changed else config


def _recorded_sha256(args, meta):
    """The data sha256 the run recorded (its checkpoint's metadata, else its config.json)."""
    import json

    if meta.get("data_sha256") is not None:
        return meta["data_sha256"]
    cfg = _run_folder(args.run) / "config.json"
    try:
        return json.loads(cfg.read_text()).get("data_sha256") if cfg.is_file() else None
    except (OSError, ValueError):
        return None


def _test_data(args, config, meta, n_test):
    from .data import DataNotFoundError
    from .train import load_test_data

    config = _with_data_dir(args, config, meta)
    try:
        return load_test_data(config, meta.get("data_source"), n_test=n_test,
                              expect_sha256=_recorded_sha256(args, meta))
    except DataNotFoundError as e:
        if config.data_dir is None or args.data_dir is not None:
            raise
        raise type(e)(f"{e} If the run's data moved, pass its new folder: --data-dir NEWDIR") from e


def _check_counts(args, **minimums) -> None:
    """The counts a command was given, checked as the training config checks its own (check_count)."""
    from .train.config import check_count

    for name, minimum in minimums.items():
        check_count(name, getattr(args, name), minimum, unset_ok=True)


def _cmd_evaluate(args) -> int:
    _check_counts(args, n_test=1, batch_size=1, k=0)
    out = Path(args.out) if args.out else (_run_folder(args.run) / "eval.json")
    with _writing(args.run, out):
        return _evaluate(args, out)


def _evaluate(args, out) -> int:
    from .evaluate import evaluate, format_table, write_json
    from .random import Generator
    from .train import load_run

    model, config, meta = load_run(args.run, backend=args.backend)
    x, _ = _test_data(args, config, meta, args.n_test)
    result = evaluate(model, x, k=args.k, batch_size=args.batch_size, generator=Generator(args.seed),
                      progress=not args.no_progress)
    result.update({"run": str(args.run), "epoch": meta.get("epoch"), "data": meta.get("data_source"),
                   "binarize": config.binarize, "likelihood": config.model.get("likelihood"), "seed": args.seed})
    if config.grey_bernoulli:
        result["note"] = ("Bernoulli likelihood on grey levels: the numbers are cross-entropies, not normalized "
                          "log-likelihoods (docs/data.md)")
    title = f"{args.run} (epoch {meta.get('epoch')}, {meta.get('data_source')} test set, {config.binarize}):"
    print(format_table(result, title))
    if "note" in result:
        print("note: " + result["note"])
    write_json(result, out)
    _log(f"wrote {out}")
    return 0


def _run_folder(run) -> Path:
    p = Path(run)
    return p if p.is_dir() else p.parent


def _writing(run, *outputs):
    """The run folder's lock (run_folder.lock) when one of ``outputs`` lies inside the run folder of
    ``run``; nothing to hold when they all go elsewhere, or ``run`` is not in a run folder."""
    import contextlib

    from .train import run_folder

    folder = _run_folder(run)
    if not (folder / run_folder.CONFIG).is_file():
        return contextlib.nullcontext()
    inside = [o for o in outputs if o is not None and Path(o).resolve().is_relative_to(folder.resolve())]
    return run_folder.lock(folder) if inside else contextlib.nullcontext()


def _cmd_sample(args) -> int:
    import numpy as np

    from .backend import to_numpy
    from .plots import image_grid, show_grid
    from .random import Generator
    from .train import load_run

    _check_counts(args, n=1)
    out = Path(args.out) if args.out else _run_folder(args.run) / "figures" / "samples.png"
    with _writing(args.run, out, args.npy):
        model, _config, _meta = load_run(args.run, backend=args.backend)
        _with_data_dir(args, _config, _meta)  # accepted for symmetry; sampling reads no data
        images = to_numpy(model.sample(args.n, generator=Generator(args.seed)))
        show_grid(image_grid(images, min(8, args.n)), out, f"{args.n} samples: E[x | z], z ~ p(z)")
        _log(f"wrote {out}")
        if args.npy:
            np.save(args.npy, images)
            _log(f"wrote {args.npy}")
    return 0


def _cmd_plot(args) -> int:
    from .plots import make_figures
    from .random import Generator
    from .train import load_run, read_metrics

    _check_counts(args, n_test=1)
    folder = _run_folder(args.run)
    out = Path(args.out) if args.out else folder / "figures"
    with _writing(args.run, out):
        model, config, meta = load_run(args.run, backend=args.backend)
        x, labels = _test_data(args, config, meta, args.n_test)
        what = args.what or ["reconstructions", "samples", "latent", "manifold", "curves"]
        if "manifold" in (args.what or []) and model.latent_dim != 2:
            raise ValueError(f"the manifold figure needs a 2-D latent space; this model has {model.latent_dim} dims")
        paths = make_figures(out, model, x, labels, read_metrics(folder, log=_warn), generator=Generator(args.seed), what=what)
    for p in paths:
        _log(f"wrote {p}")
    return 0


def _cmd_bench(args) -> int:
    from .bench.cli import run_from_args

    return run_from_args(args, log=_log)


# --------------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(msg, flush=True)


def _warn(msg: str) -> None:
    print(f"scratchvae: {msg}", file=sys.stderr, flush=True)


def _error(msg: str) -> None:
    print(f"scratchvae: error: {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    from .fast.host import tune_host_allocator

    tune_host_allocator()  # an application: keep freed host memory for reuse (see its docstring)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as e:  # every failure becomes one line; --traceback shows the details
        if getattr(args, "traceback", False):
            raise
        text = " ".join(str(e).split()) or type(e).__name__
        from .backend import BackendError

        plain = (ValueError, OSError, BackendError)  # messages that already say what is wrong
        kind = "" if isinstance(e, plain) else f"{type(e).__name__}: "
        _error(kind + text)
        return 1
