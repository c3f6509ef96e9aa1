"""Random-program differential fuzzing of the whole public op set.

Hypothesis draws small programs -- DAGs of 3-12 ops over 1-3 float64 inputs of mutually
broadcastable shapes (0-3 dims, size-1 axes, 0-d) -- in which every op takes its operands from
all the values computed so far, so intermediates are reused (fan-out, diamonds, broadcasting
against each other).  The op set: ``scratchvae.functional`` (F.*), the Tensor operators and
methods, and ``scratchvae.nn.functional`` (NF.*).

Each program is checked these ways:

1. forward, op by op: every scratchvae value equals an independent NumPy implementation of its op
   (the table OPS: op name -> drawing function with the argument constraints, NumPy callable)
   applied to scratchvae's own operand values (rtol 1e-12: no error accumulates between ops);
2. forward, end to end: the values equal the same program run on plain NumPy arrays through the
   NumPy table alone (rtol 1e-10: two independent chains of roundings, amplified by the ops), and
   the values under ``no_grad`` equal those with the graph recorded;
3. backward: ``scratchvae.gradcheck`` (float64 central differences) on every input, for the
   scalar sum_k <W_k, v_k> over ALL computed values v_k with fixed random weights W_k, so every op
   of the DAG -- also the ones whose value nothing else uses -- is differentiated; then the same
   gradients with only a drawn subset of the inputs requiring grad, twice as much after two
   backward passes through a retained graph (under the profiler and anomaly detection), and the
   same values and gradients with the fast layer off (``scratchvae.fast.disabled()``);
4. float32: the program in float32 keeps every value and gradient float32, values close to float64;
5. the array_api_strict backend (device1, the suite's CuPy stand-in), and CuPy where a GPU is
   present: the same values and input gradients as the NumPy backend.

Guards (each commented where the op is drawn): indexing the Array API does not have (2-d integer
arrays, several index arrays, array + slice) runs on NumPy (and CuPy) only.

The program is also kept as Python source: a failure prints it (inputs, constants, one line per
op) as a standalone script, so a failure shrunk by hypothesis is a copy-paste repro.

Values are kept where finite differences are valid: |values| <= 30, positive domains for
log / sqrt / fractional powers, and no element within DELTA of a kink (0 for abs / relu /
leaky_relu, the bounds of clip, a near-tie in max / min / maximum / minimum, the threshold of a
comparison mask) unless it sits exactly on it.  An exact hit only happens on a plateau or
between copies of one value (relu's zeros, x ** 0, a broadcast or concatenated copy), where the
derivative is the same on both sides, so the split-evenly rule for ties is exercised without
false alarms.

Profiles (tests/conftest.py): the fuzz test takes its settings from the loaded profile and scales
its example count -- ``ci`` (the default, derandomized): 12 x 25 = 300 programs, about ten seconds;
``thorough`` (HYPOTHESIS_PROFILE=thorough): 10 x 400 = 4000 random programs, a minute or two.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchvae as sv
import scratchvae.functional as F
import scratchvae.nn.functional as NF
from scratchvae import backend as B

pytestmark = pytest.mark.usefixtures("float64")

MAX_SIZE = 96     # elements per value (gradcheck is element by element on the inputs)
LIMIT = 30.0      # |value| bound: keeps f = sum <W, v> small enough for central differences
DELTA = 1e-2      # minimum distance from a kink (eps = 1e-6 times the local derivative is far below)
SPD_LIMIT = 5.0   # |entries| of a matrix turned into A A^T + n I

_BASE_EXAMPLES = settings.default.max_examples
FUZZ_EXAMPLES = 12 * _BASE_EXAMPLES if _BASE_EXAMPLES <= 100 else 10 * _BASE_EXAMPLES  # ci: 300, thorough: 4000
FUZZ_SETTINGS = settings(
    settings.default,
    max_examples=FUZZ_EXAMPLES,
    suppress_health_check=list(settings.default.suppress_health_check)
    + [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _arr_src(a, float_dtype="float64"):
    """Python source re-creating the NumPy array ``a`` exactly (repr of floats round-trips); a
    floating array is written in ``float_dtype``, any other keeps its dtype."""
    a = np.asarray(a)
    dt = float_dtype if a.dtype.kind == "f" else a.dtype.name
    src = f"np.array({a.tolist()!r}, dtype=np.{dt})"
    return src + (f".reshape({a.shape!r})" if a.size == 0 else "")


class Reject(Exception):
    """The drawn op does not apply to the drawn operands (or leaves the safe domain): draw another."""


# ------------------------------------------------------------------------------------------------
# Program representation


@dataclass
class Const:
    """A constant of a program.  ``kind``: "host" (a NumPy array handed to the op as it is: index
    arrays, which the library moves to the device itself), "array" (a backend array: where's
    condition, reparameterize's noise) or "tensor" (a no-grad Tensor on the backend)."""

    name: str
    value: np.ndarray
    kind: str

    def source(self, dtype="float64"):
        arr = _arr_src(self.value, dtype)
        if self.kind == "host":
            return f"{self.name} = {arr}"
        if self.kind == "array":
            return f"{self.name} = sv.get_backend().from_numpy({arr})"
        return f"{self.name} = sv.tensor({arr})"


@dataclass
class Step:
    op: str
    args: tuple        # indices of the operand values
    params: dict
    expr: str          # the scratchvae expression, in terms of v0, v1, ... and constants
    strict: str = "ok"  # "ok", "forward" (strict: compare forward values only) or "skip"


@dataclass
class Program:
    inputs: list                      # NumPy arrays
    steps: list = field(default_factory=list)
    consts: list = field(default_factory=list)
    ref: list = field(default_factory=list)     # the NumPy-only chain: one array per value
    weights: list = field(default_factory=list)  # one weight array per computed value
    partial: tuple = ()                          # the inputs that require grad in the partial run

    @property
    def n_in(self):
        return len(self.inputs)

    def definitions(self, backend="numpy", dtype="float64"):
        """The program as Python source: constants, the weights W, ``program(v0, ...)`` returning
        every value, and ``loss(v0, ...)`` = sum_k <W_k, v_k> over the computed values.  The test
        runs exactly this text (exec), so a printed failure is the program that failed."""
        lines = [
            "import numpy as np, scratchvae as sv",
            "import scratchvae.functional as F, scratchvae.nn.functional as NF",
            f"sv.set_default_dtype({dtype!r})",
            f"DT, DT_NAME = np.{dtype}, {dtype!r}",
        ]
        if backend != "numpy":
            lines.append(f"sv.set_backend({backend!r})")
        lines += [c.source(dtype) for c in self.consts]
        lines.append("W = [" + ", ".join(f"sv.tensor({_arr_src(w, dtype)})" for w in self.weights) + "]")
        names = ", ".join(f"v{i}" for i in range(self.n_in))
        lines.append(f"def program({names}):")
        for k, st_ in enumerate(self.steps):
            j = self.n_in + k
            lines.append(f"    v{j} = {st_.expr}  # {st_.op}, shape {self.ref[j].shape}")
        lines.append(f"    return [{', '.join(f'v{i}' for i in range(len(self.ref)))}]")
        lines.append("def loss(*inputs):")
        lines.append(f"    return sum(F.sum(v * w) for v, w in zip(program(*inputs)[{self.n_in}:], W))")
        return "\n".join(lines)

    def source(self, backend="numpy", dtype="float64", check="sv.gradcheck(loss, [{names}])"):
        """A standalone repro: the definitions, the inputs, and the check that failed on them."""
        lines = [self.definitions(backend, dtype)]
        for i, a in enumerate(self.inputs):
            lines.append(f"v{i} = sv.tensor({_arr_src(a, dtype)}, requires_grad=True)  # shape {a.shape}")
        names = ", ".join(f"v{i}" for i in range(self.n_in))
        lines.append(f"values = program({names})")
        lines.append(check.format(names=names))
        return "\n".join(lines)

    def compile(self, backend="numpy", dtype="float64"):
        """(program, loss) built on the current backend (constants and weights live there)."""
        env = {}
        exec(compile(self.definitions(backend, dtype), "<fuzz program>", "exec"), env)
        return env["program"], env["loss"]


# ------------------------------------------------------------------------------------------------
# Drawing helpers


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _bshape(*shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def _kink_ok(d):
    """Each element of d (distance to a kink) is either exactly 0 or at least DELTA away."""
    d = np.abs(np.asarray(d))
    return bool(np.all((d == 0) | (d >= DELTA)))


def _fmt_slice(s):
    txt = ("" if s.start is None else str(s.start)) + ":" + ("" if s.stop is None else str(s.stop))
    return txt + ("" if s.step is None else f":{s.step}")


def _fmt_index(index):
    def one(i):
        if i is Ellipsis:
            return "..."
        if isinstance(i, slice):
            return _fmt_slice(i)
        return repr(i)

    if isinstance(index, tuple):
        if len(index) == 0:
            return "()"
        if len(index) == 1:
            return one(index[0]) + ","
        return ", ".join(one(i) for i in index)
    return one(index)


class Drawer:
    """What an op's drawing function works with: hypothesis' ``draw``, the values so far (the
    NumPy chain), and the program's constants."""

    def __init__(self, draw, prog: Program):
        self.draw = draw
        self.prog = prog

    @property
    def vals(self):
        return self.prog.ref

    def name(self, i):
        return f"v{i}"

    def pick(self, pred=lambda v: True):
        cands = [i for i, v in enumerate(self.vals) if pred(v)]
        if not cands:
            raise Reject
        return self.draw(st.sampled_from(cands))

    def choice(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def integers(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def boolean(self):
        return self.draw(st.booleans())

    def rng(self):
        return np.random.default_rng(self.draw(st.integers(0, 2**32 - 1)))

    def const(self, value, kind):
        c = Const(f"c{len(self.prog.consts)}", np.asarray(value), kind)
        self.prog.consts.append(c)
        return c

    def axis(self, nd, allow_empty_tuple=True):
        if nd == 0:
            return self.choice([None, ()] if allow_empty_tuple else [None])
        kind = self.choice(["none", "int", "tuple"])
        if kind == "none":
            return None
        if kind == "int":
            return self.integers(-nd, nd - 1)
        axes = self.draw(st.lists(st.integers(0, nd - 1), unique=True, min_size=0 if allow_empty_tuple else 1,
                                  max_size=nd))
        return tuple(a - nd if self.boolean() else a for a in axes)


# ------------------------------------------------------------------------------------------------
# The op table.  Each entry: name -> Op(draw, np).  ``draw(d)`` chooses the operands and parameters
# (the argument constraints live there: domains, kinks, shapes) and returns (args, params, expr,
# strict); ``np(arrays, params)`` is the independent NumPy implementation.


@dataclass
class Op:
    draw: object
    np: object


OPS: dict = {}


def op(name, np_fn):
    def deco(draw_fn):
        OPS[name] = Op(draw_fn, np_fn)
        return draw_fn

    return deco


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name -> (expression templates, NumPy function, domain predicate or None, kink points)
UNARY = {
    "neg": (["-{0}", "F.neg({0})"], np.negative, None, ()),
    "exp": (["F.exp({0})", "{0}.exp()"], np.exp, lambda x: x < 3.4, ()),
    "log": (["F.log({0})", "{0}.log()"], np.log, lambda x: x > 0.05, ()),
    "log1p": (["F.log1p({0})", "{0}.log1p()"], np.log1p, lambda x: x > -0.9, ()),
    "expm1": (["F.expm1({0})", "{0}.expm1()"], np.expm1, lambda x: x < 3.4, ()),
    "sqrt": (["F.sqrt({0})", "{0}.sqrt()"], np.sqrt, lambda x: x > 0.05, ()),
    "square": (["F.square({0})", "{0}.square()"], np.square, None, ()),
    "abs": (["F.abs({0})", "{0}.abs()"], np.abs, None, (0.0,)),
    "tanh": (["F.tanh({0})", "{0}.tanh()", "NF.tanh({0})"], np.tanh, None, ()),
    "sigmoid": (["F.sigmoid({0})", "{0}.sigmoid()", "NF.sigmoid({0})"], _sigmoid, None, ()),
    "relu": (["F.relu({0})", "{0}.relu()", "NF.relu({0})"], lambda x: np.where(x > 0, x, 0.0), None, (0.0,)),
    "softplus": (["F.softplus({0})", "{0}.softplus()", "NF.softplus({0})"], _softplus, None, ()),
    "log_sigmoid": (["F.log_sigmoid({0})"], lambda x: -_softplus(-x), None, ()),
    "identity": (["NF.identity({0})", "+{0}"], lambda x: x, None, ()),
}


def _make_unary(name, templates, np_fn, domain, kinks):
    def draw(d):
        i = d.pick(lambda v: domain is None or bool(np.all(domain(v))))
        x = d.vals[i]
        if not all(_kink_ok(x - k) for k in kinks):
            raise Reject
        return (i,), {}, d.choice(templates).format(d.name(i)), "ok"

    OPS[name] = Op(draw, lambda xs, p: np_fn(xs[0]))


for _name, _spec in UNARY.items():
    _make_unary(_name, *_spec)


@op("leaky_relu", lambda xs, p: np.where(xs[0] > 0, xs[0], p["slope"] * xs[0]))
def _draw_leaky(d):
    i = d.pick()
    if not _kink_ok(d.vals[i]):
        raise Reject
    slope = d.choice([0.01, 0.2, 0.5])
    form = d.choice(["NF.leaky_relu({0}, {1})", "NF.leaky_relu({0}, negative_slope={1})"])
    return (i,), {"slope": slope}, form.format(d.name(i), slope), "ok"


POW_EXPONENTS = [0, 1, 2, 3, -1, -2, 0.0, 2.0, 0.5, -0.5, 1.5]


def _np_pow(xs, p):
    # exponent 0: NumPy's x ** 0 is 1 everywhere (also at x = 0), the value the engine must match
    return np.power(xs[0], float(p["p"])) if p["p"] != 0 else np.ones_like(xs[0])


@op("pow", _np_pow)
def _draw_pow(d):
    p = d.choice(POW_EXPONENTS)
    if float(p).is_integer() and p >= 0:
        i = d.pick()
    elif float(p).is_integer():
        i = d.pick(lambda v: bool(np.all(np.abs(v) > 0.2)))
    else:
        i = d.pick(lambda v: bool(np.all(v > 0.05)))
    form = d.choice(["{0} ** {1!r}", "F.pow({0}, {1!r})"])
    return (i,), {"p": p}, form.format(d.name(i), p), "ok"


PLATEAU_FNS = {
    # g(relu(v)) for v away from 0: relu's exact zeros are a plateau (derivative 0 on both sides),
    # the one place where x ** 0, x ** 1, abs, relu, maximum(x, 0) etc. meet x = 0 exactly with
    # valid finite differences.  The engine must give a finite gradient (0 there), never NaN.
    "pow0": ("{0} ** 0", lambda x: np.ones_like(x)),
    "pow0.0": ("F.pow({0}, 0.0)", lambda x: np.ones_like(x)),
    "pow1": ("{0} ** 1", lambda x: x),
    "pow2": ("{0} ** 2", np.square),
    "pow3": ("{0} ** 3", lambda x: x ** 3),
    "abs": ("F.abs({0})", np.abs),
    "relu": ("F.relu({0})", lambda x: x),
    "leaky_relu": ("NF.leaky_relu({0}, 0.2)", lambda x: x),
    "square": ("F.square({0})", np.square),
    "maximum0": ("F.maximum({0}, 0.0)", lambda x: x),
    "minimum0": ("F.minimum({0}, 0.0)", lambda x: np.zeros_like(x)),
    "clip0": ("F.clip({0}, 0.0, 1.0)", lambda x: np.minimum(x, 1.0)),
}


@op("plateau", lambda xs, p: PLATEAU_FNS[p["fn"]][1](np.where(xs[0] > 0, xs[0], 0.0)))
def _draw_plateau(d):
    i = d.pick(lambda v: _kink_ok(v) and bool(np.all(v != 0)))
    fn = d.choice(sorted(PLATEAU_FNS))
    if fn == "clip0" and not _kink_ok(d.vals[i] - 1.0):
        raise Reject
    return (i,), {"fn": fn}, PLATEAU_FNS[fn][0].format(f"F.relu({d.name(i)})"), "ok"


@op("rpow", lambda xs, p: np.power(p["base"], xs[0]))
def _draw_rpow(d):
    base = d.choice([2.0, 0.5, 10.0, math.e])
    i = d.pick(lambda v: bool(np.all(np.abs(v) * abs(math.log(base)) < 3.4)))
    form = d.choice(["{1!r} ** {0}", "F.rpow({0}, {1!r})"])
    return (i,), {"base": base}, form.format(d.name(i), base), "ok"


SCALARS = [2.0, -0.5, 1.5, 3, -2, 1.0]
_SCALAR_NP = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
}


@op("scalar", lambda xs, p: _SCALAR_NP[p["fn"]](*((xs[0], p["c"]) if p["right"] else (p["c"], xs[0]))))
def _draw_scalar(d):
    fn = d.choice(["add", "sub", "mul", "div"])
    right = d.boolean()  # v op c (True) or c op v
    c = d.choice(SCALARS)
    if d.boolean():
        c = np.float64(c) if isinstance(c, float) else np.int64(c)  # NumPy scalars as constants
    i = d.pick(lambda v: right or fn != "div" or bool(np.all(np.abs(v) > 0.1)))
    sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[fn]
    c_src = repr(c)  # NumPy 2 spells its scalars np.float64(2.0), valid source with np imported
    if d.boolean():
        expr = f"{d.name(i)} {sym} {c_src}" if right else f"{c_src} {sym} {d.name(i)}"
    else:
        expr = f"F.{fn}({d.name(i)}, {c_src})" if right else f"F.{fn}({c_src}, {d.name(i)})"
    return (i,), {"fn": fn, "right": right, "c": c}, expr, "ok"


def _np_clip(xs, p):
    x = xs[0]
    if p["lo"] is not None:
        x = np.where(x < p["lo"], p["lo"], x)
    if p["hi"] is not None:
        x = np.where(x > p["hi"], p["hi"], x)
    return x


@op("clip", _np_clip)
def _draw_clip(d):
    i = d.pick()
    x = d.vals[i]
    a, b = sorted([d.choice([-2.0, -1.0, -0.3, 0.0, 0.4, 1.0, 2.5]), d.choice([-1.5, -0.5, 0.2, 0.7, 1.5, 3.0])])
    lo, hi = d.choice([(a, b), (None, b), (a, None)])
    if (lo is not None and not _kink_ok(x - lo)) or (hi is not None and not _kink_ok(x - hi)):
        raise Reject
    v = d.name(i)
    form = d.choice(["F", "method", "kw"])
    if form == "F":
        expr = f"F.clip({v}, {lo!r}, {hi!r})"
    elif form == "method":
        expr = f"{v}.clip({lo!r}, {hi!r})"
    else:
        kws = ", ".join(f"{k}={val!r}" for k, val in (("min", lo), ("max", hi)) if val is not None)
        expr = f"F.clip({v}, {kws})"
    return (i,), {"lo": lo, "hi": hi}, expr, "ok"


@op("astype", lambda xs, p: xs[0].astype(np.float64))
def _draw_astype(d):
    # to the program's own dtype, spelled every way a dtype can be given (a no-op that must stay
    # differentiable);
    # a float32 round trip is left out: its rounding swamps finite differences.
    i = d.pick()
    # (DT / DT_NAME: the program's dtype, np.float64 / 'float64', or float32 in the float32 run)
    form = d.choice(["{0}.astype(DT_NAME)", "F.astype({0}, DT)", "{0}.astype(np.dtype(DT))",
                     "{0}.to(dtype=DT_NAME)", "F.astype({0}, sv.get_default_dtype())", "{0}.astype(DT)"])
    return (i,), {}, form.format(d.name(i)), "ok"


# -- binary elementwise ----------------------------------------------------------------------------


def _pick_pair(d, pred_b=lambda a, b: True):
    i = d.pick()
    sa = d.vals[i].shape
    j = d.pick(lambda v: (s := _bshape(sa, v.shape)) is not None and _size(s) <= MAX_SIZE and pred_b(d.vals[i], v))
    return i, j


BINARY = {"add": ("+", np.add), "sub": ("-", np.subtract), "mul": ("*", np.multiply), "div": ("/", np.divide)}


@op("binary", lambda xs, p: BINARY[p["fn"]][1](xs[0], xs[1]))
def _draw_binary(d):
    fn = d.choice(sorted(BINARY))
    i, j = _pick_pair(d, lambda a, b: fn != "div" or bool(np.all(np.abs(b) > 0.1)))
    a, b = d.name(i), d.name(j)
    expr = f"{a} {BINARY[fn][0]} {b}" if d.boolean() else f"F.{fn}({a}, {b})"
    return (i, j), {"fn": fn}, expr, "ok"


@op("maximum", lambda xs, p: (np.maximum if p["fn"] == "maximum" else np.minimum)(xs[0], xs[1]))
def _draw_maximum(d):
    fn = d.choice(["maximum", "minimum"])
    i, j = _pick_pair(d, lambda a, b: _kink_ok(a - b))
    return (i, j), {"fn": fn}, f"F.{fn}({d.name(i)}, {d.name(j)})", "ok"


def _np_where(xs, p):
    cond = p["cond"]
    if isinstance(cond, Const):
        cond = cond.value
    elif cond == "cmp":
        cond = xs[0] > xs[1]
    a = xs[0] if p["a"] is None else p["a"]
    b = xs[1] if p["b"] is None else p["b"]
    return np.where(cond, a, b)


@op("where", _np_where)
def _draw_where(d):
    kind = d.choice(["const", "tensor", "cmp", "scalar_a", "scalar_b"])
    if kind == "cmp":  # F.where(a > b, a, b): the mask is computed from the values (margin DELTA)
        i, j = _pick_pair(d, lambda a, b: bool(np.all(np.abs(a - b) >= DELTA)))
        a, b = d.name(i), d.name(j)
        return (i, j), {"cond": "cmp", "a": None, "b": None}, f"F.where({a} > {b}, {a}, {b})", "ok"
    i, j = _pick_pair(d)
    out = _bshape(d.vals[i].shape, d.vals[j].shape)
    # the mask: the output's shape, or one broadcasting to it (size-1 axes, fewer leading axes)
    mshape = tuple(s if d.boolean() else 1 for s in out)[d.integers(0, len(out)):]
    if d.integers(0, 3) == 0:  # or one that broadcasts the output up (extra leading / expanded axes)
        mshape = (d.integers(1, 3),) + tuple(s if s != 1 else d.integers(1, 2) for s in out)
        if _size(mshape) > MAX_SIZE:
            raise Reject
    mask = d.rng().random(mshape) < 0.5
    c = d.const(mask, "array" if kind != "tensor" else "tensor")
    a, b = d.name(i), d.name(j)
    if kind == "scalar_a":
        return (j, j), {"cond": c, "a": 1.5, "b": None}, f"F.where({c.name}, 1.5, {b})", "ok"
    if kind == "scalar_b":
        return (i, i), {"cond": c, "a": None, "b": -0.5}, f"F.where({c.name}, {a}, -0.5)", "ok"
    return (i, j), {"cond": c, "a": None, "b": None}, f"F.where({c.name}, {a}, {b})", "ok"


@op("bernoulli_log_prob", lambda xs, p: (xs[0] if p["x"] is None else p["x"]) * xs[1] - _softplus(xs[1]))
def _draw_bernoulli(d):
    i, j = _pick_pair(d)
    if d.boolean():
        return (i, j), {"x": None}, f"F.bernoulli_log_prob({d.name(i)}, {d.name(j)})", "ok"
    x = d.choice([0.0, 1.0, 0.3])
    return (j, j), {"x": x}, f"F.bernoulli_log_prob({x!r}, {d.name(j)})", "ok"


@op("normal_kl_standard", lambda xs, p: 0.5 * (xs[0] ** 2 + np.exp(2 * xs[1]) - 1.0 - 2 * xs[1]))
def _draw_kl(d):
    i, j = _pick_pair(d, lambda a, b: bool(np.all(b < 1.7)))
    return (i, j), {}, f"F.normal_kl_standard({d.name(i)}, {d.name(j)})", "ok"


@op("reparameterize", lambda xs, p: xs[0] + np.exp(xs[1]) * p["eps"].value)
def _draw_reparam(d):
    i, j = _pick_pair(d, lambda a, b: bool(np.all(b < 2.0)))
    out = _bshape(d.vals[i].shape, d.vals[j].shape)
    eps = d.const(d.rng().standard_normal(out), d.choice(["array", "tensor"]))
    return (i, j), {"eps": eps}, f"F.reparameterize({d.name(i)}, {d.name(j)}, {eps.name})", "ok"


# -- reductions ------------------------------------------------------------------------------------


def _np_logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    if keepdims:
        return out
    return np.squeeze(out, axis=axis) if axis != () else out


REDUCTIONS = {
    "sum": (np.sum, True), "mean": (np.mean, True), "max": (np.max, True), "min": (np.min, False),
    "logsumexp": (_np_logsumexp, True),  # (NumPy function, the Tensor has a method of that name)
    "amax": (np.max, True), "amin": (np.min, True),  # PyTorch's names for max and min
}


def _np_reduce(xs, p):
    fn = REDUCTIONS[p["fn"]][0]
    return np.asarray(fn(xs[0], axis=p["axis"], keepdims=p["keepdims"]))


@op("reduce", _np_reduce)
def _draw_reduce(d):
    fn = d.choice(sorted(REDUCTIONS))
    i = d.pick()
    x = d.vals[i]
    axis = d.axis(x.ndim)
    keepdims = d.boolean()
    if fn in ("max", "min", "amax", "amin"):
        if x.size == 0:
            raise Reject
        top = (np.max if fn in ("max", "amax") else np.min)(x, axis=axis, keepdims=True)
        if not _kink_ok(top - x):  # near-ties: finite differences straddle the kink
            raise Reject
    v = d.name(i)
    shown = axis
    if axis not in (None, ()) and d.integers(0, 3) == 0:  # NumPy integers as axes
        shown = np.int64(axis) if isinstance(axis, int) else tuple(np.int64(k) for k in axis)
    ax = repr(shown)  # NumPy 2 writes np.int64(1)
    if REDUCTIONS[fn][1] and d.boolean():
        expr = f"{v}.{fn}({ax}, {keepdims!r})" if d.boolean() else f"{v}.{fn}(axis={ax}, keepdims={keepdims!r})"
    elif fn not in ("max", "min") and axis is not None and d.boolean():  # PyTorch's dim= / keepdim=
        expr = f"F.{fn}({v}, dim={ax}, keepdim={keepdims!r})"
    else:
        expr = f"F.{fn}({v}, axis={ax}, keepdims={keepdims!r})"
    return (i,), {"fn": fn, "axis": axis, "keepdims": keepdims}, expr, "ok"


# -- shapes ----------------------------------------------------------------------------------------


def _divisors(n):
    return [k for k in range(1, n + 1) if n % k == 0] if n > 0 else [0, 1]


@op("reshape", lambda xs, p: np.reshape(xs[0], p["shape"]))
def _draw_reshape(d):
    i = d.pick()
    x = d.vals[i]
    n = x.size
    kind = d.choice(["flat", "factor", "unit"])
    if kind == "flat":
        shape = d.choice([(n,), (-1,)])
    elif kind == "unit":
        shape = list(x.shape)
        shape.insert(d.integers(0, len(shape)), 1)
        shape = tuple(shape)
    else:
        dims, rest = [], n
        for _ in range(d.integers(0, 2)):
            f = d.choice(_divisors(rest))
            dims.append(f)
            rest = rest // f if f else rest
        shape = tuple(dims) + ((rest,) if (rest != 1 or d.boolean()) else ())
        if _size(shape) != n:
            raise Reject
        if shape and n > 0 and d.boolean():
            k = d.integers(0, len(shape) - 1)
            shape = shape[:k] + (-1,) + shape[k + 1:]
    v = d.name(i)
    form = d.choice(["F", "method", "star", "numpy_ints"])
    if form == "numpy_ints":  # a shape of NumPy integers (or one NumPy integer)
        expr = (f"F.reshape({v}, np.int64({shape[0]}))" if len(shape) == 1 and d.boolean()
                else f"F.reshape({v}, {tuple(np.int64(k) for k in shape)!r})")
    elif form == "F":
        expr = f"F.reshape({v}, {shape!r})"
    elif form == "method" or not shape:
        expr = f"{v}.reshape({shape!r})"
    else:
        expr = f"{v}.reshape({', '.join(map(str, shape))})"
    return (i,), {"shape": shape}, expr, "ok"


@op("transpose", lambda xs, p: np.transpose(xs[0], p["perm"]))
def _draw_transpose(d):
    i = d.pick()
    nd = d.vals[i].ndim
    perm = tuple(d.draw(st.permutations(range(nd))))
    v = d.name(i)
    form = d.choice(["F", "permute", "method", "method_tuple", "T", "reverse"])
    if form in ("T", "reverse"):
        perm_np = None
        expr = f"{v}.T" if form == "T" else f"F.transpose({v})"
        return (i,), {"perm": perm_np}, expr, "ok"
    shown = tuple(a - nd if d.boolean() else a for a in perm)  # negative axes too
    if form == "F":
        expr = f"F.transpose({v}, {shown!r})"
    elif form == "permute":
        expr = f"F.permute({v}, {shown!r})"
    elif form == "method" and shown:
        expr = f"{v}.transpose({', '.join(map(str, shown))})"
    else:
        expr = f"{v}.transpose({shown!r})"
    return (i,), {"perm": perm}, expr, "ok"


@op("broadcast_to", lambda xs, p: np.broadcast_to(xs[0], p["shape"]))
def _draw_broadcast_to(d):
    i = d.pick()
    x = d.vals[i]
    lead = tuple(d.integers(1, 3) for _ in range(d.integers(0, 2)))
    tail = tuple(s if s != 1 else d.choice([1, 2, 3]) for s in x.shape)
    shape = lead + tail
    if _size(shape) > MAX_SIZE:
        raise Reject
    form = d.choice(["F.broadcast_to({0}, {1!r})", "{0}.broadcast_to({1!r})"])
    return (i,), {"shape": shape}, form.format(d.name(i), shape), "ok"


@op("expand_dims", lambda xs, p: np.expand_dims(xs[0], p["axis"]))
def _draw_expand_dims(d):
    i = d.pick()
    nd = d.vals[i].ndim
    axis = d.integers(-(nd + 1), nd)
    fn = d.choice(["expand_dims", "unsqueeze"])  # NumPy's name and PyTorch's
    return (i,), {"axis": axis}, f"F.{fn}({d.name(i)}, {axis})", "ok"


@op("squeeze", lambda xs, p: np.squeeze(xs[0], p["axis"]))
def _draw_squeeze(d):
    i = d.pick(lambda v: 1 in v.shape)
    shape = d.vals[i].shape
    axis = d.choice([a for a, s in enumerate(shape) if s == 1])
    if d.boolean():
        axis -= len(shape)
    return (i,), {"axis": axis}, f"F.squeeze({d.name(i)}, {axis})", "ok"


def _np_flatten(xs, p):
    x, s = xs[0], p["start"]
    return x.reshape(x.shape[:s] + (_size(x.shape[s:]),))


@op("flatten", _np_flatten)
def _draw_flatten(d):
    i = d.pick()
    nd = d.vals[i].ndim
    start = 0 if nd == 0 else d.integers(-nd, nd - 1)
    expr = f"F.flatten({d.name(i)}, {start})" if (start != 1 or d.boolean()) else f"F.flatten({d.name(i)})"
    return (i,), {"start": start}, expr, "ok"


@op("concat", lambda xs, p: np.concatenate(xs, axis=p["axis"]))
def _draw_concat(d):
    i = d.pick(lambda v: v.ndim >= 1)
    x = d.vals[i]
    axis = d.integers(-x.ndim, x.ndim - 1)
    ax = axis % x.ndim

    def fits(v):
        return v.ndim == x.ndim and all(a == b for k, (a, b) in enumerate(zip(v.shape, x.shape)) if k != ax)

    args = (i,) + tuple(d.pick(fits) for _ in range(d.integers(0, 2)))
    if _size(x.shape[:ax] + (sum(d.vals[j].shape[ax] for j in args),) + x.shape[ax + 1:]) > MAX_SIZE:
        raise Reject
    fn = d.choice(["concat", "concatenate", "cat"])
    kw = "dim" if fn == "cat" and d.boolean() else "axis"  # PyTorch's dim= is axis=
    expr = f"F.{fn}([{', '.join(map(d.name, args))}], {kw}={axis})"
    return args, {"axis": axis}, expr, "ok"


@op("stack", lambda xs, p: np.stack(xs, axis=p["axis"]))
def _draw_stack(d):
    i = d.pick()
    x = d.vals[i]
    args = (i,) + tuple(d.pick(lambda v: v.shape == x.shape) for _ in range(d.integers(0, 2)))
    if x.size * len(args) > MAX_SIZE:
        raise Reject
    axis = d.integers(-(x.ndim + 1), x.ndim)
    return args, {"axis": axis}, f"F.stack([{', '.join(map(d.name, args))}], axis={axis})", "ok"


# -- indexing --------------------------------------------------------------------------------------


def _np_index(xs, p):
    index = p["index"]
    if isinstance(index, tuple):
        index = tuple(c.value if isinstance(c, Const) else c for c in index)
    elif isinstance(index, Const):
        index = index.value
    elif isinstance(index, list):
        index = np.asarray(index, dtype=np.intp)
    elif isinstance(index, str):  # "cmp": x[x > t]
        index = xs[0] > p["t"]
    return np.asarray(xs[0][index])


@op("index", _np_index)
def _draw_index(d):
    kind = d.choice(["basic", "basic", "ellipsis", "gather", "gather2d", "multi", "mask", "mask_cmp", "npint"])
    min_nd = {"gather": 1, "gather2d": 1, "multi": 2, "mask": 1, "mask_cmp": 1, "npint": 1}.get(kind, 0)
    i = d.pick(lambda v: v.ndim >= min_nd and (min_nd == 0 or v.size > 0))
    x = d.vals[i]
    v = d.name(i)
    if kind == "basic":
        index = d.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
        form = d.choice(["op", "F"])
        expr = f"{v}[{_fmt_index(index)}]" if form == "op" else f"F.getitem({v}, {index!r})"
        return (i,), {"index": index}, expr, "ok"
    if kind == "ellipsis":
        index = d.choice([Ellipsis, (), (Ellipsis,), (Ellipsis, None), (None, Ellipsis)])
        return (i,), {"index": index}, f"{v}[{_fmt_index(index)}]", "ok"
    if kind == "npint":
        # NumPy integers index like Python ints: x[np.int64(k)], x[np.int64(k), np.int64(j)], x[:, np.int64(j)]
        k = d.integers(-x.shape[0], x.shape[0] - 1)
        sub = d.choice(["one", "pair", "slice"]) if x.ndim >= 2 else "one"
        if sub == "one":
            return (i,), {"index": np.int64(k)}, f"{v}[np.int64({k})]", "ok"
        j = d.integers(-x.shape[1], x.shape[1] - 1)
        if sub == "pair":
            return (i,), {"index": (np.int64(k), np.int64(j))}, f"{v}[np.int64({k}), np.int64({j})]", "ok"
        return (i,), {"index": (slice(None), np.int64(j))}, f"{v}[:, np.int64({j})]", "ok"
    n = x.shape[0]
    rng = d.rng()
    if kind == "gather":
        m = d.integers(0, 5)
        neg = d.boolean()
        idx = rng.integers(-n if neg else 0, n, size=m).astype(d.choice([np.int64, np.int32]))
        form = d.choice(["const", "list", "tensor", "F"])
        if form == "list":  # (x[[]] included: an empty gather, as in NumPy)
            expr, index = f"{v}[{idx.tolist()!r}]", idx.tolist()
        else:
            c = d.const(idx, "tensor" if form == "tensor" else "host")
            expr = f"F.getitem({v}, {c.name})" if form == "F" else f"{v}[{c.name}]"
            index = c
        return (i,), {"index": index}, expr, "ok"
    if kind == "gather2d":
        # the Array API has no integer-array index other than a 1-D one on axis 0: NumPy only
        c = d.const(rng.integers(-n, n, size=(d.integers(1, 2), d.integers(1, 3))), "host")
        return (i,), {"index": c}, f"{v}[{c.name}]", "skip"
    if kind == "multi":
        # x[i0, i1], x[:, i1], x[..., i1] (NumPy advanced indexing; not in the Array API: NumPy only)
        sub = d.choice(["pair", "slice", "ellipsis"])
        m = d.integers(1, 4)
        c1 = d.const(rng.integers(-x.shape[1], x.shape[1], size=m), "host")
        if sub == "pair":
            c0 = d.const(rng.integers(-n, n, size=m), "host")
            index, src = (c0, c1), f"{c0.name}, {c1.name}"
        elif sub == "slice":
            index, src = (slice(None), c1), f":, {c1.name}"
        else:
            c1 = d.const(rng.integers(-x.shape[-1], x.shape[-1], size=m), "host")
            index, src = (Ellipsis, c1), f"..., {c1.name}"
        return (i,), {"index": index}, f"{v}[{src}]", "skip"
    if kind == "mask":
        k = d.integers(1, x.ndim)
        c = d.const(rng.random(x.shape[:k]) < 0.5, "host")
        return (i,), {"index": c}, f"{v}[{c.name}]", "ok"
    # mask_cmp: x[x > t], the mask computed from the values (margin DELTA from the threshold)
    t = d.choice([0.0, 0.5, -1.0])
    if not bool(np.all(np.abs(x - t) >= DELTA)):
        raise Reject
    return (i,), {"index": "cmp", "t": t}, f"{v}[{v} > {t!r}]", "ok"


# -- matrix products -------------------------------------------------------------------------------


def _mm_shape(sa, sb):
    if not sa or not sb:
        return None
    k_b = sb[-2] if len(sb) > 1 else sb[0]
    if sa[-1] != k_b:
        return None
    batch = _bshape(sa[:-2], sb[:-2])
    if batch is None:
        return None
    return batch + (sa[-2:-1] if len(sa) > 1 else ()) + (sb[-1:] if len(sb) > 1 else ())


@op("matmul", lambda xs, p: np.matmul(xs[0], xs[1]))
def _draw_matmul(d):
    i = d.pick(lambda v: v.ndim >= 1)
    sa = d.vals[i].shape
    j = d.pick(lambda v: (s := _mm_shape(sa, v.shape)) is not None and _size(s) <= MAX_SIZE)
    a, b = d.name(i), d.name(j)
    return (i, j), {}, (f"{a} @ {b}" if d.boolean() else f"F.matmul({a}, {b})"), "ok"


def _swap_last(nd):
    return tuple(range(nd - 2)) + (nd - 1, nd - 2)


@op("gram", lambda xs, p: xs[0] @ (np.swapaxes(xs[0], -1, -2) if xs[0].ndim >= 2 else xs[0]))
def _draw_gram(d):
    i = d.pick(lambda v: v.ndim >= 1 and (v.ndim == 1 or _size(v.shape[:-1] + v.shape[-2:-1]) <= MAX_SIZE))
    x, v = d.vals[i], d.name(i)
    if x.ndim == 1:
        return (i,), {}, f"{v} @ {v}", "ok"
    if x.ndim == 2 and d.boolean():
        return (i,), {}, f"{v} @ {v}.T", "ok"
    return (i,), {}, f"{v} @ F.transpose({v}, {_swap_last(x.ndim)!r})", "ok"


def _np_linear(xs, p):
    x = xs[0]
    w = xs[1] if p["w"] is None else p["w"].value
    y = x @ w
    if p["b"] == "value":
        y = y + xs[-1]
    elif isinstance(p["b"], Const):
        y = y + p["b"].value
    if p["act"] == "relu":
        y = np.where(y > 0, y, 0.0)
    elif p["act"] == "tanh":
        y = np.tanh(y)
    return y


@op("linear", _np_linear)
def _draw_linear(d):
    i = d.pick(lambda v: v.ndim >= 1)
    x = d.vals[i]
    k = x.shape[-1]
    rng = d.rng()
    args = [i]
    try:
        j = d.pick(lambda v: v.ndim == 2 and v.shape[0] == k) if d.boolean() else None
    except Reject:
        j = None
    if j is None:
        w = d.const(rng.uniform(-1, 1, size=(k, d.integers(1, 3))), "tensor")
        m, w_src = w.value.shape[1], w.name
    else:
        w, m, w_src = None, d.vals[j].shape[1], d.name(j)
        args.append(j)
    if _size(x.shape[:-1] + (m,)) > MAX_SIZE:
        raise Reject
    b_kind = d.choice(["none", "value", "const"])
    b, b_src = None, None
    if b_kind == "value":
        try:
            args.append(d.pick(lambda v: v.shape == (m,)))
            b, b_src = "value", d.name(args[-1])
        except Reject:
            b_kind = "const"
    if b_kind == "const":
        b = d.const(rng.uniform(-1, 1, size=(m,)), "tensor")
        b_src = b.name
    act = d.choice([None, "relu", "tanh"])
    p = {"w": w, "b": b, "act": None}
    if act == "relu" and not _kink_ok(_np_linear([d.vals[a] for a in args], p)):
        raise Reject
    p["act"] = act
    expr = f"NF.linear({d.name(i)}, {w_src}" + (f", {b_src}" if b_src else "") + (
        f", activation={act!r})" if act else ")")
    return tuple(args), p, expr, "ok"


# -- linear algebra --------------------------------------------------------------------------------


@op("diagonal", lambda xs, p: np.diagonal(xs[0], axis1=-2, axis2=-1).copy())
def _draw_diagonal(d):
    i = d.pick(lambda v: v.ndim >= 2)
    return (i,), {}, f"F.diagonal({d.name(i)})", "ok"


@op("tril", lambda xs, p: np.tril(xs[0], p["k"]))
def _draw_tril(d):
    i = d.pick(lambda v: v.ndim >= 2)
    k = d.choice([0, -1, 1, None])
    expr = f"F.tril({d.name(i)})" if k is None else f"F.tril({d.name(i)}, k={k})"
    return (i,), {"k": 0 if k is None else k}, expr, "ok"


def _np_spd(a):
    n = a.shape[-2]
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _np_linalg(xs, p):
    s = _np_spd(xs[0])
    if p["fn"] == "cholesky":
        return np.linalg.cholesky(s)
    if p["fn"] == "logdet_spd":
        return np.asarray(np.linalg.slogdet(s)[1])
    return np.linalg.solve(s, xs[1])


@op("spd", _np_linalg)
def _draw_spd(d):
    """cholesky / solve / logdet_spd of the well-conditioned SPD matrix A A^T + n I (batched too)."""
    i = d.pick(lambda v: v.ndim >= 2 and bool(np.all(np.abs(v) <= SPD_LIMIT)))
    x = d.vals[i]
    n = x.shape[-2]
    eye = d.const(n * np.eye(n), "tensor")
    v = d.name(i)
    spd = f"({v} @ F.transpose({v}, {_swap_last(x.ndim)!r}) + {eye.name})"
    fn = d.choice(["cholesky", "solve", "logdet_spd"])
    if fn == "solve":
        j = d.pick(lambda b: b.ndim >= 2 and b.shape[-2] == n and (s := _bshape(x.shape[:-2], b.shape[:-2])) is not None
                   and _size(s + b.shape[-2:]) <= MAX_SIZE)
        return (i, j), {"fn": fn}, f"F.solve({spd}, {d.name(j)})", "ok"
    return (i,), {"fn": fn}, f"F.{fn}({spd})", "ok"


def _np_solve_triangular(xs, p):
    a = xs[0] + p["shift"] * np.eye(xs[0].shape[-1])
    t = np.tril(a) if p["lower"] else np.triu(a)
    return np.linalg.solve(t, xs[1])


if hasattr(F, "solve_triangular"):

    @op("solve_triangular", _np_solve_triangular)
    def _draw_solve_triangular(d):
        i = d.pick(lambda v: v.ndim >= 2 and v.shape[-1] == v.shape[-2])
        x = d.vals[i]
        n = x.shape[-1]
        shift = float(np.ceil(2.0 + n * np.max(np.abs(x), initial=0.0)))  # diagonally dominant
        j = d.pick(lambda b: b.ndim >= 2 and b.shape[-2] == n and (s := _bshape(x.shape[:-2], b.shape[:-2])) is not None
                   and _size(s + b.shape[-2:]) <= MAX_SIZE)
        lower = d.boolean()
        eye = d.const(shift * np.eye(n), "tensor")
        expr = f"F.solve_triangular({d.name(i)} + {eye.name}, {d.name(j)}, lower={lower})"
        return (i, j), {"shift": shift, "lower": lower}, expr, "ok"


if hasattr(F, "normal_log_density"):

    @op("normal_log_density", lambda xs, p: -0.5 * ((xs[0] - xs[1]) / xs[2]) ** 2 - xs[3] - 0.5 * math.log(2 * math.pi))
    def _draw_normal_log_density(d):
        i, j = _pick_pair(d)
        s = _bshape(d.vals[i].shape, d.vals[j].shape)
        k = d.pick(lambda v: bool(np.all(v > 0.2)) and (t := _bshape(s, v.shape)) is not None and _size(t) <= MAX_SIZE)
        s = _bshape(s, d.vals[k].shape)
        m = d.pick(lambda v: (t := _bshape(s, v.shape)) is not None and _size(t) <= MAX_SIZE)
        args = (i, j, k, m)
        return args, {}, f"F.normal_log_density({', '.join(map(d.name, args))})", "ok"


# How often each op is drawn (a name listed k times is drawn ~k times as often).  Hypothesis favours
# the first entry, and shrinks towards it: "index" and "reduce" lead, as the most varied ops.
OP_WEIGHTS = {"index": 4, "reduce": 4, "binary": 3, "reshape": 2, "transpose": 2, "matmul": 2, "concat": 2,
              "stack": 2, "broadcast_to": 2, "where": 2, "maximum": 2, "scalar": 2, "pow": 2, "spd": 2,
              "diagonal": 2, "tril": 2, "solve_triangular": 2, "linear": 2}
OP_NAMES = ["index", "reduce"] + [n for n in sorted(OPS) if n not in ("index", "reduce")]
OP_NAMES = OP_NAMES + [n for n in OP_NAMES for _ in range(OP_WEIGHTS.get(n, 1) - 1)]


# ------------------------------------------------------------------------------------------------
# Program generation


def _input_values(draw, shape):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["signed", "positive", "wide"]))
    if kind == "positive":
        return rng.uniform(0.2, 2.0, shape)
    if kind == "wide":
        return rng.uniform(-3.0, 3.0, shape)
    return rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def _acceptable(out):
    out = np.asarray(out)
    return (out.dtype == np.float64 and out.size <= MAX_SIZE and bool(np.all(np.isfinite(out)))
            and bool(np.all(np.abs(out) <= LIMIT)))


@st.composite
def programs(draw, min_ops=3, max_ops=12):
    n_in = draw(st.integers(1, 3), label="n_inputs")
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=n_in, min_dims=0, max_dims=3, max_side=4),
                  label="shapes")
    prog = Program(inputs=[np.asarray(_input_values(draw, s)) for s in shapes.input_shapes])
    prog.ref = list(prog.inputs)
    d = Drawer(draw, prog)
    n_ops = draw(st.integers(min_ops, max_ops), label="n_ops")
    for _ in range(n_ops):
        for _attempt in range(25):
            name = draw(st.sampled_from(OP_NAMES))
            n_consts = len(prog.consts)
            try:
                args, params, expr, strict = OPS[name].draw(d)
                with np.errstate(all="raise", under="ignore"):
                    out = np.asarray(OPS[name].np([prog.ref[a] for a in args], params))
                if not _acceptable(out):
                    raise Reject
            except (Reject, FloatingPointError, ValueError, IndexError, np.linalg.LinAlgError):
                del prog.consts[n_consts:]
                continue
            prog.steps.append(Step(name, args, params, expr, strict))
            prog.ref.append(out)
            break
    if not prog.steps:
        from hypothesis import reject

        reject()
    wrng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="weights_seed"))
    prog.weights = [wrng.standard_normal(v.shape) for v in prog.ref[len(prog.inputs):]]
    partial = draw(st.lists(st.booleans(), min_size=n_in, max_size=n_in), label="partial")
    prog.partial = tuple(partial) if any(partial) else (True,) + tuple(partial[1:])
    return prog


