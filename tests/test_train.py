"""The trainer: loss goes down, resuming is exact, NaN stops cleanly, options are applied, data source."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import checkpoint as ckpt
from scratchvae.train import TrainingDiverged, beta_at, load_run, make_config, train

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def tiny(**over):
    """A few hundred embedded images and a small model: a run takes a fraction of a second per epoch."""
    base = dict(data="embedded", n_train=240, n_test=100, hidden=[32], latent_dim=4, batch_size=40, epochs=2,
                seed=3, figures=False, lr=3e-3)
    base.update(over)
    return make_config(**base)


def quiet(*_):
    pass


def _params(run_dir):
    return ckpt.load(Path(run_dir) / "checkpoint.npz")["model"]


def _metrics(run_dir):
    rows = [json.loads(s) for s in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    for r in rows:  # wall-clock times differ between runs; everything else must not
        for k in ("train_seconds", "eval_seconds", "elapsed_seconds", "cpu_seconds"):
            r.pop(k)
    return rows


def _assert_same_params(a, b):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_training_lowers_the_loss(tmp_path):
    r = train(tiny(epochs=4), tmp_path / "run", progress=False, log=quiet)
    assert r.status == "completed" and r.epochs_done == 4 and r.global_step == 4 * 6
    m = r.metrics
    assert m[-1]["train_loss"] < m[0]["train_loss"] - 20
    assert m[-1]["test_loss"] < m[0]["test_loss"] - 20
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "metrics.jsonl", "checkpoint.npz"} <= files
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data_source"] == "embedded" and cfg["model"]["latent_dim"] == 4
    model, config, meta = load_run(tmp_path / "run")
    assert meta["epoch"] == 4 and config.n_train == 240
    _assert_same_params({k: sv.to_numpy(v) for k, v in model.state_dict().items()}, _params(tmp_path / "run"))


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_resume_at_an_epoch_boundary_is_exact(tmp_path, backend):
    train(tiny(epochs=3, backend=backend), tmp_path / "full", progress=False, log=quiet)
    r1 = train(tiny(epochs=1, backend=backend), tmp_path / "part", progress=False, log=quiet)
    assert r1.epochs_done == 1
    r2 = train(run_dir=tmp_path / "part", resume=True, epochs=3, progress=False, log=quiet)
    assert r2.epochs_done == 3 and r2.global_step == 18
    _assert_same_params(_params(tmp_path / "full"), _params(tmp_path / "part"))
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "part")
    ck_full = ckpt.load(tmp_path / "full" / "checkpoint.npz")
    ck_part = ckpt.load(tmp_path / "part" / "checkpoint.npz")
    assert ck_full["optimizer"]["state"][0]["step"] == ck_part["optimizer"]["state"][0]["step"] == 18
    np.testing.assert_array_equal(ck_full["optimizer"]["state"][3]["exp_avg_sq"], ck_part["optimizer"]["state"][3]["exp_avg_sq"])


def test_same_numbers_on_every_backend(tmp_path):
    """One code path: the test device (array-api-strict) trains to the same parameters as NumPy."""
    a = train(tiny(epochs=1, backend="numpy"), tmp_path / "np", progress=False, log=quiet)
    b = train(tiny(epochs=1, backend="array_api_strict"), tmp_path / "strict", progress=False, log=quiet)
    pa, pb = _params(tmp_path / "np"), _params(tmp_path / "strict")
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(a.metrics[0]["test_loss"], b.metrics[0]["test_loss"], rtol=1e-5)


def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(tmp_path):
    """Dynamic binarization, a warm-up, a step schedule and clipping: every piece of state must come back."""
    over = dict(epochs=3, warmup_epochs=2.0, schedule="step", step_size=1, gamma=0.7, clip_grad=50.0)
    train(tiny(**over), tmp_path / "full", progress=False, log=quiet)

    def interrupt(trainer, info):
        if info["step"] == 9:  # epoch 2, batch 3 of 6
            signal.raise_signal(signal.SIGINT)

    lines = []
    r = train(tiny(**over), tmp_path / "part", progress=False, log=lines.append, callback=interrupt)
    assert r.status == "interrupted" and r.global_step == 9
    assert any("interrupt" in s for s in lines) and any("--resume" in s for s in lines)
    meta = ckpt.read_metadata(tmp_path / "part" / "checkpoint.npz")
    assert (meta["epoch"], meta["global_step"]) == (1, 9)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    train(run_dir=tmp_path / "part", resume=True, progress=False, log=quiet)
    _assert_same_params(_params(tmp_path / "full"), _params(tmp_path / "part"))
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "part")


@pytest.mark.parametrize("validate", [True, False])
def test_nan_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, validate):
    seen = {}

    def poison(trainer, info):
        if info["step"] == 7:  # first step of epoch 2: the checkpoint of epoch 1 exists
            seen["ckpt"] = (tmp_path / "run" / "checkpoint.npz").read_bytes()
        if info["step"] == 8:
            w = trainer.model.encoder.body[0].weight
            w.data = w.data * np.float32("nan")

    with pytest.raises(TrainingDiverged) as err:
        train(tiny(epochs=3, validate_args=validate), tmp_path / "run", progress=False, log=quiet, callback=poison)
    msg = str(err.value)
    assert "step 9 (epoch 2, batch 3 of 6)" in msg, msg
    assert "nan" in msg.lower() and "checkpoint" in msg and "after epoch 1" in msg
    assert err.value.step == 9 and err.value.epoch == 2
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == seen["ckpt"]
    good = _params(tmp_path / "run")
    assert all(np.all(np.isfinite(v)) for v in good.values())
    assert len(_metrics(tmp_path / "run")) == 1
    # and the run can be resumed from there
    r = train(run_dir=tmp_path / "run", resume=True, epochs=2, progress=False, log=quiet)
    assert r.status == "completed" and r.epochs_done == 2


def test_beta_warmup_and_free_bits_are_applied(tmp_path):
    r = train(tiny(epochs=2, beta=0.5), tmp_path / "b", progress=False, log=quiet)
    for m in r.metrics:
        assert m["beta"] == 0.5
        # the training loss is -(rec - beta KL), not the ELBO: beta reaches the objective
        np.testing.assert_allclose(m["train_loss"], -(m["train_rec"] - 0.5 * m["train_kl"]), rtol=1e-5)
        assert m["train_kl"] > 0.1  # so that the check above tells beta = 0.5 from beta = 1
    c = tiny(beta=2.0, warmup_epochs=4)
    assert [beta_at(c, p) for p in (0, 1, 2, 4, 9)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    r = train(tiny(epochs=1, free_bits=5.0), tmp_path / "fb", progress=False, log=quiet)
    m = r.metrics[0]
    # each of the 4 dims is charged at least 5 nats: loss >= -rec + 4 * 5 - (per-batch averaging slack)
    assert m["train_loss"] >= -m["train_rec"] + 4 * 5.0 - 1e-3


def test_time_budget_stops_at_an_epoch_boundary(tmp_path):
    r = train(tiny(epochs=50, time_budget=1e-6), tmp_path / "run", progress=False, log=quiet)
    assert r.status == "budget" and r.epochs_done == 1
    assert ckpt.read_metadata(tmp_path / "run" / "checkpoint.npz")["epoch"] == 1


def test_gaussian_likelihood_and_fixed_binarization_train(tmp_path):
    c = tiny(binarize="grey", likelihood="gaussian", gaussian_scale="learned", epochs=2, lr=1e-3)
    r = train(c, tmp_path / "g", progress=False, log=quiet)
    assert np.isfinite(r.metrics[-1]["test_loss"])
    names = [n for n, _ in r.model.named_parameters()]
    assert "likelihood.log_scale" in names
    r = train(tiny(binarize="fixed", validation=40, epochs=1), tmp_path / "f", progress=False, log=quiet)
    assert "val_loss" in r.metrics[0]


def test_refuses_to_overwrite_a_run_and_checks_options(tmp_path):
    train(tiny(epochs=1), tmp_path / "run", progress=False, log=quiet)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny(epochs=1), tmp_path / "run", progress=False, log=quiet)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        train(run_dir=tmp_path / "empty", resume=True, progress=False, log=quiet)
    with pytest.raises(ValueError, match="batch_size"):
        make_config(batch_size=0)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_config(schedule="cosine")
    with pytest.raises(ValueError, match="unknown training option"):
        make_config(learning_rate=1.0)


def test_auto_data_falls_back_to_the_embedded_subset_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    lines = []
    r = train(tiny(data="auto", epochs=1), tmp_path / "run", progress=False, log=lines.append)
    assert any("embedded subset" in s and "--data-dir" in s for s in lines)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_source"] == "embedded"
    assert r.status == "completed"


@pytest.mark.skipif(not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(), reason="full MNIST not available")
def test_data_dir_uses_the_full_mnist(tmp_path):
    lines = []
    r = train(tiny(data="auto", data_dir=str(MNIST_DIR), epochs=1, n_test=None), tmp_path / "run",
              progress=False, log=lines.append)
    assert not any("embedded" in s for s in lines)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data_source"] == "mnist"
    model, config, meta = load_run(tmp_path / "run")
    assert meta["data_source"] == "mnist"
    assert r.metrics[0]["test_loss"] > 0
