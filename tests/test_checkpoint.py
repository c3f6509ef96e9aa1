"""scratchvae.checkpoint: exact round trips of nested training state, the .npz layout, atomic
writes under a failure part-way through, clear errors for damaged or foreign files, and moving a
checkpoint between backends."""

import json
import math
import os
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchvae as sv
import scratchvae.nn as nn
import scratchvae.optim as optim
from scratchvae import checkpoint
from scratchvae.random import Generator


def assert_same(a, b, where="state"):
    """Deep equality that also checks container types, array dtypes and NaNs."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert type(k) is type(list(b)[list(a).index(k)])
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
        if isinstance(a, float):
            assert math.copysign(1, a) == math.copysign(1, b), where


def _rich_state():
    rng = np.random.default_rng(0)
    return {
        "model": {"enc.0.weight": rng.standard_normal((3, 2)).astype(np.float32),
                  "enc.0.bias": np.zeros(2, np.float32)},
        "optim": {"state": {0: {"step": 7, "exp_avg": rng.standard_normal(3)}},
                  "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False, "params": [0]}]},
        "epoch": 3, "best": -0.0, "loss": float("nan"), "big": 2 ** 70, "inf": float("inf"),
        "name": "vae ünïcode", "none": None, "flag": True,
        "ints": np.arange(4, dtype=np.int64), "mask": np.array([True, False]),
        "scalar": np.float32(1.5), "zero_d": np.array(2.5), "empty": np.zeros((0, 3)),
        "__private": 1, "a.b": np.ones(1), "a": {"b": np.zeros(1)},  # "a.b" twice as a dotted path
        "nested": [1, (2, [np.ones(2)]), {"k": []}, {}],
    }


def test_round_trip_is_exact(tmp_path):
    state = _rich_state()
    checkpoint.save(state, tmp_path / "c.npz")
    back = checkpoint.load(tmp_path / "c.npz")
    assert_same(state, back)
    assert isinstance(back["model"]["enc.0.weight"], np.ndarray)


def _arrays():
    return hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int32, np.bool_]),
                      shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))


_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(), st.text(max_size=4),
                    _arrays())
_trees = st.recursive(
    _leaves,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.tuples(kids, kids),
                           st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-3, 3)), kids, max_size=3)),
    max_leaves=8,
)


@given(_trees)
def test_round_trip_property(state):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.npz")
        checkpoint.save(state, path)
        assert_same(state, checkpoint.load(path))


def test_npz_layout_is_plain_numpy(tmp_path):
    model = nn.MLP([3, 4, 2])
    checkpoint.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {"__scratchvae__", "model.0.weight", "model.0.bias", "model.2.weight",
                                  "model.2.bias"}
        np.testing.assert_array_equal(npz["model.2.weight"], model[2].weight.numpy())
        meta = json.loads(str(npz["__scratchvae__"][()]))
    assert meta["format"] == "scratchvae-checkpoint" and meta["tree"]["epoch"] == 1


def test_metadata(tmp_path, float64):
    sv.set_backend("numpy")
    model = nn.Linear(2, 3)
    cfg = {"model": "VAE", "sizes": [784, 200, 50], "k": 5}
    checkpoint.save({"model": model.state_dict()}, tmp_path / "c.npz", metadata={"config": cfg, "note": "x"})
    meta = checkpoint.read_metadata(tmp_path / "c.npz")
    assert meta["config"] == cfg and meta["note"] == "x"
    assert meta["format_version"] == checkpoint.FORMAT_VERSION
    assert meta["backend"] == "numpy" and meta["dtype"] == "float64"
    assert meta["scratchvae_version"] == sv.__version__ and "tree" not in meta
    state, meta2 = checkpoint.load(tmp_path / "c.npz", with_metadata=True)
    assert meta2["config"] == cfg and list(state) == ["model"]


def test_bad_state_or_metadata_writes_nothing(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save({"v": 1}, path)
    with pytest.raises(TypeError, match=r"cannot store model\.f of type builtins\.set"):
        checkpoint.save({"model": {"f": {1, 2}}}, path)
    with pytest.raises(TypeError, match="without pickle"):
        checkpoint.save({"o": np.array([object()])}, path)
    with pytest.raises(TypeError, match="key 1.5 of type float"):
        checkpoint.save({"d": {1.5: 1}}, path)
    with pytest.raises(ValueError, match="'format_version' is reserved"):
        checkpoint.save({"v": 2}, path, metadata={"format_version": 3})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        checkpoint.save({"v": 2}, path, metadata={"config": object()})
    assert checkpoint.load(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["c.npz"]


def test_tensors_and_parameters_are_stored_as_arrays(tmp_path):
    p = nn.Parameter(np.arange(3.0))
    checkpoint.save({"p": p, "t": sv.tensor([1.0, 2.0])}, tmp_path / "c")  # no suffix added
    back = checkpoint.load(tmp_path / "c")
    np.testing.assert_array_equal(back["p"], [0.0, 1.0, 2.0])
    assert back["t"].dtype == np.dtype(sv.get_default_dtype())


# --------------------------------------------------------------------------------------------------
# Atomic writes

@pytest.mark.parametrize("exc", [OSError("No space left on device (simulated)"), KeyboardInterrupt()],
                         ids=["oserror", "interrupt"])
def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch, exc):
    path = tmp_path / "ckpt.npz"
    good = {"model": {"w": np.arange(6.0).reshape(2, 3), "b": np.ones(3)}, "epoch": 1}
    checkpoint.save(good, path)
    size_before = path.stat().st_size

    real = checkpoint._write_array
    calls = []

    def failing_writer(zf, key, array):
        calls.append(key)
        if len(calls) == 3:  # metadata and one array written, now fail half-way through the next
            with zf.open(key + ".npy", "w") as member:
                member.write(b"\x93NUMPY\x01\x00partial")
            temps = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
            assert len(temps) == 1 and temps[0].startswith(".ckpt.npz.")  # writing beside the target
            raise exc
        real(zf, key, array)

    monkeypatch.setattr(checkpoint, "_write_array", failing_writer)
    bad = {"model": {"w": np.zeros((2, 3)), "b": np.zeros(3)}, "epoch": 2}
    with pytest.raises(type(exc)):
        checkpoint.save(bad, path)
    assert len(calls) == 3
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # the temporary file was removed
    assert path.stat().st_size == size_before
    assert_same(checkpoint.load(path), good)


def test_failed_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    checkpoint.save({"epoch": 1}, path)

    def failing_replace(src, dst):
        raise OSError("rename failed (simulated)")

    monkeypatch.setattr(checkpoint.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        checkpoint.save({"epoch": 2}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert checkpoint.load(path) == {"epoch": 1}


def test_save_overwrites_and_fsyncs(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    checkpoint.save({"epoch": 1}, path)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    checkpoint.save({"epoch": 2}, path)
    assert checkpoint.load(path) == {"epoch": 2}
    assert len(synced) >= 1  # the file (and, where the platform allows, the folder)


# --------------------------------------------------------------------------------------------------
# Damaged and foreign files

@pytest.mark.parametrize("keep", [0.5, 0.97, 120], ids=["half", "tail_cut", "head_only"])
def test_truncated_file_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "ckpt.npz"
    checkpoint.save({"model": nn.MLP([20, 30, 10]).state_dict()}, path)
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    path.write_bytes(data[:n])
    with pytest.raises(ValueError, match=r"ckpt\.npz.*(truncated or corrupted|incomplete)"):
        checkpoint.load(path)


def test_corrupted_member_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.npz"
    checkpoint.save({"w": np.arange(1000.0)}, path)
    data = bytearray(path.read_bytes())
    i = data.index(np.arange(1000.0)[500:502].tobytes())  # inside the stored array
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"ckpt\.npz.*truncated or corrupted"):
        checkpoint.load(path)


def test_foreign_files_are_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*not a scratchvae checkpoint.*not a zip"):
        checkpoint.load(text)
    npy = tmp_path / "a.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(ValueError, match=r"a\.npy.*NumPy \.npy file"):
        checkpoint.load(npy)
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(3))
    with pytest.raises(ValueError, match=r"plain\.npz.*not a scratchvae checkpoint.*entries: w"):
        checkpoint.load(plain)
    with pytest.raises(ValueError, match="plain.npz"):
        checkpoint.read_metadata(plain)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, __scratchvae__=np.array('{"format": "other"}'))
    with pytest.raises(ValueError, match=r"wrong\.npz.*not scratchvae checkpoint metadata"):
        checkpoint.load(wrong)
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.npz")


def test_newer_format_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "future.npz"
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", checkpoint.FORMAT_VERSION + 1)
    checkpoint.save({"epoch": 1}, path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"future\.npz.*format version 2 by a newer scratchvae.*upgrade"):
        checkpoint.load(path)


def test_missing_member_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.npz"
    checkpoint.save({"a": np.ones(2), "b": np.zeros(2)}, path)
    cut = tmp_path / "cut.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(cut, "w") as dst:
        for info in src.infolist():
            if info.filename != "b.npy":
                dst.writestr(info, src.read(info))
    with pytest.raises(ValueError, match=r"cut\.npz.*incomplete.*'b'"):
        checkpoint.load(cut)


# --------------------------------------------------------------------------------------------------
# Across backends: saved from the strict non-CPU device (or a GPU), loaded on NumPy

def _train_a_bit(model, opt, x):
    for _ in range(3):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()


@pytest.mark.parametrize("source", [
    "array_api_strict",
    pytest.param("cupy", marks=pytest.mark.gpu),
])
def test_save_on_device_load_on_numpy(tmp_path, source):
    try:
        sv.set_backend(source)
    except sv.BackendError as e:
        pytest.skip(f"no GPU: {e}")
    try:
        xh = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
        model = nn.MLP([3, 5, 2], activation="tanh", generator=Generator(1))
        opt = optim.Adam(model.parameters(), lr=0.01)
        _train_a_bit(model, opt, sv.tensor(xh))
        y_dev = model(sv.tensor(xh)).numpy()
        checkpoint.save({"model": model.state_dict(), "optim": opt.state_dict()}, tmp_path / "c.npz")
        device_params = [p.numpy() for p in model.parameters()]
    finally:
        sv.set_backend("numpy")
    assert checkpoint.read_metadata(tmp_path / "c.npz")["backend"] == source
    state = checkpoint.load(tmp_path / "c.npz")
    assert all(type(v) is np.ndarray for v in state["model"].values())
    cpu = nn.MLP([3, 5, 2], activation="tanh", generator=Generator(2))
    cpu.load_state_dict(state["model"])
    for p, want in zip(cpu.parameters(), device_params):
        assert p.backend.name == "numpy"
        np.testing.assert_array_equal(p.numpy(), want)
    np.testing.assert_allclose(cpu(sv.tensor(xh)).numpy(), y_dev, rtol=1e-5, atol=1e-6)
    opt_cpu = optim.Adam(cpu.parameters(), lr=0.01)
    opt_cpu.load_state_dict(state["optim"])
    assert all(type(s["exp_avg"]) is np.ndarray for s in opt_cpu.state.values())
    _train_a_bit(cpu, opt_cpu, sv.tensor(xh))  # and training continues on the CPU


@pytest.mark.gpu
def test_save_on_numpy_load_on_cupy(tmp_path):
    try:
        sv.set_backend("cupy")
    except sv.BackendError as e:
        pytest.skip(f"no GPU: {e}")
    finally:
        sv.set_backend("numpy")
    model = nn.MLP([3, 5, 2], generator=Generator(1))
    checkpoint.save({"model": model.state_dict()}, tmp_path / "c.npz")
    gpu = nn.MLP([3, 5, 2], generator=Generator(2), backend="cupy")
    gpu.load_state_dict(checkpoint.load(tmp_path / "c.npz")["model"])
    for p, q in zip(gpu.parameters(), model.parameters()):
        assert p.backend.name == "cupy"
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_load_caps_uncompressed_size(tmp_path):
    """A small compressed file that expands past max_bytes is refused from the zip headers,
    before anything is read, with the cap to pass; raising the cap loads it."""
    path = tmp_path / "big.npz"
    sv.save({"w": np.zeros(2**20 // 8 * 3)}, path, compress=True)  # 3 MiB of zeros, a few KiB on disk
    assert os.path.getsize(path) < 2**16
    with pytest.raises(ValueError, match=r"expands to 3 MiB .* over the cap max_bytes=1048576 .*"
                                         r"raise the cap: scratchvae\.load\(path, max_bytes=\d+\)"):
        sv.load(path, max_bytes=2**20)
    with pytest.raises(ValueError, match="over the cap"):
        checkpoint.read_metadata(path, max_bytes=2**20)
    assert sv.load(path, max_bytes=4 * 2**20)["w"].shape == (393216,)
    assert sv.load(path, max_bytes=None)["w"].shape == (393216,)
    assert checkpoint.MAX_BYTES == 4 * 2**30


def test_lying_npy_header_is_refused_not_a_memory_error(tmp_path):
    """A member whose .npy header claims 4 TiB is corruption, not a bare MemoryError."""
    path = tmp_path / "liar.npz"
    sv.save({"w": np.zeros(4)}, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    body = members["w.npy"]
    header = body.replace(b"(4,)", b"(549755813888,)", 1)  # 2**39 float64 = 4 TiB
    assert header != body
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, header if n == "w.npy" else b)
    with pytest.raises(ValueError, match=r"corrupted: its entry 'w\.npy' claims an array of shape "
                                         r"\(549755813888,\) \(4398046511104 bytes\)"):
        sv.load(path, max_bytes=None)


def test_deeply_nested_metadata_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.npz"
    sv.save({"w": np.zeros(2)}, path)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(str(np.lib.format.read_array(zf.open("__scratchvae__.npy"))[()]))
    text = json.dumps(meta)[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}"
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("__scratchvae__.npy", "w") as m:
            np.lib.format.write_array(m, np.array(text), allow_pickle=False)
        with zf.open("w.npy", "w") as m:
            np.lib.format.write_array(m, np.zeros(2), allow_pickle=False)
    with pytest.raises(ValueError, match=r"metadata nested more than max_depth=100 levels .* raise the cap"):
        sv.load(path)
    with pytest.raises(ValueError, match="max_depth=100"):
        checkpoint.read_metadata(path)
    # a string full of brackets is not nesting
    sv.save({"w": np.zeros(2)}, path, metadata={"note": "[" * 500 + "{" * 500})
    assert sv.load(path, with_metadata=True)[1]["note"].startswith("[[[")
