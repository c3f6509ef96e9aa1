"""The variational autoencoder: an encoder q(z|x), a decoder network, a likelihood p(x|z) and a prior p(z).

``VAE(encoder, decoder, prior, likelihood)`` composes the pieces; ``VAE.mlp(...)`` builds the usual
fully connected one.  The bound itself is ``scratchvae.elbo`` (docs/elbo.md#the-elbo): the model only
says how to get q(z|x) (:meth:`VAE.encode`) and p(x|z) (:meth:`VAE.decode`).  docs/training.md#the-model.

The three encoder heads differ only in how the second linear output h becomes the standard deviation:

* ``log_var``  -- h = log sigma^2, sigma = exp(h / 2)  (Kingma & Welling; pytorch/examples);
* ``exp``      -- h = log sigma,   sigma = exp(h)      (the IWAE paper's "std = exp(linear)");
* ``softplus`` -- sigma = softplus(h) + min_scale      (no exp: cannot overflow for large h).
"""

from __future__ import annotations

import math
import numbers

from .. import functional as F
from ..autograd import Tensor, as_tensor, no_grad
from ..backend import (
    backend_of,
    dtype_name,
    get_backend,
    get_default_dtype,
    host_array,
    namespace,
    resolve_backend,
    to_numpy,
)
from ..distributions import (
    DEFAULT_MIN_SCALE,
    Distribution,
    Independent,
    Normal,
    bernoulli_likelihood,
    gaussian_likelihood,
)
from ..elbo import elbo as _elbo
from ..elbo import iwae_bound as _iwae_bound
from ..elbo import log_likelihood as _log_likelihood
from ..estimators import iwae_objective as _iwae_objective
from ..estimators import training_objective as _training_objective
from ..nn import MLP, Identity, Linear, Module, Parameter, init
from .options import ENCODER_HEADS, GAUSSIAN_SCALES, INITS, LIKELIHOODS, check_mlp_options, choice

__all__ = [
    "ENCODER_HEADS",
    "GAUSSIAN_SCALES",
    "INITS",
    "LIKELIHOODS",
    "VAE",
    "BernoulliLikelihood",
    "GaussianEncoder",
    "GaussianLikelihood",
    "StandardNormalPrior",
]

# Output-bias initialisation clips the pixel means to this range before the logit, as the IWAE
# paper's code does: a pixel that is always 0 would otherwise get a bias of -inf.
_BIAS_CLIP = (1e-3, 1.0 - 1e-3)


# --------------------------------------------------------------------------------------------------
# the pieces

class GaussianEncoder(Module):
    """q(z|x) = N(mu(x), diag sigma(x)^2): a body network, then two linear heads (mean, spread).

    ``head`` says how the spread head's output h becomes sigma (module docstring).  ``forward(x)``
    returns ``Independent(Normal, 1)``: batch_shape (B,), the latent dims as the event, so its
    log_prob and KL are summed over the latent dims (docs/elbo.md#reduction-contract).
    """

    def __init__(self, body: Module, features: int, latent_dim: int, head: str = "log_var", *,
                 min_scale: float = 1e-5, validate_args=None, dtype=None, backend=None, generator=None):
        super().__init__()
        self.head = choice(head, ENCODER_HEADS, "encoder head")
        self.body = body
        self.mean_head = Linear(features, latent_dim, dtype=dtype, backend=backend, generator=generator)
        self.scale_head = Linear(features, latent_dim, dtype=dtype, backend=backend, generator=generator)
        self.latent_dim = int(latent_dim)
        self.min_scale = float(min_scale)
        self.validate_args = validate_args

    def forward(self, x) -> Independent:
        h = self.body(x)
        mu, s = self.mean_head(h), self.scale_head(h)
        v = self.validate_args
        if self.head == "log_var":
            q = Normal.from_log_var(mu, s, validate_args=v)
        elif self.head == "exp":
            q = Normal.from_log_scale(mu, s, validate_args=v)
        else:
            # The floor keeps sigma > 0 where softplus(h) underflows (h < -88 in float32).
            q = Normal(mu, F.softplus(s) + self.min_scale, validate_args=v)
        return Independent(q, 1)

    def extra_repr(self):
        return f"head={self.head!r}, latent_dim={self.latent_dim}"