# ------------------------------------------------------------------------------------------------
# Running a program


try:  # the fast layer (fused nodes) and its switch; absent in older trees
    from scratchvae import fast as _fast
except ImportError:  # pragma: no cover
    _fast = None


def _leaves(prog, backend, dtype="float64", which=None):
    """The inputs as leaves on ``backend``; ``which``: the inputs that require grad (default all)."""
    return [sv.tensor(backend.from_numpy(a.astype(dtype)), requires_grad=which is None or which[i])
            for i, a in enumerate(prog.inputs)]


def _grads(xs):
    return [None if x.grad is None else np.asarray(sv.to_numpy(x.grad)) for x in xs]


def _scale(arrays):
    return max([1.0] + [float(np.max(np.abs(a), initial=0.0)) for a in arrays])


class _Fail:
    """Turns any exception of one check into an AssertionError that prints the program."""

    def __init__(self, prog, what, backend="numpy", dtype="float64", check=None):
        self.args = (prog, what, backend, dtype, check)

    def __enter__(self):
        return self

    def __exit__(self, typ, err, tb):
        if err is None or not isinstance(err, Exception):
            return False
        prog, what, backend, dtype, check = self.args
        src = prog.source(backend, dtype) if check is None else prog.source(backend, dtype, check)
        raise AssertionError(
            f"{what}\n{type(err).__name__}: {err}\n\n--- the program (a standalone repro) ---\n{src}\n"
        ) from err


