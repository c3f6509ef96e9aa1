"""Reader and writer for LeCun's IDX format (the MNIST files), plain or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimension sizes, then the values in row-major order, big-endian (see ``docs/data.md``).  MNIST
images are ``0x00000803`` (uint8, 3 dims: N x 28 x 28), labels ``0x00000801`` (uint8, 1 dim: N).

Every way a file can be wrong -- bad gzip stream, wrong magic, unknown type code, truncated or
over-long payload -- raises :class:`DataFileError` naming the file and the fault, because a silently
mis-read dataset shows up much later as a model that will not train.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "DataFileError", "IDX_TYPES", "IMAGES_MAGIC", "LABELS_MAGIC",
    "read_idx", "read_idx_images", "read_idx_labels", "write_idx",
]

# type byte -> big-endian dtype, from the format's specification.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

_GZIP_MAGIC = b"\x1f\x8b"
_HINT = "Delete the file and download it again (or copy a fresh one from a trusted source)."


class DataFileError(ValueError):
    """A data file is missing parts, is not in the expected format, or fails its checksum."""


def _fail(path, what: str, hint: str = _HINT):
    raise DataFileError(f"{path}: {what}. {hint}")


class _Reader:
    """Reads exact byte counts from a raw or gzip stream, turning decompression faults into DataFileError."""

    def __init__(self, path: Path, fh):
        self.path, self.fh = path, fh

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, in chunks: a damaged header may claim an absurd size, never allocate it up front."""
        out = bytearray()
        try:
            while len(out) < n:
                chunk = self.fh.read(min(n - len(out), 1 << 20))
                if not chunk:
                    break
                out += chunk
            return bytes(out)
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            kind = "truncated" if isinstance(e, EOFError) else "corrupt"
            _fail(self.path, f"the gzip stream is {kind} ({type(e).__name__}: {e})")


def read_idx(path, *, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw; detected from the content) into a native-endian array.

    ``expected_magic`` (e.g. :data:`IMAGES_MAGIC`) rejects a file of another type or rank.
    Raises :class:`DataFileError` if the file is damaged or of the wrong kind, ``FileNotFoundError``
    if it does not exist.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        head = raw.read(2)
        raw.seek(0)
        compressed = head == _GZIP_MAGIC
        if path.suffix == ".gz" and not compressed:
            _fail(path, "the name ends in .gz but the content is not gzip data (no gzip header)")
        fh = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        return _read_stream(_Reader(path, fh), expected_magic)


def _read_stream(r: _Reader, expected_magic: int | None) -> np.ndarray:
    path = r.path
    magic = r.read(4)
    if len(magic) < 4:
        _fail(path, f"file ends after {len(magic)} bytes, before the 4-byte IDX magic number")
    if magic[0] != 0 or magic[1] != 0:
        _fail(path, f"not an IDX file: magic number 0x{magic.hex()} does not start with two zero bytes")
    type_code, ndim = magic[2], magic[3]
    value = int.from_bytes(magic, "big")
    if expected_magic is not None and value != expected_magic:
        _fail(path, f"wrong IDX magic number 0x{value:08x}, expected 0x{expected_magic:08x} "
                    f"({_describe(expected_magic)}); found {_describe(value)}",
              "Check that the file is the right one (images vs labels) and is not damaged.")
    if type_code not in IDX_TYPES:
        _fail(path, f"unknown IDX type code 0x{type_code:02x} (known: "
                    + ", ".join(f"0x{k:02x}" for k in IDX_TYPES) + ")")
    header = r.read(4 * ndim)
    if len(header) < 4 * ndim:
        _fail(path, f"file ends inside the header ({len(header)} of {4 * ndim} dimension bytes)")
    shape = tuple(int.from_bytes(header[4 * i: 4 * i + 4], "big") for i in range(ndim))
    dtype = IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    # Read one byte more than expected so trailing garbage is detected without reading it all.
    payload = r.read(expected + 1)
    if len(payload) < expected:
        _fail(path, f"truncated: header says shape {shape} ({expected} payload bytes) "
                    f"but only {len(payload)} bytes follow")
    if len(payload) > expected:
        _fail(path, f"longer than its header says: shape {shape} needs {expected} payload bytes, "
                    "but more data follows")
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _describe(magic: int) -> str:
    t, n = (magic >> 8) & 0xFF, magic & 0xFF
    name = IDX_TYPES[t].name if t in IDX_TYPES else f"unknown type 0x{t:02x}"
    return f"{name}, {n} dims"


def read_idx_images(path) -> np.ndarray:
    """Read an IDX image file (magic 0x00000803): uint8 array (N, rows, cols)."""
    return read_idx(path, expected_magic=IMAGES_MAGIC)


def read_idx_labels(path) -> np.ndarray:
    """Read an IDX label file (magic 0x00000801): uint8 array (N,)."""
    return read_idx(path, expected_magic=LABELS_MAGIC)


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file; gzip-compressed (time stamp 0, so reproducible) if the name ends in .gz."""
    a = np.asarray(array)
    codes = {v.newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes.get(a.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {a.dtype}; use one of "
                        + ", ".join(str(v.newbyteorder('=')) for v in IDX_TYPES.values()))
    if a.ndim > 255:
        raise ValueError("IDX stores at most 255 dimensions")
    data = bytes([0, 0, code, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    data += np.ascontiguousarray(a, dtype=IDX_TYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        # Through GzipFile rather than gzip.compress so the header also omits the file name.
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(data)
        data = buf.getvalue()
    path.write_bytes(data)
