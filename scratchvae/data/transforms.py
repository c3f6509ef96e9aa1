"""The torchvision transforms an MNIST pipeline needs: ``ToTensor`` and ``Compose``.

There is no PIL here: an :class:`~scratchvae.data.datasets.MNIST` item already is what
torchvision's ``ToTensor()`` makes of an image (a float32 Tensor (1, 28, 28) in [0, 1]), so
``ToTensor()`` passes Tensors through and converts NumPy images the way torchvision converts them.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, tensor

__all__ = ["ToTensor", "Compose", "is_to_tensor"]


class ToTensor:
    """An image as a float32 Tensor (C, H, W) in [0, 1].

    A Tensor passes through unchanged.  A NumPy array (or anything ``np.asarray`` takes) of shape
    (H, W) or (H, W, C) becomes (1, H, W) or (C, H, W); uint8 is divided by 255, as torchvision does.
    """

    def __call__(self, pic):
        if isinstance(pic, Tensor):
            return pic
        a = np.asarray(pic)
        if a.ndim not in (2, 3):
            raise ValueError(f"ToTensor: expected an image of shape (H, W) or (H, W, C), got shape {a.shape}")
        if a.ndim == 2:
            a = a[:, :, None]
        a = np.ascontiguousarray(a.transpose(2, 0, 1))
        a = a.astype(np.float32) / np.float32(255) if a.dtype == np.uint8 else a.astype(np.float32)
        return tensor(a)

    def __repr__(self):
        return "ToTensor()"


class Compose:
    """The transforms one after the other."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"Compose: transform {i} is a {type(t).__name__}, not callable")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        return f"Compose({self.transforms!r})"


def is_to_tensor(transform) -> bool:
    """Whether ``transform`` leaves a dataset item as it is: None, a ToTensor, or a Compose of only those."""
    if transform is None or isinstance(transform, ToTensor):
        return True
    return isinstance(transform, Compose) and all(is_to_tensor(t) for t in transform.transforms)