def _check_program(prog: Program):
    note(prog.source())
    n_in = prog.n_in
    numpy_be = B.set_backend("numpy")
    program, loss = prog.compile()

    # (1) + (2): forward values on the NumPy backend, op by op and end to end
    with _Fail(prog, "the program raised on the NumPy backend", check="print(values)"):
        vals = program(*_leaves(prog, numpy_be))
    got = [np.asarray(sv.to_numpy(v)) for v in vals]
    for k, step in enumerate(prog.steps):
        j = n_in + k
        operands = [got[a] for a in step.args]
        with np.errstate(all="ignore"):
            expected = np.asarray(OPS[step.op].np(operands, step.params))
        with _Fail(prog, f"v{j} = {step.expr}: the forward value differs from NumPy on the same operands",
                   check=f"print(values[{j}])"):
            assert got[j].shape == expected.shape, f"shape {got[j].shape} != NumPy's {expected.shape}"
            np.testing.assert_allclose(got[j], expected, rtol=1e-12, atol=1e-12 * _scale(operands + [expected]))
    for j in range(n_in, len(got)):
        with _Fail(prog, f"v{j}: the value differs from the NumPy-only run of the program",
                   check=f"print(values[{j}])"):
            np.testing.assert_allclose(got[j], prog.ref[j], rtol=1e-10, atol=1e-10)
    with _Fail(prog, "the values under no_grad differ from those with the graph recorded",
               check="with sv.no_grad(): print(program({names}))"):
        with sv.no_grad():
            ng = [sv.to_numpy(v) for v in program(*_leaves(prog, numpy_be))]
        for j in range(n_in, len(got)):
            np.testing.assert_allclose(ng[j], got[j], rtol=1e-15, atol=0, err_msg=f"v{j}")

    # (3) gradients against central differences, then with only some inputs requiring grad
    with _Fail(prog, "gradcheck failed on the NumPy backend"):
        sv.gradcheck(loss, _leaves(prog, numpy_be))
    xs = _leaves(prog, numpy_be)
    loss(*xs).backward()
    grads = [np.zeros(a.shape) if g is None else g for a, g in zip(prog.inputs, _grads(xs))]
    gscale = _scale(grads)
    which = prog.partial
    with _Fail(prog, f"with requires_grad only on inputs {[i for i in range(n_in) if which[i]]} the gradients differ",
               check="loss({names}).backward(); print([v.grad for v in [{names}]])"):
        xs = _leaves(prog, numpy_be, which=which)
        out = loss(*xs)
        if out.requires_grad:
            out.backward()
        for i, (x, g) in enumerate(zip(xs, grads)):
            if not which[i]:
                assert x.grad is None, f"v{i} does not require grad but got one"
                continue
            pg = np.zeros(g.shape) if x.grad is None else sv.to_numpy(x.grad)
            np.testing.assert_allclose(pg, g, rtol=1e-12, atol=1e-14 * gscale, err_msg=f"gradient of v{i}")

    # (3a) backward twice through a retained graph doubles the gradients, and watching every op
    # (the profiler and anomaly detection, the engine's observers) changes nothing
    with _Fail(prog, "backward(retain_graph=True) twice under sv.profile() and detect_anomaly() is not 2x "
               "the gradients",
               check="out = loss({names}); out.backward(retain_graph=True); out.backward()"):
        xs = _leaves(prog, numpy_be)
        with sv.profile(), sv.anomaly.detect_anomaly():
            out = loss(*xs)
            out.backward(retain_graph=True)
            out.backward()
        for i, (x, g) in enumerate(zip(xs, grads)):
            g2 = np.zeros(g.shape) if x.grad is None else sv.to_numpy(x.grad)
            np.testing.assert_allclose(g2, 2 * g, rtol=1e-12, atol=1e-14 * gscale, err_msg=f"gradient of v{i}")

    # (3b) the fast layer off (the core's reference compositions): the same values and gradients
    if _fast is not None and hasattr(_fast, "disabled"):
        with _Fail(prog, "with scratchvae.fast.disabled() the values or gradients differ",
                   check="with sv.fast.disabled(): loss({names}).backward()"):
            with _fast.disabled():
                xs = _leaves(prog, numpy_be)
                rvals = [sv.to_numpy(v) for v in program(*xs)]
                loss(*xs).backward()
            for j in range(n_in, len(got)):
                np.testing.assert_allclose(rvals[j], got[j], rtol=1e-12, atol=1e-12 * _scale([got[j]]),
                                           err_msg=f"v{j}")
            for i, (x, g) in enumerate(zip(xs, grads)):
                rg = np.zeros(g.shape) if x.grad is None else sv.to_numpy(x.grad)
                np.testing.assert_allclose(rg, g, rtol=1e-9, atol=1e-11 * gscale, err_msg=f"gradient of v{i}")

    # (4) float32: every value and gradient stays float32 (Python and NumPy scalars, constants and
    # broadcasting never promote), and the values are float64's to float32 accuracy
    prev_dtype = B.get_default_dtype()
    try:
        with _Fail(prog, "the float32 run of the program keeps float32 or agrees with float64 badly", dtype="float32",
                   check="loss({names}).backward(); print([v.dtype for v in values], "
                         "[v.grad.dtype for v in [{names}]])"):
            program32, loss32 = prog.compile(dtype="float32")
            xs = _leaves(prog, numpy_be, dtype="float32")
            vals32 = program32(*xs)
            vscale = _scale(got)
            for j, v in enumerate(vals32):
                assert B.dtype_name(v.dtype) == "float32", f"v{j} is {B.dtype_name(v.dtype)}, not float32"
                np.testing.assert_allclose(sv.to_numpy(v), got[j], rtol=2e-4, atol=2e-4 * vscale, err_msg=f"v{j}")
            loss32(*xs).backward()
            for i, x in enumerate(xs):
                assert x.grad is None or B.dtype_name(x.grad.dtype) == "float32", (
                    f"the gradient of v{i} is {B.dtype_name(x.grad.dtype)}")
    finally:
        B.set_default_dtype(prev_dtype)

    # (5) array_api_strict (device1), and CuPy where a GPU is present: the same values and
    # gradients as the NumPy backend.  Steps marked "forward" / "skip" (see their Array-API notes)
    # limit what array_api_strict runs; CuPy has NumPy's indexing and runs all.
    for name, rtol in _OTHER_BACKENDS:
        mode = "ok"
        for st_ in prog.steps:
            if name == "array_api_strict" and (st_.strict == "skip" or (st_.strict == "forward" and mode == "ok")):
                mode = st_.strict
        if mode != "skip":
            _check_backend(prog, name, mode, got, grads, rtol)


