"""PyTorch's names for the same concepts: tensor methods, dim=/keepdim=, top-level functions and
creation, losses with reduction=, zero_grad(set_to_none=), device spellings.  Values against NumPy,
gradients with gradcheck, losses against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
import scratchvae.nn.functional as NF
from scratchvae.backend import dtype_name


def _x(bk, shape=(2, 3), seed=0):
    return bk.tensor(np.random.default_rng(seed).normal(size=shape), requires_grad=True)


def test_size_is_numpys_int_and_pytorchs_method(bk):
    x = _x(bk, (2, 3, 4))
    assert x.size == 24 and isinstance(x.size, int) and x.size + 1 == 25
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and x.dim() == 3


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp", "amax", "amin"])
def test_dim_and_keepdim_are_axis_and_keepdims(bk, float64, name):
    x = _x(bk, (2, 3, 4))
    fn = getattr(F, name)
    for dim, keep in ((1, False), (-1, True), ((0, 2), False)):
        a = fn(x, dim=dim, keepdim=keep)
        b = fn(x, axis=dim, keepdims=keep)
        np.testing.assert_array_equal(bk.numpy(a), bk.numpy(b))
        np.testing.assert_array_equal(bk.numpy(getattr(x, name)(dim=dim, keepdim=keep)), bk.numpy(b))
    sv.gradcheck(lambda t: fn(t, dim=1), [x])
    with pytest.raises(TypeError, match="not both"):
        fn(x, axis=0, dim=0)


def test_max_with_dim_says_to_use_amax(bk):
    with pytest.raises(TypeError, match="amax"):
        _x(bk).max(dim=1)


def test_amax_values_match_numpy(bk, float64):
    a = np.random.default_rng(1).normal(size=(3, 5))
    np.testing.assert_array_equal(bk.numpy(F.amax(bk.tensor(a), dim=1)), a.max(axis=1))
    np.testing.assert_array_equal(bk.numpy(F.amin(bk.tensor(a), dim=0, keepdim=True)), a.min(axis=0, keepdims=True))


def test_shape_methods(bk, float64):
    x = _x(bk, (2, 1, 3))
    assert x.view(-1).shape == (6,) and x.view(3, 2).shape == (3, 2) and x.view((6, 1)).shape == (6, 1)
    assert x.unsqueeze(0).shape == (1, 2, 1, 3) and x.squeeze().shape == (2, 3) and x.squeeze(1).shape == (2, 3)
    assert x.flatten().shape == (6,) and x.flatten(1).shape == (2, 3) and F.flatten(x).shape == (2, 3)
    assert F.cat([x, x], dim=0).shape == (4, 1, 3) and F.stack([x, x], dim=1).shape == (2, 2, 1, 3)
    np.testing.assert_allclose(bk.numpy(x.pow(2)), bk.numpy(x) ** 2)
    sv.gradcheck(lambda t: F.cat([t, 2.0 * t], dim=2).flatten().pow(3), [x])


def test_top_level_functions_are_the_functional_ones(bk, float64):
    x = _x(bk)
    for name in ("exp", "log1p", "tanh", "sigmoid", "relu", "softplus", "sqrt", "abs", "square"):
        arg = F.abs(x) if name in ("sqrt", "log1p") else x
        np.testing.assert_array_equal(bk.numpy(getattr(sv, name)(arg)), bk.numpy(getattr(F, name)(arg)))
    np.testing.assert_array_equal(bk.numpy(sv.sum(x, dim=1)), bk.numpy(F.sum(x, axis=1)))


def test_creation_draws_from_the_scratchvae_generator(bk):
    sv.manual_seed(3)
    a = sv.randn(4, 5)
    sv.manual_seed(3)
    b = sv.randn((4, 5))
    np.testing.assert_array_equal(bk.numpy(a), bk.numpy(b))
    assert a.backend is sv.get_backend() and dtype_name(a.dtype) == sv.get_default_dtype()
    assert a.shape == (4, 5) and not a.requires_grad and sv.randn(2, requires_grad=True).requires_grad
    u = bk.numpy(sv.rand(1000))
    assert u.min() >= 0 and u.max() < 1
    like = bk.tensor(np.zeros((2, 3), np.float64))
    for fn, fill in ((sv.zeros_like, 0.0), (sv.ones_like, 1.0)):
        t = fn(like)
        assert t.shape == (2, 3) and dtype_name(t.dtype) == "float64" and t.backend is like.backend
        np.testing.assert_array_equal(bk.numpy(t), np.full((2, 3), fill))
    assert sv.randn_like(like).shape == (2, 3) and dtype_name(sv.rand_like(like).dtype) == "float64"
    np.testing.assert_array_equal(bk.numpy(sv.ones(2, 2)), np.ones((2, 2)))
    np.testing.assert_array_equal(bk.numpy(sv.zeros(3)), np.zeros(3))


def _reduced(v, reduction):
    return {"none": v, "sum": v.sum(), "mean": v.mean()}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_equal_their_formulas(bk, float64, reduction):
    rng = np.random.default_rng(4)
    l_np = rng.normal(size=(3, 4)) * 3
    x_np = (rng.random((3, 4)) < 0.5).astype(np.float64)
    p_np = 1 / (1 + np.exp(-l_np))
    y_np, t_np, v_np = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.random((3, 4)) + 0.1
    l, p, y, v = (bk.tensor(a, requires_grad=True) for a in (l_np, p_np, y_np, v_np))
    x, t = bk.tensor(x_np), bk.tensor(t_np)
    bce = -(x_np * np.log(p_np) + (1 - x_np) * np.log(1 - p_np))
    bce_l = np.maximum(l_np, 0) - x_np * l_np + np.log1p(np.exp(-np.abs(l_np)))
    gauss = 0.5 * (np.log(v_np) + (y_np - t_np) ** 2 / v_np)
    cases = [
        (NF.binary_cross_entropy(p, x, reduction=reduction), bce),
        (NF.binary_cross_entropy_with_logits(l, x, reduction=reduction), bce_l),
        (NF.mse_loss(y, t, reduction=reduction), (y_np - t_np) ** 2),
        (NF.gaussian_nll_loss(y, t, v, reduction=reduction), gauss),
        (NF.gaussian_nll_loss(y, t, v, full=True, reduction=reduction), gauss + 0.5 * math.log(2 * math.pi)),
    ]
    for got, want in cases:
        np.testing.assert_allclose(bk.numpy(got), _reduced(want, reduction), rtol=1e-12)
    sv.gradcheck(lambda a: NF.binary_cross_entropy_with_logits(a, x, reduction=reduction), [l])
    sv.gradcheck(lambda a, b: NF.gaussian_nll_loss(a, t, b, reduction=reduction), [y, v])
    sv.gradcheck(lambda a: NF.binary_cross_entropy(a, x, reduction=reduction), [p])


def test_bce_on_probabilities_clamps_its_log_at_minus_100(bk, float64):
    p = bk.tensor(np.array([0.0, 1.0, 0.5]))
    x = bk.tensor(np.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(bk.numpy(NF.binary_cross_entropy(p, x, reduction="none")), [100.0, 100.0, math.log(2)])
    with pytest.raises(ValueError, match="reduction must be one of"):
        NF.mse_loss(p, x, reduction="average")


def test_softmax_and_log_softmax(bk, float64):
    a = np.random.default_rng(5).normal(size=(3, 4)) * 10
    x = bk.tensor(a, requires_grad=True)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(bk.numpy(NF.softmax(x, dim=1)), want, rtol=1e-12)
    m = a.max(axis=1, keepdims=True)
    np.testing.assert_allclose(bk.numpy(NF.log_softmax(x, dim=1)), a - m - np.log(e.sum(axis=1, keepdims=True)),
                               rtol=1e-12, atol=1e-14)
    sv.gradcheck(lambda t: NF.log_softmax(t, dim=0), [x])


def test_zero_grad_set_to_none(bk):
    lin = sv.nn.Linear(3, 2)
    opt = sv.optim.SGD(lin.parameters(), lr=0.1)
    lin(bk.tensor(np.ones((4, 3), np.float32))).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all(bk.numpy(p.grad).shape == p.shape and not bk.numpy(p.grad).any() for p in lin.parameters())
    lin.zero_grad()
    assert all(p.grad is None for p in lin.parameters())


def test_device_spellings(bk):
    x = bk.tensor(np.ones(2, np.float32))
    assert x.cpu().backend.name == "numpy" and x.to("cpu").backend.name == "numpy"
    assert dtype_name(x.to(np.float64).dtype) == "float64"
    assert sv.resolve_backend("cpu").name == "numpy"


# -- the functional API (HIPS autograd / JAX), optimizers over pytrees, save_image ---------------------

def test_grad_and_value_and_grad_over_a_pytree(bk, float64):
    w = bk.tensor(np.array([1.0, -2.0, 3.0]))
    b = bk.tensor(np.array(0.5))

    def f(params, x):
        return F.sum(F.square(params["w"] * x + params["b"][0]))

    x = bk.tensor(np.array([0.5, 1.0, -1.0]))
    value, g = sv.value_and_grad(f)({"w": w, "b": [b]}, x)
    r = bk.numpy(w) * bk.numpy(x) + 0.5
    np.testing.assert_allclose(value.item(), np.sum(r ** 2))
    np.testing.assert_allclose(bk.numpy(g["w"]), 2 * r * bk.numpy(x))
    np.testing.assert_allclose(bk.numpy(g["b"][0]), 2 * r.sum())
    assert isinstance(g["b"], list) and w.grad is None and not w.requires_grad  # the caller's tensors untouched
    gx = sv.grad(f, argnums=1)({"w": w, "b": [b]}, x)
    np.testing.assert_allclose(bk.numpy(gx), 2 * r * bk.numpy(w))
    g_both = sv.grad(lambda u, v: F.sum(u * v), argnums=(0, 1))(w, x)
    np.testing.assert_allclose(bk.numpy(g_both[0]), bk.numpy(x))
    np.testing.assert_allclose(bk.numpy(g_both[1]), bk.numpy(w))
    unused = sv.grad(lambda u, v: F.sum(u), argnums=1)(w, x)  # v does not reach the output: zeros
    np.testing.assert_array_equal(bk.numpy(unused), np.zeros(3))
    with pytest.raises(TypeError, match="single-element Tensor"):
        sv.grad(lambda u: u * 2.0)(w)


def test_optimizers_take_dicts_nested_lists_and_groups(bk):
    a, b, c = (sv.nn.Parameter(bk.array(np.ones(2, np.float32))) for _ in range(3))
    opt = sv.optim.SGD({"a": a, "rest": [b, (c,)]}, lr=0.5)
    assert [p for g in opt.param_groups for p in g["params"]] == [a, b, c]
    groups = sv.optim.Adam([{"params": [a], "lr": 0.1}, {"params": {"b": b}}], lr=0.01)
    assert [g["lr"] for g in groups.param_groups] == [0.1, 0.01]
    for p in (a, b, c):
        p.grad = bk.array(np.ones(2, np.float32))
    opt.step()
    np.testing.assert_allclose(bk.numpy(c), [0.5, 0.5])
    with pytest.raises(TypeError, match="not a Tensor"):
        sv.optim.SGD([a, "b"], lr=0.1)


def test_save_image_writes_the_exact_grid(tmp_path, bk):
    from matplotlib.image import imread

    imgs = np.random.default_rng(6).random((5, 1, 4, 3))
    path = sv.save_image(bk.tensor(imgs), tmp_path / "grid.png", nrow=2, padding=1)
    got = imread(path)
    assert got.shape[:2] == (3 * (4 + 1) + 1, 2 * (3 + 1) + 1)
    np.testing.assert_allclose(got[1:5, 1:4, 0], imgs[0, 0], atol=1 / 255 + 1e-9)  # 8-bit PNG
    np.testing.assert_allclose(got[6:10, 5:8, 0], imgs[3, 0], atol=1 / 255 + 1e-9)
    rows = sv.save_image(np.random.default_rng(7).random((3, 784)), tmp_path / "mnist.png")
    assert imread(rows).shape[:2] == (28 + 4, 3 * 30 + 2)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        sv.save_image(np.zeros((2, 5, 4, 4)), tmp_path / "bad.png")
