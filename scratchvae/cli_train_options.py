"""The options of ``scratchvae train`` (docs/training.md#options): each is a TrainConfig field, grouped
as in ``scratchvae train --help``.  The commands themselves are in cli.py."""

from __future__ import annotations

import argparse

__all__ = ["TRAIN_EPILOG", "add_train_options"]

TRAIN_EPILOG = """\
A run folder (--out, default runs/<preset>-<time>) receives config.json, metrics.jsonl (one line per
epoch), checkpoint.npz (after every epoch; Ctrl-C also saves) and figures/.  Options not given come from
--preset, then from the defaults shown.

With --resume only --epochs, --time-budget, --data-dir, --no-verify and --keep-checkpoints may be given.

Data: by default the full MNIST is used when it is in the cache (~/.cache/scratchvae/mnist), otherwise
the embedded 10,000-image subset (a note says so); --data-dir DIR reads the four MNIST .gz files from DIR.
"""



def add_train_options(p: argparse.ArgumentParser) -> None:
    """Add the train command's option groups (run, data, model, objective, optimisation) to ``p``."""
    from .models.presets import preset_names

    g = p.add_argument_group("run")
    g.add_argument("--preset", choices=preset_names(),
                   help="start from a published setup: pytorch-example (784-400-20 ReLU, grey levels, 10 epochs), "
                        "iwae-paper (784-200-200-50 tanh, dynamic binarization, 3280 epochs) or iwae-paper-2layer "
                        "(its two-stochastic-layer model)")
    g.add_argument("--out", metavar="DIR", help="run folder to create (default: runs/<preset>-<date-time>)")
    g.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    g.add_argument("--seed", type=int, help="random seed for initialisation, batches, binarization and noise "
                                            "(default 0)")
    g.add_argument("--backend", choices=["numpy", "cupy", "array_api_strict"],
                   help="array library: numpy (CPU, default) or cupy (NVIDIA GPU)")
    g.add_argument("--dtype", choices=["float32", "float64"], help="floating type (default float32)")
    g.add_argument("--time-budget", type=float, metavar="MIN",
                   help="stop after the last epoch that fits in MIN minutes (training + evaluation)")
    g.add_argument("--budget-clock", choices=["wall", "cpu"],
                   help="what --time-budget counts: wall-clock (default) or this process's CPU time (fair "
                        "between runs on a shared machine)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch only)")
    g.add_argument("--no-figures", action="store_true", help="do not draw figures at the end")
    g.add_argument("--no-validate", action="store_true",
                   help="skip the distributions' argument checks (slightly faster; NaNs are still caught)")
    g.add_argument("--eval-every", type=int, metavar="N", help="evaluate the test ELBO every N epochs (default 1)")
    g.add_argument("--keep-checkpoints", type=int, metavar="N",
                   help="keep the last N checkpoints (default 2: checkpoint.npz and checkpoint-prev.npz); --resume "
                        "loads the newest that loads")

    g = p.add_argument_group("data")
    g.add_argument("--data", choices=["auto", "embedded", "mnist"],
                   help="auto (default): full MNIST if cached or --data-dir is given, else the embedded subset; "
                        "mnist: full MNIST, downloading it if needed")
    g.add_argument("--data-dir", metavar="DIR", help="folder holding the four MNIST .gz (or uncompressed) files "
                                                     "(with --resume: where the run's files are now)")
    g.add_argument("--no-verify", action="store_true",
                   help="accept MNIST .gz files in --data-dir whose sha256 is not the published one")
    g.add_argument("--binarize", choices=["grey", "dynamic", "fixed"],
                   help="pixels as grey levels in [0, 1], a fresh Bernoulli draw every epoch (dynamic, default), "
                        "or one draw fixed by the seed")
    g.add_argument("--bernoulli-on-grey", action="store_true", default=None,
                   help="accept a Bernoulli likelihood on grey levels (pytorch/examples' loss; not a normalized "
                        "likelihood)")
    g.add_argument("--validation", type=int, metavar="N", help="hold out the last N training images (default 0)")
    g.add_argument("--n-train", type=int, metavar="N", help="use only the first N training images")
    g.add_argument("--n-test", type=int, metavar="N", help="use only the first N test images")

    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=int, nargs="+", metavar="H", help="hidden layer sizes (default 400)")
    g.add_argument("--latent", type=int, dest="latent_dim", metavar="D", help="latent dimensions (default 20)")
    g.add_argument("--hidden2", type=int, nargs="+", metavar="H", help="hidden sizes of the z1 <-> z2 networks")
    g.add_argument("--latent2", type=int, dest="latent_dim2", metavar="D",
                   help="dimensions of a second stochastic layer z2 (default 0: one layer)")
    g.add_argument("--activation", choices=["relu", "tanh", "softplus", "leaky_relu", "sigmoid"],
                   help="hidden activation (default relu)")
    g.add_argument("--likelihood", choices=["bernoulli", "gaussian"], help="p(x|z) (default bernoulli)")
    g.add_argument("--gaussian-scale", choices=["fixed", "learned", "per_pixel"],
                   help="gaussian likelihood: sigma fixed (--fixed-scale), one learned sigma, or one per pixel")
    g.add_argument("--fixed-scale", type=float, metavar="S", help="sigma of --gaussian-scale fixed (default 0.1)")
    g.add_argument("--encoder-head", choices=["log_var", "exp", "softplus"],
                   help="how the encoder outputs sigma: log variance (default), log sigma (std = exp(linear)), "
                        "or softplus")
    g.add_argument("--init", choices=["pytorch", "glorot"], help="weight initialisation (default pytorch)")
    g.add_argument("--output-bias", choices=["zero", "pixel_means"],
                   help="pixel_means: start the decoder's output bias at the logit of the training pixel means")

    g = p.add_argument_group("objective")
    g.add_argument("--beta", type=float, help="weight of the KL term (default 1: the ELBO)")
    g.add_argument("--warmup-epochs", type=float, metavar="E",
                   help="raise the KL weight linearly from 0 to beta over E epochs (default 0: off)")
    g.add_argument("--free-bits", type=float, metavar="NATS",
                   help="free bits: no KL pressure on a latent dim whose batch-mean KL is below NATS")
    g.add_argument("--objective", choices=["elbo", "iwae"],
                   help="the bound training maximizes: elbo (default) or iwae (IWAE_k, k = --k)")
    g.add_argument("--k", "--n-samples", type=int, dest="n_samples", metavar="K",
                   help="z samples per image: averaged in the ELBO, importance-weighted in IWAE_k (default 1)")
    g.add_argument("--grad-estimator", choices=["pathwise", "stl", "dreg"],
                   help="gradient estimator: pathwise (default), stl (sticking the landing), dreg (IWAE only); "
                        "docs/math.md#gradient-estimators-for-the-elbo-and-iwae")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="epochs to train (default 10)")
    g.add_argument("--batch-size", type=int, help="images per step (default 128)")
    g.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="default adam")
    g.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    g.add_argument("--adam-eps", type=float, help="Adam's epsilon (default 1e-8)")
    g.add_argument("--weight-decay", type=float, help="default 0")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0)")
    g.add_argument("--schedule", choices=["constant", "step", "iwae"],
                   help="learning-rate schedule: constant (default), step (x gamma every step-size epochs), "
                        "iwae (3^i epochs at lr 10^(-i/7))")
    g.add_argument("--step-size", type=int, metavar="E", help="step schedule: epochs between decays (default 10)")
    g.add_argument("--gamma", type=float, help="step schedule: decay factor (default 0.5)")
    g.add_argument("--clip-grad", type=float, metavar="NORM", help="clip the global gradient norm to NORM")
    g.add_argument("--loss-reduction", choices=["mean", "sum"],
                   help="average (default) or sum the per-image loss over the batch before the gradient")
