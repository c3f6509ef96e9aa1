"""Fault injection: a training subprocess killed at random points (SIGKILL, SIGTERM, SIGINT),
including inside the checkpoint write, must leave a run folder that loads, that ``--resume``
finishes, and whose final parameters equal an uninterrupted run's, bit for bit
(docs/training.md#what-survives-what).

A few kills run in the default suite; ``-m slow`` runs a few dozen.  Each test prints its counts
(kills tried / runs intact, and where the kills landed); run with ``-s`` to see them.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.checkpoint import FAULT_PAUSE_ENV
from scratchvae.train import load_run

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
RUN = ["--data", "embedded", "--n-train", "200", "--n-test", "50", "--hidden", "16", "--latent", "2",
       "--batch-size", "10", "--no-progress", "--no-figures", "--seed", "5"]
SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


def _env(pause=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop(FAULT_PAUSE_ENV, None)
    if pause:
        env[FAULT_PAUSE_ENV] = str(pause)
    return env


def _cli(*args, pause=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "scratchvae", *args], env=_env(pause), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The parameters and metrics of the run never interrupted (in a subprocess, like the others)."""
    run = tmp_path_factory.mktemp("faults") / "ref"
    rc, out, err = _finish(_cli("train", *RUN, "--epochs", str(EPOCHS), "--out", str(run)))
    assert rc == 0, err
    return sv.load(run / "checkpoint.npz")["model"], _epochs(run)


def _epochs(run):
    return [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip()]


def _temporaries(run):
    return [p for p in run.iterdir() if p.name.endswith((".tmp", ".part"))] if run.is_dir() else []


def _kill_once(run: Path, rnd: random.Random):
    """Start a run and kill it at a random point; returns (signal name, where it landed)."""
    sig = rnd.choice(SIGNALS)
    inside_save = rnd.random() < 0.5
    pause = rnd.choice([0.05, 0.1, 0.2])
    p = _cli("train", *RUN, "--epochs", str(EPOCHS), "--out", str(run), pause=pause)
    where = "after the run ended"
    if inside_save:  # wait for a checkpoint's temporary file: the write is in progress
        deadline = time.time() + 30
        skip = rnd.randrange(EPOCHS)  # which save to kill inside
        seen = 0
        while p.poll() is None and time.time() < deadline:
            if any(t.name.startswith(".checkpoint.npz.") for t in _temporaries(run)):
                if seen == skip:
                    break
                seen += 1
                while p.poll() is None and any(t.name.startswith(".checkpoint.npz.") for t in _temporaries(run)):
                    time.sleep(0.002)
            time.sleep(0.002)
        time.sleep(rnd.uniform(0, pause / 2))
        where = "inside a checkpoint write"
    else:
        time.sleep(rnd.uniform(0.2, 0.5 + EPOCHS * (pause + 0.05)))
        where = "at a random time"
    if p.poll() is None:
        p.send_signal(sig)
    else:
        where = "after the run ended"
    rc, out, err = _finish(p)
    return sig.name, where, rc, out, err


def _recover(run: Path):
    """What a user does next: --resume (or, for a folder that never got its config.json, train again)."""
    if (run / "config.json").is_file():
        argv = ["train", "--resume", str(run), "--no-progress", "--no-figures"]
    else:
        argv = ["train", *RUN, "--epochs", str(EPOCHS), "--out", str(run)]
    return _finish(_cli(*argv))


def _check_loads(run: Path):
    """The run folder as left by the kill: every checkpoint in it loads, as does the model."""
    for ck in sorted(run.glob("checkpoint*.npz")):
        sv.load(ck)
    if (run / "checkpoint.npz").is_file():
        load_run(run)
    if (run / "metrics.jsonl").is_file():
        from scratchvae.train import read_metrics

        read_metrics(run, log=lambda *_: None)


def _campaign(tmp_path, reference, n, seed):
    params, epochs = reference
    rnd = random.Random(seed)
    tried, intact, failures, landed = 0, 0, [], {}
    for i in range(n):
        run = tmp_path / f"run{i}"
        sig, where, rc, out, err = _kill_once(run, rnd)
        tried += 1
        key = f"{sig} {where}"
        landed[key] = landed.get(key, 0) + 1
        try:
            _check_loads(run)
            rc2, out2, err2 = _recover(run)
            assert rc2 == 0, f"the resume failed (rc {rc2}): {err2.strip()[-400:]}"
            got = sv.load(run / "checkpoint.npz")["model"]
            assert sorted(got) == sorted(params)
            for k in params:
                np.testing.assert_array_equal(got[k], params[k], err_msg=k)
            assert _epochs(run) == epochs
            assert [t.name for t in _temporaries(run)] == []
            intact += 1
        except Exception as e:  # collect every failure, then report them all
            failures.append(f"run {i} ({key}, rc {rc}): {type(e).__name__}: {e}\n  stderr: {err.strip()[-300:]}")
    summary = f"fault injection: {tried} kills tried, {intact} runs intact; where: {landed}"
    print(summary)
    assert not failures, summary + "\n" + "\n".join(failures)
    return tried, intact


def test_random_kills_leave_a_run_that_resumes_exactly(tmp_path, reference):
    """The default suite's few kills: a SIGKILL inside a checkpoint write, then random ones."""
    tried, intact = _campaign(tmp_path, reference, n=4, seed=20261201)
    assert tried == intact == 4


@pytest.mark.slow
def test_many_random_kills_leave_a_run_that_resumes_exactly(tmp_path, reference):
    tried, intact = _campaign(tmp_path, reference, n=40, seed=7)
    assert tried == intact == 40


def test_a_sigkill_inside_the_save_leaves_the_previous_checkpoint_and_its_temporary_is_removed(tmp_path, reference):
    """The deterministic case: SIGKILL while the second checkpoint's temporary file is being written."""
    run = tmp_path / "run"
    p = _cli("train", *RUN, "--epochs", str(EPOCHS), "--out", str(run), pause=1)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "checkpoint.npz").is_file():
        time.sleep(0.01)
    while time.time() < deadline and not any(t.name.startswith(".checkpoint.npz.") for t in _temporaries(run)):
        time.sleep(0.01)
    p.kill()
    _finish(p)
    left = [t.name for t in _temporaries(run)]
    assert len(left) == 1 and left[0].startswith(f".checkpoint.npz.{p.pid}.")
    assert sv.checkpoint.read_metadata(run / "checkpoint.npz")["epoch"] == 1  # the previous one, whole
    rc, out, err = _recover(run)
    assert rc == 0, err
    assert "removed 1 temporary file(s)" in out
    got = sv.load(run / "checkpoint.npz")["model"]
    for k, v in reference[0].items():
        np.testing.assert_array_equal(got[k], v)
