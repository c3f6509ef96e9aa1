"""The VAE with two stochastic layers of Burda, Grosse & Salakhutdinov (2016), section 5 (docs/elbo.md#two-stochastic-layers).

Inference  q(z1, z2 | x) = q(z1|x) q(z2|z1);  generative  p(x, z1, z2) = p(z2) p(z1|z2) p(x|z1),
every Gaussian layer an MLP body and two linear heads (:class:`GaussianEncoder`, std = exp(linear)
in the paper), p(z2) = N(0, I), p(x|z1) Bernoulli logits (or Gaussian) as in the one-layer
:class:`VAE`.  One draw is z1 ~ q(z1|x), then z2 ~ q(z2|z1) at that z1, both reparameterized, and

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1).

The model does not re-derive a bound: it presents the two layers to the one-layer code as ONE latent
z = concat(z1, z2) with the joint densities :class:`HierarchicalPosterior` (log q(z1|x) + log q(z2|z1))
and :class:`HierarchicalPrior` (log p(z2) + log p(z1|z2)), and a decoder that reads z1 off z.  Then
``scratchvae.elbo.elbo`` (sampled KL), ``iwae_bound``, ``log_likelihood`` and
``scratchvae.estimators``' terms compute log w = log p(x|z) + log p(z) - log q(z|x) for it unchanged.
"""

from __future__ import annotations

import math
import numbers

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..backend import dtype_name, get_default_dtype, resolve_backend
from ..distributions import DEFAULT_MIN_SCALE, Distribution
from ..elbo import ELBO
from ..elbo import elbo as elbo_bound
from ..elbo import iwae_bound as iwae
from ..elbo import log_likelihood as importance_log_likelihood
from ..estimators import GRAD_ESTIMATORS, OBJECTIVES, detach_parameters, elbo_terms
from ..estimators import training_objective as one_latent_training_objective
from ..nn import MLP, Identity, Linear, Module, functional_call
from .options import check_mlp_options
from .vae import (
    VAE,
    BernoulliLikelihood,
    GaussianEncoder,
    GaussianLikelihood,
    StandardNormalPrior,
    _glorot,
)

__all__ = ["DetachedHierarchicalPosterior", "HierarchicalPosterior", "HierarchicalPrior", "TwoLayerVAE"]


def _flat(t: Tensor, event: int):
    """(lead..., event) -> ((N, event), lead) with N = prod(lead)."""
    lead = tuple(t.shape[:-1])
    return (t if len(lead) == 1 else F.reshape(t, (math.prod(lead), event))), lead


def _unflat(t: Tensor, lead: tuple):
    """(N, ...) -> lead + (...) (the inverse of :func:`_flat`)."""
    return t if len(lead) == 1 else F.reshape(t, lead + tuple(t.shape[1:]))


def _split(z: Tensor, d1: int):
    return z[..., :d1], z[..., d1:]


