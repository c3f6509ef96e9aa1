"""Checkpoints: nested training state <-> one ``.npz`` file, written atomically.

Layout: one ``.npy`` entry per array, named by its dotted path in the state ("model.0.weight",
"optim.state.0.exp_avg"), so ``numpy.load`` alone can read the weights; plus one entry
``__scratchvae__`` holding JSON: the format name and version, where the arrays came from (backend,
dtype), the caller's metadata (model config, epoch, ...), and the tree that puts numbers, strings
and arrays back into the same nested dicts/lists/tuples.  No pickle anywhere (``allow_pickle=False``).

Arrays are stored as host NumPy arrays and come back as host NumPy arrays; ``Module.load_state_dict``
and ``Optimizer.load_state_dict`` put them on the model's current backend, so a GPU checkpoint
loads on a CPU-only machine.  docs/nn.md#checkpoints.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import zipfile
import zlib

import numpy as np

from ._fileio import atomic_write
from .autograd import Tensor
from .backend import backend_of, device_of

__all__ = ["save", "load", "read_metadata", "FORMAT_VERSION"]

FORMAT = "scratchvae-checkpoint"
#: Bumped when the layout changes in a way older readers cannot follow.
FORMAT_VERSION = 1
_META_KEY = "__scratchvae__"
_RESERVED = ("format", "format_version", "scratchvae_version", "created", "backend", "device", "dtype", "tree")
_SAFE = re.compile(r"[^A-Za-z0-9_.~+-]")
_ARRAY_KINDS = "biufcUS"  # bool, ints, floats, complex, strings: all load without pickle
# What a damaged archive raises on reading, depending on where the damage is.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError)


# --------------------------------------------------------------------------------------------------
# state tree <-> (JSON tree, arrays)

def _is_array(x) -> bool:
    if isinstance(x, (np.ndarray, np.generic)):
        return True
    if isinstance(x, (bool, int, float, str, bytes, dict, list, tuple)) or x is None:
        return False
    try:
        backend_of(x)
    except TypeError:
        return False
    return True


class _Encoder:
    def __init__(self):
        self.arrays: dict = {}
        self.backends: list = []
        self.dtypes: list = []

    def key_for(self, path):
        # The entry name is for people reading the .npz; the JSON tree keeps the exact keys, so
        # characters a zip member name should not hold are simply replaced.
        base = _SAFE.sub("_", ".".join(str(p) for p in path)) or "array"
        key, n = base, 1
        while key in self.arrays or key == _META_KEY:
            n += 1
            key = f"{base}~{n}"  # a collision such as {"a.b": x, "a": {"b": y}}
        return key

    def encode(self, obj, path):
        where = ".".join(str(p) for p in path) or "<root>"
        if isinstance(obj, Tensor):
            obj = obj.data
        if _is_array(obj):
            scalar = isinstance(obj, np.generic)
            if not isinstance(obj, (np.ndarray, np.generic)):
                be = backend_of(obj)
                place = device_of(obj)
                if place not in self.backends:
                    self.backends.append(place)
                obj = be.to_numpy(obj)  # the one explicit device -> host copy
            host = np.asarray(obj)
            if host.dtype.kind not in _ARRAY_KINDS:
                raise TypeError(
                    f"scratchvae.save: {where} is an array of dtype {host.dtype}, which cannot be stored without "
                    "pickle; store numbers, strings or booleans"
                )
            if host.dtype.kind == "f" and host.dtype.name not in self.dtypes:
                self.dtypes.append(host.dtype.name)
            key = self.key_for(path)
            self.arrays[key] = host
            return {"__array__": key, "scalar": True} if scalar else {"__array__": key}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj)
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.encode(v, path + [k]) for k, v in obj.items()}
            items = []
            for k, v in obj.items():
                if not isinstance(k, (str, int)):
                    raise TypeError(f"scratchvae.save: {where} has a key {k!r} of type {type(k).__name__}; "
                                    "dict keys must be strings or integers")
                items.append([k, self.encode(v, path + [k])])
            return {"__dict__": items}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, path + [i]) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, path + [i]) for i, v in enumerate(obj)]
        raise TypeError(
            f"scratchvae.save: cannot store {where} of type {type(obj).__module__}.{type(obj).__name__}; a checkpoint "
            "holds arrays, Tensors, numbers, strings, booleans, None, and dicts/lists/tuples of them"
        )


def _decode(node, arrays):
    if isinstance(node, dict):
        if "__array__" in node:
            key = node["__array__"]
            if key not in arrays:
                raise KeyError(key)
            a = arrays[key]
            return a[()] if node.get("scalar") else a
        if "__dict__" in node:
            return {k: _decode(v, arrays) for k, v in node["__dict__"]}
        if "__tuple__" in node:
            return tuple(_decode(v, arrays) for v in node["__tuple__"])
        return {k: _decode(v, arrays) for k, v in node.items()}
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    return node


# --------------------------------------------------------------------------------------------------
# writing

def _write_array(zf: zipfile.ZipFile, key: str, array: np.ndarray):
    """One ``key.npy`` member, written the way numpy.savez writes it (so numpy.load reads it)."""
    with zf.open(key + ".npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, array, allow_pickle=False)


def save(state, path, metadata: dict | None = None, compress: bool = False) -> None:
    """Write ``state`` (arrays, Tensors, numbers, strings, None, and nested dicts/lists/tuples of
    them, e.g. {"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}) to ``path``.

    ``metadata``: JSON-serialisable entries stored alongside (model config, ...), returned by
    ``read_metadata``.  The file is written to a temporary file in the same folder, flushed and
    fsync'ed, then renamed over ``path``: an interrupted save leaves the previous checkpoint intact.
    """
    path = os.fspath(path)
    enc = _Encoder()
    tree = enc.encode(state, [])
    meta = {}
    for k, v in (metadata or {}).items():
        if k in _RESERVED:
            raise ValueError(f"scratchvae.save: metadata key {k!r} is reserved ({', '.join(_RESERVED)}); rename it")
        meta[k] = v
    from . import __version__

    devices = enc.backends or ["cpu"]
    meta.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scratchvae_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": _backend_names(devices),
        "device": devices[0] if len(devices) == 1 else devices,
        "dtype": enc.dtypes[0] if len(enc.dtypes) == 1 else (enc.dtypes or None),
        "tree": tree,
    })
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise TypeError(f"scratchvae.save: the metadata must be JSON-serialisable (numbers, strings, lists, "
                        f"dicts): {e}") from e

    with atomic_write(path, "wb") as f:
        mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(f, "w", compression=mode, allowZip64=True) as zf:
            _write_array(zf, _META_KEY, np.array(text))
            _fault_pause()
            for key, arr in enc.arrays.items():
                _write_array(zf, key, arr)


#: Tests only (tests/test_faults.py): seconds to sleep in the middle of writing a checkpoint's
#: temporary file, so that a kill lands inside the save.
FAULT_PAUSE_ENV = "SCRATCHVAE_TEST_SAVE_PAUSE"


def _fault_pause() -> None:
    pause = os.environ.get(FAULT_PAUSE_ENV)
    if pause:
        import time

        time.sleep(float(pause))


def _backend_names(devices):
    names = []
    for d in devices:
        name = "numpy" if d == "cpu" else ("cupy" if d.startswith("cuda") else d.split(":")[0])
        if name not in names:
            names.append(name)
    return names[0] if len(names) == 1 else names


# --------------------------------------------------------------------------------------------------
# reading

def _corrupt(path, e):
    return ValueError(f"scratchvae.load: {path!r} is truncated or corrupted ({e}); it cannot be read -- "
                      "use an earlier checkpoint")


#: The default cap on a checkpoint's total uncompressed size (``load(..., max_bytes=)``).
MAX_BYTES = 4 * 2**30
#: The default cap on how deeply the metadata's lists and dicts may nest (``load(..., max_depth=)``).
MAX_DEPTH = 100
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def _check_sizes(path, f, max_bytes: int) -> None:
    """Refuse, before any array is read, an archive whose members expand past ``max_bytes`` or
    whose .npy headers claim more data than their member holds (a lying header would otherwise
    allocate its claimed size: a bare MemoryError)."""
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if max_bytes is not None and total > max_bytes:
                raise ValueError(
                    f"scratchvae.load: {path!r} expands to {_gib(total)} ({total} bytes uncompressed, "
                    f"{len(infos)} entries), over the cap max_bytes={max_bytes} ({_gib(max_bytes)}); if you "
                    f"trust this file, raise the cap: scratchvae.load(path, max_bytes={total})")
            for info in infos:
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                    claimed = dtype.itemsize * int(np.prod(shape, dtype=object))
                    if claimed > info.file_size:
                        raise ValueError(
                            f"scratchvae.load: {path!r} is truncated or corrupted: its entry {info.filename!r} "
                            f"claims an array of shape {tuple(shape)} ({claimed} bytes) but holds "
                            f"{info.file_size} bytes; it cannot be read -- use an earlier checkpoint")
    except ValueError as e:
        if str(e).startswith("scratchvae.load:"):
            raise
        raise _corrupt(path, e) from e
    except _READ_ERRORS as e:
        raise _corrupt(path, e) from e
    finally:
        f.seek(0)


def _check_depth(path, text: str, max_depth: int) -> None:
    """Refuse metadata nested deeper than ``max_depth`` (json.loads would raise RecursionError)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > max_depth:
                    raise ValueError(
                        f"scratchvae.load: {path!r} has metadata nested more than max_depth={max_depth} levels "
                        "deep (lists/dicts inside lists/dicts); a checkpoint's state is rarely over 20 -- if you "
                        f"trust this file, raise the cap: scratchvae.load(path, max_depth=...)")
        else:
            depth -= 1


def _read(path, with_arrays: bool, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH):
    """(state or None, metadata) of a checkpoint, or a ValueError that names the file and the fault."""
    path = os.fspath(path)
    # We open the file ourselves: numpy.load(path) leaks its file handle when the zip is damaged.
    with open(path, "rb") as f:  # FileNotFoundError, as for any missing file
        head = f.read(4)
        if head[:2] != b"PK":
            kind = "a NumPy .npy file" if head[:4] == b"\x93NUM" else "not a zip/.npz archive"
            raise ValueError(f"scratchvae.load: {path!r} is not a scratchvae checkpoint ({kind}; "
                             "checkpoints are .npz archives written by scratchvae.save)")
        f.seek(0)
        _check_sizes(path, f, max_bytes)
        try:
            npz = np.load(f, allow_pickle=False)
        except _READ_ERRORS as e:
            raise _corrupt(path, e) from e
        with npz:
            meta = _check_meta(path, npz, max_depth)
            tree = meta.pop("tree", None)
            if not with_arrays:
                return None, meta
            try:
                arrays = {key: npz[key] for key in npz.files if key != _META_KEY}
                return _decode(tree, arrays), meta
            except KeyError as e:
                raise ValueError(f"scratchvae.load: {path!r} is incomplete: the array {e.args[0]!r} listed in "
                                 "its metadata is missing") from None
            except _READ_ERRORS as e:
                raise _corrupt(path, e) from e


def _check_meta(path, npz, max_depth=MAX_DEPTH) -> dict:
    if _META_KEY not in npz.files:
        shown = ", ".join(npz.files[:5]) + (", ..." if len(npz.files) > 5 else "")
        raise ValueError(f"scratchvae.load: {path!r} is an .npz archive but not a scratchvae checkpoint (it has "
                         f"no {_META_KEY!r} entry; its entries: {shown or 'none'})")
    try:
        text = str(npz[_META_KEY][()])
    except _READ_ERRORS as e:
        raise ValueError(f"scratchvae.load: {path!r} is truncated or corrupted: its metadata entry cannot be "
                         f"read ({e})") from e
    _check_depth(path, text, max_depth)
    try:
        meta = json.loads(text)
    except _READ_ERRORS as e:
        raise ValueError(f"scratchvae.load: {path!r} is truncated or corrupted: its metadata entry cannot be "
                         f"read ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"scratchvae.load: {path!r} has a {_META_KEY!r} entry but it is not scratchvae "
                         "checkpoint metadata")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ValueError(f"scratchvae.load: {path!r} has no valid format_version in its metadata")
    if version > FORMAT_VERSION:
        raise ValueError(f"scratchvae.load: {path!r} was written in checkpoint format version {version} by a "
                         f"newer scratchvae ({meta.get('scratchvae_version', '?')}); this version reads up to "
                         f"format {FORMAT_VERSION} -- upgrade scratchvae to load it")
    return meta


def read_metadata(path, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH) -> dict:
    """The checkpoint's metadata (format, version, backend, dtype, and what ``save`` was given),
    without reading any array: enough to rebuild a model from its config before loading weights."""
    return _read(path, with_arrays=False, max_bytes=max_bytes, max_depth=max_depth)[1]


def load(path, with_metadata: bool = False, max_bytes: int | None = MAX_BYTES, max_depth: int = MAX_DEPTH):
    """The state saved by ``save``, with host NumPy arrays (``(state, metadata)`` if
    ``with_metadata``).  A truncated, foreign or newer-format file raises ValueError naming the
    file and what is wrong.

    ``max_bytes`` (default 4 GiB; None for no cap) caps the total uncompressed size, checked from
    the zip's member headers before anything is read, and ``max_depth`` (default 100) how deeply
    the metadata nests: a file past either is refused with a ValueError saying how to raise the cap."""
    state, meta = _read(path, with_arrays=True, max_bytes=max_bytes, max_depth=max_depth)
    return (state, meta) if with_metadata else state
