"""scratchvae.nn: Linear's fused op and its gradients, Module bookkeeping (parameter order, state
dicts, strict loading, moving between backends), activations, MLP and the initialisers."""

import copy
import math

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
import scratchvae.nn as nn
import scratchvae.nn.functional as NF
from scratchvae.nn import init
from scratchvae.fast.linear import LinearFunction
from scratchvae.random import Generator


def _module_fn(model):
    """``fn(x, *params)`` running ``model`` with the given parameter values, for gradcheck: the
    analytic pass gets the Parameters themselves, the numeric passes perturbed copies."""
    params = list(model.parameters())
    orig = [p.data for p in params]

    def fn(x, *ps):
        for p, q, o in zip(params, ps, orig):
            p.data = o if q is p else q.data
        return model(x)

    def restore():
        for p, o in zip(params, orig):
            p.data = o

    return fn, params, restore


# --------------------------------------------------------------------------------------------------
# Linear: forward, the fused node, gradients

@pytest.mark.parametrize("lead", [(), (5,), (2, 3)], ids=["vector", "batch", "batch2d"])
def test_linear_forward_matches_numpy(bk, float64, lead):
    lin = nn.Linear(4, 3, generator=Generator(0))
    x = np.random.default_rng(1).standard_normal(lead + (4,))
    y = lin(bk.tensor(x))
    W, b = bk.numpy(lin.weight), bk.numpy(lin.bias)
    assert y.shape == lead + (3,)
    np.testing.assert_allclose(bk.numpy(y), x @ W + b, rtol=1e-13, atol=1e-14)


def test_linear_is_one_fused_node(bk):
    lin = nn.Linear(4, 3)
    x = bk.tensor(np.ones((2, 4), np.float32), requires_grad=True)
    y = lin(x)
    assert isinstance(y._ctx, LinearFunction)
    assert y._ctx.inputs[0] is x and y._ctx.inputs[1] is lin.weight and y._ctx.inputs[2] is lin.bias


