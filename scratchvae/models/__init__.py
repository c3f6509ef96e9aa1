"""Models: the VAE, and tractable models whose log p(x) and posterior are exact."""

from .gaussian_mixture import EMHistory, GaussianMixture
from .linear_gaussian import LinearGaussian
from .normal_normal import NormalNormal
from .presets import PRESETS, get_preset, preset_names
from .vae import VAE, BernoulliLikelihood, GaussianEncoder, GaussianLikelihood, StandardNormalPrior

__all__ = [
    "VAE", "GaussianEncoder", "BernoulliLikelihood", "GaussianLikelihood", "StandardNormalPrior",
    "PRESETS", "get_preset", "preset_names",
    "LinearGaussian", "GaussianMixture", "EMHistory", "NormalNormal",
]
