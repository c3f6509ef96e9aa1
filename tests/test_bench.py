"""scratchvae.bench: the timing helper, the GEMM-floor accounting, the hand-written reference step
(moved into the package) against the engine, and a tiny end-to-end run writing table, JSON and plot."""

import json
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from scratchvae.bench import backends as bb
from scratchvae.bench.backends import (
    BACKENDS,
    Problem,
    gemm_flops,
    gemm_plan,
    host_parameters,
)
from scratchvae.bench.reference import hand_log_likelihood, hand_loss_and_grads
from scratchvae.bench.timing import measure, measure_many
from scratchvae.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# timing

class AsyncDevice:
    """A fake GPU: calls queue their cost, which reaches the clock only at sync() -- so a timer that
    reads the clock without synchronizing measures nothing."""

    def __init__(self, costs):
        self.costs = list(costs)  # seconds of each successive call
        self.now = 0.0
        self.queued = 0.0
        self.calls = 0

    def fn(self):
        self.queued += self.costs[min(self.calls, len(self.costs) - 1)]
        self.calls += 1

    def sync(self):
        self.now += self.queued
        self.queued = 0.0

    def clock(self):
        return self.now


def test_measure_syncs_before_reading_the_clock_and_reports_the_first_call_apart():
    # first call 1 s (compilation), warm-up 0.01 s, then 0.01 s per call except repeat 2 (0.03 s per call)
    n = 5  # min_time 0.05 / 0.01 per call
    costs = [1.0, 0.01] + [0.01] * n + [0.03] * n + [0.01] * n
    dev = AsyncDevice(costs)
    t = measure(dev.fn, repeats=3, min_time=0.05, warmup=1, sync=dev.sync, clock=dev.clock)
    assert t.first_call == pytest.approx(1.0)
    assert t.number == n
    assert dev.calls == 2 + 3 * n
    assert t.times == pytest.approx([0.01, 0.03, 0.01])
    assert (t.min, t.median, t.max) == pytest.approx((0.01, 0.01, 0.03))
    d = t.as_dict()
    assert d["ms_median"] == pytest.approx(10.0) and d["first_call_ms"] == pytest.approx(1000.0)
    assert d["repeats"] == 3 and d["number"] == n


def test_measure_without_sync_would_see_nothing():
    # The same device with a timer that never synchronizes: every reading is 0 -- what the sync prevents.
    dev = AsyncDevice([0.01])
    t = measure(dev.fn, repeats=2, min_time=0, warmup=0, clock=dev.clock)
    assert t.times == [0.0, 0.0]


def test_measure_many_interleaves_the_repeats():
    order = []
    fns = {name: (lambda name=name: order.append(name), lambda: None) for name in ("a", "b")}
    res = measure_many(fns, repeats=3, number=1, warmup=1)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3  # first call + warm-up each, then round robin
    assert set(res) == {"a", "b"} and all(len(r.times) == 3 for r in res.values())


def test_measure_rejects_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="number"):
        measure(lambda: None, number=0)


# --------------------------------------------------------------------------------------------------
# the GEMM floor

class CountingArray(np.ndarray):
    """Counts every matrix product made with it (the subclass propagates through NumPy ops)."""

    log: ClassVar[list] = []

    def __matmul__(self, other):
        a, b = np.asarray(self), np.asarray(other)
        CountingArray.log.append((a.shape[0], a.shape[1], b.shape[1]))
        return np.matmul(a, b).view(CountingArray)


@pytest.mark.parametrize("preset", ["pytorch-example", "iwae-paper"])
def test_gemm_plan_is_exactly_the_matmuls_of_the_hand_step(preset):
    pb = Problem(preset, 8, width=16, dtype="float64")
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(p.shape).view(CountingArray) * 0.1 for p in host_parameters(pb)]
    x = (rng.random((8, 784)) < 0.3).astype(np.float64).view(CountingArray)
    eps = rng.standard_normal((8, pb.arch.latent)).view(CountingArray)
    CountingArray.log = []
    hand_loss_and_grads(params, x, eps, pb.arch.activation, pb.arch.head)
    plan = gemm_plan(pb.arch, 8)
    assert sorted(CountingArray.log) == sorted((m, k, n) for m, k, n, _ in plan)
    assert gemm_flops(plan) == sum(2 * m * k * n for m, k, n in CountingArray.log)