def test_linear_backward_formulas(bk, float64):
    """dL/dx = G W^T, dL/dW = X^T G, dL/db = column sums of G, with the leading axes flattened
    (docs/nn.md#linear), checked against those formulas in NumPy."""
    rng = np.random.default_rng(2)
    lin = nn.Linear(4, 3, generator=Generator(3))
    xh = rng.standard_normal((2, 5, 4))
    gh = rng.standard_normal((2, 5, 3))
    x = bk.tensor(xh, requires_grad=True)
    lin(x).backward(bk.array(gh))
    W = bk.numpy(lin.weight)
    np.testing.assert_allclose(bk.numpy(x.grad), gh @ W.T, rtol=1e-12)
    np.testing.assert_allclose(bk.numpy(lin.weight.grad), xh.reshape(-1, 4).T @ gh.reshape(-1, 3), rtol=1e-12)
    np.testing.assert_allclose(bk.numpy(lin.bias.grad), gh.reshape(-1, 3).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("lead", [(), (4,), (2, 3)], ids=["vector", "batch", "batch2d"])
def test_linear_gradcheck(bk, float64, bias, lead):
    rng = np.random.default_rng(4)
    x = bk.tensor(rng.standard_normal(lead + (3,)), requires_grad=True)
    W = bk.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    if bias:
        b = bk.tensor(rng.standard_normal(2), requires_grad=True)
        assert sv.gradcheck(lambda x, W, b: NF.linear(x, W, b), [x, W, b])
    else:
        assert sv.gradcheck(lambda x, W: NF.linear(x, W), [x, W])


def test_linear_module_gradcheck(bk, float64):
    lin = nn.Linear(3, 2, generator=Generator(5))
    x = bk.tensor(np.random.default_rng(6).standard_normal((4, 3)), requires_grad=True)
    fn, params, restore = _module_fn(lin)
    try:
        assert sv.gradcheck(fn, [x, *params])
    finally:
        restore()


@pytest.mark.parametrize("act", ["tanh", "softplus", "leaky_relu", "sigmoid"])
def test_mlp_gradcheck(bk, float64, act):
    mlp = nn.MLP([3, 5, 4, 2], activation=act, final_activation="tanh", generator=Generator(7))
    x = bk.tensor(np.random.default_rng(8).standard_normal((6, 3)), requires_grad=True)
    fn, params, restore = _module_fn(mlp)
    try:
        assert sv.gradcheck(fn, [x, *params])
    finally:
        restore()


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("lead", [(5,), (2, 3)], ids=["batch", "batch2d"])
def test_fused_linear_activation_equals_linear_then_activation(bk, float64, act, bias, lead):
    """linear(..., activation=act) is act(linear(...)): the same outputs and the same gradients
    for x, W and b, and its own backward passes gradcheck (docs/nn.md#linear)."""
    rng = np.random.default_rng(9)
    args = [rng.standard_normal(lead + (4,)), rng.standard_normal((4, 3))] + ([rng.standard_normal(3)] if bias else [])
    args[0][..., 0] = 0.0  # a column of exact zeros in x W + b would be relu's kink: keep away from it
    gy = rng.standard_normal(lead + (3,))
    activation = {"relu": NF.relu, "tanh": NF.tanh}[act]
    results = []
    for fused in (True, False):
        ts = [bk.tensor(a, requires_grad=True) for a in args]
        y = NF.linear(*ts, activation=act) if fused else activation(NF.linear(*ts))
        y.backward(bk.array(gy))
        results.append([bk.numpy(y)] + [bk.numpy(t.grad) for t in ts])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
    ts = [bk.tensor(a, requires_grad=True) for a in args]
    assert sv.gradcheck(lambda *t: NF.linear(*t, activation=act), ts)


def test_mlp_runs_each_linear_activation_pair_as_one_node(bk):
    """MLP fuses Linear + ReLU/Tanh (the exact classes) into one node; other activations, and
    subclasses that may change forward, run as their own modules."""
    from scratchvae.autograd.tensor import _topological_order

    x = bk.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    for act, fused in (("relu", True), ("tanh", True), ("softplus", False)):
        mlp = nn.MLP([3, 5, 4, 2], activation=act, generator=Generator(0))
        kinds = [type(t._ctx).__name__ for t in _topological_order(mlp(x).sum()) if t._ctx is not None]
        assert kinds.count("LinearFunction") == 3
        assert len(kinds) == (4 if fused else 6), kinds  # 3 Linear (+ 2 activations) + the sum
    class Shifted(nn.ReLU):
        def forward(self, x):
            return NF.relu(x) + 1.0

    mlp = nn.MLP([3, 5, 2], activation=Shifted, generator=Generator(0))
    plain = nn.MLP([3, 5, 2], activation="relu", generator=Generator(0))
    np.testing.assert_allclose(bk.numpy(mlp(x)) - bk.numpy(plain(x)),
                               np.ones((2, 1)) @ bk.numpy(plain[2].weight).sum(axis=0, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError, match="activation must be one of"):
        NF.linear(x, bk.tensor(np.ones((3, 2), np.float32)), activation="gelu")


def test_linear_wrong_input_width_is_a_clear_error(bk):
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"in_features=4"):
        lin(bk.tensor(np.ones((2, 5), np.float32)))


def test_linear_rejects_bad_sizes():
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="out_features"):
        nn.Linear(3, 2.5)


def test_linear_without_bias(bk):
    lin = nn.Linear(4, 3, bias=False)
    assert lin.bias is None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(bk.numpy(lin(bk.tensor(x))), x @ bk.numpy(lin.weight), rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# Parameters: dtype, backend, order, registration

def test_parameters_take_default_dtype_and_current_backend(bk):
    lin = nn.Linear(3, 2)
    for p in lin.parameters():
        assert sv.backend.dtype_name(p.dtype) == "float32"
        assert p.backend.name == bk.name
        assert p.requires_grad and p.is_leaf
    sv.set_default_dtype("float64")
    assert all(sv.backend.dtype_name(p.dtype) == "float64" for p in nn.Linear(3, 2).parameters())
    assert all(sv.backend.dtype_name(p.dtype) == "float32" for p in nn.Linear(3, 2, dtype="float32").parameters())


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(2, np.float32))
        self.enc = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
        self.not_a_param = sv.tensor(np.zeros(2, np.float32))  # a plain tensor: not registered
        self.head = nn.Linear(2, 1)
        self.offset = nn.Parameter(np.zeros(1, np.float32))


