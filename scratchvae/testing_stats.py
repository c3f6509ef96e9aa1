"""Statistical assertions about stochastic estimators, with a stated false-alarm probability
(re-exported by ``scratchvae.testing``).

The protocol (docs/testing.md#the-estimator-protocol): an *estimator* is a callable taking no
arguments that returns fresh random draws each call, as a number, a NumPy/backend array or a
Tensor.  ``exact`` fixes the shape of one draw: a result of that shape is one draw, a result with
one more leading axis is a batch of draws (``(m,) + exact.shape``), which is much faster (one
engine call for m draws).  The estimator owns its randomness (seed its generator once, outside).

Every assertion works the same way:

* the draws' mean and standard error (sample standard deviation / sqrt(n)) give a z-score per
  output component and comparison;
* the z-threshold is the normal quantile for ``alpha / (number of comparisons)`` (Bonferroni
  across components), two-sided for equalities, one-sided for inequalities;
* looks at n_initial, 2 n_initial, 4 n_initial, ... up to n_max draws (the draws accumulate):
  the check passes at the first look that is within the threshold and fails only when the last
  look is still outside it.  The budget ``alpha`` is split evenly across the looks (Bonferroni
  again), so a correct estimator fails with probability at most alpha whatever the looks do
  (a failure needs *every* look to reject, in particular the last one, so the actual rate is
  lower still; tests/test_testing_kit.py measures it).  Power is set by the first look: a bias
  b is caught when b > threshold * se(n_initial), so choose n_initial for the bias to detect.

A failure raises AssertionError with the worst component, its z-score, the threshold, the sample
size, the mean, the exact value and the standard error; a pass returns an ``EstimatorCheck``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "EstimatorCheck",
    "assert_gradient_unbiased",
    "assert_lower_bound",
    "assert_monotone_in_k",
    "assert_unbiased",
    "z_threshold",
]


def _to_host(v) -> np.ndarray:
    from .backend import to_numpy

    if isinstance(v, (int, float, np.number, np.ndarray)):
        return np.asarray(v, dtype=np.float64)
    return np.asarray(to_numpy(v), dtype=np.float64)


def z_threshold(alpha: float, comparisons: int = 1, looks: int = 1, sided: int = 2) -> float:
    """The z beyond which a comparison fails: the normal quantile for alpha / (comparisons * looks),
    split over both tails when ``sided`` is 2."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    p = alpha / (max(1, comparisons) * max(1, looks) * (2 if sided == 2 else 1))
    return NormalDist().inv_cdf(1.0 - p)


def _looks(n_initial: int, n_max: int) -> list[int]:
    n_initial, n_max = int(n_initial), int(n_max)
    if n_initial < 2 or n_max < n_initial:
        raise ValueError(f"need 2 <= n_initial <= n_max, got n_initial={n_initial}, n_max={n_max}")
    out = [n_initial]
    while out[-1] * 2 <= n_max:
        out.append(out[-1] * 2)
    return out


class _Draws:
    """The running mean and sum of squared deviations of one estimator's draws (Chan's merge)."""

    def __init__(self, estimator, shape: tuple, name: str):
        self.estimator, self.shape, self.name = estimator, tuple(shape), name
        self.n, self.mean, self.m2 = 0, np.zeros(shape), np.zeros(shape)

    def _call(self) -> np.ndarray:
        v = self.estimator()
        if isinstance(v, (tuple, list)):  # a gradient: one array per parameter, flattened together
            v = np.concatenate([_to_host(a).reshape(-1) for a in v])
        a = _to_host(v)
        if a.shape == self.shape:
            return a[None]
        if a.ndim == len(self.shape) + 1 and a.shape[1:] == self.shape and a.shape[0] >= 1:
            return a
        raise ValueError(
            f"{self.name}: the estimator returned shape {a.shape}; one draw must have the shape of the exact value "
            f"{self.shape}, a batch of m draws shape (m,) + {self.shape}"
        )

    def grow_to(self, n: int) -> None:
        while self.n < n:
            a = self._call()
            m = a.shape[0]
            mean_b = a.mean(axis=0)
            m2_b = ((a - mean_b) ** 2).sum(axis=0)
            tot = self.n + m
            delta = mean_b - self.mean
            self.mean = self.mean + delta * (m / tot)
            self.m2 = self.m2 + m2_b + delta**2 * (self.n * m / tot)
            self.n = tot

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n - 1, 1) / self.n)


