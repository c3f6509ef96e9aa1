"""The choices a model's options take, and the one check of ``VAE.mlp`` / ``TwoLayerVAE.mlp``'s options."""

from __future__ import annotations

from ..nn.activation import ACTIVATIONS

__all__ = ["ENCODER_HEADS", "GAUSSIAN_SCALES", "INITS", "LIKELIHOODS", "check_mlp_options", "choice"]

ENCODER_HEADS = ("log_var", "exp", "softplus")
LIKELIHOODS = ("bernoulli", "gaussian")
GAUSSIAN_SCALES = ("fixed", "learned", "per_pixel")
INITS = ("pytorch", "glorot")


def choice(value, choices, what):
    """``value`` if it is one of ``choices``, else a ValueError naming ``what`` and the choices."""
    if value not in choices:
        raise ValueError(f"VAE: unknown {what} {value!r}; use one of {', '.join(choices)}")
    return value


def check_mlp_options(who: str, sizes: dict, activation, likelihood, encoder_head, init, allow_grey) -> None:
    """Raise ValueError naming ``who`` for a size < 1 (``sizes``: name -> int or list of ints) or an
    unknown activation, likelihood, encoder head or init, or allow_grey without a Bernoulli likelihood."""
    flat = [v for x in sizes.values() for v in (x if isinstance(x, (list, tuple)) else [x])]
    if any(v < 1 for v in flat):
        got = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(f"{who}: sizes must be positive, got {got}")
    if activation.lower() not in ACTIVATIONS:
        raise ValueError(f"{who}: unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
    choice(likelihood, LIKELIHOODS, "likelihood")
    choice(encoder_head, ENCODER_HEADS, "encoder head")
    choice(init, INITS, "init")
    if allow_grey and likelihood != "bernoulli":
        raise ValueError(f"{who}: allow_grey only applies to the bernoulli likelihood")
