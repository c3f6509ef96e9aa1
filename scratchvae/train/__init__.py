"""Training a VAE on MNIST: ``train(config, run_dir)`` runs the whole thing (docs/training.md).

One module per idea, in the order a reader meets them:

* ``config.py``     -- :class:`TrainConfig` (every option of a run), :func:`make_config` (defaults, preset,
  overrides);
* ``data.py``       -- the run's images: source, validation split, preprocessing (:func:`prepare_data`);
* ``state.py``      -- the model, optimizer, schedule, loader and generators: what a checkpoint restores;
* ``loop.py``       -- the training loop: :func:`batch_loss`, :func:`train_epoch`, :func:`finish_epoch`;
* ``run_folder.py`` -- config.json, metrics.jsonl and checkpoint.npz, each written atomically; :func:`load_run`;
* ``app.py``        -- :func:`train` and the :class:`Trainer` shell: backend, Ctrl-C, progress bar, time
  budget, the divergence message, figures.
"""

from .app import Trainer, TrainResult, train
from .config import TrainConfig, make_config
from .data import TEST_BINARIZATION_SEED, Data, load_test_data, prepare_data
from .loop import TrainingDiverged, batch_loss, beta_at, finish_epoch, train_epoch
from .run_folder import (
    CHECKPOINT,
    CONFIG,
    FIGURES,
    METRICS,
    default_run_dir,
    load_config,
    load_run,
    read_metrics,
)
from .state import HostNoise, TrainState, build_model, build_optimizer, build_scheduler, build_state

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "FIGURES",
    "METRICS",
    "TEST_BINARIZATION_SEED",
    "Data",
    "HostNoise",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingDiverged",
    "batch_loss",
    "beta_at",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "build_state",
    "default_run_dir",
    "finish_epoch",
    "load_config",
    "load_run",
    "load_test_data",
    "make_config",
    "prepare_data",
    "read_metrics",
    "train",
    "train_epoch",
]
