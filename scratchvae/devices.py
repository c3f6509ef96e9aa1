"""``torch.device(...)``: a device name, checked, that ``Tensor.to`` and ``Module.to`` take.

``device("cpu")`` is the NumPy backend and ``device("cuda")`` (also "cuda:0") the CuPy one, as in
:func:`scratchvae.resolve_backend`.  Like PyTorch, naming a device does not start it: a missing
GPU is reported when a tensor is first moved there.
"""

from __future__ import annotations

__all__ = ["device"]

_KNOWN = ("cpu", "cuda", "gpu", "numpy", "cupy", "array_api_strict")


class device(str):  # noqa: N801  (PyTorch's spelling)
    """The name of a device: a ``str`` ("cpu", "cuda", ...), with PyTorch's ``.type`` and ``.index``."""

    def __new__(cls, spec, index=None):
        if isinstance(spec, device):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a name such as 'cpu' or 'cuda', got {type(spec).__name__}")
        name, _, idx = spec.partition(":")
        if name not in _KNOWN:
            raise ValueError(f"device: unknown device {spec!r}; use one of {', '.join(_KNOWN)}")
        if idx:
            if name not in ("cuda", "gpu", "cupy") or not idx.isdigit() or int(idx) != 0:
                raise ValueError(f"device: {spec!r} is not available; scratchvae uses one device per "
                                 "backend (write 'cuda' or 'cuda:0')")
        if index not in (None, 0):
            raise ValueError(f"device: index {index!r} is not available; scratchvae uses one device per backend")
        self = super().__new__(cls, name)
        self.index = 0 if (idx or index is not None) else None
        return self

    @property
    def type(self) -> str:
        return {"gpu": "cuda", "cupy": "cuda", "numpy": "cpu"}.get(str(self), str(self))

    def __repr__(self):
        return f"device(type={self.type!r}" + ("" if self.index is None else f", index={self.index}") + ")"