@dataclass
class EstimatorCheck:
    """What a passing check saw: per component the estimate (mean), the target, the standard error
    and the z-score; ``n`` draws (per estimator), the ``threshold`` and the number of looks taken."""

    mean: np.ndarray
    target: np.ndarray
    se: np.ndarray
    z: np.ndarray
    n: int
    threshold: float
    looks: int

    @property
    def max_z(self) -> float:
        return float(np.max(self.z)) if self.z.size else 0.0


def _z(excess: np.ndarray, se: np.ndarray) -> np.ndarray:
    """excess / se, where an excess within the rounding floor is 0 and a positive excess with se = 0 is inf."""
    excess = np.where(np.isnan(excess), np.inf, excess)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(excess <= 0, 0.0, excess / se)
    return np.where(np.isnan(z), np.inf, z)


def _where(i: int, shape: tuple) -> str:
    return "" if not shape else f" at component {tuple(int(j) for j in np.unravel_index(i, shape))}"


def _run(what: str, samplers: list, stat, n_initial: int, n_max: int, alpha: float, comparisons: int,
         sided: int, describe) -> EstimatorCheck:
    """The sequential loop shared by the assertions: ``stat()`` -> (mean, target, se, z) arrays."""
    looks = _looks(n_initial, n_max)
    thr = z_threshold(alpha, comparisons, len(looks), sided)
    for j, n in enumerate(looks, 1):
        for s in samplers:
            s.grow_to(n)
        mean, target, se, z = stat()
        if not (z > thr).any():
            return EstimatorCheck(mean, target, se, z, samplers[0].n, thr, j)
    i = int(np.argmax(z.ravel()))
    kind = "two-sided" if sided == 2 else "one-sided"
    raise AssertionError(
        f"{what}{describe(i)}: estimate {mean.ravel()[i]:.8g} vs {target.ravel()[i]:.8g}, standard error "
        f"{se.ravel()[i]:.3g}, z = {z.ravel()[i]:.2f} > threshold {thr:.2f} after {samplers[0].n} draws "
        f"(looks at {looks[0]}..{looks[-1]}, all outside); {int((z > thr).sum())} of {z.size} comparisons outside; "
        f"alpha={alpha:g} {kind}, Bonferroni over {comparisons} comparisons x {len(looks)} looks"
    )


