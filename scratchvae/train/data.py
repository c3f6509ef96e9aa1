"""The images of one run, on the host: where they come from, the validation split, the preprocessing.

Built on :mod:`scratchvae.data` (the files, the binarizations, the loader).  The training images are
stored as the preprocessing wants them (grey levels for 'dynamic', binarized once for 'fixed');
validation and test images are ready to evaluate on: grey levels, or ONE Bernoulli draw from
:data:`TEST_BINARIZATION_SEED`, so every run is evaluated on the same binary images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import (
    Preprocessing,
    fixed_binarize,
    grey_levels,
    load_embedded,
    load_mnist,
    mnist_available,
    pixel_means,
    validation_split,
)
from ..data.embedded import content_sha256
from ..data.mnist import cache_dir
from .config import TrainConfig

__all__ = ["TEST_BINARIZATION_SEED", "Data", "check_same_data", "data_sha256", "load_test_data", "prepare_data"]

#: Binary test and validation sets are ONE Bernoulli draw of the grey images from this fixed seed,
#: whatever the training seed: every run is evaluated on the same binary images.
TEST_BINARIZATION_SEED = 0


@dataclass
class Data:
    """Host arrays for one run: ``train`` as stored by the preprocessing (grey levels for 'dynamic',
    binarized once for 'fixed'), ``valid`` and ``test`` ready to evaluate on, and where they came from."""

    train: np.ndarray
    valid: np.ndarray | None
    test: np.ndarray
    test_labels: np.ndarray
    pixel_means: np.ndarray
    source: str
    preprocessing: Preprocessing
    #: {"train": ..., "test": ...}: the content sha256 of the full-MNIST splits (None for the embedded subset)
    sha256: dict | None = None


def _resolve_source(config: TrainConfig, log) -> str:
    if config.data == "embedded":
        return "embedded"
    if config.data == "mnist" or config.data_dir is not None:
        return "mnist"
    if mnist_available("train") and mnist_available("test"):
        return "mnist"
    log(f"note: the full MNIST files are not in {cache_dir()} and no --data-dir was given, so this run uses "
        "the embedded subset (10,000 training and 2,000 test images); its numbers are not comparable with "
        "full-MNIST results. Pass --data-dir DIR or --data mnist (downloads) for the full set.")
    return "embedded"


def _load_split(source: str, split: str, config: TrainConfig):
    if source == "embedded":
        return load_embedded(split, flatten=True)
    # Not quiet: a first download of full MNIST takes a while, and shows its mirror and a bar of bytes.
    return load_mnist(split, data_dir=config.data_dir, flatten=True, quiet=False, verify=config.verify_data)


def data_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """The sha256 of one split's content (names, dtypes, shapes, bytes): what a run records of its
    data, so a moved --data-dir can be checked to hold the same images."""
    return content_sha256({"images": images, "labels": labels})


def check_same_data(split: str, images, labels, expected: dict | None, config: TrainConfig) -> None:
    """Raise ValueError when the run recorded a sha256 of ``split`` and these arrays differ from it."""
    want = (expected or {}).get(split)
    if want is None:
        return
    got = data_sha256(images, labels)
    if got != want:
        raise ValueError(
            f"the MNIST {split} files in {config.data_dir or 'the cache'} are not the data this run was trained on "
            f"(content sha256 {got[:16]}..., the run recorded {want[:16]}...); pass the --data-dir that holds "
            "the run's own files")


def _eval_ready(images: np.ndarray, binarize: str, dtype: str) -> np.ndarray:
    """Grey levels, or ONE Bernoulli draw with the fixed evaluation seed (binary modes)."""
    if binarize == "grey":
        return grey_levels(images, dtype)
    return fixed_binarize(images, TEST_BINARIZATION_SEED, dtype)


def load_test_data(config: TrainConfig, source: str | None = None, n_test: int | None = None,
                   expect_sha256: dict | None = None):
    """The test images ready for evaluation (grey, or the fixed binarization) and their labels.

    ``expect_sha256`` (the run's recorded ``data_sha256``): the files must hold the same test set."""
    source = source or ("embedded" if config.data == "embedded" else "mnist" if config.data == "mnist" else
                        _resolve_source(config, lambda *_: None))
    images, labels = _load_split(source, "test", config)
    if source == "mnist":
        check_same_data("test", images, labels, expect_sha256, config)
    n = n_test if n_test is not None else config.n_test
    if n is not None:
        images, labels = images[:n], labels[:n]
    return _eval_ready(images, config.binarize, config.dtype), labels


def prepare_data(config: TrainConfig, log=print, source: str | None = None,
                 expect_sha256: dict | None = None) -> Data:
    """The run's :class:`Data`; ``source`` ("embedded" | "mnist") is the saved one when resuming, else
    found from the config (``log`` gets the note when 'auto' falls back to the embedded subset).
    ``expect_sha256``: the run's recorded ``data_sha256``, which full-MNIST files must match."""
    source = source or _resolve_source(config, log)
    images, train_labels = _load_split(source, "train", config)
    sha = None
    if source == "mnist":
        check_same_data("train", images, train_labels, expect_sha256, config)
        sha = {"train": data_sha256(images, train_labels)}
    if config.n_train is not None:
        images = images[: config.n_train]
    train_idx, valid_idx = validation_split(len(images), config.validation)
    train_images = images[train_idx]
    if len(train_images) == 0:
        raise ValueError(f"no training images left after holding out {config.validation} for validation")
    pp = Preprocessing(config.binarize, seed=config.seed, dtype=config.dtype)
    valid = _eval_ready(images[valid_idx], config.binarize, config.dtype) if len(valid_idx) else None
    if source == "mnist":
        raw_test, raw_labels = _load_split(source, "test", config)
        check_same_data("test", raw_test, raw_labels, expect_sha256, config)
        sha["test"] = data_sha256(raw_test, raw_labels)
        n = config.n_test
        raw_test, labels = (raw_test[:n], raw_labels[:n]) if n is not None else (raw_test, raw_labels)
        test = _eval_ready(raw_test, config.binarize, config.dtype)
    else:
        test, labels = load_test_data(config, source)
    return Data(train=pp.prepare(train_images), valid=valid, test=test, test_labels=labels,
                pixel_means=pixel_means(train_images), source=source, preprocessing=pp, sha256=sha)
