"""The fast layer equals the teaching core it replaces: every registered fast implementation against
its reference, forward and gradients, on every backend, in float32 and float64; and the switch
(``scratchvae.fast.disabled()``, ``SCRATCHVAE_FAST=0``) really runs the reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
import scratchvae.nn.functional as NF
from scratchvae import fast
from scratchvae.nn.module import run_layers
from scratchvae.optim.adam import adam_step


def _rng():
    return np.random.default_rng(0)


def _logits(bk, dtype):
    # spans both signs and the large-|l| tails where the stable forms matter
    a = np.concatenate([np.linspace(-30, 30, 23), _rng().normal(size=13) * 3]).reshape(4, 9)
    return bk.tensor(a.astype(dtype), requires_grad=True)


def _binary(bk, dtype, shape):
    return bk.tensor((_rng().random(shape) < 0.5).astype(dtype))


def _normal(bk, dtype, shape, scale=1.0, requires_grad=True):
    return bk.tensor((_rng().normal(size=shape) * scale).astype(dtype), requires_grad=requires_grad)


#: registered op -> (its name, a maker of example arguments (all Tensors that need gradients)).
EXAMPLES = {
    F.sigmoid: ("sigmoid", lambda bk, dt: (_logits(bk, dt),)),
    F.softplus: ("softplus", lambda bk, dt: (_logits(bk, dt),)),
    F.log_sigmoid: ("log_sigmoid", lambda bk, dt: (_logits(bk, dt),)),
    F.relu: ("relu", lambda bk, dt: (_normal(bk, dt, (4, 9)),)),
    F.bernoulli_log_prob: ("bernoulli_log_prob", lambda bk, dt: (_binary(bk, dt, (4, 9)), _logits(bk, dt))),
    F.normal_kl_standard: ("normal_kl_standard",
                           lambda bk, dt: (_normal(bk, dt, (3, 5)), _normal(bk, dt, (3, 5), 0.5))),
    F.reparameterize: ("reparameterize", lambda bk, dt: (_normal(bk, dt, (3, 5)), _normal(bk, dt, (3, 5), 0.5),
                                                         _normal(bk, dt, (2, 3, 5), requires_grad=False))),
    NF.linear: ("linear", lambda bk, dt: (_normal(bk, dt, (6, 4)), _normal(bk, dt, (4, 3)), _normal(bk, dt, (3,)))),
}
KWARGS = {"linear": [{}, {"activation": "relu"}, {"activation": "tanh"}]}
TOL = {"float32": dict(rtol=2e-6, atol=2e-7), "float64": dict(rtol=1e-13, atol=1e-15)}


def test_every_registered_fast_op_has_an_example():
    names = {EXAMPLES[op][0] for op in fast.registered() if op in EXAMPLES}
    missing = [op.__name__ for op in fast.registered() if op not in EXAMPLES and op not in (adam_step, run_layers)]
    assert not missing, f"registered fast ops without an example in tests/test_fast.py: {missing}"
    assert len(names) == len(EXAMPLES)


def _grads(fn, args, kwargs):
    for a in args:
        a.grad = None
    y = fn(*args, **kwargs)
    (y * y).sum().backward()  # a non-uniform output gradient
    return sv.to_numpy(y), [None if a.grad is None else sv.to_numpy(a.grad) for a in args if a.requires_grad]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(n for n, _ in EXAMPLES.values()))
def test_fast_op_equals_its_reference(bk, dtype, name):
    op = next(op for op, (n, _) in EXAMPLES.items() if n == name)
    assert op in fast.registered() and op.fast is not op.reference
    make = EXAMPLES[op][1]
    for kwargs in KWARGS.get(name, [{}]):
        args = make(bk, dtype)
        y_fast, g_fast = _grads(op.fast, args, kwargs)
        y_ref, g_ref = _grads(op.reference, args, kwargs)
        np.testing.assert_allclose(y_fast, y_ref, **TOL[dtype], err_msg=f"{name}{kwargs} forward")
        for i, (a, b) in enumerate(zip(g_fast, g_ref)):
            np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"{name}{kwargs} gradient {i}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_fast_adam_step_equals_its_reference(bk, dtype, amsgrad):
    rng = _rng()
    arrays = [rng.normal(size=(7, 5)).astype(dtype) for _ in range(3)] + [rng.random((7, 5)).astype(dtype)
                                                                          for _ in range(2)]
    ref = [bk.array(a) for a in arrays]
    got = [bk.array(a) for a in arrays]
    hyper = (0.9, 0.999, 0.37, 3e-5)
    for _ in range(3):
        adam_step.reference(bk.xp, *ref[:4], ref[4] if amsgrad else None, *hyper)
        adam_step.fast(bk.xp, *got[:4], got[4] if amsgrad else None, *hyper)
    for name, a, b in zip(["p", "g", "m", "v", "vmax"], ref, got):
        np.testing.assert_allclose(sv.to_numpy(b), sv.to_numpy(a), **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ["relu", "tanh", "softplus"])
def test_fast_run_layers_equals_its_reference(bk, dtype, act):
    mlp = sv.nn.MLP([4, 6, 5, 3], activation=act, dtype=dtype, generator=sv.Generator(0))
    x = _normal(bk, dtype, (7, 4))
    results = []
    for fn in (run_layers.fast, run_layers.reference):
        mlp.zero_grad()
        x.grad = None
        y = fn(list(mlp._modules.values()), x)
        (y * y).sum().backward()
        results.append([sv.to_numpy(y), sv.to_numpy(x.grad)] + [sv.to_numpy(p.grad) for p in mlp.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TOL[dtype])


def _node_types(y):
    return type(y._ctx).__name__


def test_disabled_runs_the_reference_compositions():
    x = sv.tensor(np.ones((2, 3)), requires_grad=True)
    l = sv.tensor(np.zeros((2, 3)), requires_grad=True)
    assert _node_types(F.bernoulli_log_prob(x, l)) == "BernoulliLogProb"
    assert fast.is_enabled()
    with fast.disabled():
        assert not fast.is_enabled()
        assert _node_types(F.bernoulli_log_prob(x, l)) == "Sub"  # the last op of the composite
        assert _node_types(F.softplus(l)) == "Softplus"
        with fast.enabled():
            assert _node_types(F.softplus(l)) == "FastSoftplus"
        assert _node_types(NF.linear(x, sv.tensor(np.ones((3, 2))))) == "MatMul"
    assert fast.is_enabled()
    assert _node_types(NF.linear(x, sv.tensor(np.ones((3, 2))))) == "LinearFunction"


def test_disabled_restores_the_switch_on_an_exception():
    with pytest.raises(RuntimeError), fast.disabled():
        raise RuntimeError("boom")
    assert fast.is_enabled()


def test_environment_variable_turns_the_layer_off():
    code = ("import numpy as np, scratchvae as sv, scratchvae.functional as F; "
            "y = F.softplus(sv.tensor(np.ones(2), requires_grad=True)); "
            "print(sv.fast.is_enabled(), type(y._ctx).__name__)")
    env = dict(os.environ, SCRATCHVAE_FAST="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "Softplus"]


def test_vae_step_in_reference_mode_matches_fast_mode():
    """A whole pytorch-example training step on both floors: the same loss and gradients to rounding."""
    from scratchvae.models import VAE

    def step():
        sv.manual_seed(0)
        model = VAE.mlp(784, (400,), 20)
        x = sv.tensor((np.random.default_rng(1).random((8, 784)) < 0.3).astype(np.float32))
        loss = model.elbo(x).loss()
        loss.backward()
        return loss.item(), [sv.to_numpy(p.grad) for p in model.parameters()]

    loss_fast, g_fast = step()
    with fast.disabled():
        loss_ref, g_ref = step()
    np.testing.assert_allclose(loss_ref, loss_fast, rtol=1e-5)
    for a, b in zip(g_fast, g_ref):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
