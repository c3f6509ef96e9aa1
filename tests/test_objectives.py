"""Training on the ELBO or IWAE_k with any gradient estimator: ``training_objective``'s values and
parts, the config's refusals, and the CLI end to end (docs/training.md#objectives-and-gradient-estimators)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.cli import main
from scratchvae.estimators import elbo_objective, iwae_objective, training_objective
from scratchvae.models import VAE
from scratchvae.train import make_config, train


def _model_and_data():
    model = VAE.mlp(12, (8,), 3, generator=sv.Generator(0))
    x = (np.random.default_rng(0).random((7, 12)) < 0.5).astype(np.float32)
    return model, x


@pytest.mark.parametrize("objective, estimator", [("iwae", "pathwise"), ("iwae", "stl"), ("iwae", "dreg"),
                                                  ("elbo", "stl")])
def test_training_objective_is_the_bound_with_its_parts_from_the_same_draws(bk, objective, estimator):
    model, x = _model_and_data()
    xt = bk.tensor(x)
    k = 4
    r = model.training_objective(xt, objective, k, estimator, generator=sv.Generator(1))
    if objective == "iwae":
        ref = iwae_objective(xt, model.encode, model.decode, model.prior, k, estimator, sv.Generator(1))
    else:
        ref = elbo_objective(xt, model.encode, model.decode, model.prior, k, estimator, sv.Generator(1))
    np.testing.assert_allclose(bk.numpy(r.objective), bk.numpy(ref), rtol=1e-5)
    elbo, iwae, rec, kl = (bk.numpy(t).astype(np.float64) for t in (r.elbo, r.iwae, r.reconstruction, r.kl))
    np.testing.assert_allclose(elbo, rec - kl, rtol=1e-5, atol=1e-4)
    assert (iwae >= elbo - 1e-4).all()  # log mean exp >= mean log, draw by draw (Jensen)
    np.testing.assert_allclose(bk.numpy(r.objective), iwae if objective == "iwae" else elbo, rtol=1e-5)
    # The same draws as the one-pass IWAE bound: log-weights, not a second decoder pass.
    np.testing.assert_allclose(iwae, bk.numpy(model.iwae_bound(xt, k, generator=sv.Generator(1))), rtol=1e-5)
    model.zero_grad()
    (-r.objective.mean()).backward()
    assert all(p.grad is not None and np.isfinite(bk.numpy(p.grad)).all() for p in model.parameters())


def test_pathwise_elbo_is_the_analytic_elbo_with_beta_and_free_bits():
    model, x = _model_and_data()
    a = model.training_objective(x, "elbo", 3, beta=0.5, free_bits=0.1, generator=sv.Generator(2))
    b = model.elbo(x, n_samples=3, beta=0.5, free_bits=0.1, generator=sv.Generator(2))
    np.testing.assert_array_equal(a.objective.numpy(), b.objective.numpy())
    np.testing.assert_array_equal(a.elbo.numpy(), b.elbo.numpy())
    assert a.iwae is None


def test_stl_changes_the_gradient_not_the_value():
    model, x = _model_and_data()
    grads = {}
    for est in ("pathwise", "stl"):
        model.zero_grad()
        r = training_objective(sv.tensor(x), model.encode, model.decode, model.prior, "iwae", 3, est,
                               generator=sv.Generator(5))
        (-r.objective.sum()).backward()
        grads[est] = [p.grad.copy() for p in model.parameters()]
        grads[est + "_value"] = r.objective.numpy()
    np.testing.assert_allclose(grads["pathwise_value"], grads["stl_value"], rtol=1e-6)
    enc = [i for i, (n, _) in enumerate(model.named_parameters()) if n.startswith("encoder")]
    assert any(not np.allclose(grads["pathwise"][i], grads["stl"][i]) for i in enc)


@pytest.mark.parametrize("bad, message", [
    ({"objective": "elbo", "grad_estimator": "dreg"}, "'dreg' is the IWAE bound's estimator"),
    ({"objective": "iwae", "beta": 0.5}, "beta, warm-up and free bits"),
    ({"objective": "elbo", "grad_estimator": "stl", "free_bits": 0.1}, "beta, warm-up and free bits"),
    ({"objective": "vi"}, "unknown objective 'vi'"),
    ({"grad_estimator": "reinforce"}, "unknown grad_estimator 'reinforce'"),
    ({"budget_clock": "gpu"}, "unknown budget_clock 'gpu'"),
])
def test_config_refuses_what_the_objective_cannot_do(bad, message):
    with pytest.raises(ValueError, match=message):
        make_config(**bad)


def test_the_library_refuses_the_same(bk):
    model, x = _model_and_data()
    with pytest.raises(ValueError, match="grad_estimator must be one of"):
        model.training_objective(bk.tensor(x), "elbo", 2, "dreg")
    with pytest.raises(ValueError, match="no separate KL term"):
        model.training_objective(bk.tensor(x), "iwae", 2, beta=0.5)
    with pytest.raises(ValueError, match="objective must be one of"):
        model.training_objective(bk.tensor(x), "renyi", 2, "stl")


def _rows(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_cli_trains_on_iwae_with_dreg_and_reports_elbo_and_iwae(tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--data", "embedded", "--epochs", "2", "--objective", "iwae", "--k", "3",
               "--grad-estimator", "dreg", "--n-train", "600", "--n-test", "300", "--no-progress",
               "--no-figures", "--out", str(out)])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["objective"], cfg["n_samples"], cfg["grad_estimator"]) == ("iwae", 3, "dreg")
    rows = _rows(out)
    for row in rows:
        assert row["k"] == 3
        assert row["train_loss"] == pytest.approx(-row["train_iwae"])  # the loss is -IWAE_3
        # IWAE_3 >= ELBO per draw; over 300 images the gap is nats, far above the noise
        assert row["train_iwae"] > row["train_elbo"] and row["test_iwae"] > row["test_elbo"]
    assert rows[1]["test_iwae"] > rows[0]["test_iwae"]  # it trains


def test_elbo_runs_report_iwae_k_too(tmp_path):
    r = train(make_config(data="embedded", epochs=1, n_samples=2, n_train=300, n_test=200, figures=False),
              tmp_path / "run", progress=False, log=lambda *a: None)
    row = r.metrics[-1]
    assert "test_iwae" in row and row["test_iwae"] > row["test_elbo"]
    assert "train_iwae" not in row  # the analytic-KL ELBO computes no log-weights to average


def test_cpu_budget_stops_on_cpu_seconds(tmp_path):
    r = train(make_config(data="embedded", epochs=50, n_train=200, n_test=100, figures=False, time_budget=1e-4,
                          budget_clock="cpu"), tmp_path / "run", progress=False, log=lambda *a: None)
    assert r.status == "budget" and r.epochs_done == 1
    assert r.metrics[0]["cpu_seconds"] > 0
