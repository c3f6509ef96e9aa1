"""Parameter and value checks shared by the distributions: one device -> host sync per check.

Each check reduces the array on its own device to a single boolean ("is everything fine?") and
copies only that one value to the host; the slower detailed report (how many NaNs, the minimum,
...) is computed only when the check fails.  Messages name the distribution, the parameter, the
constraint, what was found and the tensor's shape, e.g.
``Normal: scale must be > 0, got min -0.3 in a tensor of shape (128, 20)``.

NaN gets its own message, checked first: a NaN parameter almost always comes from an earlier op
(log of a negative number, 0/0, an overflowing exp) and would otherwise fail a constraint check
with a confusing "got min nan".  docs/elbo.md#validation.
"""

from __future__ import annotations

from ..backend import backend_of, namespace

__all__ = [
    "ValidationError",
    "check_not_nan",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_unit_interval",
    "check_binary",
    "check_integer_range",
]

_NAN_HINT = (
    "NaN parameters usually come from an earlier op (log of a negative number, 0/0, an overflowing "
    "exp); run the forward pass under scratchvae.anomaly.detect_anomaly() to find the first op that "
    "produced it"
)


class ValidationError(ValueError):
    """A distribution parameter or value that breaks its constraint (a ValueError)."""


def _host_bool(a) -> bool:
    """One boolean from a 0-d backend array: the only device -> host copy a passing check makes."""
    return bool(backend_of(a).to_numpy(a))


def _host_float(a) -> float:
    return float(backend_of(a).to_numpy(a))


def _shape(a) -> tuple:
    return tuple(int(s) for s in a.shape)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def check_not_nan(dist: str, name: str, a) -> None:
    """Raise if ``a`` (a backend array) holds a NaN, saying how many and where it likely came from."""
    xp = namespace(a)
    if not _host_bool(xp.any(xp.isnan(a))):
        return
    _raise_nan(dist, name, a)


def _raise_nan(dist: str, name: str, a) -> None:
    """The NaN report, raised if ``a`` holds a NaN; returns otherwise (called once a check failed)."""
    xp = namespace(a)
    nan = xp.isnan(a)
    count = int(_host_float(xp.sum(xp.astype(nan, xp.int64))))
    if count == 0:
        return
    raise ValidationError(
        f"{dist}: {name} contains NaN ({count} of {_size(a)} elements) in a tensor of shape {_shape(a)}; "
        f"{_NAN_HINT}. (Switch validation off with validate_args=False or "
        "scratchvae.distributions.set_default_validate_args(False).)"
    )


# Each check below costs one sync when it passes: NaN fails every comparison, so "all elements
# satisfy the constraint" is False for a NaN too, and the NaN report is only looked for on failure.

def check_finite(dist: str, name: str, a) -> None:
    """Raise if ``a`` holds a NaN or an infinity."""
    xp = namespace(a)
    if _host_bool(xp.all(xp.isfinite(a))):
        return
    _raise_nan(dist, name, a)
    count = int(_host_float(xp.sum(xp.astype(xp.isinf(a), xp.int64))))
    raise ValidationError(
        f"{dist}: {name} must be finite, got {count} infinite of {_size(a)} elements in a tensor of "
        f"shape {_shape(a)}"
    )


def check_positive(dist: str, name: str, a) -> None:
    """Raise unless every element of ``a`` is > 0 (NaN reported as NaN)."""
    _check_above_zero(dist, name, a, strict=True)


def check_nonnegative(dist: str, name: str, a) -> None:
    """Raise unless every element of ``a`` is >= 0 (NaN reported as NaN)."""
    _check_above_zero(dist, name, a, strict=False)


def _check_above_zero(dist: str, name: str, a, strict: bool) -> None:
    xp = namespace(a)
    if _host_bool(xp.all(a > 0 if strict else a >= 0)):
        return
    _raise_nan(dist, name, a)
    raise ValidationError(
        f"{dist}: {name} must be {'>' if strict else '>='} 0, got min {_fmt(_host_float(xp.min(a)))} "
        f"in a tensor of shape {_shape(a)}"
    )


def check_unit_interval(dist: str, name: str, a) -> None:
    """Raise unless every element of ``a`` lies in [0, 1] (NaN reported as NaN)."""
    xp = namespace(a)
    if _host_bool(xp.all((a >= 0) & (a <= 1))):
        return
    _raise_nan(dist, name, a)
    lo, hi = _host_float(xp.min(a)), _host_float(xp.max(a))
    raise ValidationError(
        f"{dist}: {name} must be in [0, 1], got min {_fmt(lo)} and max {_fmt(hi)} in a tensor of shape {_shape(a)}"
    )


def check_binary(dist: str, name: str, a, hint: str = "") -> None:
    """Raise unless every element of ``a`` is exactly 0 or 1 (NaN reported as NaN)."""
    xp = namespace(a)
    if _host_bool(xp.all((a == 0) | (a == 1))):
        return
    _raise_nan(dist, name, a)
    bad = (a != 0) & (a != 1)
    count = int(_host_float(xp.sum(xp.astype(bad, xp.int64))))
    example = _host_float(xp.max(xp.where(bad, a, -xp.inf if _is_float(a) else 0)))
    raise ValidationError(
        f"{dist}: {name} must be 0 or 1, got {count} of {_size(a)} elements outside {{0, 1}} (e.g. "
        f"{_fmt(example)}) in a tensor of shape {_shape(a)}{hint}"
    )


def check_integer_range(dist: str, name: str, a, n: int) -> None:
    """Raise unless every element of ``a`` is a whole number in {0, ..., n - 1}."""
    xp = namespace(a)
    ok = (a >= 0) & (a <= n - 1)
    if _is_float(a):
        ok = ok & (a == xp.round(a))
    if _host_bool(xp.all(ok)):
        return
    if _is_float(a):
        _raise_nan(dist, name, a)
    raise ValidationError(
        f"{dist}: {name} must be a category index in {{0, ..., {n - 1}}}, got values from "
        f"{_fmt(_host_float(xp.min(a)))} to {_fmt(_host_float(xp.max(a)))} (or not whole numbers) in a "
        f"tensor of shape {_shape(a)}"
    )


def _size(a) -> int:
    n = 1
    for s in a.shape:
        n *= int(s)
    return n


def _is_float(a) -> bool:
    return "float" in str(a.dtype)
