"""The docs cannot rot: every link, every named function and every cited test must exist.

``check_markdown(text, path)`` reads one markdown file and returns a list of problems:

* a relative link ``[text](target)`` (or ``<img src=...>`` / ``<a href=...>``) whose target file or
  folder does not exist; a ``#fragment`` on a markdown target must be one of its headings (GitHub's
  slugs), and an ``#L<n>`` fragment on a source file must be a line of it;
* a link whose text *names* something in the Python file it points at -- ``[Normal.rsample](...)``,
  ``[`sum_to`](...)``, ``[`sum_to(g, shape)`](...)``, ``[`scratchvae.nn.init`](...)`` -- when that
  name is not defined there (parsed with ``ast``: top-level functions, classes and assignments, and
  the methods and attributes of classes; a name the file only imports does not count, because the
  reader should land on the definition). A link whose text is a path (``[linear.py](...)``,
  ``[tests/test_nn.py](...)``) must point at that path;
* a cited test -- ``tests/test_x.py::test_name`` anywhere in the text, or a backticked
  `` `test_name` `` -- that is not defined in that file (or, for the bare name, in any test file).

Fenced code blocks and math are not scanned for links (``a[i](b)`` in code is not a link), but a
cited ``tests/...::...`` in a shell command still has to exist.

And every fenced ```` ```python ```` block of README.md and docs/*.md runs
(``test_python_blocks_run``): the blocks of one file in order, sharing one namespace like a doctest
session, in a fresh namespace per file, with a temporary folder as the working directory and
matplotlib's Agg backend. A block is left out only when the line right before its fence is an
explicit ``<!-- test: skip (why) -->``; a failure names the file, the block's number and its line.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import re
import sys
import traceback
import unicodedata
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Files another open issue is still writing, as repository paths ("docs/page.md"): a link to one of
#: them is allowed while the file is missing, and checked as usual once it exists. Keep it empty
#: except while such work is in flight.
PENDING: set[str] = set()

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[^\n]*\n.*?^\1\2[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$(?!\d)")
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_HTML_ATTR = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*\"([^\"]+)\"", re.IGNORECASE)
_TEST_REF = re.compile(r"\b(tests/[\w/]*test_\w*\.py)::([\w:]+)")
_BARE_TEST = re.compile(r"`(test_\w+)(?:\(\))?`")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_FILE_TEXT = re.compile(r"(?:^|/)[\w.-]+\.(?:py|md|txt|npz|json|toml|ya?ml|cfg|ini|png|svg|sh)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# -- markdown scanning -----------------------------------------------------------------------------
def _mask(text: str):
    """Blank out fenced code and math; replace code spans by placeholders (restored in link text)."""
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    spans: list[str] = []

    def keep(m):  # the newlines stay, so line numbers in messages stay right
        spans.append(m.group(0))
        return f"\x00{len(spans) - 1}\x00" + "\n" * m.group(0).count("\n")

    text = _CODE_SPAN.sub(keep, text)
    text = _DISPLAY_MATH.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = _INLINE_MATH.sub("", text)
    return text, spans


def _unmask(s: str, spans: list[str]) -> str:
    def back(m):
        span = spans[int(m.group(1))]
        return span + m.group(2)[span.count("\n"):]

    return re.sub(r"\x00(\d+)\x00(\n*)", back, s)


def iter_links(text: str):
    """Yield ``(link_text, target, line)`` for inline links, reference definitions and HTML src/href."""
    masked, spans = _mask(text)
    for m in _LINK.finditer(masked):
        if re.search(r"\n[ \t]*\n", m.group(2)):
            continue  # a link's text cannot span a paragraph break: these brackets are not a link
        text = " ".join(_unmask(m.group(2), spans).split())
        yield text, m.group(3), masked.count("\n", 0, m.start()) + 1
    for rx in (_REF_DEF, _HTML_ATTR):
        for m in rx.finditer(masked):
            yield "", m.group(1), masked.count("\n", 0, m.start()) + 1


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces -> hyphens."""
    h = re.sub(r"`|\*\*|__|\$", "", heading.strip()).lower()
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)  # a link in a heading keeps only its text
    out = []
    for ch in h:
        if ch in " -":
            out.append("-")
        elif ch == "_" or unicodedata.category(ch)[0] in "LN":
            out.append(ch)
    return "".join(out)


