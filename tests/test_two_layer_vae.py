"""The two-stochastic-layer VAE (Burda et al. 2016): log w by hand, its bounds, gradients, training, evaluation."""

import json
import math

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import nn
from scratchvae.backend import backend_of, dtype_name
from scratchvae.cli import main
from scratchvae.distributions import Independent, Normal
from scratchvae.evaluate import evaluate
from scratchvae.models import VAE, TwoLayerVAE, get_preset, model_from_config
from scratchvae.testing import assert_gradient_unbiased
from scratchvae.train import load_run, make_config, train

D, H, L1, H2, L2 = 6, (5,), 3, (4,), 2


class StreamNoise:
    """A generator duck-type with one stream of standard normals per event size (z1 draws: L1, z2 draws: L2):
    each draw takes the next numbers of its stream in order, so the draws do not depend on how they are chunked."""

    def __init__(self, seed=0, n=200_000):
        rng = np.random.default_rng(seed)
        self.streams = {L1: rng.standard_normal(n), L2: rng.standard_normal(n)}
        self.used = {L1: 0, L2: 0}
        self.shapes = []

    def normal(self, shape, dtype=None, backend=None):
        shape = tuple(shape)
        self.shapes.append(shape)
        n, d = math.prod(shape), shape[-1]
        a = self.streams[d][self.used[d]:self.used[d] + n].reshape(shape)
        self.used[d] += n
        return (backend or sv.get_backend()).from_numpy(a.astype(dtype_name(dtype or "float64")))


def tiny(seed=0, **kw):
    m = TwoLayerVAE.mlp(D, H, L1, H2, L2, generator=sv.Generator(seed), dtype="float64", **kw)
    # a non-trivial decoder and encoder spread: random biases instead of Glorot's zeros
    rng = np.random.default_rng(seed + 100)
    for name, p in m.named_parameters():
        if name.endswith("bias"):
            p.data = sv.get_backend().from_numpy(rng.normal(0, 0.3, p.shape))
    return m


def data(n=4, seed=1):
    return (np.random.default_rng(seed).random((n, D)) > 0.5).astype("float64")


def _np(t):
    return sv.to_numpy(t).astype(np.float64)


def test_log_w_by_hand_with_the_layers_own_densities(float64):
    m, x = tiny(), data()
    lw = _np(m.iwae_bound(x, 1, generator=StreamNoise(7)))
    # the same noise, by hand: z1 = mu1 + s1 eps1, z2 = mu2(z1) + s2(z1) eps2
    noise = StreamNoise(7)
    xt = sv.tensor(x)
    q1 = m.encoder(xt)
    z1 = q1.mean + q1.stddev * sv.tensor(noise.normal((1, 4, L1))[0])
    q2 = m.encoder_z2(z1)
    z2 = q2.mean + q2.stddev * sv.tensor(noise.normal((4, L2)))
    prior = Independent(Normal.standard((L2,), "float64"), 1)
    by_hand = (m.decode(z1).log_prob(xt) + m.decoder_z1(z2).log_prob(z1) + prior.log_prob(z2)
               - q1.log_prob(z1) - q2.log_prob(z2))
    np.testing.assert_allclose(lw, _np(by_hand), rtol=1e-12)
    # p(z2) by its formula, and the ELBO's parts from the same draw
    np.testing.assert_allclose(_np(prior.log_prob(z2)), (-0.5 * _np(z2) ** 2 - 0.5 * math.log(2 * math.pi)).sum(1))
    r = m.elbo(x, generator=StreamNoise(7))
    np.testing.assert_allclose(_np(r.elbo), lw, rtol=1e-12)
    np.testing.assert_allclose(_np(r.reconstruction), _np(m.decode(z1).log_prob(xt)), rtol=1e-12)
    np.testing.assert_allclose(_np(r.kl), _np(r.reconstruction) - lw, rtol=1e-10, atol=1e-12)
    assert r.kl_per_dim is None
    np.testing.assert_allclose(_np(r.objective), lw, rtol=1e-12)
    rb = m.elbo(x, beta=0.5, generator=StreamNoise(7))
    np.testing.assert_allclose(_np(rb.objective), _np(r.reconstruction) - 0.5 * _np(r.kl), rtol=1e-12)