def _cupy_available():
    try:
        B.CupyBackend()
    except Exception:  # noqa: BLE001 - BackendError, or a broken CUDA install
        return False
    return True


# (backend, rtol of its values against NumPy's): array_api_strict runs NumPy underneath, CuPy has
# its own math library (a few ulp apart, amplified along a program)
_OTHER_BACKENDS = [("array_api_strict", 1e-12)] + ([("cupy", 1e-9)] if _cupy_available() else [])


def _check_backend(prog, name, mode, got, grads, rtol):
    n_in = prog.n_in
    gscale = _scale(grads)
    try:
        with warnings.catch_warnings(), _Fail(prog, f"the {name} backend disagrees with NumPy (or raised)", name,
                                              check="loss({names}).backward()"):
            warnings.simplefilter("ignore", UserWarning)
            be = B.set_backend(name)
            program, loss = prog.compile(name)
            xs = _leaves(prog, be)
            vals = [sv.to_numpy(v) for v in program(*xs)]
            for j in range(n_in, len(got)):
                np.testing.assert_allclose(vals[j], got[j], rtol=rtol, atol=rtol * 0.1 * _scale([got[j]]),
                                           err_msg=f"v{j} on {name} vs NumPy")
            if mode == "ok":
                xs = _leaves(prog, be)
                loss(*xs).backward()
                for i, (x, g) in enumerate(zip(xs, grads)):
                    bg = np.zeros(g.shape) if x.grad is None else sv.to_numpy(x.grad)
                    np.testing.assert_allclose(bg, g, rtol=100 * rtol, atol=rtol * gscale,
                                               err_msg=f"gradient of v{i} on {name} vs NumPy")
    finally:
        B.set_backend("numpy")


