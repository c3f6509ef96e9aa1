"""scratchvae.optim: SGD/Adam/AdamW against their update equations written out here in NumPy,
convergence on a convex quadratic, exact resumption through state_dict + checkpoint, gradient
clipping, learning-rate schedules."""

import math

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.nn as nn
import scratchvae.optim as optim
from scratchvae import checkpoint
from scratchvae.optim import lr_scheduler
from scratchvae.random import Generator


# --------------------------------------------------------------------------------------------------
# A small smooth problem with a gradient we can write down: L(p) = sum(a p^2 / 2 + c p + p^4 / 4),
# dL/dp = a p + c + p^3, for two parameters of different shapes.

RNG = np.random.default_rng(0)
P0 = [RNG.standard_normal((2, 3)), RNG.standard_normal(3)]
A = [RNG.uniform(0.5, 2.0, (2, 3)), RNG.uniform(0.5, 2.0, 3)]
C = [RNG.standard_normal((2, 3)), RNG.standard_normal(3)]


def _grad_ref(i, p):
    return A[i] * p + C[i] + p ** 3


def _loss(params, bk):
    total = None
    for i, p in enumerate(params):
        a, c = bk.tensor(A[i]), bk.tensor(C[i])
        term = (a * p * p * 0.5 + c * p + (p ** 4) * 0.25).sum()
        total = term if total is None else total + term
    return total


def _run(bk, make_opt, steps):
    params = [nn.Parameter(bk.array(p)) for p in P0]
    opt = make_opt(params)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(params, bk).backward()
        opt.step()
        history.append([bk.numpy(p).copy() for p in params])
    return history


# The update equations, written independently of the implementation (textbook forms).