def test_k1_bounds_agree_and_the_objective_parts(float64):
    m, x = tiny(), data(6)
    a = _np(m.iwae_bound(x, 1, generator=sv.Generator(3)))
    b = m.elbo(x, generator=sv.Generator(3))
    np.testing.assert_allclose(a, _np(b.elbo), rtol=1e-12)
    t = m.training_objective(x, "elbo", 1, generator=sv.Generator(3))
    for field in ("elbo", "objective", "iwae"):
        np.testing.assert_allclose(_np(getattr(t, field)), a, rtol=1e-12)
    np.testing.assert_allclose(_np(t.reconstruction), _np(b.reconstruction), rtol=1e-12)
    np.testing.assert_allclose(_np(t.kl), _np(b.kl), rtol=1e-10)
    # k draws: the ELBO objective is the mean of log w, IWAE's their log-mean-exp, from the same draws
    e = m.training_objective(x, "elbo", 5, generator=sv.Generator(4))
    i = m.training_objective(x, "iwae", 5, generator=sv.Generator(4))
    np.testing.assert_allclose(_np(e.elbo), _np(i.elbo), rtol=1e-12)
    np.testing.assert_allclose(_np(e.iwae), _np(i.objective), rtol=1e-12)
    np.testing.assert_allclose(_np(i.objective), _np(m.iwae_bound(x, 5, generator=sv.Generator(4))), rtol=1e-12)
    assert np.all(_np(i.iwae) >= _np(i.elbo) - 1e-12)
    # the weighted KL goes through elbo(); STL and DReG give the same values from the same draws
    # (their gradients: the tests at the end of this file)
    tb = m.training_objective(x, "elbo", 2, beta=0.3, generator=sv.Generator(5))
    np.testing.assert_allclose(_np(tb.objective), _np(tb.reconstruction) - 0.3 * _np(tb.kl), rtol=1e-12)
    for est in ("stl", "dreg"):
        t = m.training_objective(x, "iwae", 5, est, generator=sv.Generator(4))
        np.testing.assert_allclose(_np(t.objective), _np(i.objective), rtol=1e-12)
        np.testing.assert_allclose(_np(t.elbo), _np(i.elbo), rtol=1e-12)
    with pytest.raises(ValueError, match="free bits"):
        m.elbo(x, free_bits=0.5)
    with pytest.raises(ValueError, match="objective"):
        m.training_objective(x, "vae")


def test_iwae_rises_with_k_towards_log_px_and_chunking_changes_nothing(float64):
    m, x = tiny(), data(4)
    reps = 400
    xr = np.tile(x, (reps, 1))
    means = [(_np(m.iwae_bound(xr, k, generator=sv.Generator(10 + k))).reshape(reps, 4)).mean(0) for k in (1, 5, 50)]
    log_px = _np(m.log_likelihood(x, k=100_000, chunk=5000, generator=sv.Generator(9)).log_px)
    assert np.all(means[0] < means[1]) and np.all(means[1] < means[2])
    assert np.all(means[2] <= log_px + 0.02)  # 0.02: well above the Monte-Carlo error of 400 repetitions
    assert np.all(log_px - means[0] > 0.05)  # a real gap at k = 1: the test has something to see
    # the running logsumexp over chunks equals the one-shot value with the same draws
    one = m.log_likelihood(x, k=300, chunk=300, generator=StreamNoise(2))
    chunked = m.log_likelihood(x, k=300, chunk=70, generator=StreamNoise(2))
    np.testing.assert_allclose(_np(chunked.log_px), _np(one.log_px), rtol=1e-12)
    np.testing.assert_allclose(_np(chunked.ess), _np(one.ess), rtol=1e-9)
    assert np.all(_np(one.ess) >= 1) and np.all(_np(one.ess) <= 300)


