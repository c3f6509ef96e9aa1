"""Array backends: which array library a tensor's data lives in, and how to move between them.

Every op runs in the namespace of its data (``namespace(array)``), so the same engine code serves
NumPy on the CPU, CuPy on a GPU, and ``array_api_strict`` on its non-CPU test device (the stand-in
that refuses implicit host conversion and device mixing the way CuPy does).  See docs/autograd.md#backends.

Nothing here converts a device array to host unless asked to (``to_numpy``).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

__all__ = [
    "Backend",
    "BackendError",
    "set_backend",
    "get_backend",
    "backend_of",
    "namespace",
    "to_numpy",
    "set_default_dtype",
    "get_default_dtype",
    "using_backend",
    "resolve_backend",
    "is_host_data",
    "host_array",
    "dtype_name",
    "is_floating",
]


class BackendError(RuntimeError):
    """An array library or device that was asked for is not available, or two were mixed."""


class Backend:
    """One array library (plus, for array-api-strict, one device).

    ``xp`` is an Array-API namespace for the library; ``from_numpy``/``to_numpy`` are the only
    places where data crosses between host and device.
    """

    name = "?"

    def __init__(self, xp, device=None):
        self.xp = xp
        self.device = device

    def from_numpy(self, a, dtype=None):
        raise NotImplementedError

    def to_numpy(self, a):
        raise NotImplementedError

    def dtype(self, name):
        """The namespace's dtype object for a name such as ``"float32"``."""
        return getattr(self.xp, _dtype_name(name))

    def asarray(self, data, dtype=None):
        """Python scalars, lists and NumPy arrays to an array on this backend (host -> device)."""
        if isinstance(data, np.ndarray) or np.isscalar(data) or isinstance(data, (list, tuple)):
            host = np.asarray(data)
            if dtype is not None:
                host = host.astype(_dtype_name(dtype), copy=False)
            return self.from_numpy(host)
        return self.xp.asarray(data, dtype=None if dtype is None else self.dtype(dtype))

    def zeros(self, shape, dtype=None):
        """A new array of zeros on this backend, in ``dtype`` (default: the default dtype)."""
        return self.from_numpy(np.zeros(tuple(shape), dtype=_dtype_name(dtype or get_default_dtype())))

    def scatter_add(self, target, index, values):
        """``target[index] += values`` with repeated indices accumulated (getitem's backward)."""
        raise NotImplementedError

    def __repr__(self):
        dev = "" if self.device is None else f", device={self.device!r}"
        return f"Backend({self.name!r}{dev})"


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self):
        import array_api_compat.numpy as xp

        super().__init__(xp, "cpu")

    def from_numpy(self, a, dtype=None):
        return a if dtype is None else a.astype(_dtype_name(dtype), copy=False)

    def to_numpy(self, a):
        return a

    def scatter_add(self, target, index, values):
        np.add.at(target, index, values)
        return target


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        try:
            import cupy
        except ImportError as e:
            raise BackendError(
                "scratchvae: the 'cupy' backend needs CuPy, which is not installed "
                f"({e}). Install it with `pip install scratchvae[gpu]` (CUDA 12), or the CuPy wheel "
                "that matches your CUDA toolkit (e.g. `pip install cupy-cuda13x`)."
            ) from e
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDARuntimeError: no driver, no device
            raise BackendError(
                f"scratchvae: CuPy is installed but no CUDA GPU is usable ({e}). Check `nvidia-smi`, "
                "or use the 'numpy' backend (scratchvae.set_backend('numpy'))."
            ) from e
        if n == 0:
            raise BackendError(
                "scratchvae: CuPy is installed but no CUDA GPU is visible (0 devices). "
                "Use the 'numpy' backend (scratchvae.set_backend('numpy'))."
            )
        import array_api_compat.cupy as xp

        self._cupy = cupy
        super().__init__(xp, "cuda")

    def from_numpy(self, a, dtype=None):
        a = self._cupy.asarray(a)
        return a if dtype is None else a.astype(_dtype_name(dtype), copy=False)

    def to_numpy(self, a):
        return self._cupy.asnumpy(a)

    def scatter_add(self, target, index, values):
        import cupyx

        cupyx.scatter_add(target, index, values)
        return target