class BernoulliLikelihood(Module):
    """p(x|z) = prod_pixels Bernoulli(x; sigmoid(logits)), the decoder's output read as logits.

    ``allow_grey=True`` accepts grey levels in (0, 1) as targets: then log p(x|z) is the binary
    cross-entropy of pytorch/examples, which is not a normalized likelihood (docs/data.md, eq. D2),
    so it must be asked for.  Otherwise the targets are checked to be 0 or 1 (with validation on).
    """

    def __init__(self, allow_grey: bool = False, validate_args=None):
        super().__init__()
        self.allow_grey = bool(allow_grey)
        self.validate_args = validate_args

    def outputs(self, n_pixels: int) -> int:
        """How many numbers the decoder must produce per example."""
        return n_pixels

    def forward(self, out: Tensor) -> Independent:
        v = False if self.allow_grey else self.validate_args
        return bernoulli_likelihood(out, validate_args=v)

    def mean(self, out: Tensor) -> Tensor:
        """E[x|z] = sigmoid(logits)."""
        return F.sigmoid(out)

    def set_output_bias(self, bias: Parameter, pixel_means) -> None:
        """bias = logit(clip(m, 0.001, 0.999)): the decoder starts at the data's pixel means (a host
        array, worked on in float64 on the host)."""
        m = host_array(pixel_means, "float64")
        xp = namespace(m)
        m = xp.clip(m, *_BIAS_CLIP)
        _fill(bias, xp.log(m) - xp.log1p(-m))

    def extra_repr(self):
        return "allow_grey=True" if self.allow_grey else ""


class GaussianLikelihood(Module):
    """p(x|z) = prod_pixels N(x; loc, sigma^2) with the decoder's output as loc (and log sigma).

    ``scale``: "fixed" (sigma = ``fixed_scale``; note that sigma = 1 is what a plain MSE loss
    silently means), "learned" (one log sigma for all pixels, a parameter of this module) or
    "per_pixel" (the decoder outputs loc and log sigma for every pixel).  Learned scales are floored
    smoothly at ``min_scale`` so the variance cannot collapse to 0 (docs/elbo.md#the-gaussian-likelihood).
    """

    def __init__(self, scale: str = "learned", fixed_scale: float = 0.1, min_scale: float = DEFAULT_MIN_SCALE,
                 validate_args=None, *, dtype=None, backend=None):
        super().__init__()
        self.scale = choice(scale, GAUSSIAN_SCALES, "gaussian scale")
        if scale == "fixed" and not fixed_scale > 0:
            raise ValueError(f"GaussianLikelihood: fixed_scale must be > 0, got {fixed_scale}")
        self.fixed_scale = float(fixed_scale)
        self.min_scale = float(min_scale)
        self.validate_args = validate_args
        if scale == "learned":
            be = resolve_backend(backend)
            name = dtype_name(dtype or get_default_dtype())
            self.log_scale = Parameter(be.from_numpy(host_array(0.0, name)))

    def outputs(self, n_pixels: int) -> int:
        return 2 * n_pixels if self.scale == "per_pixel" else n_pixels

    def _split(self, out):
        if self.scale != "per_pixel":
            return out, None
        d = out.shape[-1] // 2
        return out[..., :d], out[..., d:]

    def forward(self, out: Tensor) -> Independent:
        loc, log_scale = self._split(out)
        v = self.validate_args
        if self.scale == "fixed":
            return gaussian_likelihood(loc, self.fixed_scale, validate_args=v)
        if self.scale == "learned":
            return gaussian_likelihood(loc, log_scale=self.log_scale, min_scale=self.min_scale, validate_args=v)
        return gaussian_likelihood(loc, log_scale=log_scale, min_scale=self.min_scale, validate_args=v)

    def mean(self, out: Tensor) -> Tensor:
        return self._split(out)[0]

    def set_output_bias(self, bias: Parameter, pixel_means) -> None:
        """loc bias = the pixel means (the log-scale half, if any, is left alone)."""
        m = host_array(pixel_means, "float64")
        xp = namespace(m)
        m = xp.reshape(m, (-1,))
        host = xp.asarray(host_array(to_numpy(bias), "float64"), copy=True)  # a host copy to write into
        host[: m.shape[0]] = m
        _fill(bias, host)

    def extra_repr(self):
        return f"scale={self.scale!r}" + (f", fixed_scale={self.fixed_scale}" if self.scale == "fixed" else "")


