"""Rebuild a model from the ``config`` dict it carries (what a checkpoint stores next to the weights)."""

from __future__ import annotations

from .two_layer_vae import TwoLayerVAE
from .vae import VAE

__all__ = ["MODEL_KINDS", "model_from_config"]

#: The model class of each config ``kind``.
MODEL_KINDS = {"mlp": VAE, "mlp2": TwoLayerVAE}


def model_from_config(config: dict, **kwargs):
    """``VAE.from_config`` or ``TwoLayerVAE.from_config`` by the config's ``kind`` ("mlp" or "mlp2");
    ``kwargs`` (validate_args, dtype, backend, generator) are passed on.  Freshly initialised: load the
    weights afterwards."""
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind not in MODEL_KINDS:
        raise ValueError(f"model_from_config: unknown model kind {kind!r} (known: {', '.join(MODEL_KINDS)}) in {config!r}")
    return MODEL_KINDS[kind].from_config(config, **kwargs)
