"""Probability distributions on the engine: batched, diagonal, on any backend (docs/elbo.md).

``Normal`` (with ``from_log_var`` / ``from_log_scale``), ``Bernoulli``, ``Categorical``,
``Independent``; the decoder likelihoods ``gaussian_likelihood`` and ``bernoulli_likelihood``;
``kl_divergence`` with its ``register_kl`` registry.  Argument validation is on by default
(``set_default_validate_args``) and raises ``ValidationError`` (a ValueError).
"""

from .bernoulli import Bernoulli
from .categorical import Categorical
from .constraints import ValidationError
from .distribution import Distribution, get_default_validate_args, set_default_validate_args
from .independent import Independent
from .kl import kl_divergence, kl_monte_carlo, register_kl
from .likelihoods import DEFAULT_MIN_SCALE, bernoulli_likelihood, floored_log_scale, gaussian_likelihood
from .multivariate_normal import MultivariateNormal
from .normal import Normal

__all__ = [
    "Distribution", "Normal", "MultivariateNormal", "Bernoulli", "Categorical", "Independent",
    "gaussian_likelihood", "bernoulli_likelihood", "floored_log_scale", "DEFAULT_MIN_SCALE",
    "kl_divergence", "kl_monte_carlo", "register_kl",
    "set_default_validate_args", "get_default_validate_args", "ValidationError",
]
