"""MNIST as a dataset object, the way torchvision hands it to PyTorch users.

``MNIST(root=None, train=True, transform=None, target_transform=None, download=False)`` follows
``torchvision.datasets.MNIST``: ``ds[i]`` is ``(image, label)``, ``len(ds)`` the number of
examples, ``ds.data`` / ``ds.targets`` the raw uint8 images and labels.  Two differences, both
because there is no PIL here:

* the image is already what ``transforms.ToTensor()`` makes of it in torchvision: a Tensor of
  shape (1, 28, 28), float32, pixel / 255 in [0, 1], on the current backend.  So
  ``transform=transforms.ToTensor()`` (:mod:`scratchvae.data.transforms`) leaves it as it is, and
  any other ``transform`` is called on that Tensor;
* ``root=None`` (the default) gives the embedded subset (10,000 training / 2,000 test images, see
  docs/data.md); a folder gives the full set from the IDX files in it (or in its ``MNIST/raw``,
  torchvision's layout); ``download=True`` fetches missing files into scratchvae's cache.

The images stay one uint8 host array; Tensors are made per item, or per batch by :meth:`MNIST.batch`
(one fancy index of the host array for a whole batch), which :class:`~scratchvae.data.DataLoader`
uses when it is there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..autograd import Tensor, tensor
from .embedded import load_embedded
from .mnist import load_mnist, mnist_available
from .transforms import is_to_tensor

__all__ = ["MNIST"]

CLASSES = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
           "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]


def _index(i, n: int) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"MNIST indices must be integers, got {type(i).__name__} ({i!r}); "
                        "use ds.batch(indices) for many at once")
    j = int(i) + n if i < 0 else int(i)
    if not 0 <= j < n:
        raise IndexError(f"MNIST index {int(i)} is out of range for a dataset of {n} images")
    return j


def _folder_with_files(root: Path, split: str):
    """``root`` or torchvision's ``root/MNIST/raw``, whichever holds the files of ``split``."""
    for folder in (root, root / "MNIST" / "raw"):
        if mnist_available(split, folder):
            return folder
    return None


class MNIST:
    """The MNIST training (``train=True``) or test set; items ``(image, label)``.

    ``image``: Tensor (1, 28, 28), float32 in [0, 1], on the current backend, then passed through
    ``transform``; ``label``: an int, then passed through ``target_transform``.
    """

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False, *, verify: bool = True):
        self.root, self.train = root, bool(train)
        self.transform, self.target_transform = transform, target_transform
        split = "train" if self.train else "test"
        if root is None:
            images, labels = load_embedded(split)
            self.source = "embedded"
        else:
            folder = _folder_with_files(Path(root).expanduser(), split)
            if folder is not None:
                images, labels = load_mnist(split, data_dir=folder, download=False, verify=verify)
                self.source = str(folder)
            elif download:
                images, labels = load_mnist(split, data_dir=None, download=True, verify=verify)
                self.source = "cache"
            else:
                raise FileNotFoundError(
                    f"MNIST: the {split} files are neither in {root} nor in {Path(root) / 'MNIST' / 'raw'}. "
                    "Put them there, pass download=True (downloads into scratchvae's cache, docs/data.md), "
                    "or leave out root to use the embedded subset.")
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(f"MNIST: expected images (N, 28, 28) and N labels, got {images.shape} and {labels.shape}")
        self.data, self.targets = images, labels
        self.classes = list(CLASSES)

    def __len__(self) -> int:
        return len(self.data)

    @staticmethod
    def _images(raw: np.ndarray) -> Tensor:
        """uint8 (..., 28, 28) -> a float32 Tensor (..., 1, 28, 28) in [0, 1] on the current backend."""
        x = raw.astype(np.float32) / np.float32(255)
        return tensor(x.reshape(x.shape[:-2] + (1, 28, 28)))

    def __getitem__(self, i):
        j = _index(i, len(self))
        image, label = self._images(self.data[j]), int(self.targets[j])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def batch(self, indices):
        """The examples at ``indices`` stacked: ``(images (B, 1, 28, 28), labels (B,) int64)``, both
        Tensors, from one index of the host arrays.  With a transform other than ToTensor, each item
        goes through it and the results are stacked (the transforms see items, as in torchvision)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"MNIST.batch: expected a 1-d sequence of integer indices, got {idx!r}")
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"MNIST.batch: indices must be in [-{n}, {n}), got min {idx.min()}, max {idx.max()}")
        if not is_to_tensor(self.transform) or self.target_transform is not None:
            from .loader import default_collate

            return default_collate([self[int(i)] for i in idx])
        return self._images(self.data[idx]), tensor(self.targets[idx].astype(np.int64))

    def __repr__(self):
        split = "Train" if self.train else "Test"
        return (f"MNIST(split={split}, n={len(self)}, source={self.source!r}"
                + (f", transform={self.transform!r}" if self.transform is not None else "") + ")")
