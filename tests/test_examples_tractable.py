"""Smoke tests of the tractable-model examples: examples/03_elbo_gap.py and examples/04_gmm_em.py run
with --tiny in a fresh interpreter and write their text report and (with matplotlib) their PNG.

tests/test_examples.py skips these two examples because this file names them.  Beyond "it ran",
the reports are read back: both examples print the identity they demonstrate, and its residual
must be at rounding level.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_MPL = importlib.util.find_spec("matplotlib") is not None
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(script: str, out: Path) -> str:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), str(out), "--tiny"], cwd=out.parent,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _check_png(path: Path):
    if not HAS_MPL:
        pytest.skip("matplotlib is not installed: the example writes no figure")
    assert path.is_file(), f"{path.name} was not written"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path.name} is not a PNG file"


def test_03_elbo_gap_runs_tiny(tmp_path):
    out = tmp_path / "out"
    _run("03_elbo_gap.py", out)
    text = (out / "03_elbo_gap.txt").read_text()
    # log p(x) - ELBO - KL(q || posterior) at every step: rounding only
    residual = float(re.search(r"max \|log p\(x\) - ELBO - KL\| over all steps = (\S+)", text).group(1))
    assert residual < 1e-10, text
    _check_png(out / "03_elbo_gap.png")


def test_04_gmm_em_runs_tiny(tmp_path):
    out = tmp_path / "out"
    _run("04_gmm_em.py", out)
    text = (out / "04_gmm_em.txt").read_text()
    assert float(re.search(r"max \|ELBO - log p\(x\)\| after an E-step: (\S+)", text).group(1)) < 1e-10, text
    assert float(re.search(r"smallest change of the ELBO between half-steps: (\S+)", text).group(1)) > -1e-10, text
    _check_png(out / "04_gmm_em.png")
