"""Every numbered example runs, with tiny sizes, and writes its files into the folder it is given.

Examples are found with a glob (``examples/NN_*.py``), each run in a fresh interpreter (they set
global state such as the default dtype) with the output folder as the first argument. ``EXAMPLES``
says which arguments make each one tiny and which files it must write; an example missing from the
table is skipped with a message saying what to add, and one that another ``tests/test_examples_*.py``
file already runs is skipped here (so each example runs once per test session).

The last tests check the claims that docs/math.md quotes from ``05_gradient_variance.py`` against
closed forms: both estimators are unbiased, their variances per draw are what the algebra says,
and only the score function's grows with the dimension of z.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_MPL = importlib.util.find_spec("matplotlib") is not None

#: number -> arguments after the output folder, files that must be written, figures written where
#: matplotlib is installed. ``None`` for the files (an example whose outputs are not listed yet): at
#: least one non-empty file.
EXAMPLES = {
    "01": {"args": [], "files": ["01_autograd_basics.txt"], "figures": []},
    "02": {"args": ["--steps", "20"], "files": ["02_elbo_by_hand.txt"], "figures": ["02_elbo_by_hand.png"]},
    "03": {"args": ["--tiny"], "files": ["03_elbo_gap.txt"], "figures": ["03_elbo_gap.png"]},
    "04": {"args": ["--tiny"], "files": ["04_gmm_em.txt"], "figures": ["04_gmm_em.png"]},
    "05": {"args": ["--tiny"], "files": ["05_gradient_variance.txt"], "figures": ["05_gradient_variance.png"]},
    "06": {"args": ["--epochs", "1"], "files": ["06_pytorch_style_vae.txt"],
           "figures": ["reconstruction_1.png", "sample_1.png"]},
    "07": {"args": ["--tiny"], "files": ["07_estimator_snr.txt"], "figures": ["07_estimator_snr.png"]},
}

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _examples() -> list[Path]:
    return sorted(p for p in (ROOT / "examples").glob("[0-9][0-9]_*.py"))


def _covered_elsewhere(example: Path) -> str | None:
    """The other test file that already runs this example, if any."""
    for f in sorted((ROOT / "tests").glob("test_examples_*.py")):
        if example.name in f.read_text(encoding="utf-8"):
            return f.name
    return None


@pytest.mark.parametrize("example", _examples(), ids=lambda p: p.stem)
def test_example_runs_tiny_and_writes_its_files(example, tmp_path):
    number = example.name[:2]
    spec = EXAMPLES.get(number)
    if spec is None:
        pytest.skip(f"{example.name} has no entry in EXAMPLES in tests/test_examples.py: add the arguments "
                    "that make it tiny and the files it writes")
    other = _covered_elsewhere(example)
    if other:
        pytest.skip(f"{example.name} is run by tests/{other}")
    out = tmp_path / "out"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    proc = subprocess.run([sys.executable, str(example), str(out), *spec["args"]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    expected = spec["files"] if spec["files"] is not None else []
    for name in expected:
        assert name in written, f"{example.name} did not write {name} (wrote {written})"
        assert (out / name).stat().st_size > 0, f"{example.name} wrote an empty {name}"
    if spec["files"] is None:
        assert any((out / n).stat().st_size > 0 for n in written), f"{example.name} wrote nothing into {out}"
    for name in spec["figures"] if HAS_MPL else []:
        assert name in written, f"{example.name} did not write its figure {name} (wrote {written})"
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, f"{name} is not a PNG file"


# -- the numbers docs/math.md quotes from examples/05_gradient_variance.py -------------------------
@pytest.fixture(scope="module")
def gv():
    spec = importlib.util.spec_from_file_location("gradient_variance", ROOT / "examples" / "05_gradient_variance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


N = 40_000


def _case(gv, prefix):
    return next(c for c in gv._cases() if c[0].startswith(prefix))


def _unbiased(g, exact):
    se = g.std(ddof=1) / math.sqrt(len(g))
    assert abs(g.mean() - exact) <= 5 * se + 1e-12, (g.mean(), exact, se)


def test_gradient_estimators_are_unbiased_for_smooth_f(gv, float64):
    for prefix in ("constant", "linear", "quadratic", "exp"):
        _, f, exact = _case(gv, prefix)
        for i in (0, 1):  # d/dmu, d/dsigma
            _unbiased(gv.pathwise(f, N, seed=1)[i], exact[i])
            _unbiased(gv.score_function(f, N, seed=2)[i], exact[i])
            _unbiased(gv.score_function(f, N, seed=3, baseline=True)[i], exact[i])


def test_gradient_variances_match_closed_forms(gv, float64):
    mu, s = gv.MU, gv.SIGMA
    _, quad, _ = _case(gv, "quadratic")
    _, const, _ = _case(gv, "constant")
    _, lin, _ = _case(gv, "linear")
    a = mu - 2.0
    # pathwise, d/dmu (z - 2)^2 = 2 (z - 2): variance 4 sigma^2; d/dsigma: 2 (z - 2) eps, 4 ((a)^2 + 2 sigma^2)
    g_mu, g_sigma = gv.pathwise(quad, N, seed=4)
    assert g_mu.var() == pytest.approx(4 * s**2, rel=0.05)
    assert g_sigma.var() == pytest.approx(4 * (a**2 + 2 * s**2), rel=0.08)
    # linear f: the pathwise d/dmu is exactly 1 on every draw (zero variance)
    assert np.all(gv.pathwise(lin, 1000, seed=5)[0] == 1.0)
    # score function of a constant c: c * eps / sigma, variance c^2 / sigma^2 -- noise around a true 0
    assert gv.score_function(const, N, seed=6)[0].var() == pytest.approx(9.0 / s**2, rel=0.05)
    # score function of (z - 2)^2 for mu: (a + s eps)^2 eps / s; with E eps^2, eps^4, eps^6 = 1, 3, 15,
    # E[.^2] = (a^4 + 18 a^2 s^2 + 15 s^4) / s^2
    second = (a**4 + 18 * a**2 * s**2 + 15 * s**4) / s**2
    assert gv.score_function(quad, N, seed=7)[0].var() == pytest.approx(second - (2 * a) ** 2, rel=0.15)


def test_pathwise_is_blind_to_a_step_and_the_score_function_is_not(gv, float64):
    _, step, exact = _case(gv, "step")
    assert np.all(gv.pathwise(step, 1000, seed=8)[0] == 0.0)  # f' = 0 almost everywhere: biased
    _unbiased(gv.score_function(step, N, seed=9)[0], exact[0])


def test_score_function_variance_grows_with_dimension_pathwise_does_not(gv, float64):
    _, quad, _ = _case(gv, "quadratic")
    n = 5000
    path = [gv.pathwise(quad, n, seed=10, dim=d)[0][:, 0].var() for d in (1, 16)]
    score = [gv.score_function(quad, n, seed=10, dim=d)[0][:, 0].var() for d in (1, 16)]
    assert path[1] == pytest.approx(path[0], rel=0.15)
    assert score[1] > 20 * score[0]
