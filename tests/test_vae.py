"""The VAE model, its presets and its evaluation.

The pytorch-example preset's loss, gradients and first Adam step equal the hand-written NumPy
reference step (benchmarks/reference_steps.py, no engine) for the same parameters and noise; the
evaluation is checked on a linear-Gaussian VAE whose exact log p(x) is known in closed form.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.data import grey_levels, load_embedded
from scratchvae.distributions import ValidationError
from scratchvae.evaluate import (
    ACTIVE_UNIT_THRESHOLD,
    elbo_stats,
    evaluate,
    format_table,
    log_likelihood_stats,
)
from scratchvae.models.presets import PRESETS, get_preset
from scratchvae.models.vae import VAE, GaussianLikelihood
from scratchvae.optim import Adam
from scratchvae.train import batch_loss, build_model, build_optimizer, make_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_steps import NumpyVAEStep, init_params, numpy_loss_and_grads


class FixedNoise:
    """A generator that hands out given noise (duck-types scratchvae.random.Generator)."""

    def __init__(self, eps):
        self.eps = eps

    def normal(self, shape, dtype=None, backend=None):
        return backend.from_numpy(np.asarray(self.eps, dtype=dtype).reshape(shape))


def _grey_batch(n=16):
    images, _ = load_embedded("train", flatten=True)
    return grey_levels(images[:n], "float64")


# --------------------------------------------------------------------------------------------------
# the pytorch-example preset against the hand-written reference step

def test_pytorch_example_loss_grads_and_adam_step_equal_reference(bk, float64):
    config = make_config("pytorch-example", dtype="float64")
    model = build_model(config)  # 784-400-20 ReLU, log-var head, Bernoulli on grey levels
    rng = np.random.default_rng(3)
    host = init_params(rng, np.float64)
    names = list(model.state_dict())
    assert [tuple(model.state_dict()[k].shape) for k in names] == [p.shape for p in host]
    model.load_state_dict(dict(zip(names, host)))
    x = _grey_batch()
    eps = rng.standard_normal((len(x), 20))

    loss, res = batch_loss(model, bk.tensor(x), config, beta=1.0, generator=FixedNoise(eps))
    ref_loss, ref_grads = numpy_loss_and_grads(host, x, eps)
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=1e-12)
    # the per-image parts add up to the same loss: -sum(rec - kl)
    np.testing.assert_allclose(-float(np.sum(bk.numpy(res.elbo))), ref_loss, rtol=1e-12)

    opt = build_optimizer(config, model)
    loss.backward()
    for name, p, g in zip(names, model.parameters(), ref_grads):
        np.testing.assert_allclose(bk.numpy(p.grad), g, rtol=1e-9, atol=1e-9, err_msg=name)
    opt.step()
    ref = NumpyVAEStep([p.copy() for p in host])
    ref(x, eps)
    for name, p, r in zip(names, model.parameters(), ref.params):
        np.testing.assert_allclose(bk.numpy(p), r, rtol=1e-9, atol=1e-12, err_msg=name)


def test_loss_reduction_sum_is_batch_times_mean(float64):
    x = _grey_batch(8)
    eps = np.random.default_rng(0).standard_normal((8, 20))
    model = build_model(make_config("pytorch-example", dtype="float64"))
    s, _ = batch_loss(model, x, make_config("pytorch-example", dtype="float64"), 1.0, FixedNoise(eps))
    m, _ = batch_loss(model, x, make_config("pytorch-example", dtype="float64", loss_reduction="mean"), 1.0,
                      FixedNoise(eps))
    np.testing.assert_allclose(s.item(), 8 * m.item(), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# construction

@pytest.mark.parametrize("head", ["log_var", "exp", "softplus"])
def test_encoder_heads_give_the_documented_scale(bk, float64, head):
    model = VAE.mlp(12, [8], 3, "tanh", encoder_head=head, generator=sv.Generator(0))
    x = bk.tensor((np.random.default_rng(1).random((5, 12)) < 0.5).astype(np.float64))
    q = model.encode(x)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    h = bk.numpy(model.encoder.scale_head(model.encoder.body(x)))
    expected = {"log_var": np.exp(h / 2), "exp": np.exp(h), "softplus": np.logaddexp(0, h) + 1e-5}[head]
    np.testing.assert_allclose(bk.numpy(q.stddev), expected, rtol=1e-12)
    np.testing.assert_allclose(bk.numpy(q.mean), bk.numpy(model.encoder.mean_head(model.encoder.body(x))))


def test_mlp_layout_and_prior_follow_the_backend(bk):
    model = VAE.mlp(784, [200, 200], 50, "tanh", encoder_head="exp", init="glorot", generator=sv.Generator(0))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "encoder.body.0.weight": (784, 200), "encoder.body.0.bias": (200,),
        "encoder.body.2.weight": (200, 200), "encoder.body.2.bias": (200,),
        "encoder.mean_head.weight": (200, 50), "encoder.mean_head.bias": (50,),
        "encoder.scale_head.weight": (200, 50), "encoder.scale_head.bias": (50,),
        "decoder.0.weight": (50, 200), "decoder.0.bias": (200,),
        "decoder.2.weight": (200, 200), "decoder.2.bias": (200,),
        "decoder.4.weight": (200, 784), "decoder.4.bias": (784,),
    }
    # Glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), zero biases (the IWAE paper's code)
    w = bk.numpy(model.decoder[4].weight)
    a = math.sqrt(6 / (200 + 784))
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.95 * a
    np.testing.assert_allclose(w.std(), a / math.sqrt(3), rtol=0.02)
    assert not np.any(bk.numpy(model.decoder[4].bias))
    prior = model.prior
    assert prior.event_shape == (50,)
    assert sv.backend.backend_of(prior.base_dist.loc.data).name == bk.name
    x = bk.tensor((np.random.default_rng(0).random((4, 784)) < 0.3).astype(np.float32))
    r = model.elbo(x, generator=sv.Generator(1))
    assert r.kl_per_dim is not None and r.kl_per_dim.shape == (4, 50)  # the analytic per-dim KL
    np.testing.assert_allclose(bk.numpy(r.kl), bk.numpy(r.kl_per_dim).sum(axis=1), rtol=1e-5)


def test_prior_follows_a_replaced_encoder():
    """The prior's backend and dtype come from the first parameter: replacing a sub-module must be
    seen at once."""
    model = VAE.mlp(12, [6], 3, dtype="float32", generator=sv.Generator(0))
    assert sv.backend.dtype_name(model.prior.base_dist.loc.dtype) == "float32"
    other = VAE.mlp(12, [6], 3, dtype="float64", generator=sv.Generator(0))
    model.encoder = other.encoder
    assert model._first_parameter() is other.encoder.body[0].weight
    assert sv.backend.dtype_name(model.prior.base_dist.loc.dtype) == "float64"
    del model.encoder
    model.encoder = VAE.mlp(12, [6], 3, dtype="float32", generator=sv.Generator(0)).encoder
    assert sv.backend.dtype_name(model.prior.base_dist.loc.dtype) == "float32"


def test_config_round_trip_rebuilds_the_same_model(tmp_path):
    model = VAE.mlp(20, [10, 6], 3, "softplus", likelihood="gaussian", gaussian_scale="per_pixel",
                    encoder_head="softplus", generator=sv.Generator(0))
    again = VAE.from_config(model.config, generator=sv.Generator(5))
    assert list(again.state_dict()) == list(model.state_dict())
    again.load_state_dict(model.state_dict())
    x = np.random.default_rng(0).random((6, 20)).astype(np.float32)
    a = model.elbo(x, generator=sv.Generator(2)).elbo.numpy()
    b = again.elbo(x, generator=sv.Generator(2)).elbo.numpy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="made by VAE.mlp"):
        VAE.from_config({"kind": "conv"})


def test_output_bias_starts_at_the_pixel_means(bk):
    means = np.linspace(0, 1, 784)
    model = VAE.mlp(784, [16], 2, generator=sv.Generator(0))
    model.init_output_bias(means)
    m = np.clip(means, 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(bk.numpy(model.decoder[-1].bias), np.log(m / (1 - m)), rtol=1e-5)
    # with the last weights at zero the decoded mean IS the pixel means (clipped)
    model.decoder[-1].weight.data = model.decoder[-1].weight.data * 0.0
    z = bk.tensor(np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32))
    np.testing.assert_allclose(bk.numpy(model.decode_mean(z)), np.broadcast_to(m, (3, 784)), rtol=1e-4, atol=1e-6)
    g = VAE.mlp(784, [16], 2, likelihood="gaussian", gaussian_scale="per_pixel", generator=sv.Generator(0))
    g.init_output_bias(means)
    np.testing.assert_allclose(bk.numpy(g.decoder[-1].bias)[:784], means, rtol=1e-6)


def test_bernoulli_on_grey_levels_only_when_asked(bk):
    x = bk.tensor(_grey_batch(4).astype(np.float32))
    strict = VAE.mlp(784, [8], 2, generator=sv.Generator(0))
    with pytest.raises(ValidationError, match="not in the support|binar"):
        strict.elbo(x, generator=sv.Generator(0))
    loose = VAE.mlp(784, [8], 2, allow_grey=True, generator=sv.Generator(0))
    assert np.all(np.isfinite(bk.numpy(loose.elbo(x, generator=sv.Generator(0)).elbo)))
    with pytest.raises(ValueError, match="not a normalized likelihood"):
        make_config(binarize="grey")


def test_gaussian_likelihoods(bk, float64):
    rng = np.random.default_rng(0)
    out = rng.standard_normal((5, 8))
    x = rng.random((5, 4))

    def normal_lp(x, loc, sigma):
        return (-0.5 * ((x - loc) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)).sum(axis=1)

    fixed = GaussianLikelihood("fixed", fixed_scale=0.3)
    lp = fixed(bk.tensor(out[:, :4])).log_prob(bk.tensor(x))
    np.testing.assert_allclose(bk.numpy(lp), normal_lp(x, out[:, :4], 0.3), rtol=1e-12)
    learned = GaussianLikelihood("learned", min_scale=0.0)
    assert [n for n, _ in learned.named_parameters()] == ["log_scale"]
    learned.log_scale.data = bk.array(np.array(-1.0))
    lp = learned(bk.tensor(out[:, :4])).log_prob(bk.tensor(x))
    np.testing.assert_allclose(bk.numpy(lp), normal_lp(x, out[:, :4], math.exp(-1)), rtol=1e-12)
    per = GaussianLikelihood("per_pixel", min_scale=0.0)
    assert per.outputs(4) == 8
    lp = per(bk.tensor(out)).log_prob(bk.tensor(x))
    np.testing.assert_allclose(bk.numpy(lp), normal_lp(x, out[:, :4], np.exp(out[:, 4:])), rtol=1e-12)
    # the floor keeps a learned sigma from collapsing: sigma >= min_scale
    floored = GaussianLikelihood("per_pixel", min_scale=1e-3)
    very_negative = np.concatenate([out[:, :4], np.full((5, 4), -50.0)], axis=1)
    sd = bk.numpy(floored(bk.tensor(very_negative)).stddev)
    assert sd.min() >= 1e-3 * (1 - 1e-12)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="encoder head 'logvar'"):
        VAE.mlp(encoder_head="logvar")
    with pytest.raises(ValueError, match="unknown activation"):
        VAE.mlp(activation="swish")
    with pytest.raises(ValueError, match="gaussian scale"):
        VAE.mlp(likelihood="gaussian", gaussian_scale="tiny")
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def test_sample_and_reconstruct_are_images(bk):
    model = VAE.mlp(784, [16], 2, generator=sv.Generator(0))
    s = bk.numpy(model.sample(5, generator=sv.Generator(1)))
    assert s.shape == (5, 784) and s.min() >= 0 and s.max() <= 1
    d = bk.numpy(model.sample(5, generator=sv.Generator(1), mean=False))
    assert set(np.unique(d)) <= {0.0, 1.0}
    x = (np.random.default_rng(0).random((3, 784)) < 0.3).astype(np.float32)
    assert bk.numpy(model.reconstruct(bk.tensor(x))).shape == (3, 784)


# --------------------------------------------------------------------------------------------------
# presets

def test_presets_build_the_published_setups():
    pt = make_config("pytorch-example")
    assert (pt.batch_size, pt.epochs, pt.lr, pt.seed, pt.binarize, pt.loss_reduction) == (128, 10, 1e-3, 1, "grey", "sum")
    iw = make_config("iwae-paper")
    assert (iw.batch_size, iw.epochs, iw.adam_eps, iw.validation, iw.binarize) == (20, 3280, 1e-4, 400, "dynamic")
    model = build_model(iw)
    sizes = [tuple(p.shape) for n, p in model.named_parameters() if n.endswith("weight")]
    assert sizes == [(784, 200), (200, 200), (200, 50), (200, 50), (50, 200), (200, 200), (200, 784)]
    assert model.encoder.head == "exp" and model.config["activation"] == "tanh"
    # the schedule: 3^i epochs at 1e-3 * 10^(-i/7)
    from scratchvae.train import build_scheduler

    opt = build_optimizer(iw, model)
    sched = build_scheduler(iw, opt)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    expected = [1e-3 * 10 ** (-i / 7) for i, n in enumerate([1, 3, 9]) for _ in range(n)] + [1e-3 * 10 ** (-3 / 7)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert opt.param_groups[0]["eps"] == 1e-4
    # command-line style overrides win over the preset
    assert make_config("iwae-paper", epochs=5, hidden=[10]).model["hidden"] == [10]
    assert set(PRESETS) == {"pytorch-example", "iwae-paper", "iwae-paper-2layer"}


# --------------------------------------------------------------------------------------------------
# evaluation on a model whose log p(x) is known exactly

def _linear_gaussian_vae(d=6, k=2, sigma=0.5, exact_posterior=True, seed=0):
    """z ~ N(0, I_k), x | z ~ N(z W + b, sigma^2 I) with W's rows orthogonal, so the posterior is
    diagonal: precision M = I + W W^T / sigma^2, mean (x - b) W^T M^-1 / sigma^2.  The encoder is set
    to it exactly (or perturbed)."""
    rng = np.random.default_rng(seed)
    w = np.linalg.qr(rng.standard_normal((d, k)))[0].T * np.array([[2.0], [0.7]])  # (k, d), orthogonal rows
    b = rng.standard_normal(d) * 0.3
    model = VAE.mlp(d, [], k, likelihood="gaussian", gaussian_scale="fixed", fixed_scale=sigma,
                    encoder_head="exp", generator=sv.Generator(seed))
    prec = 1 + (w * w).sum(axis=1) / sigma**2  # diagonal of M
    a = w.T / prec / sigma**2  # (d, k): mu = (x - b) a
    sv_ = {
        "encoder.mean_head.weight": a, "encoder.mean_head.bias": -b @ a,
        "encoder.scale_head.weight": np.zeros((d, k)), "encoder.scale_head.bias": -0.5 * np.log(prec),
        "decoder.0.weight": w, "decoder.0.bias": b,
    }
    if not exact_posterior:
        sv_["encoder.mean_head.bias"] = sv_["encoder.mean_head.bias"] + 0.3
        sv_["encoder.scale_head.bias"] = sv_["encoder.scale_head.bias"] + 0.4
    model.load_state_dict(sv_)
    cov = w.T @ w + sigma**2 * np.eye(d)
    return model, b, cov, rng


def _exact_log_px(x, b, cov):
    d = len(b)
    diff = x - b
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff) + logdet + d * math.log(2 * math.pi))


def test_evaluation_recovers_exact_log_px_with_the_exact_posterior(float64):
    model, b, cov, rng = _linear_gaussian_vae()
    x = rng.multivariate_normal(b, cov, size=40)
    exact = _exact_log_px(x, b, cov).mean()
    # q = the true posterior: every importance weight is p(x), the ELBO is tight
    ll = log_likelihood_stats(model, x, k=50, chunk=7, generator=sv.Generator(0))
    np.testing.assert_allclose(ll["log_px"], exact, rtol=1e-10)
    np.testing.assert_allclose(ll["ess_mean"], 50, rtol=1e-8)
    assert "log_px_images" not in ll
    # per image, for paired comparisons of models: each image's estimate is its own exact log p(x)
    per = log_likelihood_stats(model, x, k=50, chunk=7, generator=sv.Generator(0), per_image=True)
    np.testing.assert_allclose(per["log_px_images"], _exact_log_px(x, b, cov), rtol=1e-10)
    assert per["log_px_images"].mean() == per["log_px"]
    # the ELBO (analytic KL, sampled reconstruction) is tight in expectation: log p(x) = ELBO when
    # q is the posterior; averaged over many z it agrees to Monte-Carlo precision
    st = elbo_stats(model, x, batch_size=16, n_samples=4000, generator=sv.Generator(0))
    np.testing.assert_allclose(st["elbo"], exact, atol=0.01)


def test_evaluation_with_a_poorer_posterior(float64):
    model, b, cov, rng = _linear_gaussian_vae(exact_posterior=False)
    x = rng.multivariate_normal(b, cov, size=30)
    exact = _exact_log_px(x, b, cov)
    r = evaluate(model, x, k=3000, batch_size=8, generator=sv.Generator(1))
    # the ELBO is a strict bound now; the importance-sampled estimate closes the gap
    assert r["elbo"] < exact.mean() - 0.05
    assert abs(r["log_px"] - exact.mean()) < 0.02
    assert r["log_px"] > r["elbo"]
    assert r["loss"] == -r["elbo"] and r["nll"] == -r["log_px"]
    # the stochastic ELBO is not the ELBO at the posterior mean: with other seeds it changes
    r2 = elbo_stats(model, x, generator=sv.Generator(2), details=False)
    assert r2["elbo"] != r["elbo"]
    table = format_table(r)
    assert "k=3000" in table and "active units" in table


def test_active_units_and_per_dim_kl(bk):
    model = VAE.mlp(10, [], 3, likelihood="gaussian", gaussian_scale="fixed", generator=sv.Generator(0))
    w = np.zeros((10, 3))
    w[:, 0] = 1.0           # dim 0 follows the data
    w[:, 1] = 1e-3          # dim 1 barely moves: variance ~ 1e-6 * Var(sum x)
    st = model.state_dict()
    st["encoder.mean_head.weight"] = w
    st["encoder.mean_head.bias"] = np.zeros(3)
    st["encoder.scale_head.weight"] = np.zeros((10, 3))
    st["encoder.scale_head.bias"] = np.zeros(3)  # log_var 0: sigma = 1, so a dim's KL is mu^2 / 2
    model.load_state_dict(st)
    x = np.random.default_rng(0).random((200, 10)).astype(np.float32)
    r = elbo_stats(model, x, batch_size=64, generator=sv.Generator(0))
    mu0 = x.astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(r["posterior_mean_variance"][0], mu0.var(), rtol=1e-4)
    assert r["posterior_mean_variance"][1] < ACTIVE_UNIT_THRESHOLD and r["posterior_mean_variance"][2] == 0
    assert r["active_units"] == 1
    np.testing.assert_allclose(r["kl_per_dim"][0], (mu0**2 / 2).mean(), rtol=1e-4)
    assert r["kl_per_dim"][2] == 0


def test_training_step_with_adam_lowers_the_loss_on_a_fixed_batch():
    images, _ = load_embedded("train", flatten=True)
    x = (images[:64] > 127).astype(np.float32)
    model = VAE.mlp(784, [64], 8, generator=sv.Generator(0))
    opt = Adam(model.parameters(), lr=3e-3)
    noise = sv.Generator(1)

    def loss_now():
        return -model.elbo(x, generator=sv.Generator(9)).elbo.numpy().mean()

    before = loss_now()
    for _ in range(30):
        loss = -model.elbo(x, generator=noise).objective.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_now() < before - 50
