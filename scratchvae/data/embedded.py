"""A small subset of real MNIST shipped inside the package, so the main command works offline.

The first 10,000 training and the first 2,000 test images of the original files, uint8, in their
original order; built by ``scripts/build_embedded_mnist.py`` from the full files.  Numbers trained
or evaluated on it are not comparable with published full-MNIST results (``docs/data.md``).
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources

import numpy as np

from .idx import DataFileError

__all__ = ["FILENAME", "FILE_SHA256", "CONTENT_SHA256", "SIZES", "load_embedded", "content_sha256"]

FILENAME = "mnist_subset.npz"
SIZES = {"train": 10_000, "test": 2_000}
# Written by scripts/build_embedded_mnist.py.  The content checksum (of the arrays) is what loading
# checks: it pins the exact pixels and labels whatever zlib compressed them; the file checksum pins
# the shipped bytes, for checking that a rebuild reproduces them.
FILE_SHA256 = "1b974711cf09770ed59a2a0d345ff1ca68bf2c937acafd007d8bb6a29921f569"
CONTENT_SHA256 = "0e5b264d6385d04945e07fea6ace598db0c98c93d74c824d9e292769b5725169"


def content_sha256(arrays: dict) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read() -> dict:
    ref = resources.files(__package__).joinpath(FILENAME)
    try:
        raw = ref.read_bytes()
    except FileNotFoundError:
        raise DataFileError(
            f"the embedded MNIST subset {FILENAME} is missing from the installed package ({ref}). "
            "Reinstall scratchvae, or rebuild it with scripts/build_embedded_mnist.py.") from None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # a damaged zip can fail in many ways (BadZipFile, ValueError, EOFError...)
        raise DataFileError(f"{ref}: the embedded MNIST subset cannot be read ({type(e).__name__}: {e}). "
                            "Reinstall scratchvae.") from e
    got = content_sha256(arrays)
    if got != CONTENT_SHA256:
        raise DataFileError(f"{ref}: the embedded MNIST subset has content sha256 {got}, expected "
                            f"{CONTENT_SHA256}; the file is damaged or was replaced. Reinstall "
                            "scratchvae, or rebuild it with scripts/build_embedded_mnist.py.")
    return arrays


def load_embedded(split: str = "train", *, flatten: bool = False):
    """The embedded subset's ``split`` as ``(images, labels)``: uint8 (N, 28, 28) (or (N, 784)), uint8 (N,).

    N is 10,000 for "train" and 2,000 for "test"; the content is checked against its sha256.
    """
    if split not in SIZES:
        raise ValueError(f"unknown MNIST split {split!r}; use 'train' or 'test'")
    arrays = _read()
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if flatten:
        images = images.reshape(len(images), -1)
    return images, labels
