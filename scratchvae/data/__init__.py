"""Data: MNIST from the IDX files (found locally, cached or downloaded), the embedded subset,
preprocessing (grey levels, dynamic or fixed binarization) and a minibatch loader; and, for
PyTorch users, the ``MNIST`` dataset (``datasets``, ``transforms``) whose loader batches are Tensors.

The loading functions produce NumPy host arrays; moving a batch to the backend is the trainer's
job.  A dataset object makes its Tensors itself, on the current backend.  See ``docs/data.md``.
"""

from . import datasets, transforms
from .datasets import MNIST
from .embedded import load_embedded
from .idx import DataFileError, read_idx, read_idx_images, read_idx_labels, write_idx
from .loader import DataLoader, default_collate, validation_split
from .mnist import DataNotFoundError, cache_dir, load_mnist, mirrors, mnist_available
from .preprocess import (
    MODES,
    Preprocessing,
    dynamic_binarize,
    fixed_binarize,
    grey_levels,
    pixel_means,
)

__all__ = [
    "load_mnist", "load_embedded", "mnist_available", "cache_dir", "mirrors",
    "DataFileError", "DataNotFoundError",
    "read_idx", "read_idx_images", "read_idx_labels", "write_idx",
    "MODES", "Preprocessing", "grey_levels", "dynamic_binarize", "fixed_binarize", "pixel_means",
    "DataLoader", "validation_split", "default_collate",
    "MNIST", "datasets", "transforms",
]