def _with_parameters(model, names, fn):
    """fn(model) as a function of the named parameters (what gradcheck perturbs)."""
    owners = []
    for name in names:
        *path, attr = name.split(".")
        mod = model
        for p in path:
            mod = getattr(mod, p)
        owners.append((mod, attr, getattr(mod, attr)))

    def wrapped(*ts):
        try:
            for (mod, attr, _), t in zip(owners, ts):
                object.__setattr__(mod, attr, t)
            return fn(model)
        finally:
            for mod, attr, p in owners:
                object.__setattr__(mod, attr, p)

    return wrapped, [p for _, _, p in owners]


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_gradcheck_of_the_training_objective(float64, objective):
    m, x = tiny(), data(3)
    names = ["encoder.mean_head.weight", "encoder.scale_head.bias", "encoder_z2.body.0.weight",
             "encoder_z2.scale_head.weight", "decoder_z1.mean_head.bias", "decoder_z1.scale_head.weight",
             "decoder.0.weight", "decoder.2.bias"]
    fn, params = _with_parameters(m, names, lambda mm: mm.training_objective(
        x, objective, 4, generator=StreamNoise(5)).objective)
    assert sv.gradcheck(fn, params, atol=1e-6, rtol=1e-5)


def test_construction_config_presets_and_failures():
    m = TwoLayerVAE.mlp(generator=sv.Generator(0))
    sizes = {n: p.shape for n, p in m.named_parameters()}
    assert sizes["encoder.body.0.weight"] in ((784, 200), (200, 784))
    assert {sizes["encoder.mean_head.bias"], sizes["encoder_z2.mean_head.bias"], sizes["decoder_z1.mean_head.bias"],
            sizes["decoder.4.bias"]} == {(100,), (50,), (784,)}
    assert m.latent_dim == 100 and m.latent_dim2 == 50
    assert all(float(np.abs(sv.to_numpy(p)).max()) == 0 for n, p in m.named_parameters() if n.endswith("bias"))
    again = model_from_config(m.config, generator=sv.Generator(0))
    assert isinstance(again, TwoLayerVAE)
    for (n, p), (_, q) in zip(m.named_parameters(), again.named_parameters()):
        np.testing.assert_array_equal(sv.to_numpy(p), sv.to_numpy(q), err_msg=n)
    assert isinstance(model_from_config(VAE.mlp(10, [4], 2).config), VAE)
    with pytest.raises(ValueError, match="kind"):
        model_from_config({"kind": "conv"})
    with pytest.raises(ValueError, match="mlp2"):
        TwoLayerVAE.from_config(VAE.mlp(10, [4], 2).config)
    with pytest.raises(ValueError, match="positive"):
        TwoLayerVAE.mlp(latent_dim2=0)
    means = np.linspace(0.0, 1.0, 784)
    m.init_output_bias(means)
    b = sv.to_numpy(m.decoder[-1].bias if hasattr(m.decoder, "__getitem__") else m.decoder.layers[-1].bias)
    clipped = np.clip(means, 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(b, np.log(clipped / (1 - clipped)), rtol=1e-5, atol=1e-5)
    p1, p2 = get_preset("iwae-paper"), get_preset("iwae-paper-2layer")
    assert p2["model"] == {"hidden": [200, 200], "latent_dim": 100, "hidden2": [100, 100], "latent_dim2": 50,
                           "activation": "tanh", "likelihood": "bernoulli", "encoder_head": "exp", "init": "glorot"}
    assert {k: v for k, v in p1.items() if k != "model"} == {k: v for k, v in p2.items() if k != "model"}
    # pictures: samples go z2 -> z1 -> x, reconstructions through the mean of q(z1|x)
    assert sv.to_numpy(m.sample(3, generator=sv.Generator(1))).shape == (3, 784)
    assert sv.to_numpy(m.reconstruct(np.zeros((2, 784), "float32"))).shape == (2, 784)
    with pytest.raises(NotImplementedError, match="layer_means"):
        m.posterior(np.zeros((2, 784), "float32")).mean


def test_evaluate_counts_the_active_units_of_both_layers(float64):
    m, x = tiny(), data(50, seed=4)
    r = evaluate(m, x, k=20, batch_size=16, generator=sv.Generator(1))
    assert r["latent_dim"] == L1 and r["latent_dim2"] == L2 and r["kl_per_dim"] is None
    mu1, mu2 = (_np(t) for t in m.layer_means(x))
    assert r["active_units"] == int((mu1.var(0) > 0.01).sum())
    assert r["active_units_z2"] == int((mu2.var(0) > 0.01).sum())
    np.testing.assert_allclose(r["posterior_mean_variance_z2"], mu2.var(0), rtol=1e-10)
    assert r["elbo"] < r["log_px"] and abs(r["kl"] - (r["reconstruction"] - r["elbo"])) < 1e-9


def test_the_bound_on_every_backend(bk):
    m = TwoLayerVAE.mlp(D, H, L1, H2, L2, generator=sv.Generator(0), dtype="float64", backend=bk.backend)
    ref = TwoLayerVAE.mlp(D, H, L1, H2, L2, generator=sv.Generator(0), dtype="float64", backend="numpy")
    x = data(5)
    a = m.iwae_bound(bk.tensor(x), 7, generator=StreamNoise(3))
    b = ref.iwae_bound(x, 7, generator=StreamNoise(3))
    assert backend_of(a.data).name == bk.name
    np.testing.assert_allclose(bk.numpy(a), _np(b), rtol=1e-10)
    t = m.training_objective(bk.tensor(x), "iwae", 3, generator=StreamNoise(4))
    t.loss().backward()
    assert all(p.grad is not None for p in m.parameters())
    ll = m.log_likelihood(bk.tensor(x), k=40, chunk=15, generator=StreamNoise(5))
    np.testing.assert_allclose(bk.numpy(ll.log_px), _np(ref.log_likelihood(x, 40, 15, StreamNoise(5)).log_px),
                               rtol=1e-10)


def quiet(*_):
    pass


def two_layer(**over):
    base = dict(data="embedded", n_train=1000, n_test=100, validation=0, epochs=3, figures=False, eval_batch_size=100)
    base.update(over)
    return make_config("iwae-paper-2layer", **base)


def _same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sv.to_numpy(sa[k]), sv.to_numpy(sb[k]), err_msg=k)