def _sgd_ref(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    ps = [p.copy() for p in P0]
    bufs = [None, None]
    history = []
    for _ in range(steps):
        for i in range(2):
            g = _grad_ref(i, ps[i]) + weight_decay * ps[i]
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                d = g + momentum * bufs[i] if nesterov else bufs[i]
            else:
                d = g
            ps[i] = ps[i] - lr * d
        history.append([p.copy() for p in ps])
    return history


def _adam_ref(steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    b1, b2 = betas
    ps = [p.copy() for p in P0]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    vmax = [np.zeros_like(p) for p in ps]
    history = []
    for t in range(1, steps + 1):
        for i in range(2):
            g = _grad_ref(i, ps[i])
            if decoupled:
                ps[i] = ps[i] - lr * weight_decay * ps[i]
            else:
                g = g + weight_decay * ps[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            if amsgrad:
                vmax[i] = np.maximum(vmax[i], v[i])
                v_hat = vmax[i] / (1 - b2 ** t)
            else:
                v_hat = v[i] / (1 - b2 ** t)
            ps[i] = ps[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append([p.copy() for p in ps])
    return history


def _assert_histories_close(got, want):
    for step, (g, w) in enumerate(zip(got, want)):
        for i in range(len(w)):
            np.testing.assert_allclose(g[i], w[i], rtol=1e-11, atol=1e-13, err_msg=f"step {step + 1}, param {i}")


SGD_CASES = {
    "plain": dict(lr=0.05),
    "momentum": dict(lr=0.05, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.05, momentum=0.5, weight_decay=0.1),
}


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_matches_equations(bk, float64, case):
    kw = SGD_CASES[case]
    _assert_histories_close(_run(bk, lambda ps: optim.SGD(ps, **kw), 6), _sgd_ref(6, **kw))


ADAM_CASES = {
    "adam": (optim.Adam, dict(lr=0.05), {}),
    "adam_betas_eps": (optim.Adam, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3), {}),
    "adam_l2": (optim.Adam, dict(lr=0.05, weight_decay=0.1), {}),
    "adam_amsgrad": (optim.Adam, dict(lr=0.05, amsgrad=True), {}),
    "adamw": (optim.AdamW, dict(lr=0.05, weight_decay=0.1), {"decoupled": True}),
    "adamw_amsgrad": (optim.AdamW, dict(lr=0.05, amsgrad=True), {"decoupled": True, "weight_decay": 0.01}),
}


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_adam_matches_equations(bk, float64, case):
    cls, kw, ref_extra = ADAM_CASES[case]
    ref_kw = {**kw, **ref_extra}
    _assert_histories_close(_run(bk, lambda ps: cls(ps, **kw), 8), _adam_ref(8, **ref_kw))


def test_sgd_momentum_by_hand(bk, float64):
    """L = p^2 (g = 2p), p0 = 1, lr 0.1, momentum 0.9:
    b1 = 2, p1 = 0.8;  b2 = 0.9*2 + 1.6 = 3.4, p2 = 0.46;  b3 = 0.9*3.4 + 0.92 = 3.98, p3 = 0.062.
    Nesterov: d1 = 2 + 0.9*2 = 3.8, p1 = 0.62;  b2 = 1.8 + 1.24 = 3.04, d2 = 1.24 + 2.736 = 3.976, p2 = 0.2224."""
    for kw, want in ((dict(), [0.8, 0.46, 0.062]), (dict(nesterov=True), [0.62, 0.2224])):
        p = nn.Parameter(bk.array(np.array([1.0])))
        opt = optim.SGD([p], lr=0.1, momentum=0.9, **kw)
        for w in want:
            opt.zero_grad()
            (p * p).sum().backward()
            opt.step()
            assert bk.numpy(p)[0] == pytest.approx(w, rel=1e-12)


def test_adam_first_step_is_lr_times_sign(bk, float64):
    """At t = 1 the bias-corrected moments are m_hat = g and v_hat = g^2, so the step is
    lr g / (|g| + eps) ~ lr sign(g), whatever the gradient's size."""
    p = nn.Parameter(bk.array(np.array([1.0, -2.0, 3.0])))
    opt = optim.Adam([p], lr=0.1)
    (p * bk.tensor(np.array([1e-3, 5.0, -1e4]))).sum().backward()  # g = (1e-3, 5, -1e4)
    opt.step()
    g = np.array([1e-3, 5.0, -1e4])
    np.testing.assert_allclose(bk.numpy(p), np.array([1.0, -2.0, 3.0]) - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-14)
    np.testing.assert_allclose(bk.numpy(p), [0.9, -2.1, 3.1], rtol=2e-6)  # ~ lr sign(g)


# --------------------------------------------------------------------------------------------------
# Convergence on a convex quadratic L(p) = (p - t)^T H (p - t) / 2, H SPD with eigenvalues 1..5

def _quadratic(bk):
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    H = q @ np.diag([1.0, 2.0, 3.0, 4.0, 5.0]) @ q.T
    target = rng.standard_normal(5)
    Ht, tt = bk.tensor(H), bk.tensor(target)

    def loss(p):
        d = p - tt
        return ((d @ Ht) * d).sum() * 0.5

    return loss, target


@pytest.mark.parametrize(
    "make, steps, schedule",
    [
        (lambda ps: optim.SGD(ps, lr=0.1), 200, None),
        (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), 300, None),
        (lambda ps: optim.Adam(ps, lr=0.1), 1500, 300),
        (lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.0, amsgrad=True), 1500, 300),
    ],
    ids=["sgd", "sgd_nesterov", "adam", "adamw_amsgrad"],
)
def test_minimises_convex_quadratic(bk, float64, make, steps, schedule):
    loss, target = _quadratic(bk)
    p = nn.Parameter(bk.array(np.zeros(5)))
    opt = make([p])
    sched = None if schedule is None else optim.StepLR(opt, step_size=schedule, gamma=0.3)
    for _ in range(steps):
        opt.zero_grad()
        loss(p).backward()
        opt.step()
        if sched:
            sched.step()
    np.testing.assert_allclose(bk.numpy(p), target, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Exact resumption: 10 steps == 5 steps, checkpoint, fresh objects, 5 steps

RESUME_CASES = {
    "sgd_nesterov_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam_amsgrad": lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_through_checkpoint_is_exact(bk, tmp_path, case):
    make_opt = RESUME_CASES[case]
    rng = np.random.default_rng(2)
    x = bk.tensor(rng.standard_normal((8, 3)).astype(np.float32))
    y = bk.tensor(rng.standard_normal((8, 2)).astype(np.float32))

    def build():
        model = nn.MLP([3, 6, 2], activation="tanh", generator=Generator(3))
        opt = make_opt(model.parameters())
        return model, opt, optim.StepLR(opt, step_size=3, gamma=0.5)

    def train(model, opt, sched, n):
        for _ in range(n):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
            sched.step()

    m1, o1, s1 = build()
    train(m1, o1, s1, 10)

    m2, o2, s2 = build()
    train(m2, o2, s2, 5)
    path = tmp_path / "ckpt.npz"
    checkpoint.save({"model": m2.state_dict(), "optim": o2.state_dict(), "sched": s2.state_dict()}, path)
    del m2, o2, s2

    m3, o3, s3 = build()
    state = checkpoint.load(path)
    m3.load_state_dict(state["model"])
    o3.load_state_dict(state["optim"])
    s3.load_state_dict(state["sched"])
    train(m3, o3, s3, 5)

    for (name, p), q in zip(m1.named_parameters(), m3.parameters()):
        np.testing.assert_array_equal(bk.numpy(q), bk.numpy(p), err_msg=name)
    assert o3.param_groups[0]["lr"] == o1.param_groups[0]["lr"] == s1.base_lrs[0] * 0.5 ** (10 // 3)
    assert s3.get_last_lr() == s1.get_last_lr()
    for p1, p3 in zip(m1.parameters(), m3.parameters()):
        for k, v in o1.state[p1].items():
            w = o3.state[p3][k]
            if isinstance(v, int):
                assert v == w
            else:
                assert w.__class__ is v.__class__  # on the parameter's backend again
                np.testing.assert_array_equal(bk.numpy(w), bk.numpy(v))


def test_optimizer_state_dict_layout():
    model = nn.Linear(3, 2)
    opt = optim.Adam([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.1}], lr=0.01)
    model(sv.tensor(np.ones((1, 3), np.float32))).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.01, 0.1]
    assert sorted(sd["state"]) == [0, 1] and sd["state"][0]["step"] == 1
    assert sd["state"][1]["exp_avg"].shape == (2,)
    opt.state[model.bias]["exp_avg"] += 1.0  # state_dict holds copies
    assert not np.array_equal(sd["state"][1]["exp_avg"], opt.state[model.bias]["exp_avg"])


def test_optimizer_load_state_dict_errors():
    model = nn.Linear(3, 2)
    adam = optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="saved from another optimizer"):
        adam.load_state_dict(optim.SGD(model.parameters()).state_dict())
    with pytest.raises(ValueError, match="has 1 parameters, this optimizer's has 2"):
        adam.load_state_dict(optim.Adam([model.weight]).state_dict())
    bigger = nn.Linear(4, 2)
    other = optim.Adam(bigger.parameters())
    bigger(sv.tensor(np.ones((1, 4), np.float32))).sum().backward()
    other.step()
    with pytest.raises(ValueError, match=r"has shape \(4, 2\) but parameter 0 has shape \(3, 2\)"):
        adam.load_state_dict(other.state_dict())
    assert adam.state == {}  # untouched by the failed loads


# --------------------------------------------------------------------------------------------------
# Gradients are read, never written

def test_shared_and_read_only_grads_are_not_written(bk, float64):
    p1 = nn.Parameter(bk.array(np.ones(3)))
    p2 = nn.Parameter(bk.array(np.full(3, 2.0)))
    if bk.name == "numpy":
        g = np.broadcast_to(np.float64(0.5), (3,))  # read-only, as the engine may hand out
        assert not g.flags.writeable
    else:
        g = bk.array(np.full(3, 0.5))
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                 lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
                 lambda ps: optim.AdamW(ps, lr=0.1, amsgrad=True)):
        opt = make([p1, p2])
        for _ in range(3):
            p1.grad = p2.grad = g
            opt.step()
            np.testing.assert_array_equal(bk.numpy(g), np.full(3, 0.5))


