"""The full MNIST data set: found locally, or downloaded once into the user cache and checked.

Where the four IDX files come from, in order (``docs/data.md``):

1. an explicit ``data_dir`` (the CLI's ``--data-dir``) -- authoritative: if files are missing there,
   that is an error, never a silent fallback to other data;
2. the user cache, ``$XDG_CACHE_HOME/scratchvae/mnist`` or ``~/.cache/scratchvae/mnist``;
3. a download from the mirrors in ``SCRATCHVAE_MNIST_MIRRORS`` (comma-separated base URLs) or
   :data:`DEFAULT_MIRRORS`, each file checked against its published sha256 and moved into the cache
   atomically, so a failed or mismatching download never leaves a file there.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._fileio import fsync_dir, remove_stale_temporaries
from .idx import DataFileError, read_idx_images, read_idx_labels

__all__ = [
    "FILES", "SHA256", "SHA256_RAW", "DEFAULT_MIRRORS", "MIRRORS_ENV", "DataNotFoundError",
    "cache_dir", "mirrors", "load_mnist", "mnist_available", "sha256_file",
]

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# sha256 of the original .gz files (their md5 sums match the published ones).
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# sha256 of the same files uncompressed (a cache or --data-dir may hold those instead).
SHA256_RAW = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Public mirrors of the original .gz files (LeCun's own site now often refuses scripted downloads).
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRRORS_ENV = "SCRATCHVAE_MNIST_MIRRORS"
# No MNIST file is near this; a mirror that sends more is sending something else.
_MAX_DOWNLOAD_BYTES = 64 << 20


class DataNotFoundError(FileNotFoundError):
    """The MNIST files are neither where they were looked for nor downloadable."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/scratchvae/mnist``, or ``~/.cache/scratchvae/mnist`` when that is unset.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG base-directory specification asks.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "scratchvae" / "mnist"


def mirrors() -> list[str]:
    """Base URLs to download from: ``$SCRATCHVAE_MNIST_MIRRORS`` (comma-separated) or the defaults.

    Setting the variable to an empty string disables downloading.
    """
    env = os.environ.get(MIRRORS_ENV)
    if env is None:
        return list(DEFAULT_MIRRORS)
    return [m.strip() for m in env.split(",") if m.strip()]


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_mnist(split: str = "train", data_dir=None, download: bool = True, *, flatten: bool = False,
               verify: bool = True, timeout: float = 30.0, quiet: bool = False):
    """The MNIST ``split`` ("train": 60,000 images, "test": 10,000) as ``(images, labels)``, both uint8.

    ``images`` has shape (N, 28, 28), or (N, 784) with ``flatten=True``; pixel 0 is background, 255
    ink.  ``data_dir`` may hold the ``.gz`` files or their uncompressed versions (same names without
    ``.gz``).  ``verify`` checks ``.gz`` files against :data:`SHA256`.  ``download=False`` never
    touches the network.  Raises :class:`DataNotFoundError` when the files cannot be found or
    fetched (the message says where to put them), :class:`~scratchvae.data.idx.DataFileError`
    when a file is damaged.
    """
    if split not in FILES:
        raise ValueError(f"unknown MNIST split {split!r}; use 'train' or 'test'")
    paths = [_locate(name, data_dir, download, verify, timeout, quiet) for name in FILES[split]]
    images, labels = read_idx_images(paths[0]), read_idx_labels(paths[1])
    _check_content(paths, images, labels)
    if flatten:
        images = images.reshape(len(images), -1)
    return images, labels


def mnist_available(split: str = "train", data_dir=None) -> bool:
    """Whether the files of ``split`` are present without a download (in ``data_dir``, or else the cache).

    Presence only: the files are checked when :func:`load_mnist` reads them.
    """
    folders = [Path(data_dir).expanduser()] if data_dir is not None else [cache_dir()]
    return all(any(_candidates(f, name)) for f in folders for name in FILES[split])


def _candidates(folder: Path, name: str):
    """Existing files in ``folder`` for ``name``: the .gz, then the uncompressed file."""
    for p in (folder / name, folder / name[: -len(".gz")]):
        if p.is_file():
            yield p


def _locate(name: str, data_dir, download: bool, verify: bool, timeout: float, quiet: bool) -> Path:
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        found = next(_candidates(folder, name), None)
        if found is None:
            raise DataNotFoundError(
                f"{name} (or its uncompressed version {name[:-3]}) is not in the data folder {folder}. "
                f"Put the MNIST files there, or leave out --data-dir to use the cache ({cache_dir()}) "
                "and download.")
        if verify:
            _verify(found, found.name, hint="If this is a deliberately different file, load it with verify=False "
                                      "(Python) or pass --no-verify (scratchvae train, evaluate, plot).")
        return found

    cache = cache_dir()
    remove_stale_temporaries(cache)  # .part files of downloads killed mid-way (their PID is dead)
    found = next(_candidates(cache, name), None)
    if found is not None:
        if not verify:
            return found
        try:
            _verify(found, found.name)
            return found
        except DataFileError as e:
            if not download or not mirrors():
                raise
            # The bad copy is replaced only by a download that passes the same check.
            warnings.warn(f"{e} Downloading it again.", stacklevel=3)
    if not download:
        raise DataNotFoundError(_where_to_put(name, "downloading is switched off (download=False)"))
    return _download(name, cache, timeout, quiet)