def test_gemm_flops_of_the_pytorch_example_step():
    b = 128
    forward = 2 * b * (784 * 400 + 2 * 400 * 20 + 20 * 400 + 400 * 784)
    # backward: a weight gradient per layer (= forward flops) and an input gradient for all but the first
    expected = 3 * forward - 2 * b * 784 * 400
    plan = gemm_plan(Problem("pytorch-example", b).arch, b)
    assert len(plan) == 5 + 5 + 4
    assert gemm_flops(plan) == expected


def test_gemm_runner_runs_the_plan():
    pb = Problem("iwae-paper", 4, width=8)
    r = BACKENDS["numpy-gemm"].make(pb, None)
    shapes = [(a.shape[0], a.shape[1], b.shape[1]) for a, b in r.ops]
    assert shapes == [(m, k, n) for m, k, n, _ in gemm_plan(pb.arch, 4)]
    assert r.flops == gemm_flops(gemm_plan(pb.arch, 4))


# --------------------------------------------------------------------------------------------------
# the hand-written reference step against the engine

@pytest.mark.parametrize("preset", ["pytorch-example", "iwae-paper"])
def test_hand_step_equals_the_engine_step(preset):
    pb = Problem(preset, 6, width=12, dtype="float64")
    host = host_parameters(pb, seed=3)
    rng = np.random.default_rng(1)
    x = (rng.random((6, 784)) < 0.3).astype(np.float64)
    eps = rng.standard_normal((6, pb.arch.latent))
    engine = BACKENDS["numpy"].make(pb, host)
    engine.activate()
    loss = engine.loss(x, eps)
    ref_loss, ref_grads = hand_loss_and_grads(host, x, eps, pb.arch.activation, pb.arch.head)
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=1e-12)
    loss.backward()
    for p, g in zip(engine.model.parameters(), ref_grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-9, atol=1e-12)
    # one whole step each (the preset's Adam: eps 1e-8 or 1e-4): the same parameters after it
    engine2, hand = BACKENDS["numpy"].make(pb, host), BACKENDS["hand-numpy"].make(pb, host)
    engine2.activate()
    for _ in range(2):
        engine2.step(x, eps)
        hand.step(x, eps)
    for p, h in zip(engine2.model.parameters(), hand.step_fn.params):
        np.testing.assert_allclose(p.data, h, rtol=1e-9, atol=1e-12)


class QueuedNoise:
    """Hands out pre-drawn noise in order, to the engine (as a Generator) and to the hand code (as an rng)."""

    def __init__(self, draws):
        self.draws = list(draws)

    def normal(self, shape, dtype=None, backend=None):
        return backend.from_numpy(self.draws.pop(0).reshape(shape))

    def standard_normal(self, shape, dtype=None):
        return self.draws.pop(0).reshape(shape)


