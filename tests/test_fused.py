"""Fused ops equal the compositions they replace, forward and backward, on every backend; on a GPU
the CuPy kernels equal the NumPy formulas; where nvcc is installed, the kernels compile."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchvae as sv
import scratchvae.functional as F


def _values(shape, lo=-4.0, hi=4.0):
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_subnormal=False))


FUSED = {
    "bernoulli_log_prob": (lambda x, l: F.bernoulli_log_prob(x, l), lambda x, l: x * l - F.softplus(l)),
    "normal_kl_standard": (F.normal_kl_standard,
                           lambda m, t: 0.5 * (F.square(m) + F.exp(2.0 * t) - 1.0 - 2.0 * t)),
}


@pytest.mark.parametrize("name", sorted(FUSED))
@given(data=st.data())
def test_fused_equals_composition(bk, float64, name, data):
    fused, composed = FUSED[name]
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=2, max_side=4))
    a_np = data.draw(_values(shapes.input_shapes[0]))
    b_np = data.draw(_values(shapes.input_shapes[1]))
    a, b = bk.tensor(a_np, requires_grad=True), bk.tensor(b_np, requires_grad=True)
    np.testing.assert_allclose(bk.numpy(fused(a, b)), bk.numpy(composed(a, b)), rtol=1e-12, atol=1e-12)
    sv.gradcheck(fused, [a, b])


@given(data=st.data())
def test_reparameterize_equals_composition(bk, float64, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))
    loc_np, t_np = data.draw(_values(shape)), data.draw(_values(shape, -3, 2))
    eps_np = data.draw(_values((2,) + shape))  # a sample axis in front, as rsample((2,)) makes
    loc, t = bk.tensor(loc_np, requires_grad=True), bk.tensor(t_np, requires_grad=True)
    eps = bk.array(eps_np)
    np.testing.assert_allclose(bk.numpy(F.reparameterize(loc, t, eps)),
                               bk.numpy(loc + F.exp(t) * sv.tensor(eps)), rtol=1e-12)
    sv.gradcheck(lambda loc, t: F.reparameterize(loc, t, eps), [loc, t])


@pytest.mark.gpu
def test_cupy_kernels_equal_numpy_formulas():
    cupy = pytest.importorskip("cupy")
    from scratchvae.fast import cupy_kernels as K

    rng = np.random.default_rng(0)
    for dtype, rtol in ((np.float32, 2e-6), (np.float64, 1e-13)):
        l = (rng.standard_normal((64, 50)) * 30).astype(dtype)
        x = (rng.random((64, 50)) < 0.5).astype(dtype)
        gy = rng.standard_normal((64, 50)).astype(dtype)
        m, t, eps = (rng.standard_normal((64, 50)).astype(dtype) for _ in range(3))
        l64 = l.astype(np.float64)
        softplus = np.logaddexp(0.0, l64)
        sigmoid = 1 / (1 + np.exp(-l64))
        g = lambda a: cupy.asnumpy(a).astype(np.float64)  # noqa: E731
        c = cupy.asarray
        np.testing.assert_allclose(g(K.softplus(c(l))), softplus, rtol=rtol, atol=1e-30)
        np.testing.assert_allclose(g(K.sigmoid(c(l))), sigmoid, rtol=rtol, atol=1e-30)
        np.testing.assert_allclose(g(K.bernoulli_log_prob(c(x), c(l))), x * l64 - softplus, rtol=rtol, atol=1e-5)
        np.testing.assert_allclose(g(K.bernoulli_log_prob_grad(c(gy), c(x), c(l))), gy * (x - sigmoid),
                                   rtol=rtol, atol=1e-6)
        kl, e2 = K.normal_kl_standard(c(m), c(t))
        np.testing.assert_allclose(g(kl), 0.5 * (m**2 + np.expm1(2.0 * t) - 2.0 * t), rtol=rtol * 10, atol=1e-6)
        z, se = K.reparameterize(c(m), c(t), c(eps))
        np.testing.assert_allclose(g(z), m + np.exp(t) * eps, rtol=rtol, atol=1e-6)


def _cuda_source(kernels) -> str:
    """Each ElementwiseKernel body in the shape CuPy expands it to: inputs read into ``const T``
    values, outputs bound as ``T&`` references, instantiated for T = float and double."""
    def names(spec):
        return [p.split()[1] for p in spec.split(",")]

    out = []
    for name, (pin, pout, body) in kernels.items():
        ins, outs = names(pin), names(pout)
        args = ", ".join([f"const T* __restrict__ in_{a}" for a in ins] + [f"T* out_{a}" for a in outs] + ["int n"])
        loads = " ".join([f"const T {a} = in_{a}[i];" for a in ins] + [f"T &{a} = out_{a}[i];" for a in outs])
        out.append(f"template <typename T> __global__ void k_{name}({args}) {{\n"
                   f"  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i >= n) return;\n"
                   f"  {loads}\n  {body};\n}}")
        for t in ("float", "double"):
            types = ", ".join([f"const {t}*"] * len(ins) + [f"{t}*"] * len(outs) + ["int"])
            out.append(f"template __global__ void k_{name}<{t}>({types});")
    return "\n".join(out) + "\n"


def test_cupy_kernel_sources_compile_with_nvcc_and_stay_single_precision(tmp_path):
    """No GPU needed: nvcc compiles every kernel body (a typo or a type error fails here, not on the
    first GPU run), and the float32 kernels contain no float64 instruction (an uncast literal such
    as 0.1 would silently promote a float kernel to double)."""
    import re
    import shutil
    import subprocess

    from scratchvae.fast.cupy_kernels import KERNELS

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc (the CUDA compiler) is not installed")
    src = tmp_path / "kernels.cu"
    src.write_text(_cuda_source(KERNELS))
    ptx = tmp_path / "kernels.ptx"
    done = subprocess.run([nvcc, "-std=c++17", "-Werror", "all-warnings", "--ptx", "-o", str(ptx), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"nvcc rejected the kernels:\n{done.stderr}"
    entries = re.split(r"\.visible \.entry ", ptx.read_text())[1:]
    assert len(entries) == 2 * len(KERNELS)
    for entry in entries:
        mangled = entry.split("(", 1)[0]
        if "IfE" in mangled:  # the T = float instantiation
            assert ".f64" not in entry, f"{mangled} computes in float64"