@FUZZ_SETTINGS
@given(prog=programs())
def test_random_programs(prog):
    _check_program(prog)


def test_op_table_is_complete():
    """Every public function of scratchvae.functional and nn.functional appears in some op's
    expressions: a new op must be added to the fuzzer (or to LEFT_OUT, with the reason)."""
    import inspect
    import re
    import sys

    src = inspect.getsource(sys.modules[__name__])
    reached = set(re.findall(r"\bF\.(\w+)", src)) | set(BINARY) | set(REDUCTIONS) | {
        "maximum", "minimum", "concat", "concatenate", "cat", "expand_dims", "unsqueeze", "cholesky", "solve",
        "logdet_spd"}
    nf_reached = set(re.findall(r"\bNF\.(\w+)", src))
    # the class behind NF.leaky_relu; a constant; the losses, compositions of fuzzed ops checked
    # against their formulas in tests/test_torch_names.py
    LEFT_OUT = {"LeakyReLUFunction", "LOG_2PI", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                "gaussian_nll_loss", "log_softmax", "mse_loss", "softmax",
                # PyTorch's names: clamp is clip (fuzzed); the comparisons give plain masks, no graph;
                # logaddexp composes fuzzed ops -- all checked in tests/test_torch_port_names.py
                "clamp", "eq", "ge", "gt", "le", "lt", "ne", "logaddexp"}
    missing = sorted(set(F.__all__) - reached - LEFT_OUT) + sorted(set(NF.__all__) - nf_reached - LEFT_OUT)
    assert not missing, f"ops missing from the fuzzer's table: {missing}"


