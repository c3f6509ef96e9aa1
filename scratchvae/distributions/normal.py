"""The diagonal Gaussian N(loc, scale^2), elementwise over its batch.

Three ways to build one, named for the parameterization so log-variance is never mistaken for
log-std (a classic VAE bug):

* ``Normal(loc, scale)``                 -- the standard deviation itself;
* ``Normal.from_log_var(loc, log_var)``  -- log sigma^2, so scale = exp(0.5 * log_var);
* ``Normal.from_log_scale(loc, log_scale)`` -- log sigma, so scale = exp(log_scale).

The log-parameterized constructors keep log sigma as given, so ``log_prob``, ``entropy`` and the KL
use it directly instead of log(exp(...)): exact even where exp(0.5 * log_var) underflows.
docs/elbo.md#the-gaussian.
"""

from __future__ import annotations

from .. import functional as F
from ..autograd import Tensor
from ..arrays import check_same_device
from ..autograd.tensor import tensor as _tensor
from ..backend import dtype_name, get_default_dtype, host_array, resolve_backend
from ..random import default_generator
from . import constraints as C
from .distribution import Distribution, _backend_of, _broadcast_all, _float_params, _is_number

__all__ = ["Normal"]



class Normal(Distribution):
    """N(loc, scale^2) with density exp(-(x - loc)^2 / (2 scale^2)) / (scale sqrt(2 pi)).

    ``batch_shape`` is the broadcast shape of the parameters; ``event_shape`` is () -- wrap it in
    ``Independent`` to sum ``log_prob`` over latent dimensions or pixels.
    """

    has_rsample = True

    def __init__(self, loc, scale, validate_args=None, *, _log_scale=None, _log_name="log_scale"):
        standard = _is_number(loc) and _is_number(scale) and float(loc) == 0.0 and float(scale) == 1.0
        if scale is None and _log_scale is None:
            raise ValueError("Normal: scale is required (or use Normal.from_log_var / Normal.from_log_scale)")
        loc, scale, log_scale = _float_params(loc, scale, _log_scale)
        given = [t for t in (loc, scale, log_scale) if t is not None]
        check_same_device([t.data for t in given])  # refuse here, not later in some op (or never)
        shape, given = _broadcast_all(*given)
        it = iter(given)
        self.loc = next(it)
        # Built from a log, the scale exp(log sigma) is made only when something asks for it: the
        # fused reparameterization and KL read log sigma, so a VAE step never needs it.
        self._scale = next(it) if scale is not None else None
        self._log_scale = next(it) if log_scale is not None else None
        #: True for N(0, 1) built from the numbers 0 and 1 (or Normal.standard): the KL fast path.
        self._standard = standard
        super().__init__(batch_shape=shape, validate_args=validate_args)
        if self._validate_args:
            C.check_finite("Normal", "loc", self.loc.data)
            if log_scale is None:
                C.check_finite("Normal", "scale", self.scale.data)
                C.check_positive("Normal", "scale", self.scale.data)
            else:  # the log is what is kept and used, so it is what is validated: finite is enough
                # (exp(0.5 * log_var) may underflow to 0; log_prob, entropy and the KL never use it)
                raw = self._log_scale.data * 2.0 if _log_name == "log_var" else self._log_scale.data
                C.check_finite("Normal", _log_name, raw)

    # -- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_log_var(cls, loc, log_var, validate_args=None) -> Normal:
        """N(loc, exp(log_var)): the variance's log, so scale = exp(0.5 * log_var) (never exp(log_var))."""
        loc, log_var = _float_params(loc, log_var)
        log_scale = 0.5 * log_var
        return cls(loc, None, validate_args, _log_scale=log_scale, _log_name="log_var")

    @classmethod
    def from_log_scale(cls, loc, log_scale, validate_args=None) -> Normal:
        """N(loc, exp(log_scale)^2): the standard deviation's log."""
        loc, log_scale = _float_params(loc, log_scale)
        return cls(loc, None, validate_args, _log_scale=log_scale)

    @classmethod
    def standard(cls, shape=(), dtype=None, backend=None) -> Normal:
        """N(0, I) of batch ``shape`` on ``backend`` (default: current) in ``dtype`` (default dtype)."""
        b = resolve_backend(backend)
        name = dtype_name(dtype or get_default_dtype())
        zeros = _tensor(_filled(shape, 0.0, name, b))
        ones = _tensor(_filled(shape, 1.0, name, b))
        d = cls(zeros, ones, validate_args=False, _log_scale=zeros)
        d._standard = True
        return d

    @property
    def is_standard(self) -> bool:
        """True for N(0, 1) built from the numbers 0 and 1 (or by Normal.standard): KL against it
        is the VAE's closed form (m^2 + s^2 - 1)/2 - log s, with no division by a scale."""
        return self._standard

    @property
    def scale(self) -> Tensor:
        """sigma (for a Normal built from a log: exp(log sigma), made on first use)."""
        if self._scale is None:
            self._scale = F.exp(self._log_scale)
        return self._scale

    # -- moments -------------------------------------------------------------------------------------
    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def stddev(self) -> Tensor:
        return self.scale

    @property
    def variance(self) -> Tensor:
        """scale^2, as exp(2 log sigma) when built from a log so it never squares an underflowed scale."""
        if self._log_scale is not None:
            return F.exp(2.0 * self._log_scale)
        return F.square(self.scale)

    @property
    def log_scale(self) -> Tensor:
        """log sigma: as given by from_log_var / from_log_scale, else log(scale)."""
        return self._log_scale if self._log_scale is not None else F.log(self.scale)

    # -- sampling ------------------------------------------------------------------------------------
    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        """z = loc + scale * eps, eps ~ N(0, I) in the parameters' dtype and backend (docs/elbo.md#reparameterization).

        The noise is a constant, so dz/dloc = 1 and dz/dscale = eps: gradients reach the parameters.
        """
        shape = self._extended_shape(sample_shape)
        gen = generator or default_generator()
        eps = gen.normal(shape, dtype=dtype_name(self.loc.dtype), backend=_backend_of(self.loc))
        if self._log_scale is not None:  # one fused op: loc + exp(log sigma) eps
            return F.reparameterize(self.loc, self._log_scale, eps)
        return self.loc + self.scale * _tensor(eps)  # eps is a constant leaf: no gradient

    # -- densities -----------------------------------------------------------------------------------
    def log_prob(self, value) -> Tensor:
        """log N(x; mu, sigma^2) = -(x - mu)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2."""
        x = self._value(value, self.loc)
        if self._validate_args:
            C.check_not_nan("Normal.log_prob", "value", x.data)
        return F.normal_log_density(x, self.loc, self.scale, self.log_scale)

    def entropy(self) -> Tensor:
        """H = 1/2 + log(2 pi)/2 + log sigma (per element of the batch)."""
        return self.log_scale + 0.5 * (1.0 + F.LOG_2PI)

    def __repr__(self):
        return f"Normal(batch_shape={self.batch_shape}, dtype={dtype_name(self.loc.dtype)}, device={self.loc.device})"


def _filled(shape, value: float, dtype: str, backend):
    """A new array of ``shape`` filled with ``value`` on ``backend``: the one number is copied from
    the host, then broadcast and copied there (the device comes from the array, so this works on
    every backend without naming one)."""
    xp = backend.xp
    one = backend.from_numpy(host_array(value, dtype))
    return xp.asarray(xp.broadcast_to(one, tuple(shape)), copy=True)
