"""The command line: --help, a tiny train + evaluate + plot + sample run, --resume, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchvae.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "embedded", "--n-train", "200", "--n-test", "100", "--hidden", "32", "--latent", "2",
        "--batch-size", "50", "--no-progress", "--seed", "1"]


def test_help_for_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("train", "evaluate", "sample", "plot", "examples:"):
        assert word in out
    for cmd, words in {"train": ["--preset", "pytorch-example", "--resume", "--data-dir", "--beta", "--free-bits",
                                 "--warmup-epochs", "--clip-grad", "--backend", "--time-budget", "run folder"],
                       "evaluate": ["--k", "--n-test", "importance"],
                       "sample": ["-n", "--npy"], "plot": ["--what", "manifold"]}.items():
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        for w in words:
            assert w in out, (cmd, w)


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "scratchvae", "--help"], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0 and "usage: scratchvae" in out.stdout


def test_usage_errors_return_2(capsys):
    assert main([]) == 2
    assert main(["train", "--binarize", "gray"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_tiny_train_evaluate_plot_sample(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "run folder" in out
    figs = {p.name for p in (run / "figures").iterdir()}
    assert figs == {"reconstructions.png", "samples.png", "latent.png", "manifold.png", "curves.png"}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2

    assert main(["evaluate", str(run), "--k", "20", "--n-test", "50", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "log p(x), importance sampled, k=20" in out and "active units" in out
    res = json.loads((run / "eval.json").read_text())
    assert res["n"] == 50 and res["k"] == 20 and res["latent_dim"] == 2
    assert res["nll"] <= res["loss"] + 1.0  # log p(x) is estimated above the ELBO (up to noise)
    assert len(res["kl_per_dim"]) == 2

    for f in (run / "figures").iterdir():
        f.unlink()
    assert main(["plot", str(run), "--what", "samples", "curves"]) == 0
    assert {p.name for p in (run / "figures").iterdir()} == {"samples.png", "curves.png"}
    assert (run / "figures" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["sample", str(run / "checkpoint.npz"), "-n", "10", "--out", str(tmp_path / "s.png"),
                 "--npy", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (10, 784) and 0 <= s.min() and s.max() <= 1
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_resume_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--no-figures", "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "epoch 2/2" in out
    rows = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    # settings other than --epochs / --time-budget cannot change on resume
    assert main(["train", "--resume", str(run), "--lr", "0.1"]) == 1
    assert "--lr" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["evaluate", "does/not/exist"], ["cannot load a model", "does/not/exist"]),
    (["train", "--epochs", "0"], ["epochs must be a positive integer"]),
    (["train", "--data", "embedded", "--binarize", "grey"], ["--bernoulli-on-grey"]),
])
def test_errors_are_one_line(tmp_path, capsys, argv, words, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("scratchvae: error: ") and err.count("\n") == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_divergence_exits_with_3_and_names_the_step(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", *TINY, "--epochs", "3", "--lr", "1e30", "--no-figures", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "scratchvae: error: training stopped" in err and "step " in err