SMALL = dict(hidden=[32], latent_dim=8, hidden2=[16], latent_dim2=4)  # the same two-layer model, small


def test_training_resume_and_cli_evaluate(tmp_path, capsys):
    r = train(two_layer(), tmp_path / "run", progress=False, log=quiet)  # the preset's model: 3 x 50 steps of 20
    assert r.status == "completed" and r.global_step == 150
    m = r.metrics
    assert m[-1]["train_elbo"] > m[0]["train_elbo"] + 5 and m[-1]["test_elbo"] > m[0]["test_elbo"]
    model, config, meta = load_run(tmp_path / "run")
    assert isinstance(model, TwoLayerVAE) and meta["model_config"]["kind"] == "mlp2" and model.latent_dim2 == 50
    assert main(["evaluate", str(tmp_path / "run"), "--k", "20", "--n-test", "50", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "active units of z2" in out and "k=20" in out
    res = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert res["n"] == 50 and res["latent_dim"] == 100 and res["latent_dim2"] == 50
    assert 0 <= res["active_units_z2"] <= 50 and res["nll"] <= res["loss"] + 1.0
    # one epoch, then resumed to three: the same parameters as three in one go
    train(two_layer(**SMALL), tmp_path / "full", progress=False, log=quiet)
    train(two_layer(epochs=1, **SMALL), tmp_path / "part", progress=False, log=quiet)
    train(run_dir=tmp_path / "part", resume=True, epochs=3, progress=False, log=quiet)
    _same_params(load_run(tmp_path / "part")[0], load_run(tmp_path / "full")[0])
    # IWAE training runs too (k = 5) and reports both bounds
    ri = train(two_layer(epochs=2, objective="iwae", n_samples=5, **SMALL), tmp_path / "iwae", progress=False,
               log=quiet)
    last = ri.metrics[-1]
    assert ri.status == "completed" and last["train_iwae"] >= last["train_elbo"]
    assert last["test_iwae"] >= last["test_elbo"] - 1.0


# -- STL and DReG on two layers: log q(z1|x) + log q(z2|z1) with phi detached but z1 live ----------------
# A two-layer linear-Gaussian model (one-dimensional z1 and z2) has an exact posterior that the layers
# can represent, so log w is log p(x) for every draw: there STL's and DReG's encoder gradients are
# exactly zero per sample, the pathwise one is not.  Away from it (tiny()), each estimator's mean
# gradient equals the pathwise one's, checked by the shared z-test (scratchvae.testing).

E, S1, W, W0, SIGMA = 0.8, 0.6, np.array([1.0, -0.5]), np.array([0.2, -0.1]), 0.5


def _set(m, name, value):
    p = dict(m.named_parameters())[name]
    v = np.asarray(value, dtype="float64")
    v = np.full(p.shape, float(v)) if v.ndim == 0 else v.reshape(p.shape)  # a number fills the parameter
    p.data = sv.get_backend().from_numpy(v)


def _exact_model():
    """z2 ~ N(0, 1), z1 | z2 ~ N(E z2, S1^2), x | z1 ~ N(W z1 + W0, SIGMA^2 I); q set to the posterior:
    q(z1|x) = p(z1|x) and q(z2|z1) = p(z2|z1, x) = p(z2|z1).  Returns the model and log p(x)'s function."""
    m = TwoLayerVAE.mlp(2, [], 1, [], 1, likelihood="gaussian", gaussian_scale="fixed", fixed_scale=SIGMA,
                        dtype="float64", generator=sv.Generator(0))
    v1 = E**2 + S1**2  # the marginal variance of z1
    prec = 1 / v1 + W @ W / SIGMA**2  # p(z1|x): precision, and mean W.(x - W0) / (SIGMA^2 prec)
    _set(m, "encoder.mean_head.weight", W / (SIGMA**2 * prec))
    _set(m, "encoder.mean_head.bias", -(W @ W0) / (SIGMA**2 * prec))
    _set(m, "encoder.scale_head.weight", 0.0)
    _set(m, "encoder.scale_head.bias", -0.5 * math.log(prec))
    _set(m, "encoder_z2.mean_head.weight", E / v1)  # p(z2|z1) = N(E z1 / v1, 1 - E^2 / v1)
    _set(m, "encoder_z2.mean_head.bias", 0.0)
    _set(m, "encoder_z2.scale_head.weight", 0.0)
    _set(m, "encoder_z2.scale_head.bias", 0.5 * math.log(1 - E**2 / v1))
    _set(m, "decoder_z1.mean_head.weight", E)
    _set(m, "decoder_z1.mean_head.bias", 0.0)
    _set(m, "decoder_z1.scale_head.weight", 0.0)
    _set(m, "decoder_z1.scale_head.bias", math.log(S1))
    _set(m, "decoder.0.weight", W)
    _set(m, "decoder.0.bias", W0)
    cov = v1 * np.outer(W, W) + SIGMA**2 * np.eye(2)

    def log_px(x):
        d = x - W0
        return -0.5 * (np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d) + np.log(np.linalg.det(cov))
                       + 2 * math.log(2 * math.pi))

    return m, log_px


def _grads(m, fn, seed, names=None):
    """Gradients of -sum(fn(generator)) with respect to the named parameters (all when None)."""
    params = [(n, p) for n, p in m.named_parameters() if names is None or n.split(".")[0] in names]
    m.zero_grad()
    (-fn(sv.Generator(seed)).sum()).backward()
    return tuple(sv.to_numpy(p.grad).copy() for _, p in params)


X = np.random.default_rng(3).normal(size=(4, 2))
ENCODERS = ("encoder", "encoder_z2")


@pytest.mark.usefixtures("float64")
def test_log_w_is_log_px_for_every_draw_at_the_exact_posterior():
    m, log_px = _exact_model()
    for seed in range(3):
        lw = sv.to_numpy(m.iwae_bound(X, 1, generator=sv.Generator(seed)))
        np.testing.assert_allclose(lw, log_px(X), rtol=1e-12)  # the test's premise: q is the posterior


@pytest.mark.parametrize("objective, estimator, k", [("elbo", "stl", 1), ("elbo", "stl", 3), ("iwae", "stl", 4),
                                                     ("iwae", "dreg", 1), ("iwae", "dreg", 4)])
@pytest.mark.usefixtures("float64")
def test_encoder_gradients_are_exactly_zero_at_the_exact_posterior(objective, estimator, k):
    m, _ = _exact_model()
    for seed in range(4):
        g = _grads(m, lambda gen: m.training_objective(X, objective, k, estimator, generator=gen).objective, seed,
                   ENCODERS)
        assert max(np.abs(a).max() for a in g) < 1e-10, (objective, estimator, k, g)
    g = _grads(m, lambda gen: m.training_objective(X, objective, k, "pathwise", generator=gen).objective, 0,
               ENCODERS)
    assert max(np.abs(a).max() for a in g) > 1e-3  # the pathwise estimator keeps its score terms


@pytest.mark.parametrize("objective, estimator, k", [("elbo", "stl", 2), ("iwae", "dreg", 3)])
@pytest.mark.usefixtures("float64")
def test_the_estimators_are_unbiased_for_the_pathwise_gradient(objective, estimator, k):
    m, x = tiny(), data(3)
    seeds = iter(range(10**6))

    def difference():  # estimator - pathwise on the same noise: mean 0 when both estimate one gradient
        s = next(seeds)
        a = _grads(m, lambda gen: m.training_objective(x, objective, k, estimator, generator=gen).objective, s)
        b = _grads(m, lambda gen: m.training_objective(x, objective, k, "pathwise", generator=gen).objective, s)
        return tuple(u - v for u, v in zip(a, b))

    zeros = tuple(np.zeros(p.shape) for p in m.parameters())
    assert_gradient_unbiased(difference, zeros, n_initial=300, n_max=2400, atol=1e-10)
    # and the value is the bound, whatever the gradient
    v = [sv.to_numpy(m.training_objective(x, objective, k, est, generator=sv.Generator(5)).objective)
         for est in ("pathwise", estimator)]
    np.testing.assert_allclose(v[1], v[0], rtol=1e-12)


@pytest.mark.usefixtures("float64")
def test_the_draw_keeps_no_stale_density_and_the_refusals_stay():
    m, x = tiny(), data(3)
    with pytest.raises(ValueError, match="grad_estimator"):
        m.training_objective(x, "elbo", 2, "dreg")  # DReG is for IWAE
    with pytest.raises(ValueError, match="beta"):
        m.training_objective(x, "iwae", 2, "dreg", beta=0.5)
    # the detached density at the draw equals the live one in value
    q = m.posterior(sv.tensor(x))
    z = q.rsample((2,), generator=sv.Generator(1))
    np.testing.assert_allclose(sv.to_numpy(q.with_detached_parameters().log_prob(z)), sv.to_numpy(q.log_prob(z)),
                               rtol=1e-12)


@pytest.mark.usefixtures("float64")
def test_functional_call_replaces_and_restores():
    lin = nn.Linear(3, 2, generator=sv.Generator(0))
    x = sv.tensor(np.ones((1, 3)))
    w = sv.tensor(np.full((3, 2), 2.0), requires_grad=True)
    y = nn.functional_call(lin, {"weight": w}, (x,))
    np.testing.assert_allclose(sv.to_numpy(y), 6.0 + sv.to_numpy(lin.bias)[None])
    y.sum().backward()
    assert lin.weight.grad is None and w.grad is not None  # the gradient reached the replacement only
    assert isinstance(lin.weight, nn.Parameter) and dict(lin.named_parameters())["weight"] is lin.weight
    with pytest.raises(KeyError, match="no parameter"):
        nn.functional_call(lin, {"wieght": w}, (x,))
    before = lin.weight
    with pytest.raises(ValueError):
        nn.functional_call(lin, {"weight": sv.tensor(np.ones((4, 2)))}, (x,))  # a shape error inside the call
    assert lin.weight is before  # restored after the error
