"""Reference training steps of the VAE, kept here for the scripts and tests that import them.

- The NumPy step with hand-derived gradients (``NumpyVAEStep``, ``numpy_loss_and_grads``,
  ``init_params``, and the general ``HandVAEStep`` / ``hand_loss_and_grads``) lives in the library,
  ``scratchvae/bench/reference.py``, so that ``scratchvae bench`` has it in an installed wheel.
- The PyTorch step (``TorchVAEStep``, CPU or CUDA, only where torch is installed) lives in
  ``benchmarks/torch_reference.py``: torch is never a dependency of the library.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):  # the repository root (scratchvae) and benchmarks/ (torch_reference)
    if _p not in sys.path:
        sys.path.insert(0, _p)

from torch_reference import TorchVAEStep  # noqa: E402

from scratchvae.bench.reference import (  # noqa: E402
    SIZES,
    HandVAEStep,
    NumpyVAEStep,
    hand_loss_and_grads,
    init_params,
    numpy_loss_and_grads,
)

__all__ = ["SIZES", "HandVAEStep", "NumpyVAEStep", "TorchVAEStep", "hand_loss_and_grads", "init_params",
           "numpy_loss_and_grads"]
