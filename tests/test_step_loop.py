"""The step loop (rnnsym.numeric.step_loop): a loop of products and fused kernels in one C call.

Its lines are read back from the generated loop, so the reading is checked line by line; the C loop
is checked against the same program's Python loop (the step loop switched off) on the built-in
cells, in both precisions and with the batch in parts, and its products alone against NumPy's, over
random shapes, layouts and directions (Hypothesis). The built-in and random cells' gradients are
checked against independent oracles elsewhere (test_compiled_correctness, test_random_cells), all of
them through this loop where it applies.
"""
import platform

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnnsym as rs
from rnnsym.numeric import native, step_loop
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric.step_loop import Product, read

pytestmark = pytest.mark.skipif(not native.enabled() or step_loop.gemm() is None,
                                reason="no fused kernels or no BLAS callable from C here")


# ---- reading a loop's lines --------------------------------------------------------------------------

def test_read_elman_forward_and_backward():
    ops, after = read(["n_h0 = S_n_h1[t]", "_mm(n_h0, n_W_hh, out=_KMfwd0)", "_kfwd(t)"])
    assert ops == [Product("_KMfwd0", "S_n_h1", "n_W_hh.T", "a"), "_kfwd"]
    assert after == ["n_h0 = S_n_h1[t]"]
    ops, after = read(["_kbwd(t)", "_u0 = _D0[t]", "numpy.matmul(_u0, n_W_hh, out=d_h1_carried)"])
    assert ops == ["_kbwd", Product("d_h1_carried", "_D0", "n_W_hh", "a")]


def test_read_stepped_output_accumulation_and_assigned_products():
    ops, _ = read(["_mm(S_XH[t], _WC, out=S_G[t])", "_kfwd(t)"])
    assert ops == [Product("S_G", "S_XH", "_WC.T", "out a"), "_kfwd"]
    ops, after = read(["n_h0 = S_n_h1[t]", "_M0 = _mm(n_h0, _W0, out=_M0_out)", "_kfwd(t)",
                       "numpy.add(d_h1_carried, numpy.matmul(_DS0[t], _W0), out=d_h1_carried)"])
    assert ops[0] == Product("_M0_out", "S_n_h1", "_W0.T", "a")
    assert ops[1:] == ["_kfwd", Product("d_h1_carried", "_DS0", "_W0", "a", add=True)]
    assert after == ["n_h0 = S_n_h1[t]", "_M0 = _M0_out"]


@pytest.mark.parametrize("body", [
    ["n_h0 = S_n_h1[t]", "_mm(n_h0, n_W_hh, out=_KMfwd0)"],  # no kernel: a loop without its library
    ["_kfwd(t)", "_s0 = numpy.tanh(_P0[t])"],  # a line of any other form
    ["_kfwd(t)", "numpy.matmul(_D0[t], n_W_hh[t], out=d)"],  # a weight that changes with the step
    ["_kfwd(t)", "numpy.add(d, numpy.matmul(_D0[t], W), out=e)"],  # added to another array
])
def test_other_loops_stay_in_python(body):
    assert read(body) is None


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_builtin_cells_run_their_loops_in_c(cell):
    net = {"elman": rs.elman_rnn, "lstm": rs.lstm, "gru": rs.gru}[cell](steps=4, input_size=3, hidden_size=5)
    source = net.compile().source
    assert source.count("_native.steps(") >= 2 and "for t in range" not in source.split("def value_and_grad")[1]


# ---- the C loop against the same program's Python loop ------------------------------------------------

def _python_loop(monkeypatch, net):
    """The same network compiled afresh (compile caches), its loops left in Python."""
    net = {"elman": rs.elman_rnn, "lstm": rs.lstm, "gru": rs.gru}[net](steps=70, input_size=3, hidden_size=6)
    with monkeypatch.context() as m:
        m.setattr("rnnsym.numeric.lines.loop_lines", lambda *args: None)
        compiled = net.compile()
    assert "_native.steps(" not in compiled.source
    return compiled


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", [3, 96])  # 96 with T = 70: parts of the batch on threads at once
def test_same_numbers_as_the_python_loop(monkeypatch, cell, dtype, batch):
    net = {"elman": rs.elman_rnn, "lstm": rs.lstm, "gru": rs.gru}[cell](steps=70, input_size=3, hidden_size=6)
    params, x, y = random_point(net, batch=batch, seed=7)
    params = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
    x, y = np.asarray(x, dtype=dtype), np.asarray(y, dtype=dtype)
    in_c, in_python = net.compile(), _python_loop(monkeypatch, cell)
    assert "_native.steps(" in in_c.source
    loss, grads = in_c.value_and_grad(params, x, y)
    loss_py, grads_py = in_python.value_and_grad(params, x, y)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert loss == pytest.approx(loss_py, rel=tol)
    for name in grads:
        assert grads[name].dtype == np.dtype(dtype)
        np.testing.assert_allclose(grads[name], grads_py[name], rtol=tol, atol=tol * np.abs(grads_py[name]).max())


# ---- products alone, against NumPy -------------------------------------------------------------------
# Up to 64 rows in float64 with AVX-512, rnnsym's own tiles (8 rows × 16 columns, masked at the
# edges); more rows, or float32, BLAS: both are drawn.

