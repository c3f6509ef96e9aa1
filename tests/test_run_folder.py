"""The run folder under concurrent, damaged and interrupted use: one writer at a time, a torn
metrics line, a foreign folder, a run that died in its first epoch, SIGTERM, and inputs refused
before anything is written (docs/training.md#what-survives-what)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchvae.cli import main
from scratchvae.train import make_config, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "embedded", "--n-train", "200", "--n-test", "50", "--hidden", "16", "--latent", "2",
        "--no-progress", "--no-figures"]


def quiet(*_):
    pass


def tiny(**over):
    base = dict(data="embedded", n_train=200, n_test=50, hidden=[16], latent_dim=2, batch_size=50, epochs=1,
                seed=1, figures=False)
    base.update(over)
    return make_config(**base)


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    return [sys.executable, "-m", "scratchvae", *args], env


def _start_slow_run(run, *extra):
    """A training run that goes on until killed (many epochs of small batches); returns once it holds the folder."""
    cmd, env = _cli("train", *TINY, "--batch-size", "10", "--epochs", "100000", "--out", str(run), *extra)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (run / "checkpoint.npz").is_file():
        if p.poll() is not None or time.time() > deadline:
            p.kill()
            raise AssertionError(f"the slow run did not start: {p.communicate()}")
        time.sleep(0.05)
    return p


def _stop(p):
    if p.poll() is None:
        p.kill()
    p.communicate()


# -- 1. one writer per run folder ------------------------------------------------------------------

def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    first = _start_slow_run(run)
    try:
        for args in (["train", *TINY, "--epochs", "1", "--out", str(run)],
                     ["train", "--resume", str(run), "--no-progress", "--no-figures"]):
            cmd, env = _cli(*args)
            second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
            assert second.returncode != 0, second
            assert str(first.pid) in second.stderr and "in use" in second.stderr, second.stderr
            assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        # reading the folder is allowed; writing eval.json into it is not
        ev = ["evaluate", str(run), "--k", "0", "--n-test", "10", "--no-progress"]
        cmd, env = _cli(*ev)
        refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and str(first.pid) in refused.stderr, refused.stderr
        cmd, env = _cli(*ev, "--out", str(tmp_path / "eval.json"))
        elsewhere = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert first.poll() is None  # the first run was not disturbed
    finally:
        _stop(first)
    # the OS released the lock of the killed process: the run can be resumed at once
    assert main(["train", "--resume", str(run), "--epochs", "1", "--no-progress", "--no-figures"]) == 0


def test_the_lock_is_released_after_a_run_and_is_exclusive_in_process(tmp_path):
    from scratchvae.train import run_folder

    run = tmp_path / "run"
    train(tiny(), run, progress=False, log=quiet)
    with run_folder.lock(run):
        with pytest.raises(run_folder.RunFolderBusy, match=f"process {os.getpid()}"):
            train(run_dir=run, resume=True, epochs=2, progress=False, log=quiet)
    r = train(run_dir=run, resume=True, epochs=2, progress=False, log=quiet)
    assert r.epochs_done == 2


# -- 2. a torn metrics.jsonl ---------------------------------------------------------------------

def _rows(run):
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_and_restored_from_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 0
    whole = _rows(run)
    path = run / "metrics.jsonl"
    os.truncate(path, path.stat().st_size - 100)  # `truncate -s -100`: the last line torn, no newline
    capsys.readouterr()
    assert main(["plot", str(run), "--what", "curves", "--out", str(tmp_path / "figs")]) == 0
    err = capsys.readouterr().err
    assert "metrics.jsonl" in err and "line 2" in err and "torn" in err, err
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress", "--no-figures"]) == 0
    out = capsys.readouterr()
    assert "line 2" in out.out + out.err
    rows = _rows(run)  # epoch 2's row came back from the checkpoint, then epoch 3 was appended
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[:2] == whole


def test_a_corrupt_middle_metrics_line_names_the_file_and_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "3", "--out", str(run)]) == 0
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:20] + "\n"
    path.write_text("".join(lines))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "4", "--no-progress", "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert f"{path}, line 2" in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before


# -- 3. a folder that is not a run -----------------------------------------------------------------

def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def test_out_into_a_non_empty_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path, capsys):
    u = tmp_path / "u"
    u.mkdir()
    (u / "metrics.jsonl").write_text("important\n")
    (u / "notes").mkdir()
    before = _snapshot(u)
    assert main(["train", *TINY, "--epochs", "1", "--out", str(u)]) == 1
    err = capsys.readouterr().err
    assert "not a run folder" in err and "--out" in err and "empty" in err, err
    assert _snapshot(u) == before
    # an empty folder is fine, and so is a file name where a folder should be: refused, untouched
    (tmp_path / "empty").mkdir()
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "empty")]) == 0
    (tmp_path / "f").write_text("x")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "f")]) == 1
    assert "not a folder" in capsys.readouterr().err and (tmp_path / "f").read_text() == "x"


# -- 5. a run that died in its first epoch --------------------------------------------------------

def _die_in_first_epoch(run):
    def boom(trainer, info):
        if info["step"] == 2:
            raise RuntimeError("the machine fell over")

    with pytest.raises(RuntimeError, match="fell over"):
        train(tiny(epochs=2), run, progress=False, log=quiet, callback=boom)
    assert (run / "config.json").is_file() and not (run / "checkpoint.npz").exists()


@pytest.mark.parametrize("how", ["again", "resume"])
def test_a_run_that_died_in_its_first_epoch_starts_afresh(tmp_path, how):
    from scratchvae import checkpoint as ckpt

    train(tiny(epochs=2), tmp_path / "ref", progress=False, log=quiet)
    run = tmp_path / "run"
    _die_in_first_epoch(run)
    lines = []
    if how == "again":
        r = train(tiny(epochs=2), run, progress=False, log=lines.append)
    else:
        r = train(run_dir=run, resume=True, progress=False, log=lines.append)
    assert r.status == "completed" and r.epochs_done == 2
    assert any("never finished" in s and "afresh" in s for s in lines), lines
    a, b = ckpt.load(tmp_path / "ref" / "checkpoint.npz")["model"], ckpt.load(run / "checkpoint.npz")["model"]
    assert all((a[k] == b[k]).all() for k in a)
    assert [row["epoch"] for row in _rows(run)] == [1, 2]


# -- 6. SIGTERM is handled like Ctrl-C ---------------------------------------------------------------

def test_sigterm_saves_a_checkpoint_at_a_step_boundary_and_says_how_to_resume(tmp_path):
    from scratchvae import checkpoint as ckpt

    run = tmp_path / "run"
    p = _start_slow_run(run)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=60)
    finally:
        _stop(p)
    assert p.returncode == 128 + signal.SIGTERM, (out, err)
    assert "SIGTERM" in out and f"--resume {run}" in out, out
    meta = ckpt.read_metadata(run / "checkpoint.npz")
    assert f"step {meta['global_step']}" in out
    assert main(["train", "--resume", str(run), "--epochs", str(meta["epoch"] + 1), "--no-progress",
                 "--no-figures"]) == 0


# -- 7. inputs refused before anything is written -----------------------------------------------

@pytest.mark.parametrize("option", ["--lr", "--beta", "--free-bits", "--weight-decay", "--adam-eps", "--gamma",
                                    "--momentum", "--warmup-epochs", "--clip-grad", "--fixed-scale"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_numbers_are_refused(tmp_path, capsys, option, value):
    assert main(["train", *TINY, f"{option}={value}", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert option[2:].replace("-", "_") in err and "finite" in err, err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def a_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("argv, words", [
    (["train", "--n-test", "0"], ["n_test must be a positive integer", "got 0"]),
    (["train", "--n-test", "-5"], ["n_test must be a positive integer", "got -5"]),
    (["train", "--batch-size", "0"], ["batch_size must be a positive integer", "got 0"]),
    (["train", "--batch-size", "-1"], ["batch_size must be a positive integer", "got -1"]),
    (["evaluate", "RUN", "--n-test", "-5"], ["n_test must be a positive integer", "got -5"]),
    (["evaluate", "RUN", "--n-test", "0"], ["n_test must be a positive integer", "got 0"]),
    (["evaluate", "RUN", "--batch-size", "0"], ["batch_size must be a positive integer", "got 0"]),
    (["evaluate", "RUN", "--batch-size", "-1"], ["batch_size must be a positive integer", "got -1"]),
    (["evaluate", "RUN", "--k", "-1"], ["k must be an integer >= 0", "got -1"]),
    (["plot", "RUN", "--n-test", "-1990"], ["n_test must be a positive integer", "got -1990"]),
    (["plot", "RUN", "--n-test", "0"], ["n_test must be a positive integer", "got 0"]),
    (["sample", "RUN", "-n", "0"], ["n must be a positive integer", "got 0"]),
])
def test_counts_are_checked_the_same_way_by_every_command(tmp_path, capsys, a_run, argv, words):
    argv = [str(a_run) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv = ["train", *TINY, *argv[1:], "--out", str(tmp_path / "new")]
    before = _snapshot(a_run)
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("scratchvae: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    assert _snapshot(a_run) == before and not (tmp_path / "new").exists()


def test_a_failed_resume_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    data = (run / "checkpoint.npz").read_bytes()
    (run / "checkpoint.npz").write_bytes(data[: len(data) // 2])  # a damaged checkpoint
    before = _snapshot(run)
    assert main(["train", "--resume", str(run), "--epochs", "5", "--no-progress", "--no-figures"]) == 1
    assert "checkpoint.npz" in capsys.readouterr().err
    assert _snapshot(run) == before  # config.json still says 1 epoch
    assert main(["train", "--resume", str(run), "--epochs", "0"]) == 1
    assert _snapshot(run) == before


def test_a_failed_text_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from scratchvae import _fileio

    path = tmp_path / "metrics.jsonl"
    _fileio.write_text_atomic(path, "old\n")

    def broken(*_):
        raise OSError("disk full")

    monkeypatch.setattr(_fileio.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        _fileio.write_text_atomic(path, "new\n")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


# -- 8. advice that can be followed, no files left behind ------------------------------------------

def _params_of(path):
    import scratchvae as sv

    return sv.load(path)["model"]


def _assert_same_params(a, b):
    import numpy as np

    pa, pb = _params_of(a), _params_of(b)
    assert sorted(pa) == sorted(pb)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


def _temporaries(run):
    return sorted(p.name for p in Path(run).iterdir() if p.name.endswith((".tmp", ".part")))


def test_a_full_disk_during_a_save_names_the_file_and_says_the_last_checkpoint_is_intact(tmp_path, capsys,
                                                                                        monkeypatch):
    import errno

    from scratchvae import checkpoint as ckpt

    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    before = (run / "checkpoint.npz").read_bytes()

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "_write_array", full)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert f"could not write {run / 'checkpoint.npz'}: no space left on the device ([Errno 28]" in err
    assert f"the last checkpoint {run / 'checkpoint.npz'} (after epoch 1) is intact" in err
    assert f"scratchvae train --resume {run}" in err
    assert (run / "checkpoint.npz").read_bytes() == before and _temporaries(run) == []
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--no-figures"]) == 0
    ref = tmp_path / "ref"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(ref)]) == 0
    _assert_same_params(run / "checkpoint.npz", ref / "checkpoint.npz")


def test_the_last_checkpoints_are_kept_and_resume_falls_back_to_the_newest_that_loads(tmp_path, capsys):
    import scratchvae as sv

    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 0
    assert sv.checkpoint.read_metadata(run / "checkpoint-prev.npz")["epoch"] == 1
    assert sv.checkpoint.read_metadata(run / "checkpoint.npz")["epoch"] == 2
    data = (run / "checkpoint.npz").read_bytes()
    (run / "checkpoint.npz").write_bytes(data[: len(data) // 2])  # damaged: the advice "use an earlier one" holds
    capsys.readouterr()
    assert main(["evaluate", str(run), "--k", "0", "--out", str(tmp_path / "e.json"), "--no-progress"]) == 1
    assert f"pass one as RUN, e.g. {run / 'checkpoint-prev.npz'}" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint.npz: scratchvae.load:" in out and "resuming from the older checkpoint" in out
    assert "(after epoch 1) instead" in out and "resuming " + str(run) + " at epoch 2" in out
    ref = tmp_path / "ref"
    assert main(["train", *TINY, "--epochs", "3", "--out", str(ref)]) == 0
    _assert_same_params(run / "checkpoint.npz", ref / "checkpoint.npz")
    assert [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    # --keep-checkpoints: 1 keeps none older, 3 keeps two older
    for keep, names in [(1, ["checkpoint.npz"]), (3, ["checkpoint-prev.npz", "checkpoint-prev2.npz", "checkpoint.npz"])]:
        r = tmp_path / f"keep{keep}"
        assert main(["train", *TINY, "--epochs", "3", "--keep-checkpoints", str(keep), "--out", str(r)]) == 0
        assert sorted(p.name for p in r.glob("checkpoint*.npz")) == names
    assert sv.checkpoint.read_metadata(tmp_path / "keep3" / "checkpoint-prev2.npz")["epoch"] == 1
    assert main(["train", *TINY, "--keep-checkpoints", "0", "--out", str(tmp_path / "k0")]) == 1


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_dead_writers_are_removed_on_the_next_start(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    dead, alive = _dead_pid(), os.getppid()
    stale = [f".checkpoint.npz.{dead}.0a1b2c3d.tmp", f".metrics.jsonl.{dead}.tmp", f".config.json.{dead}.tmp"]
    for name in stale + [f".checkpoint.npz.{alive}.0a1b2c3d.tmp"]:
        (run / name).write_bytes(b"partial")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "removed 3 temporary file(s) left by a process that died while writing" in out
    assert _temporaries(run) == [f".checkpoint.npz.{alive}.0a1b2c3d.tmp"]  # its writer may still be at work


def test_a_sha256_mismatch_says_what_to_do_on_the_command_line(tmp_path, capsys):
    import gzip

    d = _write_mnist(tmp_path / "mn", gz=True)
    capsys.readouterr()
    assert main(["train", *TINY[2:], "--data-dir", str(d), "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "does not match the published MNIST file" in err and "pass --no-verify" in err
    assert main(["train", *TINY[2:], "--data-dir", str(d), "--no-verify", "--out", str(tmp_path / "b")]) == 0
    assert main(["evaluate", str(tmp_path / "b"), "--k", "0", "--no-progress"]) == 0
    assert gzip  # the files really are .gz


# -- 4. a relative or moved --data-dir --------------------------------------------------------------

def _idx(magic, shape, payload):
    import struct

    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape) + payload


def _write_mnist(folder, seed=0, gz=False):
    """Small MNIST-format files (uncompressed, or .gz that are not the published ones) in ``folder``."""
    import gzip

    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for prefix, n in [("train", 200), ("t10k", 50)]:
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, arr, magic in [("images-idx3", imgs, 0x803), ("labels-idx1", labs, 0x801)]:
            blob = _idx(magic, arr.shape, arr.tobytes())
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(blob, mtime=0))
            else:
                (folder / name).write_bytes(blob)
    return folder


def test_a_relative_data_dir_is_saved_absolute_and_a_moved_one_can_be_given_again(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_mnist(tmp_path / "mn")
    opts = TINY[2:]  # no --data embedded
    # --no-verify: these are deliberately not the published files (their sha256 would not match)
    assert main(["train", *opts, "--data-dir", "mn", "--no-verify", "--epochs", "1", "--out", "run"]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data_dir"] == str(tmp_path / "mn") and cfg["data_source"] == "mnist"
    assert set(cfg["data_sha256"]) == {"train", "test"}
    # another working directory: nothing is stranded
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    run = str(tmp_path / "run")
    assert main(["evaluate", run, "--k", "0", "--no-progress"]) == 0
    # the data moves: every command says what to pass, and takes it
    (tmp_path / "mn").rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["evaluate", run, "--k", "0", "--no-progress"]) == 1
    assert "pass its new folder: --data-dir NEWDIR" in capsys.readouterr().err
    moved = str(tmp_path / "moved")
    assert main(["evaluate", run, "--k", "0", "--no-progress", "--data-dir", moved]) == 0
    assert main(["plot", run, "--what", "curves", "reconstructions", "--data-dir", moved]) == 0
    assert main(["sample", run, "-n", "4", "--data-dir", moved]) == 0
    assert main(["train", "--resume", run, "--epochs", "2", "--data-dir", moved, "--no-progress", "--no-figures"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_dir"] == moved
    # different data under the right names is refused, for every command that reads it
    _write_mnist(tmp_path / "other", seed=1)
    capsys.readouterr()
    for argv in (["evaluate", run, "--k", "0", "--no-progress"], ["plot", run, "--what", "reconstructions"],
                 ["train", "--resume", run, "--epochs", "3", "--no-progress", "--no-figures"]):
        assert main([*argv, "--data-dir", str(tmp_path / "other")]) == 1
        assert "are not the data this run was trained on" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_dir"] == moved
    # a --data-dir for a run on the embedded subset is an error, not ignored
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "emb")]) == 0
    assert main(["evaluate", str(tmp_path / "emb"), "--k", "0", "--data-dir", moved]) == 1
    assert "embedded subset; --data-dir does not apply" in capsys.readouterr().err


def test_a_save_killed_after_its_rotation_leaves_no_temporary_on_the_next_save(tmp_path):
    """Found by tests/test_faults.py: after a kill between the rotation and the new checkpoint,
    checkpoint-prev.npz and checkpoint.npz are one file (a hard link); the next save's rotation
    must not leave its temporary behind (rename(a, b) does nothing when a and b are one file)."""
    import scratchvae as sv

    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    os.link(run / "checkpoint.npz", run / "checkpoint-prev.npz")  # what the killed rotation left
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--no-figures"]) == 0
    assert _temporaries(run) == []
    assert sv.checkpoint.read_metadata(run / "checkpoint-prev.npz")["epoch"] == 1
    assert sv.checkpoint.read_metadata(run / "checkpoint.npz")["epoch"] == 2