# ------------------------------------------------------------------------------------------------
# Optional: the same programs and every distribution / KL pair against PyTorch (skipped without it)


def test_torch_cross_check_distributions():
    """Every distribution and KL pair against torch.distributions: values of log_prob / entropy /
    kl_divergence and their gradients with respect to every parameter (float64)."""
    torch = pytest.importorskip("torch")
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _torch_distributions(torch)
    finally:
        torch.set_default_dtype(prev)


def _torch_distributions(torch):
    import torch.distributions as td

    from scratchvae import distributions as D

    rng = np.random.default_rng(0)

    def pair(a):
        return sv.tensor(np.array(a, dtype=np.float64), requires_grad=True), torch.tensor(a, requires_grad=True)

    def same(sv_out, t_out, sv_params, t_params, what, tril=()):
        # ``tril``: the scale_tril parameters.  scratchvae reads them through tril (their gradient stays
        # in the lower triangle, test_differential_fixes); torch's MVN KL uses p's scale_tril as the full
        # right-hand side of a triangular solve, so its upper triangle gets a gradient too.  The lower
        # triangles must agree.
        np.testing.assert_allclose(sv.to_numpy(sv_out), t_out.detach().numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=f"{what}: value")
        w = rng.standard_normal(tuple(t_out.shape))
        (sv_out * sv.tensor(w)).sum().backward()
        tg = torch.autograd.grad((t_out * torch.tensor(w)).sum(), t_params, allow_unused=True)
        for k, (p, g) in enumerate(zip(sv_params, tg)):
            expected = np.zeros(p.shape) if g is None else g.numpy()
            if k in tril:
                expected = np.tril(expected)
            got = np.zeros(p.shape) if p.grad is None else sv.to_numpy(p.grad)
            np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10, err_msg=f"{what}: gradient {k}")
            p.grad = None

    loc_np, scale_np = rng.standard_normal((3, 2)), rng.uniform(0.5, 2.0, (3, 2))
    loc2_np, scale2_np = rng.standard_normal((3, 2)), rng.uniform(0.5, 2.0, (3, 2))
    x_np = rng.standard_normal((3, 2))

    def normals():
        (l1, tl1), (s1, ts1), (l2, tl2), (s2, ts2) = map(pair, (loc_np, scale_np, loc2_np, scale2_np))
        return (D.Normal(l1, s1), td.Normal(tl1, ts1), D.Normal(l2, s2), td.Normal(tl2, ts2),
                [l1, s1, l2, s2], [tl1, ts1, tl2, ts2])

    p, tp, q, tq, ps, tps = normals()
    same(p.log_prob(sv.tensor(x_np)), tp.log_prob(torch.tensor(x_np)), ps[:2], tps[:2], "Normal.log_prob")
    p, tp, q, tq, ps, tps = normals()
    same(p.entropy(), tp.entropy(), ps[:2], tps[:2], "Normal.entropy")
    p, tp, q, tq, ps, tps = normals()
    same(D.kl_divergence(p, q), td.kl_divergence(tp, tq), ps, tps, "KL(Normal || Normal)")
    p, tp, q, tq, ps, tps = normals()
    same(D.kl_divergence(D.Independent(p, 1), D.Independent(q, 1)),
         td.kl_divergence(td.Independent(tp, 1), td.Independent(tq, 1)), ps, tps, "KL(Independent || Independent)")
    p, tp, q, tq, ps, tps = normals()
    same(D.Independent(p, 1).log_prob(sv.tensor(x_np)), td.Independent(tp, 1).log_prob(torch.tensor(x_np)),
         ps[:2], tps[:2], "Independent.log_prob")

    logits_np, logits2_np = rng.standard_normal((4, 3)) * 3, rng.standard_normal((4, 3)) * 3
    y_np = (rng.random((4, 3)) < 0.5).astype(np.float64)
    for big in (1.0, 30.0):  # large logits: the cancellation-prone regime
        (lg, tlg), (lg2, tlg2) = pair(logits_np * big), pair(logits2_np)
        same(D.Bernoulli(logits=lg).log_prob(sv.tensor(y_np)), td.Bernoulli(logits=tlg).log_prob(torch.tensor(y_np)),
             [lg], [tlg], f"Bernoulli.log_prob (logits x{big})")
        (lg, tlg) = pair(logits_np * big)
        same(D.Bernoulli(logits=lg).entropy(), td.Bernoulli(logits=tlg).entropy(), [lg], [tlg], "Bernoulli.entropy")
        (lg, tlg), (lg2, tlg2) = pair(logits_np * big), pair(logits2_np)
        same(D.kl_divergence(D.Bernoulli(logits=lg), D.Bernoulli(logits=lg2)),
             td.kl_divergence(td.Bernoulli(logits=tlg), td.Bernoulli(logits=tlg2)), [lg, lg2], [tlg, tlg2],
             "KL(Bernoulli || Bernoulli)")

    k_np = rng.integers(0, 3, size=4)
    (lg, tlg), (lg2, tlg2) = pair(logits_np), pair(logits2_np)
    same(D.Categorical(logits=lg).log_prob(sv.tensor(k_np)),
         td.Categorical(logits=tlg).log_prob(torch.tensor(k_np)), [lg], [tlg], "Categorical.log_prob")
    (lg, tlg) = pair(logits_np)
    same(D.Categorical(logits=lg).entropy(), td.Categorical(logits=tlg).entropy(), [lg], [tlg], "Categorical.entropy")
    (lg, tlg), (lg2, tlg2) = pair(logits_np), pair(logits2_np)
    same(D.kl_divergence(D.Categorical(logits=lg), D.Categorical(logits=lg2)),
         td.kl_divergence(td.Categorical(logits=tlg), td.Categorical(logits=tlg2)), [lg, lg2], [tlg, tlg2],
         "KL(Categorical || Categorical)")

    n = 3
    a_np, b_np = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    L_np = np.linalg.cholesky(a_np @ a_np.T + n * np.eye(n))
    L2_np = np.linalg.cholesky(b_np @ b_np.T + n * np.eye(n))
    mu_np, mu2_np, z_np = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal((2, n))

    def mvns():
        (m1, tm1), (L1, tL1), (m2, tm2), (L2, tL2) = map(pair, (mu_np, L_np, mu2_np, L2_np))
        return (D.MultivariateNormal(m1, scale_tril=L1), td.MultivariateNormal(tm1, scale_tril=tL1),
                D.MultivariateNormal(m2, scale_tril=L2), td.MultivariateNormal(tm2, scale_tril=tL2),
                [m1, L1, m2, L2], [tm1, tL1, tm2, tL2])

    p, tp, q, tq, ps, tps = mvns()
    same(p.log_prob(sv.tensor(z_np)), tp.log_prob(torch.tensor(z_np)), ps[:2], tps[:2], "MVN.log_prob")
    p, tp, q, tq, ps, tps = mvns()
    same(p.entropy(), tp.entropy(), ps[:2], tps[:2], "MVN.entropy")
    p, tp, q, tq, ps, tps = mvns()
    same(D.kl_divergence(p, q), td.kl_divergence(tp, tq), ps, tps, "KL(MVN || MVN)", tril=(1, 3))
    (m1, tm1), (S1, tS1) = pair(mu_np), pair(a_np @ a_np.T + n * np.eye(n))
    same(D.MultivariateNormal(m1, covariance_matrix=S1).log_prob(sv.tensor(z_np)),
         td.MultivariateNormal(tm1, covariance_matrix=tS1).log_prob(torch.tensor(z_np)), [m1], [tm1],
         "MVN(covariance_matrix).log_prob")
