"""using_backend: a block with another backend and/or default dtype, both put back afterwards (also on an error)."""

import pytest

import scratchvae as sv
from scratchvae import backend as B
from scratchvae.backend import using_backend
from scratchvae.train import TrainingDiverged, make_config, train


@pytest.fixture(autouse=True)
def _float32():
    """Start from NumPy (conftest sees to that) and float32, whatever an earlier test left as the default."""
    prev = sv.get_default_dtype()
    sv.set_default_dtype("float32")
    yield
    sv.set_default_dtype(prev)


def test_sets_both_and_restores_both():
    assert (sv.get_backend().name, sv.get_default_dtype()) == ("numpy", "float32")
    with using_backend("array_api_strict", "float64") as b:
        assert b is sv.get_backend() and b.name == "array_api_strict"
        assert sv.get_default_dtype() == "float64"
        x = sv.tensor([1.0, 2.0])
        assert type(x.data).__module__.startswith("array_api_strict") and B.dtype_name(x.dtype) == "float64"
    assert (sv.get_backend().name, sv.get_default_dtype()) == ("numpy", "float32")


def test_none_leaves_a_setting_as_it_is():
    with using_backend(dtype="float64") as b:
        assert b.name == "numpy" and sv.get_default_dtype() == "float64"
    with using_backend("array_api_strict"):
        assert sv.get_backend().name == "array_api_strict" and sv.get_default_dtype() == "float32"
    assert (sv.get_backend().name, sv.get_default_dtype()) == ("numpy", "float32")


def test_restores_when_the_block_raises():
    with pytest.raises(KeyError):
        with using_backend("array_api_strict", "float64"):
            raise KeyError("inside")
    assert (sv.get_backend().name, sv.get_default_dtype()) == ("numpy", "float32")


def test_restores_when_setting_fails_half_way():
    # The backend is set before the dtype is refused: it must not stay switched.
    with pytest.raises(ValueError, match="float32 or float64"):
        with using_backend("array_api_strict", "int32"):
            pass
    assert (sv.get_backend().name, sv.get_default_dtype()) == ("numpy", "float32")
    with pytest.raises(ValueError, match="unknown backend"):
        with using_backend("no-such-backend"):
            pass
    assert sv.get_backend().name == "numpy"


def test_an_unchosen_backend_stays_unchosen(monkeypatch):
    # Before any set_backend, get_backend() reads $SCRATCHVAE_BACKEND; that must still hold after the block.
    monkeypatch.setitem(B._state, "backend", None)
    with using_backend("array_api_strict"):
        assert sv.get_backend().name == "array_api_strict"
    monkeypatch.setenv("SCRATCHVAE_BACKEND", "array_api_strict")
    assert sv.get_backend().name == "array_api_strict"


@pytest.mark.parametrize("lr", [3e-3, 1e30])
def test_training_puts_the_callers_backend_and_dtype_back(tmp_path, lr):
    config = make_config(data="embedded", n_train=80, n_test=40, hidden=[8], latent_dim=2, batch_size=40, epochs=1,
                         figures=False, lr=lr, backend="array_api_strict", dtype="float64")
    if lr < 1:
        assert train(config, tmp_path / "run", progress=False, log=lambda *_: None).status == "completed"
    else:  # diverges in the second step: the backend and dtype come back on the error path too
        with pytest.raises(TrainingDiverged):
            train(config, tmp_path / "run", progress=False, log=lambda *_: None)
    assert (sv.get_backend().name, sv.get_default_dtype()) == ("numpy", "float32")