class StandardNormalPrior(Module):
    """p(z) = N(0, I) over ``latent_dim`` dims, built on demand on the backend and in the dtype asked for.

    A Module without parameters, so it follows the model to any backend: ``distribution(like)``
    gives ``Independent(Normal.standard((latent_dim,)), 1)`` next to the tensor ``like``.  The
    KL against it uses the closed form (m^2 + s^2 - 1)/2 - log s per dim (docs/elbo.md#kl-divergences).
    """

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self._cache = {}

    def distribution(self, like: Tensor | None = None) -> Independent:
        backend = backend_of(like.data) if like is not None else get_backend()
        dtype = dtype_name(like.dtype) if like is not None else get_default_dtype()
        key = (backend.name, repr(backend.device), dtype)
        d = self._cache.get(key)
        if d is None:
            d = self._cache[key] = Independent(Normal.standard((self.latent_dim,), dtype, backend), 1)
        return d

    def __deepcopy__(self, memo):
        new = super().__deepcopy__(memo)
        object.__setattr__(new, "_cache", {})
        return new

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}"


def _fill(param: Parameter, values) -> None:
    """Overwrite a parameter's values from host data, keeping its backend and dtype."""
    be = backend_of(param.data)
    host = host_array(values, dtype_name(param.dtype))
    xp = namespace(host)
    param.data = be.from_numpy(xp.asarray(xp.reshape(host, param.shape), copy=True))  # never the caller's memory


# --------------------------------------------------------------------------------------------------
# the model

