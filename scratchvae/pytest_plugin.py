"""scratchvae's pytest plugin (entry point ``pytest11: scratchvae``, active wherever scratchvae is
installed; ``-p no:scratchvae`` turns it off).  See docs/testing.md#the-pytest-plugin.

Fixtures (prefixed ``sv_`` so they clash with nothing a project defines):

* ``sv_backend``: the test runs once per backend -- ``numpy``, ``array_api_strict`` on its
  ``device1`` (a CPU stand-in for a GPU that refuses implicit host conversion and device mixing,
  ids ``strict-device1``) and ``cupy`` (marked ``gpu``), each skipped with the reason where it is
  missing.  It yields an ``SvBackend`` (``.name``, ``.backend``, ``.xp``, ``.tensor(a)``,
  ``.array(a)``, ``.numpy(t)``) and puts the global backend and default dtype back afterwards;
* ``sv_float64``: float64 as the default dtype for the test (gradient and identity checks).

Markers ``slow`` and ``gpu`` are registered (where a project has not registered them itself).

Hypothesis profiles ``scratchvae-ci`` (25 examples, no deadline, derandomized: for shared CI
machines) and ``scratchvae-thorough`` (400 examples) are registered, never loaded: select one with
``pytest --hypothesis-profile=scratchvae-ci`` or ``settings.load_profile("scratchvae-ci")`` in a
conftest.py, so a project's own profile is left alone.
"""

from __future__ import annotations

import pytest

PROFILES = {
    "scratchvae-ci": dict(max_examples=25, deadline=None, derandomize=True),
    "scratchvae-thorough": dict(max_examples=400, deadline=None),
}


def _register_profiles() -> None:
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # hypothesis is optional: the fixtures work without it
        return
    ci = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
    settings.register_profile("scratchvae-ci", suppress_health_check=ci, **PROFILES["scratchvae-ci"])
    settings.register_profile("scratchvae-thorough", suppress_health_check=[HealthCheck.function_scoped_fixture],
                              **PROFILES["scratchvae-thorough"])


# at import, before hypothesis's own plugin reads --hypothesis-profile in pytest_configure
_register_profiles()

MARKERS = {
    "slow": "slow: long-running checks (deselect with -m 'not slow')",
    "gpu": "gpu: needs CuPy and a CUDA GPU (skipped, with the reason, where there is none)",
}


def pytest_configure(config) -> None:
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, line in MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", line)


class SvBackend:
    """What a test needs on one backend: tensors from NumPy data, backend arrays, and reading back."""

    def __init__(self, name: str):
        import scratchvae as sv

        self.name = name
        self.backend = sv.set_backend(name)
        self.xp = self.backend.xp

    def tensor(self, a, requires_grad: bool = False, dtype=None):
        """A Tensor on this backend from host data (float data keeps its dtype unless ``dtype``)."""
        import numpy as np

        import scratchvae as sv

        a = np.asarray(a)
        if dtype is None and a.dtype.kind == "f":
            dtype = a.dtype.name
        return sv.tensor(self.backend.from_numpy(a, dtype), requires_grad=requires_grad)

    def array(self, a, dtype=None):
        """A backend array from host data."""
        import numpy as np

        return self.backend.from_numpy(np.asarray(a), dtype)

    def numpy(self, x):
        """A Tensor or backend array read back as a NumPy array."""
        import scratchvae as sv

        return sv.to_numpy(x)

    def __repr__(self) -> str:
        return f"SvBackend({self.name!r})"


def _unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot run here (its BackendError, first sentence), or None."""
    from scratchvae.backend import BackendError, resolve_backend

    try:
        resolve_backend(name)
    except BackendError as e:
        return str(e).split(" (")[0].split(". ")[0].removeprefix("scratchvae: ")
    return None


@pytest.fixture(params=[pytest.param("numpy", id="numpy"),
                        pytest.param("array_api_strict", id="strict-device1"),
                        pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)])
def sv_backend(request):
    """The backend under test (numpy, array-api-strict's device1, cupy), as an ``SvBackend``; the
    global backend and default dtype are put back afterwards.  A missing one is skipped, saying why."""
    import scratchvae as sv

    why = _unavailable(request.param)
    if why is not None:
        pytest.skip(f"{request.param} backend unavailable: {why}")
    with sv.using_backend():
        yield SvBackend(request.param)


@pytest.fixture
def sv_float64():
    """float64 as the default dtype for the test; the previous default is put back afterwards."""
    import scratchvae as sv

    with sv.using_backend(dtype="float64"):
        yield