def test_parameter_order_and_dotted_names():
    names = [n for n, _ in _Net().named_parameters()]
    # Own parameters in assignment order, then each sub-module's, in assignment order (PyTorch's order).
    assert names == ["scale", "offset", "enc.0.weight", "enc.0.bias", "enc.2.weight", "enc.2.bias",
                     "head.weight", "head.bias"]
    assert [n for n, _ in _Net().named_parameters()] == names  # stable between constructions
    net = _Net()
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert list(net.state_dict()) == names


def test_reassigning_keeps_position_and_type_checks():
    net = _Net()
    net.scale = nn.Parameter(np.full(2, 3.0, np.float32))
    assert [n for n, _ in net.named_parameters()][0] == "scale"
    np.testing.assert_array_equal(net.scale.numpy(), [3.0, 3.0])
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'scale'"):
        net.scale = sv.tensor(np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="sub-module 'head'"):
        net.head = 3
    del net.offset
    assert "offset" not in dict(net.named_parameters())
    net.head = None
    assert not any(n.startswith("head") for n, _ in net.named_parameters())


def test_assigning_before_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Bad()


def test_shared_parameter_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_parameter_from_tensor_and_numpy(bk):
    t = bk.tensor(np.arange(3.0), requires_grad=False)
    p = nn.Parameter(t * 2.0)  # a non-leaf: the Parameter keeps the values, not the graph
    assert p.is_leaf and p.requires_grad and p.backend.name == bk.name
    np.testing.assert_array_equal(p.numpy(), [0.0, 2.0, 4.0])
    assert "Parameter containing" in repr(p)
    with pytest.raises(ValueError, match="floating"):
        nn.Parameter(np.arange(3))


# --------------------------------------------------------------------------------------------------
# state_dict / load_state_dict

def test_state_dict_round_trip_gives_bit_identical_outputs(bk):
    a = nn.MLP([4, 6, 3], activation="tanh", generator=Generator(1))
    b = nn.MLP([4, 6, 3], activation="tanh", generator=Generator(2))
    x = bk.tensor(np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32))
    assert not np.array_equal(bk.numpy(a(x)), bk.numpy(b(x)))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(bk.numpy(b(x)), bk.numpy(a(x)))


def test_state_dict_is_a_copy(bk):
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    before = bk.numpy(sd["weight"]).copy()
    lin.weight.data -= 1.0  # what an optimizer step does
    np.testing.assert_array_equal(bk.numpy(sd["weight"]), before)
    other = nn.Linear(2, 2)
    other.load_state_dict(sd)
    other.weight.data += 5.0  # the loaded parameter does not alias the state dict either
    np.testing.assert_array_equal(bk.numpy(sd["weight"]), before)


def test_load_state_dict_converts_host_arrays_to_backend_and_dtype(bk):
    lin = nn.Linear(3, 2)
    sd = {"weight": np.arange(6, dtype=np.float64).reshape(3, 2), "bias": np.array([0.5, -0.5])}
    lin.load_state_dict(sd)
    for name, p in lin.named_parameters():
        assert p.backend.name == bk.name
        assert sv.backend.dtype_name(p.dtype) == "float32"
        np.testing.assert_array_equal(p.numpy(), sd[name].astype(np.float32))


def test_strict_load_lists_missing_unexpected_and_shape_mismatches():
    model = nn.MLP([3, 4, 2])
    before = {k: v.copy() for k, v in model.state_dict().items()}
    sd = model.state_dict()
    del sd["0.bias"]
    sd["0.bais"] = np.zeros(4, np.float32)
    sd["2.weight"] = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError) as e:
        model.load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys" in msg and "'0.bias'" in msg
    assert "unexpected keys" in msg and "'0.bais'" in msg
    assert "shape mismatches" in msg and "'2.weight'" in msg and "(2, 4)" in msg and "(4, 2)" in msg
    for k, v in model.state_dict().items():  # nothing was changed by the failed load
        np.testing.assert_array_equal(v, before[k])


def test_non_strict_load_ignores_keys_but_not_shapes():
    model = nn.Linear(3, 2)
    res = model.load_state_dict({"weight": np.ones((3, 2)), "extra": np.ones(1)}, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((3, 2)))
    with pytest.raises(ValueError, match="shape mismatches.*'weight'"):
        model.load_state_dict({"weight": np.ones((2, 3))}, strict=False)