def heading_anchors(text: str) -> set[str]:
    masked, spans = _mask(text)
    seen: dict[str, int] = {}
    anchors = set()
    for m in re.finditer(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", masked, re.MULTILINE):
        slug = github_slug(_unmask(m.group(1), spans))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


# -- what a Python file defines --------------------------------------------------------------------
def _targets(node) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _body_names(body) -> dict:
    """name -> (lineno, class body names or None) for the defs, classes and assignments of a body."""
    names: dict = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = (node.lineno, None)
        elif isinstance(node, ast.ClassDef):
            names[node.name] = (node.lineno, _body_names(node.body))
        elif isinstance(node, (ast.If, ast.Try)):  # definitions under `if TYPE_CHECKING:` / try-import
            for sub in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                names.update({k: v for k, v in _body_names(sub).items() if k not in names})
        else:
            for t in _targets(node):
                names.setdefault(t, (node.lineno, None))
    return names


@cache
def python_definitions(path: Path) -> tuple[dict, set[str], int]:
    """(definitions, names the file imports, number of lines) of a Python file."""
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src, filename=str(path))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
    return _body_names(tree.body), imported, src.count("\n") + 1


def _lookup(defs: dict, parts: list[str]):
    """The line where ``parts`` (``["Normal", "rsample"]``) is defined in ``defs``, or None."""
    scope = defs
    line = None
    for p in parts:
        if scope is None or p not in scope:
            return None
        line, scope = scope[p]
    return line