def _floor(target: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    return atol + rtol * np.abs(target)


def assert_unbiased(estimator, exact, *, alpha: float = 1e-6, n_initial: int = 1000, n_max: int = 16000,
                    atol: float = 1e-12, rtol: float = 1e-12, name: str = "assert_unbiased") -> EstimatorCheck:
    """Assert E[estimator()] == exact, componentwise, failing a correct estimator with probability <= alpha.

    ``exact``: the expectation (number or array; Tensors are read back).  A component fails when
    |mean - exact| - (atol + rtol |exact|) exceeds z * se, z = ``z_threshold(alpha, size, looks)``
    (the floor absorbs rounding for estimators with zero variance).  See the module docstring for
    the looks and the report.
    """
    __tracebackhide__ = True
    target = _to_host(exact)
    d = _Draws(estimator, target.shape, name)
    floor = _floor(target, atol, rtol)

    def stat():
        return d.mean, target, d.se, _z(np.abs(d.mean - target) - floor, d.se)

    return _run(f"{name}: E[estimate] != exact", [d], stat, n_initial, n_max, alpha, max(target.size, 1), 2,
                lambda i: _where(i, target.shape))


def assert_lower_bound(estimator, exact, *, alpha: float = 1e-6, n_initial: int = 1000, n_max: int = 16000,
                       atol: float = 1e-12, rtol: float = 1e-12, name: str = "assert_lower_bound") -> EstimatorCheck:
    """Assert E[estimator()] <= exact componentwise (a bound must not pass the evidence): one-sided,
    failing when (mean - exact) - floor exceeds z * se; otherwise as ``assert_unbiased``."""
    __tracebackhide__ = True
    target = _to_host(exact)
    d = _Draws(estimator, target.shape, name)
    floor = _floor(target, atol, rtol)

    def stat():
        return d.mean, target, d.se, _z(d.mean - target - floor, d.se)

    return _run(f"{name}: E[estimate] > exact, not a lower bound", [d], stat, n_initial, n_max, alpha,
                max(target.size, 1), 1, lambda i: _where(i, target.shape))


def assert_monotone_in_k(estimator_for_k, ks, *, exact=None, alpha: float = 1e-6, n_initial: int = 1000,
                         n_max: int = 16000, atol: float = 1e-12, rtol: float = 1e-12, shape=None,
                         name: str = "assert_monotone_in_k") -> EstimatorCheck:
    """Assert E[est_k] <= E[est_k'] for consecutive k < k' in ``ks`` (IWAE_k increases with k), and,
    given ``exact`` (log p(x)), E[est_kmax] <= exact.

    ``estimator_for_k(k)`` returns the estimator (protocol above) for that k; the estimators are
    drawn independently, so a difference's standard error is the hypot of the two.  One-sided,
    Bonferroni over the (len(ks) - 1) * size comparisons (+ size for ``exact``).  ``shape``: the
    shape of one draw (default: that of ``exact``, else a scalar).  The report names the pair.
    ``EstimatorCheck.mean`` is then (len(ks), *shape), ``target``/``se``/``z`` per comparison.
    """
    __tracebackhide__ = True
    ks = [int(k) for k in ks]
    if len(ks) < 2 or any(b <= a for a, b in zip(ks, ks[1:])):
        raise ValueError(f"{name}: ks must be at least two increasing values, got {ks}")
    target = None if exact is None else _to_host(exact)
    shp = tuple(shape) if shape is not None else (target.shape if target is not None else ())
    draws = [_Draws(estimator_for_k(k), shp, f"{name} (k={k})") for k in ks]
    pairs = [(f"E[estimate] decreases from k={a} to k={b}", i) for i, (a, b) in enumerate(zip(ks, ks[1:]))]
    if target is not None:
        pairs.append((f"E[estimate] at k={ks[-1]} exceeds exact (not a lower bound)", None))
    size = max(int(np.prod(shp)), 1)

    def stat():
        lo, hi, se = [], [], []
        for _, i in pairs:
            a = draws[i] if i is not None else draws[-1]
            if i is not None:
                b = draws[i + 1]
                lo.append(a.mean), hi.append(b.mean), se.append(np.hypot(a.se, b.se))
            else:
                lo.append(a.mean), hi.append(np.broadcast_to(target, shp)), se.append(a.se)
        lo, hi, se = np.stack(lo), np.stack(hi), np.stack(se)
        floor = _floor(hi, atol, rtol)
        return lo, hi, se, _z(lo - hi - floor, se)

    def describe(i):
        p, c = divmod(i, size)
        return pairs[p][0] + _where(c, shp)

    res = _run(f"{name}: ", draws, stat, n_initial, n_max, alpha,
               len(pairs) * size, 1, describe)
    res.mean = np.stack([d.mean for d in draws])
    return res


def assert_gradient_unbiased(grad_estimator, exact_grad, *, alpha: float = 1e-6, n_initial: int = 1000,
                             n_max: int = 16000, atol: float = 1e-12, rtol: float = 1e-12,
                             name: str = "assert_gradient_unbiased") -> EstimatorCheck:
    """Assert E[grad_estimator()] == exact_grad: a stochastic gradient (pathwise, score function, ...)
    is unbiased for the exact one.

    ``exact_grad``: an array or a tuple/list of arrays (one per parameter, e.g. from
    ``exact_elbo_gradient``); ``grad_estimator()`` returns one draw of the same structure (or,
    for a single array, a batch with a leading axis).  The parameters are flattened and
    concatenated, and the report names the parameter and the position in it.
    """
    __tracebackhide__ = True
    if isinstance(exact_grad, (tuple, list)):
        parts = [_to_host(g) for g in exact_grad]
        target = np.concatenate([p.reshape(-1) for p in parts])
        bounds = np.cumsum([0] + [p.size for p in parts])

        def describe(i):
            j = int(np.searchsorted(bounds, i, side="right") - 1)
            pos = tuple(int(k) for k in np.unravel_index(i - bounds[j], parts[j].shape)) if parts[j].shape else ()
            return f" at parameter {j}, position {pos}"
    else:
        target = _to_host(exact_grad)

        def describe(i):
            return _where(i, target.shape)

    d = _Draws(grad_estimator, target.shape, name)
    floor = _floor(target, atol, rtol)

    def stat():
        return d.mean, target, d.se, _z(np.abs(d.mean - target) - floor, d.se)

    return _run(f"{name}: E[gradient estimate] != exact gradient", [d], stat, n_initial, n_max, alpha,
                max(target.size, 1), 2, describe)

