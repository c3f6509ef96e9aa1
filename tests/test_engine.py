"""The engine's bookkeeping: backward order and accumulation, graph release, no_grad, memory,
error messages, backends, random numbers and dtypes."""

import gc
import os
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
from scratchvae import backend as B
from scratchvae.autograd import Function


def test_deep_chain_of_100k_ops_backpropagates_without_recursion(bk):
    x = bk.tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0 if bk.name == "numpy" else y + 0.0
        if bk.name != "numpy" and _ > 2_000:  # strict arrays are slow; the depth test is the numpy one
            break
    y.sum().backward()
    np.testing.assert_array_equal(bk.numpy(x.grad), [1.0])


def test_reused_intermediate_accumulates_before_flowing_on(bk):
    """micrograd's classic bug: a non-leaf used twice must pass on the SUM of its gradients."""
    x = bk.tensor(np.array([3.0]), requires_grad=True)
    a = x * x          # da/dx = 2x = 6
    b = a + a * a      # db/da = 1 + 2a = 19
    b.backward(bk.array(np.array([1.0])))
    np.testing.assert_allclose(bk.numpy(x.grad), [19.0 * 6.0])


def test_leaf_gradients_accumulate_across_backward_calls(bk):
    x = bk.tensor(np.array([2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(bk.numpy(x.grad), [3.0 + 4.0])


def test_each_node_backward_runs_once(bk):
    calls = []

    class Counting(Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, gy):
            calls.append(1)
            return (gy,)

    x = bk.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = Counting()(x)
    out = (h + h * 2.0 + F.exp(h)).sum()  # h is reached along three paths
    out.backward()
    assert len(calls) == 1


def test_graph_is_released_and_second_backward_is_refused(bk):
    x = bk.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (F.exp(x) * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"already freed by an earlier backward\(\).*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward(bk):
    x = bk.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(bk.numpy(x.grad), 2 * 2 * np.array([1.0, 2.0]))


def test_non_scalar_backward_needs_grad(bk):
    x = bk.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"output has shape \(2, 3\).*loss.sum\(\).*grad="):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the output has shape \(2, 3\)"):
        (x * 2.0).backward(bk.array(np.ones(3)))


def test_backward_without_graph_is_refused(bk):
    x = bk.tensor(np.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2.0).sum().backward()


def test_no_grad_records_nothing_and_is_thread_local(bk):
    x = bk.tensor(np.ones(2), requires_grad=True)
    with sv.no_grad():
        y = x * 2.0
        seen_in_other_thread = []
        t = threading.Thread(target=lambda: seen_in_other_thread.append((x * 2.0).requires_grad))
        t.start()
        t.join()
    assert not y.requires_grad and y._ctx is None
    assert seen_in_other_thread == [True]  # the other thread was not affected
    assert (x * 2.0).requires_grad

    @sv.no_grad()
    def f(v):
        return v * 3.0

    assert not f(x).requires_grad
    with sv.no_grad():
        with sv.enable_grad():
            assert (x * 1.0).requires_grad


def test_detach_item_numpy_and_properties(bk):
    x = bk.tensor(np.array([[1.5, 2.0], [3.0, 4.0]]), requires_grad=True)
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    assert y.shape == (2, 2) and y.ndim == 2 and y.size == 4
    assert isinstance(y.numpy(), np.ndarray)
    np.testing.assert_array_equal(y.T.numpy(), (np.array([[1.5, 2.0], [3.0, 4.0]]) * 2).T)
    assert y[0, 0].item() == 3.0
    with pytest.raises(ValueError, match="only a tensor of one element"):
        y.item()


def test_memory_stays_flat_without_the_cyclic_gc(bk):
    """Functions hold inputs, never outputs: graphs die by reference counting alone."""
    rng = np.random.default_rng(0)
    W1 = bk.tensor(rng.standard_normal((20, 16)) * 0.1, requires_grad=True)
    W2 = bk.tensor(rng.standard_normal((16, 4)) * 0.1, requires_grad=True)
    x = bk.tensor(rng.standard_normal((8, 20)))
    probe = []
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(30):
            h = F.tanh(x @ W1)
            loss = F.logsumexp(h @ W2, axis=1).sum()
            if i == 0:
                probe.append(weakref.ref(h))
                probe.append(weakref.ref(loss._ctx))
            loss.backward(retain_graph=(i % 2 == 0))
            W1.grad = W2.grad = None
            del h, loss
            if i == 0:
                assert all(p() is None for p in probe), "a graph outlived its loss"
        # no garbage with cycles was made: nothing for the cyclic collector to find
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()


def test_error_messages_name_the_op_and_shapes(bk):
    a = bk.tensor(np.ones((128, 784)))
    b = bk.tensor(np.ones((400, 784)))
    with pytest.raises(ValueError, match=r"matmul: shapes \(128, 784\) and \(400, 784\) are not aligned"):
        a @ b
    with pytest.raises(ValueError, match=r"add: .*\(input shapes \(128, 784\), \(3,\)\)"):
        a + bk.tensor(np.ones(3))


def test_mixing_devices_is_refused_not_converted():
    B.set_backend("array_api_strict")
    try:
        dev = sv.tensor(np.ones(3))
        host = np.ones(3)
        with pytest.raises(ValueError, match=r"mul: inputs live on different backends/devices "
                                             r"\(array_api_strict:device1, cpu\)"):
            dev * host
        with pytest.raises(ValueError, match="different backends/devices"):
            F.add(dev, sv.tensor(np.ones(3)).to("numpy"))
        with pytest.raises(RuntimeError, match="Can't convert"):
            np.asarray(dev.data)  # the stand-in really refuses implicit host conversion
    finally:
        B._state["backend"] = None


def test_to_moves_between_backends_explicitly(bk):
    x = bk.tensor(np.array([1.0, 2.0]))
    host = x.to("numpy")
    assert isinstance(host.data, np.ndarray)
    back = host.to(bk.backend)
    assert B.backend_of(back.data) is bk.backend
    np.testing.assert_array_equal(sv.to_numpy(back), [1.0, 2.0])
    assert sv.backend.dtype_name(x.to(dtype="float32").dtype) == "float32"


def test_cupy_backend_missing_gives_install_hint(monkeypatch):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(sv.BackendError, match=r"pip install scratchvae\[gpu\]"):
        B.CupyBackend()


def test_unknown_backend_name_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'jax'.*choose one of"):
        sv.set_backend("jax")


def test_backend_from_environment_variable():
    code = "import scratchvae as sv; print(sv.get_backend().name); import sys; print('cupy' in sys.modules)"
    env = dict(os.environ, SCRATCHVAE_BACKEND="array_api_strict")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["array_api_strict", "False"]


def test_import_is_light():
    code = ("import sys, scratchvae; heavy = [m for m in ('matplotlib', 'tqdm', 'cupy', 'torch', 'scipy') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_dtype_and_python_data():
    assert sv.get_default_dtype() == "float32"
    assert sv.tensor([1.0, 2.0]).dtype == np.float32
    assert sv.tensor(np.array([1.0, 2.0])).dtype == np.float64  # arrays keep their dtype
    assert (sv.tensor([1.0]) * 2.0).dtype == np.float32  # Python scalars do not promote
    sv.set_default_dtype("float64")
    try:
        assert sv.tensor([1.0]).dtype == np.float64
    finally:
        sv.set_default_dtype("float32")
    with pytest.raises(ValueError, match="float32 or float64"):
        sv.set_default_dtype("int32")
    with pytest.raises(ValueError, match="only floating tensors can require gradients"):
        sv.tensor([1, 2], requires_grad=True)


def test_random_is_seeded_per_backend_and_in_the_requested_dtype(bk):
    from scratchvae import random as R

    sv.manual_seed(123)
    a = R.randn(3, 4, dtype="float32", backend=bk.backend)
    sv.manual_seed(123)
    b = R.randn(3, 4, dtype="float32", backend=bk.backend)
    assert B.dtype_name(a.dtype) == "float32"
    assert B.backend_of(a) is bk.backend  # drawn on (or placed on) the tensor's device
    np.testing.assert_array_equal(bk.numpy(a), bk.numpy(b))
    g = R.Generator(7)
    u = g.uniform((1000,), dtype="float64", backend=bk.backend)
    assert 0.0 <= float(bk.numpy(u).min()) and float(bk.numpy(u).max()) < 1.0
    assert not np.array_equal(bk.numpy(g.normal((5,), backend=bk.backend)), bk.numpy(g.normal((5,), backend=bk.backend)))


def test_tensor_and_numpy_array_operands(bk):
    x = bk.tensor(np.array([1.0, 2.0]), requires_grad=True)
    if bk.name == "numpy":
        y = np.array([3.0, 4.0]) * x  # numpy defers to Tensor.__rmul__ instead of looping elementwise
        assert isinstance(y, sv.Tensor)
        y.sum().backward()
        np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    else:
        with pytest.raises(ValueError, match="different backends/devices"):
            x * np.array([3.0, 4.0])


def test_tune_host_allocator_reports_what_it_did():
    import platform

    code = "import scratchvae.fast.host as H; print(H.tune_host_allocator())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    expected = "True" if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" else "False"
    assert out.stdout.strip() == expected