def test_strict_load_hints_at_a_nested_checkpoint():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"checkpoint\['model'\]"):
        model.load_state_dict({"model": model.state_dict(), "epoch": 1})


# --------------------------------------------------------------------------------------------------
# zero_grad, train/eval, to(), repr, containers

def test_zero_grad_train_eval_requires_grad():
    model = nn.MLP([3, 4, 2])
    model(sv.tensor(np.ones((1, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.training and all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_to_moves_parameters_and_keeps_their_identity():
    sv.set_backend("numpy")
    model = nn.MLP([3, 4, 2])
    params = list(model.parameters())
    values = [p.numpy().copy() for p in params]
    x = np.ones((2, 3), np.float32)
    y_cpu = model(sv.tensor(x)).numpy()
    assert model.to("array_api_strict") is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    for p, v in zip(params, values):
        assert p.backend.name == "array_api_strict"
        np.testing.assert_array_equal(p.numpy(), v)
    sv.set_backend("array_api_strict")
    try:
        np.testing.assert_array_equal(model(sv.tensor(x)).numpy(), y_cpu)
    finally:
        sv.set_backend("numpy")
    model.to("numpy", dtype="float64")
    assert all(p.backend.name == "numpy" and p.dtype == np.float64 for p in params)


def test_repr_like_pytorch():
    text = repr(nn.MLP([3, 4, 2], activation=nn.LeakyReLU(0.2)))
    assert text.splitlines()[0] == "MLP("
    assert "(0): Linear(in_features=3, out_features=4, bias=True)" in text
    assert "(1): LeakyReLU(negative_slope=0.2)" in text
    assert repr(nn.Tanh()) == "Tanh()"


def test_sequential_and_modulelist():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.ReLU)
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(ml) == 2 and ml[1] is list(ml)[1]


def test_mlp_structure_and_activation_specs():
    mlp = nn.MLP([5, 4, 3, 2], activation=nn.Tanh, final_activation="sigmoid")
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear", "Sigmoid"]
    assert mlp.sizes == (5, 4, 3, 2)
    shared = nn.LeakyReLU(0.3)
    mlp = nn.MLP([2, 2, 2, 2], activation=shared)
    assert mlp[1] is not mlp[3] and mlp[1].negative_slope == 0.3
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nn.MLP([2, 2, 2], activation="swish")
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.MLP([3])


def test_apply_and_deepcopy():
    model = nn.MLP([3, 4, 2])
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "MLP" and seen.count("Linear") == 2
    clone = copy.deepcopy(model)
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in model.named_parameters()]
    clone[0].weight.data += 1.0
    assert not np.array_equal(clone[0].weight.numpy(), model[0].weight.numpy())
    assert clone[0].weight is clone._modules["0"].weight


# --------------------------------------------------------------------------------------------------
# Activations

def test_activations_match_their_formulas(bk, float64):
    xh = np.array([-30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0])
    x = bk.tensor(xh)
    expected = {
        nn.ReLU(): np.maximum(xh, 0),
        nn.LeakyReLU(0.1): np.where(xh > 0, xh, 0.1 * xh),
        nn.Tanh(): np.tanh(xh),
        nn.Sigmoid(): 1 / (1 + np.exp(-xh)),
        nn.Softplus(): np.log1p(np.exp(xh)),
        nn.Softplus(beta=2.0): np.log1p(np.exp(2 * xh)) / 2,
        nn.Identity(): xh,
    }
    for mod, want in expected.items():
        np.testing.assert_allclose(bk.numpy(mod(x)), want, rtol=1e-12, atol=1e-300, err_msg=repr(mod))


def test_leaky_relu_gradient(bk, float64):
    x = bk.tensor(np.array([-2.0, -0.3, 0.4, 1.5]), requires_grad=True)
    assert sv.gradcheck(lambda x: NF.leaky_relu(x, 0.2), [x])
    NF.leaky_relu(x, 0.2).sum().backward()
    np.testing.assert_array_equal(bk.numpy(x.grad), [0.2, 0.2, 1.0, 1.0])


def test_functional_reexports_engine_ops():
    assert NF.relu is F.relu and NF.tanh is F.tanh and NF.softplus is F.softplus and NF.sigmoid is F.sigmoid


# --------------------------------------------------------------------------------------------------
# Initialisers

def _param(bk, shape, dtype="float32"):
    return nn.Parameter(bk.array(np.zeros(shape), dtype))


def test_linear_default_init_is_pytorchs(bk):
    """W, b ~ U(-1/sqrt(in), 1/sqrt(in)): in range, filling it (max near the bound), std = bound/sqrt(3)."""
    lin = nn.Linear(400, 300, generator=Generator(0))
    bound = 1 / math.sqrt(400)
    W, b = bk.numpy(lin.weight), bk.numpy(lin.bias)
    assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(W).max() > 0.999 * bound
    assert abs(W.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert abs(W.mean()) < 0.01 * bound


@pytest.mark.parametrize(
    "fn, kwargs, kind, scale",
    [
        (init.xavier_uniform_, {}, "uniform", math.sqrt(6 / (200 + 100))),
        (init.xavier_normal_, {"gain": 2.0}, "normal", 2.0 * math.sqrt(2 / (200 + 100))),
        (init.kaiming_uniform_, {"nonlinearity": "relu"}, "uniform", math.sqrt(2) * math.sqrt(3 / 200)),
        (init.kaiming_normal_, {"mode": "fan_out", "nonlinearity": "relu"}, "normal", math.sqrt(2 / 100)),
        (init.kaiming_normal_, {"a": 0.2}, "normal", math.sqrt(2 / (1 + 0.04)) / math.sqrt(200)),
        (init.uniform_, {"a": -0.3, "b": 0.3}, "uniform", 0.3),
        (init.normal_, {"std": 0.05}, "normal", 0.05),
    ],
    ids=["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal_fan_out", "kaiming_normal_a",
         "uniform", "normal"],
)
def test_init_distributions(bk, fn, kwargs, kind, scale):
    """Weights of shape (fan_in=200, fan_out=100): uniform ones fill (-scale, scale); normal ones
    have std scale (40,000 draws: the sample std is within 2%)."""
    p = fn(_param(bk, (200, 100)), generator=Generator(1), **kwargs)
    assert sv.backend.dtype_name(p.dtype) == "float32" and p.backend.name == bk.name
    w = bk.numpy(p).astype(np.float64)
    if kind == "uniform":
        assert np.abs(w).max() <= scale * (1 + 1e-6) and np.abs(w).max() > 0.99 * scale
        assert abs(w.std() - scale / math.sqrt(3)) < 0.02 * scale
    else:
        assert abs(w.std() - scale) < 0.02 * scale
    assert abs(w.mean()) < 0.02 * scale


def test_constant_inits(bk):
    p = _param(bk, (3, 2), "float64")
    np.testing.assert_array_equal(bk.numpy(init.constant_(p, 0.25)), np.full((3, 2), 0.25))
    np.testing.assert_array_equal(bk.numpy(init.zeros_(p)), np.zeros((3, 2)))
    np.testing.assert_array_equal(bk.numpy(init.ones_(p)), np.ones((3, 2)))
    assert sv.backend.dtype_name(p.dtype) == "float64"
    np.testing.assert_allclose(bk.numpy(init.normal_(p, mean=3.0, std=0.0)), np.full((3, 2), 3.0))


def test_init_uses_the_given_generator(bk):
    a = init.normal_(_param(bk, (5,)), generator=Generator(11))
    b = init.normal_(_param(bk, (5,)), generator=Generator(11))
    c = init.normal_(_param(bk, (5,)), generator=Generator(12))
    np.testing.assert_array_equal(bk.numpy(a), bk.numpy(b))
    assert not np.array_equal(bk.numpy(a), bk.numpy(c))
    sv.manual_seed(5)
    m1 = nn.MLP([3, 4, 2])
    sv.manual_seed(5)
    m2 = nn.MLP([3, 4, 2])
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_calculate_gain_and_fan_errors():
    assert init.calculate_gain("linear") == 1.0 and init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu", 0.5) == pytest.approx(math.sqrt(2 / 1.25))
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="2-D weight"):
        init.xavier_uniform_(nn.Parameter(np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(nn.Parameter(np.zeros((2, 2), np.float32)), mode="fan_avg")