class HierarchicalPosterior(Distribution):
    """q(z1, z2 | x) = q(z1|x) q(z2|z1) as one distribution over z = concat(z1, z2).

    batch_shape (B,) as q(z1|x), event (d1 + d2,).  ``rsample`` draws z1 ~ q(z1|x), then z2 ~ q(z2|z1)
    at the drawn z1 (one per z1); ``log_prob(z)`` = log q(z1|x) + log q(z2|z1), reusing the q(z2|z1)
    of the last draw when z is that draw (otherwise it runs ``encoder_z2`` on z's z1).
    """

    has_rsample = True

    def __init__(self, q1: Distribution, encoder_z2: Module, latent_dim2: int):
        self.q1, self.encoder_z2 = q1, encoder_z2
        self.d1, self.d2 = q1.event_shape[-1], int(latent_dim2)
        self._last = (None, None)
        super().__init__(q1.batch_shape, (self.d1 + self.d2,), validate_args=q1.validate_args)

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        z1 = self.q1.rsample(sample_shape, generator=generator)  # sample_shape + (B, d1)
        flat, lead = _flat(z1, self.d1)
        q2 = self.encoder_z2(flat)
        z2 = _unflat(q2.rsample((), generator=generator), lead)
        z = F.concatenate([z1, z2], axis=-1)
        self._last = (z, q2)
        return z

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        with no_grad():  # no graph is built, so the draw itself is the detached value (and stays cached)
            return self.rsample(sample_shape, generator=generator)

    def log_prob(self, value) -> Tensor:
        z1, z2 = _split(value, self.d1)
        last, q2 = self._last
        f1, lead = _flat(z1, self.d1)
        if value is not last:
            q2 = self.encoder_z2(f1)
        return self.q1.log_prob(z1) + _unflat(q2.log_prob(_flat(z2, self.d2)[0]), lead)

    def with_detached_parameters(self) -> DetachedHierarchicalPosterior:
        """The density of q with phi cut from the graph but z, z1 included, kept live (STL, DReG)."""
        return DetachedHierarchicalPosterior(self)

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError("the mean of q(z1, z2 | x) has no closed form; use TwoLayerVAE.layer_means "
                                  "(q(z1|x).mean and q(z2|z1).mean at z1 = that mean)")


class DetachedHierarchicalPosterior(Distribution):
    """log q(z1|x) + log q(z2|z1) with every parameter of q detached, for STL and DReG.

    The value z = concat(z1, z2) keeps its path to phi, and so does z1 where it is the point at which
    q(z2|z1) is evaluated: only the direct dependence of log q on phi, the score term, is dropped.
    So q(z2|z1) is recomputed from z's own z1 by ``encoder_z2`` run with detached parameters
    (:func:`scratchvae.nn.functional_call`), never taken from the draw.
    """

    def __init__(self, q: HierarchicalPosterior):
        self.q1, self.encoder_z2 = detach_parameters(q.q1), q.encoder_z2
        self.d1, self.d2 = q.d1, q.d2
        super().__init__(q.batch_shape, q.event_shape, validate_args=False)

    def log_prob(self, value) -> Tensor:
        z1, z2 = _split(value, self.d1)
        f1, lead = _flat(z1, self.d1)
        frozen = {name: p.detach() for name, p in self.encoder_z2.named_parameters()}
        q2 = functional_call(self.encoder_z2, frozen, (f1,))  # depends on z1, not on phi
        return self.q1.log_prob(z1) + _unflat(q2.log_prob(_flat(z2, self.d2)[0]), lead)


class HierarchicalPrior(Distribution):
    """p(z1, z2) = p(z2) p(z1|z2) over z = concat(z1, z2): event (d1 + d2,), no batch dims."""

    has_rsample = True

    def __init__(self, p_z2: Distribution, decoder_z1: Module, latent_dim1: int):
        self.p_z2, self.decoder_z1 = p_z2, decoder_z1
        self.d1, self.d2 = int(latent_dim1), p_z2.event_shape[-1]
        super().__init__((), (self.d1 + self.d2,), validate_args=p_z2.validate_args)

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        """z2 ~ p(z2), then z1 ~ p(z1|z2); sample_shape must not be empty (the decoder wants a batch)."""
        z2 = self.p_z2.rsample(sample_shape, generator=generator)
        flat, lead = _flat(z2, self.d2)
        z1 = _unflat(self.decoder_z1(flat).rsample((), generator=generator), lead)
        return F.concatenate([z1, z2], axis=-1)

    def log_prob(self, value) -> Tensor:
        z1, z2 = _split(value, self.d1)
        f2, lead = _flat(z2, self.d2)
        return self.p_z2.log_prob(z2) + _unflat(self.decoder_z1(f2).log_prob(_flat(z1, self.d1)[0]), lead)


def _check_weight(name, v, what):
    if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
        raise ValueError(f"TwoLayerVAE: {name} must be a finite number >= 0 ({what}), got {v!r}")