class StrictBackend(Backend):
    """array-api-strict on one of its devices: the test suite's GPU stand-in."""

    name = "array_api_strict"

    def __init__(self, device="device1"):
        try:
            import array_api_strict as xp
        except ImportError as e:
            raise BackendError(
                "scratchvae: the 'array_api_strict' test backend needs `pip install array-api-strict` "
                "(it is in the `test` extra: `pip install scratchvae[test]`)."
            ) from e
        if isinstance(device, str):
            device = xp.Device(device)
        super().__init__(xp, device)

    def from_numpy(self, a, dtype=None):
        if dtype is not None:
            a = a.astype(_dtype_name(dtype), copy=False)
        return self.xp.asarray(a, device=self.device)

    def to_numpy(self, a):
        return np.asarray(a.to_device(self.xp.Device("CPU_DEVICE")))

    def scatter_add(self, target, index, values):
        # The Array API has no scatter-add; a one-hot matrix product does it exactly for the one
        # case the engine needs on this test backend: a single integer array indexing axis 0.
        xp = self.xp
        if not isinstance(index, tuple) and index.dtype == xp.bool:  # a mask: values go where it is True
            target[index] = target[index] + values
            return target
        if isinstance(index, tuple):
            if len(index) != 1:
                raise NotImplementedError(
                    "getitem backward on array_api_strict supports one integer index array on axis 0 "
                    f"only, got an index tuple of length {len(index)}"
                )
            index = index[0]
        n = target.shape[0]
        if index.shape[0] == 0:  # nothing was gathered: nothing to add
            return target
        index = xp.where(index < 0, index + n, index)  # negative indices count from the end
        onehot = xp.astype(index[:, None] == xp.arange(n, device=self.device)[None, :], values.dtype)
        flat = xp.reshape(values, (index.shape[0], -1))
        return target + xp.reshape(xp.matmul(xp.matrix_transpose(onehot), flat), target.shape)


# --------------------------------------------------------------------------------------------------
# The current backend and default dtype

_FACTORIES = {"numpy": NumpyBackend, "cupy": CupyBackend, "array_api_strict": StrictBackend}
_cache: dict = {}
_state = {"backend": None, "dtype": "float32"}


def _make(name, device=None):
    if name not in _FACTORIES:
        raise ValueError(
            f"scratchvae: unknown backend {name!r}; choose one of {sorted(_FACTORIES)} "
            "(via scratchvae.set_backend or the SCRATCHVAE_BACKEND environment variable)"
        )
    if name == "array_api_strict" and isinstance(device, str | None):
        try:
            import array_api_strict
        except ImportError:
            return StrictBackend()  # raises BackendError with the install hint
        device = array_api_strict.Device(device or "device1")
    key = (name, None if device is None else repr(device))
    if key not in _cache:
        _cache[key] = _FACTORIES[name]() if device is None else _FACTORIES[name](device)
    return _cache[key]


def set_backend(name: str, device=None) -> Backend:
    """Make ``name`` ("numpy" | "cupy" | "array_api_strict") the library new tensors are created in.

    Raises BackendError (saying what is missing and how to install it) when CuPy or a GPU is absent.
    """
    b = name if isinstance(name, Backend) else _make(name, device)
    _state["backend"] = b
    return b


def resolve_backend(backend=None) -> Backend:
    """The Backend meant by ``backend``: None -> the current one, a name ("numpy", "cupy",
    "array_api_strict", or the device spellings "cpu" / "cuda") -> that backend, a Backend -> itself."""
    if backend is None:
        return get_backend()
    if isinstance(backend, Backend):
        return backend
    return _make(_DEVICE_NAMES.get(backend, backend))


# Device spellings users know from PyTorch, mapped to the backend that serves them.
_DEVICE_NAMES = {"cpu": "numpy", "cuda": "cupy", "gpu": "cupy"}


def is_host_data(x) -> bool:
    """True for data that lives on the host: Python numbers, lists, tuples, NumPy arrays and scalars."""
    return isinstance(x, (int, float, bool, list, tuple, np.ndarray, np.generic))


def host_array(x, dtype=None, copy=False):
    """Host data as a NumPy array (in ``dtype`` when given; a fresh copy if ``copy``); what
    Backend.from_numpy takes."""
    a = np.array(x) if copy else np.asarray(x)
    return a if dtype is None else a.astype(_dtype_name(dtype), copy=False)


