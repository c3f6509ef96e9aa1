"""Models: the VAE (one or two stochastic layers), and tractable models whose log p(x) and posterior are exact."""

from .build import MODEL_KINDS, model_from_config
from .gaussian_mixture import EMHistory, GaussianMixture
from .linear_gaussian import LinearGaussian
from .normal_normal import NormalNormal
from .presets import PRESETS, get_preset, preset_names
from .two_layer_vae import TwoLayerVAE
from .vae import VAE, BernoulliLikelihood, GaussianEncoder, GaussianLikelihood, StandardNormalPrior

__all__ = [
    "VAE", "TwoLayerVAE", "model_from_config", "MODEL_KINDS",
    "GaussianEncoder", "BernoulliLikelihood", "GaussianLikelihood", "StandardNormalPrior",
    "PRESETS", "get_preset", "preset_names",
    "LinearGaussian", "GaussianMixture", "EMHistory", "NormalNormal",
]