class TwoLayerVAE(Module):
    """x -> z1 -> z2 inference, z2 -> z1 -> x generation (module docstring); the interface of :class:`VAE`.

    ``encoder``: q(z1|x); ``encoder_z2``: q(z2|z1); ``decoder_z1``: p(z1|z2) (all returning
    ``Independent(Normal, 1)``); ``decoder`` + ``likelihood``: p(x|z1); p(z2) = N(0, I).
    ``latent_dim`` is z1's size (what :meth:`encode`, :meth:`decode` and the active-unit count use).
    """

    def __init__(self, encoder: Module, encoder_z2: Module, decoder_z1: Module, decoder: Module,
                 likelihood: Module, latent_dim: int, latent_dim2: int):
        super().__init__()
        self.encoder, self.encoder_z2 = encoder, encoder_z2
        self.decoder_z1, self.decoder, self.likelihood = decoder_z1, decoder, likelihood
        self.prior_module = StandardNormalPrior(latent_dim2)
        self.latent_dim1, self.latent_dim2 = int(latent_dim), int(latent_dim2)
        self.config = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def mlp(cls, input_dim: int = 784, hidden=(200, 200), latent_dim: int = 100, hidden2=(100, 100),
            latent_dim2: int = 50, activation: str = "tanh", *, likelihood: str = "bernoulli",
            gaussian_scale: str = "learned", fixed_scale: float = 0.1, min_scale: float = DEFAULT_MIN_SCALE,
            encoder_head: str = "exp", init: str = "glorot", allow_grey: bool = False, validate_args=None,
            dtype=None, backend=None, generator=None) -> TwoLayerVAE:
        """The paper's model: x -hidden-> z1 -hidden2-> z2 and z2 -reversed(hidden2)-> z1 -reversed(hidden)-> x.

        The options mean what they mean in :meth:`VAE.mlp` (``encoder_head`` applies to all three
        Gaussian layers); parameters are drawn in the order q(z1|x), q(z2|z1), p(z1|z2), p(x|z1).
        """
        hidden, hidden2 = [int(h) for h in hidden], [int(h) for h in hidden2]
        input_dim, latent_dim, latent_dim2 = int(input_dim), int(latent_dim), int(latent_dim2)
        check_mlp_options("TwoLayerVAE.mlp", {"input_dim": input_dim, "hidden": hidden, "latent_dim": latent_dim,
                                              "hidden2": hidden2, "latent_dim2": latent_dim2},
                          activation, likelihood, encoder_head, init, allow_grey)
        be = resolve_backend(backend)
        dtype = dtype_name(dtype or get_default_dtype())
        kw = {"dtype": dtype, "backend": be, "generator": generator}

        def gaussian(sizes, latent):  # an MLP body with tanh after every layer, then the two heads
            body = MLP(sizes, activation, final_activation=activation, **kw) if len(sizes) > 1 else Identity()
            return GaussianEncoder(body, sizes[-1], latent, encoder_head, validate_args=validate_args, **kw)

        encoder = gaussian([input_dim] + hidden, latent_dim)
        encoder_z2 = gaussian([latent_dim] + hidden2, latent_dim2)
        decoder_z1 = gaussian([latent_dim2] + hidden2[::-1], latent_dim)
        if likelihood == "bernoulli":
            lik = BernoulliLikelihood(allow_grey=allow_grey, validate_args=validate_args)
        else:
            lik = GaussianLikelihood(gaussian_scale, fixed_scale, min_scale, validate_args, dtype=dtype, backend=be)
        decoder = MLP([latent_dim] + hidden[::-1] + [lik.outputs(input_dim)], activation, **kw)
        model = cls(encoder, encoder_z2, decoder_z1, decoder, lik, latent_dim, latent_dim2)
        if init == "glorot":
            for m in model.modules():
                if isinstance(m, Linear):
                    _glorot(m, generator)
        model.config = {
            "kind": "mlp2", "input_dim": input_dim, "hidden": hidden, "latent_dim": latent_dim,
            "hidden2": hidden2, "latent_dim2": latent_dim2, "activation": activation, "likelihood": likelihood,
            "gaussian_scale": gaussian_scale, "fixed_scale": float(fixed_scale), "min_scale": float(min_scale),
            "encoder_head": encoder_head, "init": init, "allow_grey": bool(allow_grey),
        }
        return model

    @classmethod
    def from_config(cls, config: dict, *, validate_args=None, dtype=None, backend=None,
                    generator=None) -> TwoLayerVAE:
        """Rebuild a model from its ``config`` (freshly initialised: load the weights afterwards)."""
        if not isinstance(config, dict) or config.get("kind") != "mlp2":
            raise ValueError(f"TwoLayerVAE.from_config: expected a config made by TwoLayerVAE.mlp (kind 'mlp2'), "
                             f"got {config!r}")
        kw = {k: v for k, v in config.items() if k != "kind"}
        return cls.mlp(**kw, validate_args=validate_args, dtype=dtype, backend=backend, generator=generator)

    def init_output_bias(self, pixel_means) -> None:
        """p(x|z1) starts at the data's mean image, as in :meth:`VAE.init_output_bias` (the same code)."""
        VAE.init_output_bias(self, pixel_means)

    # -- the distributions -----------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        """The size of z1, the layer next to x."""
        return self.latent_dim1

    @property
    def prior_z2(self) -> Distribution:
        """p(z2) = N(0, I), on the backend and in the dtype of the parameters."""
        return self.prior_module.distribution(self._first_parameter())

    @property
    def prior(self) -> HierarchicalPrior:
        """p(z1, z2) = p(z2) p(z1|z2) over concat(z1, z2) (the marginal p(z1) has no closed form)."""
        return HierarchicalPrior(self.prior_z2, self.decoder_z1, self.latent_dim1)

    def _first_parameter(self):
        return next(iter(self.parameters()), None)

    def _as_input(self, x) -> Tensor:
        return VAE._as_input(self, x)

    def encode(self, x) -> Distribution:
        """q(z1|x) for a batch x of shape (B, input_dim)."""
        return self.encoder(self._as_input(x))

    def posterior(self, x) -> HierarchicalPosterior:
        """q(z1, z2 | x) = q(z1|x) q(z2|z1) over concat(z1, z2)."""
        return HierarchicalPosterior(self.encode(x), self.encoder_z2, self.latent_dim2)

    def decode(self, z1) -> Distribution:
        """p(x|z1) for z1 of shape (N, latent_dim)."""
        return self.likelihood(self.decoder(z1))

    def decode_mean(self, z1) -> Tensor:
        """E[x|z1]: pixel probabilities (Bernoulli) or the Gaussian mean."""
        return self.likelihood.mean(self.decoder(z1))

    def decode_joint(self, z) -> Distribution:
        """p(x|z1) for z = concat(z1, z2) (the decoder the one-latent bounds call)."""
        return self.decode(z[..., :self.latent_dim1])

    def layer_means(self, x):
        """(E_q[z1|x], E_q[z2|z1 = E_q[z1|x]]): the posterior means per layer, as the paper counts active units."""
        with no_grad():
            mu1 = self.encode(x).mean
            return mu1, self.encoder_z2(mu1).mean

    def _bounds(self):
        return self.posterior, self.decode_joint, self.prior

    # -- bounds ------------------------------------------------------------------------------------
    def elbo(self, x, n_samples: int = 1, beta: float = 1.0, free_bits: float = 0.0, kl: str = "analytic",
             generator=None) -> ELBO:
        """The per-example ELBO E_q[log w] over both layers, with ``n_samples`` draws (z1, z2).

        ``kl`` = ``reconstruction`` - ``elbo`` = E_q[log q(z1|x) + log q(z2|z1) - log p(z1|z2) - log p(z2)]
        is always the sampled one (``kl`` "analytic" or "mc": p(z1) has no closed form), ``kl_per_dim`` None;
        ``objective`` = reconstruction - beta * kl.  Free bits need a per-dimension KL: ValueError."""
        _check_weight("beta", beta, "the KL's weight")
        _check_weight("free_bits", free_bits, "nats per latent dimension")
        if free_bits > 0:
            raise ValueError("TwoLayerVAE: free bits need the KL per latent dimension, which two stochastic layers "
                             "do not have (their KL is sampled as a whole); use free_bits=0")
        if kl not in ("analytic", "mc"):
            raise ValueError(f'TwoLayerVAE.elbo: kl must be "analytic" or "mc", got {kl!r}')
        return elbo_bound(self._as_input(x), *self._bounds(), n_samples=n_samples, kl="mc", beta=beta,
                          generator=generator)

    def forward(self, x, **kwargs):
        return self.elbo(x, **kwargs)

    def iwae_bound(self, x, k: int, generator=None) -> Tensor:
        """Per-example log (1/k) sum_i w_i over k draws (z1, z2) (scratchvae.elbo.iwae_bound)."""
        return iwae(self._as_input(x), *self._bounds(), k, generator=generator)

    def training_objective(self, x, objective: str = "elbo", k: int = 1, grad_estimator: str = "pathwise",
                           beta: float = 1.0, free_bits: float = 0.0, generator=None) -> ELBO:
        """What training maximizes ("elbo": mean_i log w_i, "iwae": log (1/k) sum_i w_i over k draws) and,
        from the same draws, ``elbo``, ``reconstruction``, ``kl`` (sampled) and ``iwae``.

        Every estimator of :func:`scratchvae.estimators.training_objective`: for STL and DReG, log q
        is :class:`DetachedHierarchicalPosterior`'s.  The pathwise ELBO has no analytic KL here, so it
        is mean_i log w_i from the same draws; with beta != 1 it is :meth:`elbo` (its ``iwae`` is None)."""
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if grad_estimator not in GRAD_ESTIMATORS:
            raise ValueError(f"grad_estimator must be one of {GRAD_ESTIMATORS}, got {grad_estimator!r}")
        x = self._as_input(x)
        if objective == "iwae" or grad_estimator != "pathwise":
            return one_latent_training_objective(x, *self._bounds(), objective, k, grad_estimator, beta, free_bits,
                                                 generator)
        if beta != 1.0 or free_bits != 0:
            return self.elbo(x, n_samples=k, beta=beta, free_bits=free_bits, generator=generator)
        terms = elbo_terms(x, *self._bounds(), k, "pathwise", generator)
        lw = terms.log_weights
        bound, rec = F.mean(lw, axis=0), F.mean(terms.log_likelihood, axis=0)
        return ELBO(elbo=bound, reconstruction=rec, kl=rec - bound, kl_per_dim=None, objective=terms.bound,
                    iwae=F.logsumexp(lw, axis=0) - math.log(lw.shape[0]))

    def log_likelihood(self, x, k: int = 5000, chunk: int = 100, generator=None):
        """Importance-sampled log p(x) with k draws (z1, z2), ``chunk`` at a time (scratchvae.elbo.log_likelihood)."""
        return importance_log_likelihood(self._as_input(x), *self._bounds(), k=k, chunk=chunk, generator=generator)

    # -- pictures ----------------------------------------------------------------------------------
    def sample(self, n: int, generator=None, mean: bool = True) -> Tensor:
        """n images: z2 ~ p(z2), z1 ~ p(z1|z2), then E[x|z1] (``mean=True``) or a draw x ~ p(x|z1)."""
        with no_grad():
            z1 = self.prior.sample((int(n),), generator=generator)[..., :self.latent_dim1]
            if mean:
                return self.decode_mean(z1)
            return self.decode(z1).sample(generator=generator)

    def reconstruct(self, x) -> Tensor:
        """E[x|z1] at z1 = the mean of q(z1|x)."""
        with no_grad():
            return self.decode_mean(self.encode(x).mean)
