"""Named training recipes that reproduce published setups (docs/training.md#presets).

A preset is a plain dict of training-config fields (``scratchvae.train.TrainConfig``); the CLI's
``--preset NAME`` starts from it and any option given on the command line overrides it.

* ``pytorch-example`` -- pytorch/examples' ``vae/main.py``: 784-400-20 ReLU, log-variance head,
  Bernoulli decoder on grey levels (binary cross-entropy summed per image: not a normalized
  likelihood, docs/data.md eq. D2), Adam lr 1e-3, batch 128, 10 epochs, seed 1, loss summed over
  the batch.  Its test loss after 10 epochs is about 105.5 nats per image.
* ``iwae-paper`` -- Burda, Grosse & Salakhutdinov (2016), one stochastic layer, VAE k = 1:
  784-200-200-50 tanh, std = exp(linear), Glorot-uniform weights, output bias = logit of the
  training pixel means, dynamic binarization, 59,600 / 400 train / validation split, Adam
  (0.9, 0.999, eps 1e-4), batch 20 summed, learning rate 1e-3 * 10^(-i/7) for 3^i epochs,
  i = 0..7 (3280 epochs).  Test NLL (k = 5000) 86.76 nats.
* ``iwae-paper-2layer`` -- the same paper's two stochastic layers (``scratchvae.models.TwoLayerVAE``),
  everything else as ``iwae-paper``: 784-200-200-100 (z1) -100-100-50 (z2), tanh, every Gaussian
  layer std = exp(linear), Glorot-uniform weights.  Test NLL (k = 5000): VAE k = 1 85.33 nats;
  trained as IWAE (``objective="iwae"``), k = 5 83.89 and k = 50 82.90.
"""

from __future__ import annotations

import copy

__all__ = ["PRESETS", "get_preset", "preset_names"]

PRESETS: dict = {
    "pytorch-example": {
        "model": {
            "hidden": [400], "latent_dim": 20, "activation": "relu", "likelihood": "bernoulli",
            "encoder_head": "log_var", "init": "pytorch",
        },
        "output_bias": "zero",            # the Linear default: no data-dependent init
        "binarize": "grey",
        "bernoulli_on_grey": True,        # what the example does; explicitly not a likelihood
        "validation": 0,
        "optimizer": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "adam_eps": 1e-8, "weight_decay": 0.0,
        "schedule": "constant",
        "batch_size": 128, "epochs": 10, "seed": 1,
        "loss_reduction": "sum",          # loss summed over pixels AND the batch, then backward
        "drop_last": False,
        "beta": 1.0, "warmup_epochs": 0, "free_bits": 0.0, "n_samples": 1,
    },
    "iwae-paper": {
        "model": {
            "hidden": [200, 200], "latent_dim": 50, "activation": "tanh", "likelihood": "bernoulli",
            "encoder_head": "exp", "init": "glorot",
        },
        "output_bias": "pixel_means",     # logit(clip(mean, 0.001, 0.999)) of the training pixels
        "binarize": "dynamic",
        "bernoulli_on_grey": False,
        "validation": 400,                # the last 400 training images, as in the paper's code
        "optimizer": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "adam_eps": 1e-4, "weight_decay": 0.0,
        "schedule": "iwae",               # 3^i epochs at 1e-3 * 10^(-i/7), i = 0..7
        "batch_size": 20, "epochs": 3280, "seed": 1,
        "loss_reduction": "sum",          # the paper's code sums the bound over the minibatch
        "drop_last": False,
        "beta": 1.0, "warmup_epochs": 0, "free_bits": 0.0, "n_samples": 1,
    },
}
# The two-layer preset differs from the one-layer one in the model only.
PRESETS["iwae-paper-2layer"] = {
    **copy.deepcopy(PRESETS["iwae-paper"]),
    "model": {
        "hidden": [200, 200], "latent_dim": 100, "hidden2": [100, 100], "latent_dim2": 50, "activation": "tanh",
        "likelihood": "bernoulli", "encoder_head": "exp", "init": "glorot",
    },
}


def preset_names() -> list:
    return list(PRESETS)


def get_preset(name: str) -> dict:
    """A deep copy of the preset ``name`` (so callers can change it freely)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
