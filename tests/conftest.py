"""Shared fixtures: every engine test runs on NumPy, on array-api-strict's non-CPU device (the
stand-in that refuses implicit host conversion and device mixing the way CuPy does), and on CuPy
where a GPU is present.

Hypothesis profiles: ``ci`` (default: few examples, no deadline -- shared 2-core machines are
noisy) and ``thorough`` (HYPOTHESIS_PROFILE=thorough for local runs).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from scratchvae import backend as B

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _cupy_skip_reason():
    try:
        B.CupyBackend()
    except B.BackendError as e:
        return str(e)
    return None


_CUPY_REASON = _cupy_skip_reason()

BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("array_api_strict", id="strict-device1"),
    pytest.param(
        "cupy",
        id="cupy",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(
                _CUPY_REASON is not None, reason=f"no GPU: {(_CUPY_REASON or '').split(' (')[0].split('. ')[0]}"
            ),
        ],
    ),
]


# The same helper the shipped pytest plugin's ``sv_backend`` fixture yields (one copy, in the package).
from scratchvae.pytest_plugin import SvBackend as BackendHelper  # noqa: E402


@pytest.fixture(autouse=True)
def _numpy_unless_bk():
    """Tests without the ``bk`` fixture run on NumPy whatever $SCRATCHVAE_BACKEND says, and the
    global backend is restored after every test (``bk``, set up after this, overrides it)."""
    prev = B._state["backend"]
    B.set_backend("numpy")
    yield
    B._state["backend"] = prev


@pytest.fixture(params=BACKENDS)
def bk(request):
    """The backend under test; resets the global backend and dtype afterwards."""
    prev_backend, prev_dtype = B._state["backend"], B.get_default_dtype()
    helper = BackendHelper(request.param)
    try:
        yield helper
    finally:
        B._state["backend"] = prev_backend
        B.set_default_dtype(prev_dtype)


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (gradient and identity checks)."""
    prev = B.get_default_dtype()
    B.set_default_dtype("float64")
    try:
        yield
    finally:
        B.set_default_dtype(prev)