class VAE(Module):
    """A VAE: ``encoder(x)`` -> q(z|x), ``likelihood(decoder(z))`` -> p(x|z), and a prior p(z).

    ``encoder``: a Module returning a Distribution with batch_shape (B,) (e.g. :class:`GaussianEncoder`).
    ``decoder``: a Module mapping latents (N, latent) to the likelihood's parameters.
    ``prior``: a Distribution over the latents (latent dims as event dims), or a
    :class:`StandardNormalPrior` (the default: N(0, I), made on the model's own backend and dtype).
    ``likelihood``: a Module turning the decoder's output into p(x|z) (:class:`BernoulliLikelihood`,
    :class:`GaussianLikelihood`).

    ``config`` (set by :meth:`mlp`) is the recipe :meth:`from_config` rebuilds the model from; it is
    what a checkpoint stores next to the weights.
    """

    def __init__(self, encoder: Module, decoder: Module, prior, likelihood: Module):
        super().__init__()
        if not isinstance(prior, (Distribution, StandardNormalPrior)):
            raise TypeError(f"VAE: prior must be a Distribution or a StandardNormalPrior, got {type(prior).__name__}")
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        if isinstance(prior, StandardNormalPrior):
            self.prior_module = prior
            self._fixed_prior = None
        else:
            self._fixed_prior = prior
        self.config = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def mlp(cls, input_dim: int = 784, hidden=(400,), latent_dim: int = 20, activation: str = "relu", *,
            likelihood: str = "bernoulli", gaussian_scale: str = "learned", fixed_scale: float = 0.1,
            min_scale: float = DEFAULT_MIN_SCALE, encoder_head: str = "log_var", init: str = "pytorch",
            allow_grey: bool = False, validate_args=None, dtype=None, backend=None, generator=None) -> VAE:
        """The fully connected VAE: input_dim -> hidden... -> latent (two heads) and latent -> reversed(hidden) -> output.

        ``activation`` follows every hidden layer ("relu", "tanh", ...).  ``likelihood``
        "bernoulli" (decoder outputs logits; ``allow_grey`` accepts grey-level targets) or
        "gaussian" with ``gaussian_scale`` fixed / learned / per_pixel.  ``encoder_head``: log_var,
        exp or softplus (module docstring).  ``init``: "pytorch" (each Linear's default,
        U(+-1/sqrt(fan_in)) for weights and biases) or "glorot" (weights U(+-sqrt(6/(fan_in+fan_out))),
        biases 0, as in the IWAE paper's code).  Parameters are drawn from ``generator`` in
        the order encoder, decoder.
        """
        hidden = [int(h) for h in hidden]
        input_dim, latent_dim = int(input_dim), int(latent_dim)
        check_mlp_options("VAE.mlp", {"input_dim": input_dim, "hidden": hidden, "latent_dim": latent_dim},
                          activation, likelihood, encoder_head, init, allow_grey)
        be = resolve_backend(backend)
        dtype = dtype_name(dtype or get_default_dtype())
        kw = {"dtype": dtype, "backend": be, "generator": generator}
        if hidden:
            body = MLP([input_dim] + hidden, activation, final_activation=activation, **kw)
        else:
            body = Identity()
        features = hidden[-1] if hidden else input_dim
        encoder = GaussianEncoder(body, features, latent_dim, encoder_head, validate_args=validate_args, **kw)
        if likelihood == "bernoulli":
            lik = BernoulliLikelihood(allow_grey=allow_grey, validate_args=validate_args)
        else:
            lik = GaussianLikelihood(gaussian_scale, fixed_scale, min_scale, validate_args, dtype=dtype, backend=be)
        decoder = MLP([latent_dim] + hidden[::-1] + [lik.outputs(input_dim)], activation, **kw)
        model = cls(encoder, decoder, StandardNormalPrior(latent_dim), lik)
        if init == "glorot":
            for m in model.modules():
                if isinstance(m, Linear):
                    _glorot(m, generator)
        model.config = {
            "kind": "mlp", "input_dim": input_dim, "hidden": hidden, "latent_dim": latent_dim,
            "activation": activation, "likelihood": likelihood, "gaussian_scale": gaussian_scale,
            "fixed_scale": float(fixed_scale), "min_scale": float(min_scale), "encoder_head": encoder_head,
            "init": init, "allow_grey": bool(allow_grey),
        }
        return model

    @classmethod
    def from_config(cls, config: dict, *, validate_args=None, dtype=None, backend=None, generator=None) -> VAE:
        """Rebuild a model from its ``config`` (freshly initialised: load the weights afterwards)."""
        if not isinstance(config, dict) or config.get("kind") != "mlp":
            raise ValueError(f"VAE.from_config: expected a config made by VAE.mlp (kind 'mlp'), got {config!r}")
        kw = {k: v for k, v in config.items() if k != "kind"}
        return cls.mlp(**kw, validate_args=validate_args, dtype=dtype, backend=backend, generator=generator)

    def init_output_bias(self, pixel_means) -> None:
        """Start the decoder at the data's mean image: the last Linear's bias becomes
        logit(clip(pixel means, 0.001, 0.999)) (Bernoulli) or the pixel means (Gaussian loc).

        With the output layer's weights small, the initial reconstruction is then the average
        image instead of grey 0.5 everywhere, which saves the first epochs (the IWAE paper does this).
        """
        last = [m for m in self.decoder.modules() if isinstance(m, Linear)]
        if not last or last[-1].bias is None:
            raise ValueError("VAE.init_output_bias: the decoder has no final Linear layer with a bias")
        if not hasattr(self.likelihood, "set_output_bias"):
            raise TypeError(f"VAE.init_output_bias: {type(self.likelihood).__name__} cannot set an output bias")
        means = to_numpy(pixel_means)  # host data (a Tensor or a device array is copied back)
        self.likelihood.set_output_bias(last[-1].bias, namespace(means).reshape(means, (-1,)))

    # -- the distributions -----------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.prior_module.latent_dim if self._fixed_prior is None else math.prod(self._fixed_prior.event_shape)

    @property
    def prior(self) -> Distribution:
        """p(z), on the backend and in the dtype of the model's parameters."""
        if self._fixed_prior is not None:
            return self._fixed_prior
        return self.prior_module.distribution(self._first_parameter())

    def _first_parameter(self):
        """The first Parameter, whose backend and dtype the prior and host inputs follow."""
        return next(iter(self.parameters()), None)

    def encode(self, x) -> Distribution:
        """q(z|x) for a batch x of shape (B, input_dim)."""
        return self.encoder(self._as_input(x))

    def decode(self, z) -> Distribution:
        """p(x|z) for latents z of shape (N, latent_dim)."""
        return self.likelihood(self.decoder(z))

    def decode_mean(self, z) -> Tensor:
        """E[x|z]: pixel probabilities (Bernoulli) or the Gaussian mean."""
        return self.likelihood.mean(self.decoder(z))

    def _as_input(self, x) -> Tensor:
        """``x`` as a Tensor: host data goes to the parameters' backend and dtype (the one allowed
        crossing, ``as_tensor``); Tensors and backend arrays are used where they are."""
        if isinstance(x, Tensor):
            return x
        return as_tensor(x, self._first_parameter())

    # -- bounds ------------------------------------------------------------------------------------
    def elbo(self, x, n_samples: int = 1, beta: float = 1.0, free_bits: float = 0.0, kl: str = "analytic",
             generator=None):
        """The per-example ELBO and its parts (``scratchvae.elbo.elbo``, docs/elbo.md#the-elbo).

        ``beta`` must be finite and >= 0 and ``free_bits`` finite and >= 0 (ValueError otherwise)."""
        for name, v, what in (("beta", beta, "the KL's weight"), ("free_bits", free_bits, "nats per latent dimension")):
            if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise ValueError(f"VAE.elbo: {name} must be a finite number >= 0 ({what}), got {v!r}")
        return _elbo(self._as_input(x), self.encode, self.decode, self.prior, n_samples=n_samples, kl=kl,
                     beta=beta, free_bits=free_bits, generator=generator)

    def forward(self, x, **kwargs):
        return self.elbo(x, **kwargs)

    def iwae_bound(self, x, k: int, generator=None) -> Tensor:
        """Per-example log (1/k) sum_i p(x, z_i) / q(z_i|x) (docs/elbo.md#iwae)."""
        return _iwae_bound(self._as_input(x), self.encode, self.decode, self.prior, k, generator=generator)

    def iwae_objective(self, x, k: int, grad_estimator: str = "pathwise", generator=None) -> Tensor:
        """Per-example IWAE_k with the gradient of ``grad_estimator`` (scratchvae.estimators.iwae_objective)."""
        return _iwae_objective(self._as_input(x), self.encode, self.decode, self.prior, k, grad_estimator,
                               generator=generator)

    def training_objective(self, x, objective: str = "elbo", k: int = 1, grad_estimator: str = "pathwise",
                           beta: float = 1.0, free_bits: float = 0.0, generator=None):
        """What training maximizes ("elbo" or "iwae" with k draws) and the true bound's parts, an ELBO
        (scratchvae.estimators.training_objective, docs/math.md#gradient-estimators-for-the-elbo-and-iwae)."""
        if objective == "elbo" and grad_estimator == "pathwise":
            return self.elbo(x, n_samples=k, beta=beta, free_bits=free_bits, generator=generator)
        return _training_objective(self._as_input(x), self.encode, self.decode, self.prior, objective, k,
                                   grad_estimator, beta, free_bits, generator)

    def log_likelihood(self, x, k: int = 5000, chunk: int = 100, generator=None):
        """Importance-sampled log p(x) with k samples, ``chunk`` at a time (docs/elbo.md#log-likelihood)."""
        return _log_likelihood(self._as_input(x), self.encode, self.decode, self.prior, k=k, chunk=chunk,
                               generator=generator)

    # -- pictures ----------------------------------------------------------------------------------
    def sample(self, n: int, generator=None, mean: bool = True) -> Tensor:
        """n images from the model: z ~ p(z), then E[x|z] (``mean=True``) or a draw x ~ p(x|z)."""
        with no_grad():
            z = self.prior.sample((int(n),), generator=generator)
            if mean:
                return self.decode_mean(z)
            return self.decode(z).sample(generator=generator)

    def reconstruct(self, x) -> Tensor:
        """E[x|z] at z = the posterior mean: a picture of what the code keeps (not an ELBO term)."""
        with no_grad():
            return self.decode_mean(self.encode(x).mean)


def _glorot(layer: Linear, generator):
    init.xavier_uniform_(layer.weight, generator=generator)
    if layer.bias is not None:
        init.zeros_(layer.bias)


def count_parameters(model: Module) -> int:
    return int(sum(math.prod(p.shape) for p in model.parameters()))