def test_step_skips_params_without_grad_and_zero_grad(bk):
    a = nn.Parameter(bk.array(np.ones(2, np.float32)))
    b = nn.Parameter(bk.array(np.ones(2, np.float32)))
    opt = optim.SGD([a, b], lr=0.5)
    (a * 2.0).sum().backward()
    opt.step()
    np.testing.assert_array_equal(bk.numpy(a), [0.0, 0.0])
    np.testing.assert_array_equal(bk.numpy(b), [1.0, 1.0])
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_with_closure():
    p = nn.Parameter(np.array([3.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    assert p.numpy()[0] == 1.5  # 3 - 0.25 * 6


def test_optimizer_argument_errors():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="not a set"):
        optim.SGD(set(lin.parameters()))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="wrap it in a list"):
        optim.Adam(lin.weight)
    with pytest.raises(ValueError, match="learning rate must be >= 0"):
        optim.SGD(lin.parameters(), lr=-1.0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(lin.parameters(), nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(lin.parameters(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="appears twice"):
        optim.Adam([lin.weight, lin.weight])
    with pytest.raises(ValueError, match="not a leaf"):
        optim.Adam([lin.weight * 2.0])
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        optim.Adam([{"params": [lin.weight], "momentum": 0.9}])


# --------------------------------------------------------------------------------------------------
# Gradient clipping

def test_clip_grad_norm_rescales_out_of_place(bk, float64):
    a = nn.Parameter(bk.array(np.zeros((2, 2))))
    b = nn.Parameter(bk.array(np.zeros(3)))
    c = nn.Parameter(bk.array(np.zeros(3)))  # no grad: ignored
    ga, gb = np.array([[3.0, 0.0], [0.0, 4.0]]), np.array([12.0, 0.0, 0.0])
    a.grad, b.grad = bk.array(ga), bk.array(gb)
    old_a = a.grad
    total = optim.clip_grad_norm_([a, b, c], max_norm=1.0)
    assert isinstance(total, float) and total == pytest.approx(13.0, rel=1e-15)  # sqrt(9 + 16 + 144)
    coef = 1.0 / (13.0 + 1e-6)
    np.testing.assert_allclose(bk.numpy(a.grad), ga * coef, rtol=1e-14)
    np.testing.assert_allclose(bk.numpy(b.grad), gb * coef, rtol=1e-14)
    np.testing.assert_array_equal(bk.numpy(old_a), ga)  # the old array was not scaled in place
    assert c.grad is None


def test_clip_grad_norm_below_threshold_and_shared_grads(bk, float64):
    a = nn.Parameter(bk.array(np.zeros(2)))
    b = nn.Parameter(bk.array(np.zeros(2)))
    g = bk.array(np.array([0.3, 0.4]))
    a.grad = b.grad = g  # one array shared by two parameters
    assert optim.clip_grad_norm_([a, b], max_norm=5.0) == pytest.approx(math.sqrt(0.5))
    assert a.grad is g and b.grad is g  # nothing to clip: untouched
    total = optim.clip_grad_norm_([a, b], max_norm=0.1)
    assert total == pytest.approx(math.sqrt(0.5))
    np.testing.assert_array_equal(bk.numpy(g), [0.3, 0.4])  # scaled once each, never in place
    for p in (a, b):
        np.testing.assert_allclose(bk.numpy(p.grad), np.array([0.3, 0.4]) * 0.1 / (math.sqrt(0.5) + 1e-6))


def test_clip_grad_norm_other_norms(bk, float64):
    a = nn.Parameter(bk.array(np.zeros(3)))
    a.grad = bk.array(np.array([1.0, -7.0, 2.0]))
    assert optim.clip_grad_norm_(a, 100.0, norm_type=math.inf) == 7.0
    assert optim.clip_grad_norm_(a, 100.0, norm_type=1) == pytest.approx(10.0)
    a.grad = bk.array(np.array([np.inf, 1.0, 0.0]))
    with pytest.raises(RuntimeError, match="not finite"):
        optim.clip_grad_norm_(a, 1.0, error_if_nonfinite=True)


# --------------------------------------------------------------------------------------------------
# Learning-rate schedules

def _opt(lr):
    return optim.SGD([nn.Parameter(np.zeros(1))], lr=lr)


def test_step_lr():
    opt = _opt(0.1)
    sched = optim.StepLR(opt, step_size=3, gamma=0.5)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025], rel=1e-15)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(opt, step_size=0)


def test_iwae_schedule_stages():
    """Stage i lasts 3^i epochs at 1e-3 10^(-i/7), i = 0..7: 3280 epochs, then the last rate stays."""
    lrs = [optim.iwae_schedule(e) for e in range(3300)]
    runs = []  # (lr, run length) of consecutive equal rates
    for lr in lrs:
        if runs and runs[-1][0] == lr:
            runs[-1][1] += 1
        else:
            runs.append([lr, 1])
    assert [n for _, n in runs[:7]] == [3 ** i for i in range(7)]
    assert runs[7][1] == 3 ** 7 + (3300 - 3280)
    for i, (lr, _) in enumerate(runs):
        assert lr == pytest.approx(1e-3 * 10 ** (-i / 7), rel=1e-14)
    assert lr_scheduler.IWAE_EPOCHS == 3280
    assert optim.iwae_schedule(0) == 1e-3 and optim.iwae_schedule(3279) == optim.iwae_schedule(10 ** 6)
    assert optim.iwae_schedule(1092) > optim.iwae_schedule(1093)
    with pytest.raises(ValueError):
        optim.iwae_schedule(-1)


def test_iwae_scheduler_drives_the_optimizer_and_resumes():
    opt = _opt(1e-3)
    sched = optim.IWAESchedule(opt)
    for e in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(optim.iwae_schedule(e), rel=1e-15)
        sched.step()
    opt2 = _opt(1e-3)
    sched2 = optim.IWAESchedule(opt2)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    for _ in range(30):
        sched.step()
        sched2.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_lambda_lr():
    opt = _opt(0.2)
    sched = optim.LambdaLR(opt, lambda e: 1.0 / (1 + e))
    sched.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 / 3)
    assert "lr_lambda" not in sched.state_dict()


# --------------------------------------------------------------------------------------------------
# Adam's fast forms: the scratch-buffer form (NumPy, CuPy) and the CuPy kernel against the
# Array API form, which is the one test_adam_matches_equations checks on the strict device.

def _adam_arrays(dtype, shape=(7, 5), seed=0):
    rng = np.random.default_rng(seed)
    p, g = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    m = (0.1 * rng.standard_normal(shape)).astype(dtype)
    v = (0.01 * rng.random(shape)).astype(dtype)
    vmax = (v + 0.01 * rng.random(shape)).astype(dtype)
    return [p, g, m, v, vmax]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_step_into_is_bitwise_adam_step(dtype, amsgrad):
    from scratchvae.fast.adam import adam_step_into
    from scratchvae.optim.adam import adam_step

    adam_step = adam_step.reference  # the core's Array API form, not the fast layer's

    a = _adam_arrays(dtype)
    b = [x.copy() for x in a]
    hyper = (0.9, 0.999, 0.37, 3e-5)
    for _ in range(3):  # state carried over steps, and the buffer reused with stale contents
        adam_step(np, a[0], a[1], a[2], a[3], a[4] if amsgrad else None, *hyper)
        buf = np.full(a[0].shape, np.nan, dtype)
        adam_step_into(np, b[0], b[1], b[2], b[3], b[4] if amsgrad else None, *hyper, buf)
    for name, x, y in zip(["p", "g", "m", "v", "vmax"], a, b):
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert not np.array_equal(a[0], _adam_arrays(dtype)[0])  # it did move the parameter


def test_adam_scratch_buffer_is_shared_and_grows():
    """One buffer per dtype, as large as the largest parameter seen; smaller parameters take a view."""
    from scratchvae.fast import adam as fast_adam

    fast_adam.scratch_buffers.clear()
    small, big = nn.Parameter(np.ones(3)), nn.Parameter(np.ones((4, 5)))
    opt = optim.Adam([small, big], lr=0.1)
    small.grad, big.grad = np.full(3, 2.0), np.full((4, 5), -1.0)
    opt.step()
    (buf,) = fast_adam.scratch_buffers.values()
    assert buf.size == 20
    np.testing.assert_allclose(small.data, 0.9)  # the first step is lr * sign(g)
    np.testing.assert_allclose(big.data, 1.1)
    assert "scratch" not in str(opt.state_dict())  # working memory, not state


@pytest.mark.gpu
@pytest.mark.parametrize("amsgrad", [False, True])
def test_cupy_adam_forms_equal_array_api_form(amsgrad):
    cupy = pytest.importorskip("cupy")
    from scratchvae.fast import cupy_kernels
    from scratchvae.fast.adam import adam_step_into
    from scratchvae.optim.adam import adam_step

    adam_step = adam_step.reference

    want = _adam_arrays("float64")
    hyper = (0.9, 0.999, 0.37, 3e-5)
    adam_step(np, want[0], want[1], want[2], want[3], want[4] if amsgrad else None, *hyper)
    got = [cupy.asarray(x) for x in _adam_arrays("float64")]
    if amsgrad:
        adam_step_into(cupy, *got, *hyper, cupy.empty_like(got[0]))
    else:
        cupy_kernels.adam_step(got[0], got[1], got[2], got[3], *hyper)
    for name, x, y in zip(["p", "g", "m", "v"], want, got):
        np.testing.assert_allclose(cupy.asnumpy(y), x, rtol=1e-12, atol=1e-15, err_msg=name)

