"""The layout rules of the two floors, checked by reading the source (an AST scan):

* the teaching core (autograd, ops, composites, nn, optim, distributions, elbo, models) names
  neither NumPy nor CuPy: array math goes through the namespace of the data;
* the fast layer, the backend module and the host-side code (data, checkpoints, plots, CLI, bench)
  may;
* no module imports an underscore name from another package.

Files that do not follow a rule yet are listed below, by name: the lists may only shrink (a test
fails when a listed file has become clean, so the list stays true), and a file that is not listed
must follow the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "scratchvae"

CORE = ["autograd", "nn", "optim", "distributions", "models", "elbo.py", "functional.py"]

#: Core modules that still name NumPy (or CuPy), to be moved to the namespace or the fast layer.
NAMES_NUMPY_YET: set = set()


def _core_files():
    for entry in CORE:
        p = PKG / entry
        yield from (sorted(p.rglob("*.py")) if p.is_dir() else [p])


def _names_numpy(tree) -> list:
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            hits += [a.name for a in node.names if a.name.split(".")[0] in ("numpy", "cupy", "cupyx")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in ("numpy", "cupy", "cupyx"):
                hits.append(node.module)
        elif isinstance(node, ast.Name) and node.id in ("np", "numpy", "cupy", "cp"):
            hits.append(f"{node.id} (line {node.lineno})")
    return hits


def test_the_teaching_core_names_no_array_library():
    problems, now_clean = [], []
    for path in _core_files():
        rel = path.relative_to(PKG).as_posix()
        hits = _names_numpy(ast.parse(path.read_text()))
        if hits and rel not in NAMES_NUMPY_YET:
            problems.append(f"{rel}: {', '.join(sorted(set(hits))[:5])}")
        if not hits and rel in NAMES_NUMPY_YET:
            now_clean.append(rel)
    assert not problems, ("the teaching core must go through the array namespace; move library-specific "
                          "code to scratchvae/fast/:\n  " + "\n  ".join(problems))
    assert not now_clean, f"clean now, remove from NAMES_NUMPY_YET: {now_clean}"


def test_the_scan_sees_a_numpy_name():
    assert _names_numpy(ast.parse("import numpy as np\nx = np.ones(3)"))
    assert _names_numpy(ast.parse("from cupy import asarray"))
    assert not _names_numpy(ast.parse("from ..backend import namespace\nxp = namespace(a)"))


#: (importing module, imported name) pairs that still cross a package boundary with a private name.
PRIVATE_IMPORTS_YET: set = set()


def _package_of(rel: str) -> str:
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else ""


def _private_imports(path: Path):
    rel = path.relative_to(PKG).as_posix()
    here = path.parent
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if not (node.module or "").startswith("scratchvae"):
                continue
            target = PKG.parent / Path(*node.module.split("."))
        else:
            base = here
            for _ in range(node.level - 1):
                base = base.parent
            target = base / Path(*(node.module or "").split(".")) if node.module else base
        target_rel = target.relative_to(PKG).as_posix() if target != PKG else ""
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                if _package_of(target_rel + "/x") != _package_of(rel):
                    yield rel, alias.name


def test_no_module_imports_a_private_name_from_another_package():
    found = {pair for path in sorted(PKG.rglob("*.py")) for pair in _private_imports(path)}
    new = sorted(found - PRIVATE_IMPORTS_YET)
    gone = sorted(PRIVATE_IMPORTS_YET - found)
    assert not new, f"private names imported across packages (make them public): {new}"
    assert not gone, f"fixed now, remove from PRIVATE_IMPORTS_YET: {gone}"


#: Modules still longer than the limit (to be split: the Tensor class apart from Function and backward).
TOO_LONG_YET: set = set()


@pytest.mark.parametrize("path", sorted(p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")))
def test_no_module_over_about_400_lines(path):
    n = len((PKG / path).read_text().splitlines())
    if path in TOO_LONG_YET:
        assert n > 450, f"{path} has {n} lines now: remove it from TOO_LONG_YET"
    else:
        assert n <= 450, f"{path} has {n} lines; split it by idea"
