"""The PyTorch names the port of pytorch/examples' vae/main.py needed beyond the first batch:
``torch.clamp``, ``torch.le``/``gt``/..., ``torch.max(a, b)`` (elementwise, also of masks),
``torch.pow``, ``torch.cuda.is_available()`` and ``torch.device(...)``.  Values against NumPy,
gradients with gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F


def test_clamp_is_clip_with_pytorchs_keywords(bk, float64):
    x = bk.tensor(np.linspace(-2, 2, 9), requires_grad=True)
    assert sv.clamp is sv.clip and F.clamp is F.clip
    np.testing.assert_array_equal(bk.numpy(sv.clamp(x, min=-1.0, max=0.5)), np.clip(np.linspace(-2, 2, 9), -1, 0.5))
    sv.gradcheck(lambda t: sv.clamp(t, min=-1.3, max=0.7), [x])


@pytest.mark.parametrize("name, op", [("le", np.less_equal), ("lt", np.less), ("ge", np.greater_equal),
                                      ("gt", np.greater), ("eq", np.equal), ("ne", np.not_equal)])
def test_comparisons_match_numpy_and_the_operators(bk, name, op):
    a_np = np.array([0.1, 0.49, 0.5, 0.51, 0.9], np.float32)
    b_np = np.array([0.5, 0.49, 0.5, 0.2, 1.0], np.float32)
    a, b = bk.tensor(a_np), bk.tensor(b_np)
    fn = getattr(sv, name)
    np.testing.assert_array_equal(bk.numpy(fn(a, b)), op(a_np, b_np))
    np.testing.assert_array_equal(bk.numpy(fn(a, 0.5)), op(a_np, np.float32(0.5)))
    got = fn(a, b)
    assert not isinstance(got, sv.Tensor)  # what a <= b gives: a plain mask


def test_max_of_two_is_elementwise_and_differentiable(bk, float64):
    rng = np.random.default_rng(0)
    a_np, b_np = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    a, b = bk.tensor(a_np, requires_grad=True), bk.tensor(b_np, requires_grad=True)
    np.testing.assert_array_equal(bk.numpy(sv.max(a, b)), np.maximum(a_np, b_np))
    np.testing.assert_array_equal(bk.numpy(sv.min(a, b)), np.minimum(a_np, b_np))
    np.testing.assert_array_equal(bk.numpy(a.max(b)), np.maximum(a_np, b_np))
    sv.gradcheck(lambda s, t: sv.max(s, t), [a, b])
    # the reduction is unchanged
    np.testing.assert_allclose(bk.numpy(sv.max(a, 1)), a_np.max(axis=1))
    np.testing.assert_allclose(float(bk.numpy(sv.max(a))), a_np.max())


def test_max_of_two_masks_is_their_or(bk):
    lam = bk.tensor(np.array([0.1, 0.495, 0.5, 0.7], np.float32))
    mask = sv.max(sv.le(lam, 0.49), sv.gt(lam, 0.51))
    np.testing.assert_array_equal(bk.numpy(mask), [True, False, False, True])
    np.testing.assert_array_equal(bk.numpy(sv.min(sv.le(lam, 0.5), sv.gt(lam, 0.2))), [False, True, True, False])
    picked = sv.where(mask, lam, 0.49 * sv.ones_like(lam))  # the upstream continuous-Bernoulli idiom
    np.testing.assert_allclose(bk.numpy(picked), [0.1, 0.49, 0.49, 0.7], rtol=1e-6)


def test_pow_at_top_level(bk, float64):
    x = bk.tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    np.testing.assert_allclose(bk.numpy(sv.pow(x, 2)), [0.25, 2.25, 4.0])
    sv.gradcheck(lambda t: sv.pow(t, 4), [x])


def test_cuda_is_available_answers_without_raising():
    avail = sv.cuda.is_available()
    assert isinstance(avail, bool) and isinstance(sv.cuda.device_count(), int)
    assert (sv.cuda.device_count() > 0) == avail
    if not avail:
        with pytest.raises(sv.BackendError):
            sv.set_backend("cupy")


def test_device_names_are_checked_and_taken_by_to(bk):
    cpu = sv.device("cpu")
    assert cpu == "cpu" and cpu.type == "cpu" and cpu.index is None and repr(cpu) == "device(type='cpu')"
    cuda = sv.device("cuda:0")
    assert cuda == "cuda" and cuda.type == "cuda" and cuda.index == 0  # naming it does not start a GPU
    assert sv.device(cpu) is cpu and sv.device("gpu").type == "cuda"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        sv.device("tpu")
    with pytest.raises(ValueError, match="one device per backend"):
        sv.device("cuda:1")
    with pytest.raises(TypeError, match="expected a name"):
        sv.device(0)
    x = bk.tensor(np.array([1.0, 2.0], np.float32))
    y = x.to(cpu)
    assert isinstance(y.data, np.ndarray) and y.numpy().tolist() == [1.0, 2.0]
    m = sv.nn.Linear(2, 3).to(cpu)
    assert isinstance(m.weight.data, np.ndarray)


def test_a_0d_tensor_takes_a_format_spec_as_in_pytorch(bk):
    loss = sv.sum(bk.tensor(np.array([1.25, 2.0], np.float32)))
    assert f"{loss:.3f}" == "3.250" and f"{loss:8}" == f"{3.25:8}"
    with pytest.raises(TypeError):
        f"{bk.tensor(np.ones(2)):.3f}"
    assert f"{bk.tensor(np.ones(2))}" == str(bk.tensor(np.ones(2)))


def test_logaddexp_matches_numpy_without_overflow(bk, float64):
    rng = np.random.default_rng(0)
    a_np, b_np = rng.normal(size=(3, 4)) * 5, rng.normal(size=(3, 4)) * 5
    a, b = bk.tensor(a_np, requires_grad=True), bk.tensor(b_np, requires_grad=True)
    np.testing.assert_allclose(bk.numpy(sv.logaddexp(a, b)), np.logaddexp(a_np, b_np), rtol=1e-12)
    np.testing.assert_allclose(bk.numpy(sv.logaddexp(0, a)), np.logaddexp(0, a_np), rtol=1e-12)
    big = bk.tensor(np.array([1000.0, -1000.0]))
    np.testing.assert_allclose(bk.numpy(sv.logaddexp(big, 0.0)), [1000.0, 0.0], atol=1e-12)
    sv.gradcheck(lambda s, t: sv.logaddexp(s, t), [a, b])
