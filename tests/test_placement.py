"""The public placement helpers: as_tensor (user input next to a tensor) and resolve_backend."""

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.backend import dtype_name


def test_as_tensor_follows_like_and_never_moves_backend_data(bk):
    like = bk.tensor(np.ones(2, np.float32))
    for data in (3, 2.5, [1, 2], np.arange(2), np.ones(2, np.float64)):
        t = sv.as_tensor(data, like)
        assert t.backend is like.backend and dtype_name(t.dtype) == "float32", data
    np.testing.assert_array_equal(sv.as_tensor([1, 2], like).numpy(), [1.0, 2.0])
    arr = bk.array(np.zeros(3, np.float64))
    if bk.name != "numpy":  # (on NumPy a NumPy array is host data, and takes like's dtype)
        assert sv.as_tensor(arr, like).data is arr  # a device array is wrapped where it is, never copied
    assert sv.as_tensor(like) is like
    assert dtype_name(sv.as_tensor(like, dtype=np.float64).dtype) == "float64"
    assert dtype_name(sv.as_tensor(np.arange(2), like, dtype="float64").dtype) == "float64"


def test_as_tensor_without_like_is_tensor(bk):
    t = sv.as_tensor([1.0, 2.0])
    assert t.backend is sv.get_backend() and dtype_name(t.dtype) == sv.get_default_dtype()
    assert dtype_name(sv.as_tensor(np.ones(2, np.float64)).dtype) == "float64"


def test_resolve_backend_names_devices_and_backends():
    assert sv.resolve_backend() is sv.get_backend()
    assert sv.resolve_backend("numpy").name == "numpy"
    assert sv.resolve_backend("cpu").name == "numpy"
    b = sv.resolve_backend("array_api_strict")
    assert sv.resolve_backend(b) is b
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        sv.resolve_backend("tpu")