def test_hand_log_likelihood_equals_the_engine_estimate():
    from scratchvae.bench.backends import _model_kwargs
    from scratchvae.models.vae import VAE

    pb = Problem("iwae-paper", 5, width=10, dtype="float64")
    host = host_parameters(pb)
    rng = np.random.default_rng(2)
    x = (rng.random((5, 784)) < 0.3).astype(np.float64)
    k, chunk = 7, 3
    draws = [rng.standard_normal((c, 5, pb.arch.latent)) for c in (3, 3, 1)]
    model = VAE.mlp(**_model_kwargs(pb), validate_args=False, dtype="float64", backend="numpy")
    for p, h in zip(model.parameters(), host):
        p.data = h.copy()
    engine = model.log_likelihood(x, k=k, chunk=chunk, generator=QueuedNoise(draws)).log_px
    hand = hand_log_likelihood(host, x, k, QueuedNoise(draws), pb.arch.activation, pb.arch.head, chunk)
    np.testing.assert_allclose(hand, engine.numpy(), rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# end to end

TINY = ["--batch-sizes", "16", "--widths", "32", "--dtypes", "float32", "--repeats", "2", "--min-time", "0",
        "--k", "5", "--n-test", "4", "--n-train", "60"]


def test_tiny_bench_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    code = cli_main(["bench", *TINY, "--out", str(out),
                     "--backends", "numpy,hand-numpy,numpy-gemm,array-api-strict,cupy"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Targets" in printed and "wrote" in printed
    md = (out / "bench.md").read_text()
    for text in ("### One training step: pytorch-example", "### One training step: iwae-paper",
                 "### One epoch of training", "### Importance-sampled log p(x)", "### Engine overhead per op",
                 "| 16 | 400 | float32 | numpy |", "| 128 | 32 | float32 | hand-numpy |",
                 "| 16 | 200 | float32 | numpy-gemm |", "scratchvae.profile()"):
        assert text in md, text
    payload = json.loads((out / "bench.json").read_text())
    rows = payload["results"]
    assert all(r["status"].startswith("ok") for r in rows), [r for r in rows if not r["status"].startswith("ok")]
    got = {(r["workload"], r["backend"]) for r in rows}
    for backend in ("numpy", "hand-numpy", "array-api-strict"):
        assert {("step", backend), ("epoch", backend), ("eval", backend)} <= got
    assert ("step", "numpy-gemm") in got and ("epoch", "numpy-gemm") not in got
    assert {r["op"] for r in rows if r["workload"] == "overhead"} >= {"add", "matmul", "softplus"}
    step = {r["backend"]: r for r in rows if r["workload"] == "step" and r["preset"] == "pytorch-example"
            and r["batch"] == 16}
    assert step["hand-numpy"]["vs_hand"] == 1.0 and step["numpy"]["ms_min"] <= step["numpy"]["ms_median"]
    assert step["numpy"]["peak_bytes"] > step["numpy"]["resident_bytes"] > 0
    assert step["numpy"]["mem_vs_hand"] == pytest.approx(step["numpy"]["peak_bytes"] / step["hand-numpy"]["peak_bytes"])
    ev = [r for r in rows if r["workload"] == "eval"]
    assert all(r["scaled_s"] == pytest.approx(r["s_median"] * 5000 * 1000 / (5 * 4)) for r in ev)
    assert [t["id"] for t in payload["targets"]] == ["hand", "torch_cpu", "overhead", "cupy", "memory"]
    env = payload["env"]
    assert env["numpy"] == np.__version__ and env["cpu_count"] and "blas" in env and "threads_requested" in env
    if BACKENDS["cupy"].unavailable():
        assert "cupy" in payload["skipped"] and "gpu" not in env
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_errors_are_one_line(capsys):
    assert cli_main(["bench", "--backends", "torch-cpu"]) == 1
    err = capsys.readouterr().err
    assert "unknown backend 'torch-cpu'" in err and "benchmarks/run.py" in err
    assert cli_main(["bench", "--presets", "nope"]) == 1
    assert "unknown preset" in capsys.readouterr().err
    assert cli_main(["bench", "--batch-sizes", "0"]) == 2


def test_benchmarks_run_adds_the_torch_references(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(bb, "BACKENDS", dict(BACKENDS))  # the registration stays inside this test
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")  # --threads sets them; restored after the test
    threads = torch.get_num_threads()
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import run as bench_script  # benchmarks/run.py

    out = tmp_path / "bench"
    assert bench_script.main([*TINY, "--presets", "iwae-paper", "--workloads", "step,epoch,eval",
                              "--backends", "numpy,torch-cpu", "--out", str(out), "--no-plot", "--no-memory",
                              "--threads", "1"]) == 0  # one thread: a busy 2-core machine stalls torch's two
    torch.set_num_threads(threads)
    payload = json.loads((out / "bench.json").read_text())
    rows = [r for r in payload["results"] if r["backend"] == "torch-cpu"]
    assert {r["workload"] for r in rows} == {"step", "epoch", "eval"} and all(r["status"] == "ok" for r in rows)
    numpy_step = [r for r in payload["results"] if r["backend"] == "numpy" and r["workload"] == "step"]
    assert all("vs_torch" in r for r in numpy_step)
    assert payload["env"]["torch"] == torch.__version__


def test_torch_step_equals_the_engine_for_the_iwae_architecture():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from torch_reference import TorchVAEStep

    pb = Problem("iwae-paper", 6, width=12, dtype="float64")
    host = host_parameters(pb)
    rng = np.random.default_rng(4)
    x = (rng.random((6, 784)) < 0.3).astype(np.float64)
    eps = rng.standard_normal((6, pb.arch.latent))
    ref = TorchVAEStep(host, activation="tanh", head="exp")
    t_loss = ref.loss(torch.as_tensor(x), torch.as_tensor(eps))
    ref_loss, _ = hand_loss_and_grads(host, x, eps, "tanh", "exp")
    np.testing.assert_allclose(t_loss.item(), ref_loss, rtol=1e-12)