def get_backend() -> Backend:
    """The current backend: set_backend's, else $SCRATCHVAE_BACKEND's, else NumPy."""
    if _state["backend"] is None:
        _state["backend"] = _make(os.environ.get("SCRATCHVAE_BACKEND", "numpy").strip() or "numpy")
    return _state["backend"]


def backend_of(a) -> Backend:
    """The backend an array belongs to, found from its type (and, for array-api-strict, device)."""
    t = type(a)
    if t is np.ndarray or isinstance(a, np.generic):
        return _make("numpy")
    mod = t.__module__
    if mod.startswith("cupy"):
        return _make("cupy")
    if mod.startswith("array_api_strict"):
        return _make("array_api_strict", a.device)
    raise TypeError(f"scratchvae: {t.__module__}.{t.__name__} is not an array of a supported backend")


_NS: dict = {}


def namespace(a):
    """The Array-API namespace of an array (cached per array type: this sits on every op's path)."""
    try:
        return _NS[type(a)]
    except KeyError:
        import array_api_compat

        xp = array_api_compat.array_namespace(a)
        _NS[type(a)] = xp
        return xp


def to_numpy(x) -> np.ndarray:
    """A host NumPy array from a Tensor or an array of any backend (an explicit device -> host copy)."""
    from .autograd.tensor import Tensor  # (lazy: the backend layer sits below autograd)

    # Not getattr(x, "data", x): a CuPy array's .data is its memory pointer, not an array.
    data = x.data if isinstance(x, Tensor) else x
    if isinstance(data, np.ndarray):
        return data
    if np.isscalar(data) or isinstance(data, (list, tuple)):
        return np.asarray(data)
    return backend_of(data).to_numpy(data)


_SUPPORTED_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
# (type, dtype) -> name: NumPy's dtype.name is Python code, ~5 us a call.  The type leads the key so
# that dtypes of two libraries are never compared (array-api-strict warns when they are).
_dtype_names: dict = {}


def _dtype_name(dtype) -> str:
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            return _dtype_names[type(dtype), dtype]
        except (KeyError, TypeError):  # not seen yet, or unhashable
            pass
        name = getattr(dtype, "name", None)
        if not isinstance(name, str):  # a scalar type such as np.float32 or float (NumPy spells these)
            try:
                name = np.dtype(dtype).name
            except TypeError:
                name = str(dtype)
        name = name.rsplit(".", 1)[-1]
    if name not in _SUPPORTED_DTYPES:
        raise ValueError(f"scratchvae: unsupported dtype {dtype!r}")
    if not isinstance(dtype, str):
        try:
            _dtype_names[type(dtype), dtype] = name
        except TypeError:
            pass
    return name


def set_default_dtype(dtype) -> None:
    """Default floating dtype for new tensors and parameters: float32 (training) or float64 (checks)."""
    name = _dtype_name(dtype)
    if name not in ("float32", "float64"):
        raise ValueError(f"scratchvae: the default dtype must be float32 or float64, got {dtype!r}")
    _state["dtype"] = name


def get_default_dtype() -> str:
    return _state["dtype"]


@contextlib.contextmanager
def using_backend(name=None, dtype=None):
    """Within the block, ``name`` is the current backend and ``dtype`` the default dtype (None: leave it).

    Both are put back on exit, also when the block raises; a backend that was never chosen stays
    unchosen (the next get_backend() reads $SCRATCHVAE_BACKEND again).  Yields the current backend::

        with using_backend("cupy", "float32") as b:
            ...
    """
    saved = dict(_state)
    try:
        if name is not None:
            set_backend(name)
        if dtype is not None:
            set_default_dtype(dtype)
        yield get_backend()
    finally:
        _state.update(saved)


def dtype_name(dtype) -> str:
    """Backend-neutral name of a dtype object (``float32`` for numpy/cupy/strict float32)."""
    return _dtype_name(dtype)


def is_floating(dtype) -> bool:
    return _dtype_name(dtype) in ("float16", "float32", "float64")


def device_of(a):
    """A printable device of an array: 'cpu' for NumPy, the cupy/strict device otherwise."""
    if isinstance(a, (np.ndarray, np.generic)):
        return "cpu"
    lib = type(a).__module__.split(".")[0]
    dev = getattr(a, "device", "?")
    if lib == "cupy":
        return f"cuda:{getattr(dev, 'id', dev)}"
    text = repr(dev)
    if "'" in text:  # array_api_strict.Device('device1') -> device1
        text = text.split("'")[1]
    return f"{lib}:{text}"