@pytest.fixture(scope="module")
def library():
    return rs.elman_rnn(steps=3, input_size=2, hidden_size=3).compile()._namespace["_native"]


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 80), k=st.integers(1, 40), n=st.integers(1, 40), steps=st.integers(1, 4),
       stepped=st.sampled_from(["a", "out", "out a"]), add=st.booleans(), transposed=st.booleans(),
       backwards=st.booleans(), padded=st.booleans(), single=st.booleans(), seed=st.integers(0, 2**16))
def test_products_match_numpy(library, m, k, n, steps, stepped, add, transposed, backwards, padded, single, seed):
    dtype = np.float32 if single else np.float64
    rng = np.random.default_rng(seed)
    # a: rows of a wider array where ``padded`` (a leading dimension above k), as S_XH's views are
    a = rng.normal(size=(steps, m, k + 3 * padded)).astype(dtype)[..., :k]
    a = a if "a" in stepped.split() else a[0]
    w = rng.normal(size=(n, k) if transposed else (k, n)).astype(dtype)
    out = rng.normal(size=(steps, m, n) if "out" in stepped.split() else (m, n)).astype(dtype)
    expected = out.copy()
    t0, dt = (steps - 1, -1) if backwards else (0, 1)
    for t in range(t0, t0 + steps * dt, dt):
        o = expected[t] if "out" in stepped.split() else expected
        p = (a[t] if "a" in stepped.split() else a) @ (w.T if transposed else w)
        o[...] = o + p if add else p
    library.steps(t0, steps, dt, library.product(out, a, w.T if transposed else w, stepped=stepped, add=add))
    tol = 1e-5 if single else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * max(1.0, np.abs(expected).max()))


def test_arrays_blas_cannot_take_run_in_numpy(library):
    """An ``a`` whose elements are not contiguous, or of another type, runs in NumPy: same numbers."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 5, 6))[:, :, ::2]  # every other column
    w, out = rng.normal(size=(3, 2)), np.zeros((4, 5, 2))
    library.steps(0, 4, 1, library.product(out, a, w, stepped="out a"))
    np.testing.assert_allclose(out, a @ w, rtol=1e-13)
    ints = np.arange(12).reshape(3, 4)
    out = np.zeros((3, 4), dtype=np.int64)
    library.steps(0, 2, 1, library.product(out, ints, np.eye(4, dtype=np.int64), add=True))
    np.testing.assert_array_equal(out, 2 * ints)


def test_kernels_ask_for_the_next_steps_rows():
    """Each kernel with stepped rows prefetches the next step's (write-hinted where it stores); the
    results of the C loop, which passes the next step, are checked against the Python loop above,
    which passes none."""
    from rnnsym.numeric.kernel_c import c_source

    net = rs.lstm(steps=4, input_size=3, hidden_size=5)
    net.compile()
    kernels = [fk.kernel for fk in net.compile()._namespace["_native"].kernels.values()]
    source = c_source(kernels)
    assert source.count("if (pt >= 0) {") == 2 * len(kernels)  # each kernel, in both precisions
    assert ", 1);" in source and ", 0);" in source  # outputs asked for writing, inputs for reading


def test_an_elman_reduces_its_input_state_and_bias_shares_in_one_product():
    """The Elman's state is stored beside x ([x_t, h_(t-1), 1]): δW_ih, δW_hh and δb are one
    product (their values are checked against oracles in test_compiled_correctness); an LSTM's
    gate block keeps its own, and a GRU (stacked weights) neither."""
    elman = rs.elman_rnn(steps=4, input_size=3, hidden_size=5).compile().source
    assert "_GJ0 = _outer(_D0[0:4], S_XH[0:4])" in elman and "dL_dW_ih = _GJ0[:, 0:3]" in elman
    assert "_GJ0" not in rs.lstm(steps=4, input_size=3, hidden_size=5).compile().source
    assert "S_XH" not in rs.gru(steps=4, input_size=3, hidden_size=5).compile().source
    scalar = rs.elman_rnn(steps=4, input_size=1, hidden_size=1).compile().source  # swept: each array its own
    assert "S_XH" not in scalar and ".sweep(" in scalar


@pytest.mark.skipif(platform.machine() != "x86_64" or platform.libc_ver()[0] != "glibc",
                    reason="the first flags (-march=native, libmvec) are for x86-64 with glibc")
def test_the_runtime_and_kernels_build_with_the_first_flags(monkeypatch, tmp_path):
    """A C error in generated code would not fail a build: the next, plainer flags leave the
    AVX-512 code out (an #if) and build, slower. Here every build must pass at the first try."""
    import subprocess

    monkeypatch.setenv("RNNSYM_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    tries = []
    real_run = subprocess.run

    def run(command, **kwargs):
        done = real_run(command, **kwargs)
        tries.append((command, done.returncode, done.stderr))
        return done
    monkeypatch.setattr(native.subprocess, "run", run)
    rs.lstm(steps=3, input_size=2, hidden_size=4).compile()
    assert len(tries) == 2 and all(code == 0 for _, code, _ in tries), [err for _, _, err in tries]
    if "avx512f" in native._machine():
        assert native._runtime().rs_own_products() == 1