def _module_name(path: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _named_object(text: str) -> str | None:
    """The dotted name a link text names, or None when the text is prose or a path.

    ``Normal.rsample``, `` `sum_to` ``, `` `sum_to(g, shape)` `` and `` `Linear(in, out)` `` name
    objects; so does a bare lower-case word in backticks. A bare word without backticks (``[here]``,
    ``[the Gaussian KL]``) is prose.
    """
    ticked = text.startswith("`") and text.endswith("`") and len(text) > 1
    t = text.strip("`").strip()
    call = re.match(rf"^({_IDENT}(?:\.{_IDENT})*)\s*\(.*\)$", t, re.DOTALL)
    if call:
        t = call.group(1)
    if not _DOTTED.fullmatch(t) or _FILE_TEXT.search(t):
        return None
    if ticked or call or "." in t or "_" in t or t[0].isupper():
        return t
    return None


def _check_name(name: str, target: Path, fragment: str, where: str) -> list[str]:
    defs, imported, _ = python_definitions(target)
    rel = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    parts = name.split(".")
    mod = _module_name(target)
    if mod and name.startswith("scratchvae"):
        # a module path: `scratchvae.nn.init` -> scratchvae/nn/init.py, `scratchvae.data.read_idx`
        # -> a name in scratchvae/data/__init__.py
        mparts = mod.split(".")
        if parts[: len(mparts)] != mparts:
            return [f"{where}: link text `{name}` is a module path, but it points at {rel} (module {mod})"]
        parts = parts[len(mparts):]
        if not parts:
            return []
    line = _lookup(defs, parts)
    if line is None:
        hint = " (the file only imports it: link to the file that defines it)" if parts[0] in imported else ""
        return [f"{where}: `{'.'.join(parts)}` is not defined in {rel}{hint}"]
    m = re.fullmatch(r"L(\d+)(?:-L?\d+)?", fragment or "")
    if m and int(m.group(1)) != line:
        return [f"{where}: {rel}#L{m.group(1)} is not where `{name}` is defined (line {line})"]
    return []


def check_markdown(text: str, path: Path) -> list[str]:
    """Every problem with the links and test citations of one markdown file (empty: all good)."""
    problems: list[str] = []
    base = path.parent
    rel_md = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for link_text, target, line in iter_links(text):
        where = f"{rel_md}:{line}"
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue  # web links are not fetched
        file_part, _, fragment = target.partition("#")
        if not file_part:  # a link within this page
            if fragment and fragment.lower() not in heading_anchors(text):
                problems.append(f"{where}: this page has no heading with anchor #{fragment}")
            continue
        dest = (ROOT / file_part.lstrip("/")) if file_part.startswith("/") else (base / file_part)
        dest = dest.resolve()
        rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
        if not dest.exists():
            if rel not in PENDING:
                problems.append(f"{where}: link [{link_text}]({target}) points at {rel}, which does not exist")
            continue
        if (dest.is_file() and dest.suffix == ".md" and fragment
                and fragment.lower() not in heading_anchors(dest.read_text(encoding="utf-8"))):
            problems.append(f"{where}: {rel} has no heading with anchor #{fragment}")
        n = re.fullmatch(r"L(\d+)(?:-L?\d+)?", fragment)
        if n and dest.is_file() and dest.suffix == ".py" and int(n.group(1)) > python_definitions(dest)[2]:
            problems.append(f"{where}: {rel} has no line {n.group(1)}")
        plain = link_text.strip("`").strip()
        if plain and _FILE_TEXT.search(plain.rstrip("/")) or plain.endswith("/"):
            # the text is a path: it must be the path the link points at
            want = plain.rstrip("/")
            shown = dest.parent if dest.name == "__init__.py" and plain.endswith("/") else dest
            if want.startswith(("./", "../")):  # a relative path as text: compare where it leads
                ok = (base / want).resolve() == shown
            else:
                ok = shown.as_posix().endswith("/" + want) or shown.name == want
            if not ok:
                problems.append(f"{where}: link text {plain!r} does not match its target {rel}")
            continue
        name = _named_object(link_text)
        if name and dest.is_file() and dest.suffix == ".py":
            problems += _check_name(name, dest, fragment, where)
    problems += _check_tests(text, rel_md)
    return problems


def _check_tests(text: str, rel_md) -> list[str]:
    problems = []
    for m in _TEST_REF.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        test_file = ROOT / m.group(1)
        if not test_file.is_file():
            problems.append(f"{rel_md}:{line}: {m.group(1)} does not exist")
            continue
        parts = [p for p in m.group(2).split("::") if p]
        if _lookup(python_definitions(test_file)[0], parts) is None:
            problems.append(f"{rel_md}:{line}: {m.group(1)}::{m.group(2)} is not a test in that file")
    defined = _all_test_names()
    for m in _BARE_TEST.finditer(text):
        if m.group(1) not in defined:
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{rel_md}:{line}: `{m.group(1)}` is not defined in any file under tests/")
    return problems


@cache
def _all_test_names() -> frozenset[str]:
    names: set[str] = set()
    for f in sorted((ROOT / "tests").rglob("*.py")):
        defs = python_definitions(f)[0]
        names.update(defs)
        for _, members in defs.values():
            names.update(members or ())
    return frozenset(names)


def doc_files() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


_CODE_CITE = re.compile(r"\bdocs/([\w/.-]+?\.md)(?:#([\w-]+))?")


def check_code_citations(text: str, rel: str) -> list[str]:
    """Problems with the ``docs/page.md#anchor`` references in one source file's docstrings and comments."""
    problems = []
    for m in _CODE_CITE.finditer(text):
        page, anchor = "docs/" + m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        dest = ROOT / page
        if not dest.is_file():
            if page not in PENDING:
                problems.append(f"{rel}:{line}: cites {page}, which does not exist")
        elif anchor and anchor.lower() not in heading_anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{rel}:{line}: cites {page}#{anchor}, but {page} has no such heading")
    return problems


def source_files() -> list[Path]:
    files = [p for d in ("scratchvae", "examples", "benchmarks", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]
    return files + [p for p in sorted((ROOT / "tests").glob("*.py")) if p.name != Path(__file__).name]


# -- python blocks -------------------------------------------------------------------------------
class Block(NamedTuple):
    number: int        # 1, 2, ... among the file's python blocks (skipped ones count too)
    line: int          # the line of the opening fence
    code: str          # the block's text, dedented by the fence's indentation
    skip: str | None   # the reason given by <!-- test: skip (reason) --> right before it, or None


_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$")
_MARKER = re.compile(r"^\s*<!--\s*test:(.*?)-->\s*$")
_SKIP = re.compile(r"^\s*skip\s*\((.*\S.*)\)\s*$")
PYTHON_INFO = {"python", "py"}


def python_blocks(text: str) -> tuple[list[Block], list[str]]:
    """The fenced python blocks of a markdown text, and the problems with its ``<!-- test: -->`` markers.

    A fence may be indented (a block inside a list item); its content is dedented by the same amount.
    A marker must be the line right before a python fence and read ``<!-- test: skip (reason) -->``.
    """
    lines = text.split("\n")
    blocks: list[Block] = []
    problems: list[str] = []
    marker_for: dict[int, tuple[int, str]] = {}  # fence line index -> (marker line, marker text)
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            mk = _MARKER.match(lines[i])
            if mk:
                nxt = _OPEN.match(lines[i + 1]) if i + 1 < len(lines) else None
                if nxt and nxt.group(3).lower() in PYTHON_INFO:
                    marker_for[i + 1] = (i + 1, mk.group(1))
                else:
                    problems.append(f"line {i + 1}: a <!-- test: ... --> marker must be right before a ```python fence")
            i += 1
            continue
        indent, fence, info = len(m.group(1).expandtabs()), m.group(2), m.group(3).lower()
        close = re.compile(rf"^[ \t]*{fence[0]}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if info in PYTHON_INFO:
            body = [ln[indent:] if ln[:indent].strip() == "" else ln.lstrip() for ln in lines[i + 1:j]]
            skip = None
            if i in marker_for:
                where, what = marker_for[i]
                sk = _SKIP.match(what)
                if sk:
                    skip = sk.group(1).strip()
                else:
                    problems.append(f"line {where}: the only marker is <!-- test: skip (reason) -->, got "
                                    f"<!-- test:{what}-->")
            blocks.append(Block(len(blocks) + 1, i + 1, "\n".join(body) + "\n", skip))
        i = j + 1
    return blocks, problems


@contextlib.contextmanager
def _doc_session(tmp_path, monkeypatch):
    """Run doc blocks in ``tmp_path`` with matplotlib's Agg backend, and put back what they may change:
    the backend and default dtype, the fast-layer switch and the default random generator."""
    import scratchvae as sv
    from scratchvae.autograd import fastpath
    from scratchvae.random import default_generator

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        matplotlib = None
    if matplotlib is not None:
        matplotlib.use("Agg")
    gen = default_generator()
    saved_gen = copy.deepcopy(vars(gen))
    fast_was = fastpath.is_enabled()
    try:
        with sv.using_backend():
            yield
    finally:
        fastpath.set_enabled(fast_was)
        vars(gen).clear()
        vars(gen).update(saved_gen)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def run_blocks(md: Path, blocks: list[Block]) -> None:
    """Execute the blocks in order in one fresh namespace; fail naming the file, block and line."""
    rel = md.relative_to(ROOT).as_posix() if md.is_relative_to(ROOT) else str(md)
    namespace: dict = {"__name__": "__docs__"}
    for b in blocks:
        if b.skip is not None:
            continue
        # Padded with newlines so that a traceback gives the markdown file's own line numbers.
        code = compile("\n" * b.line + b.code, str(md), "exec")
        failure = None
        try:
            exec(code, namespace)
        except Exception as e:  # noqa: BLE001 - any failure of a block is reported the same way
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next))
            failure = f"{rel}: python block {b.number} (fence at line {b.line}) raised {type(e).__name__}: {e}\n\n{tb}"
        if failure is not None:  # outside the except, so pytest does not print the exception twice
            pytest.fail(failure, pytrace=False)


def files_with_python_blocks() -> list[Path]:
    return [md for md in doc_files() if python_blocks(md.read_text(encoding="utf-8"))[0]]


# -- the tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize("md", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_function_names_and_cited_tests_exist(md):
    problems = check_markdown(md.read_text(encoding="utf-8"), md)
    assert not problems, "broken references in the docs:\n  " + "\n  ".join(problems)


def test_docs_cited_in_the_code_exist():
    """Docstrings cite their equations as ``docs/page.md#heading``: those pages and headings must exist."""
    problems = []
    for f in source_files():
        problems += check_code_citations(f.read_text(encoding="utf-8"), f.relative_to(ROOT).as_posix())
    assert not problems, "the code cites docs that do not exist:\n  " + "\n  ".join(problems)


def test_code_citation_checker_catches_a_missing_heading():
    good = "see docs/elbo.md#the-elbo and docs/elbo.md"
    bad = "see docs/elbo.md#no-such-heading, and\n docs/nowhere.md"
    assert check_code_citations(good, "x.py") == []
    problems = check_code_citations(bad, "x.py")
    assert len(problems) == 2 and "x.py:1:" in problems[0] and "x.py:2:" in problems[1], problems


FAKE = ROOT / "docs" / "_synthetic_.md"  # never written: the checker only needs its folder


def _problems(md: str) -> list[str]:
    return check_markdown(md, FAKE)


def test_checker_accepts_good_links():
    md = (
        "See [the ELBO page](elbo.md#the-elbo), [`elbo`](../scratchvae/elbo.py), [ELBO.loss](../scratchvae/elbo.py),\n"
        "[`sum_to(g, shape)`](../scratchvae/autograd/function.py), [`scratchvae.random`](../scratchvae/random.py),\n"
        "[linear.py](../scratchvae/nn/linear.py), [../README.md](../README.md), [web](https://example.org/x.py), [top](#), [here](#the-top)\n"
        "`tests/test_elbo.py::test_reduction_contract` and `test_reduction_contract`.\n"
        "```python\nx = a[i](b)   # code, not a link: [nope](missing.py)\n```\n"
        "Math is not a link either: $[0, 1](x)$.\n"
        "## The top\n"
    )
    assert _problems(md) == []


@pytest.mark.parametrize(
    "md, expected",
    [
        ("[gone](../scratchvae/no_such_file.py)", "does not exist"),
        ("[page](nowhere.md)", "does not exist"),
        ("[Normal.sample_fast](../scratchvae/distributions/normal.py)", "`Normal.sample_fast` is not defined"),
        ("[`sum_to_shape`](../scratchvae/autograd/function.py)", "`sum_to_shape` is not defined"),
        ("[`elbo(x, encode)`](../scratchvae/distributions/kl.py)", "`elbo` is not defined"),
        ("[`Independent`](../scratchvae/elbo.py)", "only imports it"),
        ("[`scratchvae.random`](../scratchvae/backend.py)", "module path"),
        ("[linear.py](../scratchvae/nn/mlp.py)", "does not match its target"),
        ("[the ELBO](elbo.md#no-such-section)", "no heading with anchor"),
        ("[below](#no-such-section)", "this page has no heading"),
        ("[`Normal.rsample`](../scratchvae/distributions/normal.py#L3)", "is not where"),
        ("Checked by `tests/test_elbo.py::test_this_does_not_exist`.", "is not a test in that file"),
        ("Checked by `tests/test_nothing_here.py::test_x`.", "does not exist"),
        ("Checked by `test_this_name_is_nowhere`.", "not defined in any file under tests/"),
    ],
)
def test_checker_catches_broken_references(md, expected):
    problems = _problems("Some text, then " + md + "\n")
    assert len(problems) == 1 and expected in problems[0], problems


def test_checker_reports_the_line():
    problems = _problems("line one\n\nline three has [x](missing.py)\n")
    assert problems and problems[0].startswith("docs/_synthetic_.md:3:"), problems
    problems = _problems("a `code\nspan` and $$\nmath\n$$\n[a link whose text\nspans two lines](gone.md)\n")
    assert len(problems) == 1 and problems[0].startswith("docs/_synthetic_.md:5:"), problems


def test_pending_pages_are_only_tolerated_while_missing(monkeypatch):
    monkeypatch.setitem(globals(), "PENDING", {"docs/_pending_.md"})
    assert _problems("[soon](_pending_.md)") == []
    assert _problems("[soon](_pending_.md#a-section)") == []
    assert len(_problems("[other](_other_.md)")) == 1


def test_github_slugs():
    assert github_slug("Two diagonal Gaussians, step by step") == "two-diagonal-gaussians-step-by-step"
    assert github_slug("Bernoulli, Categorical, Independent") == "bernoulli-categorical-independent"
    assert github_slug("`Normal.rsample` and the KL") == "normalrsample-and-the-kl"
    assert heading_anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


@pytest.mark.parametrize("md", files_with_python_blocks(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_run(md, tmp_path, monkeypatch):
    """Every ```python block of the page runs, the page's blocks in order in one namespace."""
    blocks, problems = python_blocks(md.read_text(encoding="utf-8"))
    assert not problems, f"{md.relative_to(ROOT)}: " + "; ".join(problems)
    with _doc_session(tmp_path, monkeypatch):
        run_blocks(md, blocks)


def test_test_markers_are_well_formed():
    """A ``<!-- test: ... -->`` marker is ``skip (a reason)`` and stands right before a python fence."""
    problems = []
    for md in doc_files():
        problems += [f"{md.relative_to(ROOT)}: {p}" for p in python_blocks(md.read_text(encoding="utf-8"))[1]]
    assert not problems, "\n  ".join(["badly placed or malformed test markers:"] + problems)


def test_python_block_extraction():
    md = (
        "text\n"
        "```python\na = 1\n```\n"
        "```bash\necho no\n```\n"
        "- in a list:\n\n"
        "  ```python\n  b = a + 1\n    c = 2\n  ```\n"
        "<!-- test: skip (needs the network) -->\n"
        "```python\nimport urllib\n```\n"
        "````markdown\n```python\nnot_a_block = 1\n```\n````\n"
    )
    blocks, problems = python_blocks(md)
    assert problems == []
    assert [(b.number, b.line, b.skip) for b in blocks] == [(1, 2, None), (2, 10, None), (3, 15, "needs the network")]
    assert blocks[1].code == "b = a + 1\n  c = 2\n"


@pytest.mark.parametrize("marker", ["<!-- test: skip -->", "<!-- test: skip () -->", "<!-- test: ignore (x) -->"])
def test_a_skip_needs_the_explicit_marker_with_a_reason(marker):
    blocks, problems = python_blocks(f"{marker}\n```python\nx = 1\n```\n")
    assert blocks[0].skip is None and len(problems) == 1 and "line 1" in problems[0], problems
    _, problems = python_blocks("<!-- test: skip (why) -->\n\nSome text.\n")
    assert len(problems) == 1 and "right before" in problems[0], problems


def test_a_failing_block_names_the_file_block_and_line(tmp_path):
    md = tmp_path / "page.md"
    md.write_text("# Page\n\n```python\nx = 1\n```\n\n```python\nassert x == 2, 'x is not 2'\n```\n")
    blocks, _ = python_blocks(md.read_text())
    with pytest.raises(pytest.fail.Exception) as info:
        run_blocks(md, blocks)
    msg = str(info.value)
    assert "page.md: python block 2 (fence at line 7)" in msg and "x is not 2" in msg, msg
    assert 'page.md", line 8' in msg, msg  # the traceback points at the markdown line


def test_the_tour_states_the_true_length_of_backward_and_call():
    """docs/README.md quotes how long Tensor.backward and Function.__call__ are: keep it true."""
    import inspect
    import re
    import sys

    import scratchvae  # noqa: F401

    tensor_mod = sys.modules["scratchvae.autograd.tensor"]
    function_mod = sys.modules["scratchvae.autograd.function"]
    text = (ROOT / "docs" / "README.md").read_text()
    m = re.search(r"`Tensor.backward`\]\([^)]*\) is (\d+) lines, its docstring included \(and\s+"
                  r"\[`Function.__call__`\]\([^)]*\) (\d+)\)", text)
    assert m, "docs/README.md no longer states the lengths of Tensor.backward and Function.__call__"
    assert int(m.group(1)) == len(inspect.getsource(tensor_mod.Tensor.backward).splitlines())
    assert int(m.group(2)) == len(inspect.getsource(function_mod.Function.__call__).splitlines())