def _verify(path: Path, name: str, hint: str = "Delete it; it will be downloaded again.") -> None:
    """Check a .gz file, or its uncompressed version, against its published (or derived) sha256."""
    expected = SHA256.get(name, SHA256_RAW.get(name))
    if expected is None:
        return
    got = sha256_file(path)
    if got != expected:
        raise DataFileError(f"{path}: sha256 {got} does not match the published MNIST file "
                            f"({expected}); the file is damaged or not the original. {hint}")


def _where_to_put(name: str, reason: str) -> str:
    all_names = ", ".join(n for pair in FILES.values() for n in pair)
    return (f"MNIST file {name} is not available: {reason}. Put the four MNIST files ({all_names}) "
            f"in {cache_dir()} (the user cache; set XDG_CACHE_HOME to move it), or in any folder "
            f"passed as --data-dir (data_dir=...); or allow a download (mirrors: ${MIRRORS_ENV}, "
            "comma-separated base URLs). Without any of these, the small embedded subset "
            "(scratchvae.data.load_embedded) works offline.")


def _download(name: str, cache: Path, timeout: float, quiet: bool) -> Path:
    import http.client  # here, not at the top: only a download needs the HTTP machinery

    bases = mirrors()
    if not bases:
        raise DataNotFoundError(_where_to_put(name, f"${MIRRORS_ENV} is set but lists no mirror"))
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / name
    failures = []
    for base in bases:
        url = base.rstrip("/") + "/" + name
        if not quiet:
            print(f"scratchvae: downloading {name} from the mirror {base}", file=sys.stderr)
        try:
            _fetch_atomic(url, target, SHA256.get(name), timeout, progress=not quiet)
            return target
        except (OSError, ValueError, http.client.HTTPException) as e:
            # URLError, HTTPError and timeouts are OSErrors; a connection cut mid-body is an HTTPException.
            failures.append(f"  {url}: {type(e).__name__}: {e}")
    raise DataNotFoundError(_where_to_put(name, "every mirror failed:\n" + "\n".join(failures)
                                          + f"\nThe cache ({cache}) was left unchanged"))


def _fetch_atomic(url: str, target: Path, sha256: str | None, timeout: float, progress: bool = False) -> None:
    """Download ``url`` to a temporary file next to ``target``; only a verified, fsynced file is renamed
    over it.  ``progress``: a tqdm bar of the bytes received, on stderr."""
    import urllib.request

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=target.parent)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            bar = _bytes_bar(resp.headers.get("Content-Length"), target.name) if progress else None
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                if bar is not None:
                    bar.update(len(chunk))
                size += len(chunk)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise ValueError(f"more than {_MAX_DOWNLOAD_BYTES} bytes; not an MNIST file")
                h.update(chunk)
                out.write(chunk)
            if bar is not None:
                bar.close()
            out.flush()
            os.fsync(out.fileno())
            # http.client does not complain when a chunked read meets an early end of the connection.
            announced = resp.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and int(announced) != size:
                raise ValueError(f"the connection closed after {size} of {announced} bytes")
        if sha256 is not None and h.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch: got {h.hexdigest()}, expected {sha256} "
                             f"({size} bytes received; the mirror serves a damaged or different file)")
        os.replace(tmp, target)
        tmp = None
        fsync_dir(target.parent)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _bytes_bar(length, name: str):
    from tqdm import tqdm

    total = int(length) if length is not None and str(length).isdigit() else None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr,
                leave=False)


def _check_content(paths, images: np.ndarray, labels: np.ndarray) -> None:
    """Checks that the pair of files belongs together and is MNIST-shaped."""
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DataFileError(f"{paths[0]}, {paths[1]}: MNIST images and labels are uint8, found "
                            f"{images.dtype} and {labels.dtype}. Check that these are the MNIST files.")
    if images.shape[1:] != (28, 28):
        raise DataFileError(f"{paths[0]}: MNIST images are 28 x 28, found {images.shape[1:]}. "
                            "Check that this is the MNIST image file.")
    if len(images) != len(labels):
        raise DataFileError(f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} "
                            "labels. Use an image file and the label file of the same split.")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{paths[1]}: MNIST labels are 0-9, found {int(labels.max())}. "
                            "Check that this is the MNIST label file.")
