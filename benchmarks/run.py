"""The full benchmark suite: ``scratchvae bench`` plus the PyTorch references (torch-cpu, torch-cuda).

    python benchmarks/run.py                         # quick sizes: a few minutes on a 2-core CPU
    python benchmarks/run.py --full --out benchmarks/results/cpu-full
    python benchmarks/run.py --threads 1 --backends numpy,hand-numpy,torch-cpu

Takes every option of ``scratchvae bench`` (``--help``).  When torch imports, ``torch-cpu`` and
``torch-cuda`` (where CUDA is available) are added to the default backends, so the table's
"x torch" column and the PyTorch targets are measured in the same run.  ``--threads N`` is applied
before NumPy and torch load (OPENBLAS/OMP/MKL_NUM_THREADS and torch.set_num_threads), so it holds
even without threadpoolctl.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _early_threads(argv):
    """The value of --threads, read before anything imports NumPy (BLAS reads its thread count at load)."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    threads = _early_threads(argv)
    if threads and threads.isdigit():
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = threads
    for p in (str(ROOT), str(HERE)):
        if p not in sys.path:
            sys.path.insert(0, p)
    from torch_reference import register

    from scratchvae.bench import cli as bench_cli  # only now: after the thread settings above
    from scratchvae.bench.backends import BACKENDS

    added = register(int(threads) if threads and threads.isdigit() else None)
    for name in added:
        BACKENDS[name].default = True
    if not added:
        print("note: torch is not installed, so the PyTorch reference rows (torch-cpu, torch-cuda) are skipped")
    return bench_cli.main(argv, prog="benchmarks/run.py")


if __name__ == "__main__":
    sys.exit(main())
