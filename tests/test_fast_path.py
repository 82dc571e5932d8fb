"""The fast path of the compiled loop form: the C activation kernels, the workspaces that keep large
arrays between calls, and the fused gate block (an LSTM's gates as one array, one product per step).
Each is checked against an independent computation: NumPy's own functions, a fresh computation, the
unrolled form and finite differences."""
import platform
import shutil
import sys
import threading

import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.numeric import printer
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric import workspace
from rnnsym.numeric.workspace import Workspaces

kernels = printer._kernels
needs_kernels = pytest.mark.skipif(kernels is None, reason="the optional C extension is not built here")


# ---- the C kernels --------------------------------------------------------------------------------------
@pytest.mark.skipif(not (sys.platform == "linux" and platform.machine() == "x86_64" and shutil.which("cc")),
                    reason="built by GCC on Linux x86-64; without a C compiler NumPy computes the same")
def test_the_kernels_are_built_where_there_is_a_c_compiler():
    # The speed targets rely on them; `pip install -e .` builds them with the machine's C compiler.
    assert kernels is not None and printer.kernels_in_use().startswith("C, ")


def _sigmoid_reference(a):
    """σ by NumPy's exp, as e^z / (1 + e^z) below 0 (not the kernels' 1 / (1 + e^−z))."""
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(a))
    return np.where(a < 0, e / (1 + e), 1 / (1 + e))


@needs_kernels
@pytest.mark.parametrize("name,reference", [("sigmoid", _sigmoid_reference), ("tanh", np.tanh)])
def test_kernels_match_numpy_to_a_few_ulp(name, reference):
    a = np.concatenate([np.linspace(-40, 40, 100_001),
                        [-1e4, -745.0, -700.0, 700.0, 1e4, 0.0, -0.0, 1e-300, -1e-12, -np.inf, np.inf]])
    got = getattr(kernels, name)(a.copy())
    want = reference(a)
    # Both sides round a few times: 1e-15 relative is about 5 ulp (and 1e-300 absolute where σ
    # underflows). exp overflowing to inf gives σ = 0, as IEEE arithmetic says.
    assert np.all(np.abs(got - want) <= 1e-15 * np.abs(want) + 1e-300)


@needs_kernels
def test_kernels_keep_nan_a_nan():
    # Compiled with -ffast-math: a clamp through min/max would have turned NaN into a number.
    for name in ("sigmoid", "tanh"):
        assert np.isnan(getattr(kernels, name)(np.array([np.nan, 0.5, np.nan]))[[0, 2]]).all()
        assert np.isnan(getattr(printer, f"_{name}")(np.array([1.0, np.nan]))[1])


@needs_kernels
def test_kernels_on_column_blocks_and_into_another_array():
    rng = np.random.default_rng(0)
    gates = rng.normal(size=(3, 5, 8))
    before, original = gates.copy(), gates.copy()
    kernels.sigmoid(gates[..., 2:5])  # a strided view, in place: the other columns are untouched
    assert np.allclose(gates[..., 2:5], 1 / (1 + np.exp(-before[..., 2:5])), rtol=1e-15)
    assert np.array_equal(gates[..., :2], before[..., :2]) and np.array_equal(gates[..., 5:], before[..., 5:])
    out = np.empty((3, 5, 3))
    assert kernels.tanh(before[..., 5:], out) is out
    assert np.allclose(out, np.tanh(before[..., 5:]), rtol=1e-15)
    assert np.array_equal(before, original)  # the input is only read


@needs_kernels
@pytest.mark.parametrize("bad", [
    lambda: kernels.tanh(np.zeros(4, dtype=np.float32)),
    lambda: kernels.tanh(np.zeros((4, 6))[:, ::2]),  # last axis not contiguous
    lambda: kernels.tanh(np.zeros(4), np.zeros(5)),
])
def test_kernels_refuse_what_they_cannot_take(bad):
    with pytest.raises(TypeError):
        bad()


def _unaligned(n):
    raw = np.zeros(8 * n + 1, dtype=np.uint8)
    a = np.frombuffer(raw.data[1:], dtype=float)
    a[:] = np.linspace(-5, 5, n)
    return a


@pytest.mark.parametrize("a", [
    np.linspace(-5, 5, 12),  # the C kernels, where built
    np.linspace(-5, 5, 12).reshape(3, 4)[:, ::2],  # strided: NumPy computes it
    np.linspace(-5, 5, 12).astype(">f8"),  # big-endian: NumPy
    _unaligned(12),  # unaligned: NumPy
    np.float64(0.3),
], ids=["contiguous", "strided", "big-endian", "unaligned", "scalar"])
def test_activations_give_the_same_values_whichever_path_computes_them(a):
    z = np.asarray(a, dtype=float)
    assert np.allclose(printer._sigmoid(a), 1 / (1 + np.exp(-z)), rtol=1e-15)
    assert np.allclose(printer._tanh(a), np.tanh(z), rtol=1e-15, atol=1e-16)
    if np.ndim(a):
        inplace = z.copy()
        assert np.allclose(printer._sigmoid_(inplace), 1 / (1 + np.exp(-z)), rtol=1e-15)


def test_float32_activations_stay_float32_at_float32_precision():
    a = np.linspace(-5, 5, 12).astype(np.float32)  # NumPy computes them, in float32
    z = a.astype(float)
    for f, reference in ((printer._sigmoid, 1 / (1 + np.exp(-z))), (printer._tanh, np.tanh(z))):
        out = f(a)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-7)


@needs_kernels
def test_importing_the_kernels_leaves_subnormal_numbers_alone():
    # -ffast-math at link time would switch on flush-to-zero for the whole process.
    assert np.array([1e-310]) * 0.5 > 0


@pytest.mark.parametrize("build", [
    lambda: rs.lstm(steps=6, input_size=3, hidden_size=4),
    lambda: rs.elman_rnn(steps=6),
    lambda: rs.gru(steps=6, input_size=2, hidden_size=3),
])
def test_compiled_gradients_are_the_same_with_numpy_activations(build, monkeypatch):
    net = build()
    params, x, y = random_point(net, batch=7, seed=3)
    fast = net.compile().value_and_grad(params, x, y)
    monkeypatch.setattr(printer, "_kernels", None)
    slow = build().compile().value_and_grad(params, x, y)
    assert fast[0] == pytest.approx(slow[0], rel=1e-14)
    for name in net.param_names:
        assert np.allclose(fast[1][name], slow[1][name], rtol=1e-12, atol=1e-16), name


# ---- workspaces ------------------------------------------------------------------------------------------
def test_a_call_does_not_change_what_an_earlier_call_returned():
    net = rs.lstm(steps=5, input_size=2, hidden_size=3)
    f = net.compile()
    params, x, y = random_point(net, batch=6, seed=0)
    _, x2, y2 = random_point(net, batch=6, seed=1)
    out, (loss, grads) = f.forward(params, x), f.value_and_grad(params, x, y)
    kept = out.copy(), {k: v.copy() for k, v in grads.items()}
    f.forward(params, x2), f.value_and_grad(params, x2, y2)
    assert np.array_equal(out, kept[0])
    assert all(np.array_equal(grads[k], kept[1][k]) for k in grads)


def test_tied_parameters_get_gradients_of_their_own():
    net = rs.lstm(steps=3, hidden_size=2)
    params, x, y = random_point(net, batch=4, seed=0)
    _, grads = net.compile().value_and_grad(params, x, y)
    assert np.array_equal(grads["b_ii"], grads["b_hi"])
    grads["b_ii"] *= 0.0  # an optimizer working in place changes one gradient only
    assert np.any(grads["b_hi"] != 0)


def test_batch_sizes_alternate_and_threads_do_not_share_buffers():
    net = rs.lstm(steps=8, input_size=2, hidden_size=4)
    f = net.compile(form="loop")
    reference = net.compile(form="unrolled")
    points = [random_point(net, batch=b, seed=b) for b in (3, 5, 3, 8, 5)]
    expected = [reference.value_and_grad(*p) for p in points]
    failures = []

    def work():
        for _ in range(20):
            for p, (loss, grads) in zip(points, expected):
                got = f.value_and_grad(*p)
                if abs(got[0] - loss) > 1e-12 * abs(loss) or not all(
                        np.allclose(got[1][k], grads[k], rtol=1e-10, atol=1e-15) for k in grads):
                    failures.append(p[1].shape)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_workspaces_keep_the_latest_batch_size_per_thread():
    spaces = Workspaces()
    first = spaces(5)
    first.empty("a", (5, 2))
    assert spaces(5) is first and spaces.nbytes == 80
    spaces(7)
    assert spaces(5) is not first and spaces.nbytes == 0  # a new batch size replaces the old one
    other = []
    thread = threading.Thread(target=lambda: other.append(spaces(5)))
    thread.start()
    thread.join()
    assert other[0] is not spaces(5)
    spaces.clear()
    assert spaces.nbytes == 0


def test_a_workspace_too_large_to_keep_is_freed_after_the_call(monkeypatch):
    net = rs.lstm(steps=6, input_size=2, hidden_size=3)
    f = net.compile()
    params, x, y = random_point(net, batch=50, seed=0)
    f.value_and_grad(params, x, y)
    kept = f.workspaces.nbytes
    assert kept > 6 * 50 * 12 * 8  # at least the gate block
    monkeypatch.setattr(workspace, "MAX_KEPT_BYTES", kept - 1)
    f.loss(params, x, y)
    assert f.workspaces.nbytes == 0


def test_training_leaves_no_workspace_behind():
    from rnnsym.training import train

    net = rs.lstm(steps=4, input_size=2, hidden_size=2, output_activation="identity", loss="mse")
    train(net, "adding", epochs=2, batch_size=8, size=40, seed=0)
    assert net.compile().workspaces.nbytes == 0


def test_long_sequences_reuse_the_input_products_memory_in_the_backward_pass():
    # (A scalar Elman's fused step computes w·x_t itself: it has no input products to reuse.)
    source = rs.elman_rnn(steps=50, input_size=2, hidden_size=3).compile().source
    assert "_D0 = _ws.empty('_P0'" in source


# ---- the fused gate block --------------------------------------------------------------------------------
def _agree(net, seed=0, batch=4):
    """The loop form (fused where it can be) against the unrolled form, value and every gradient."""
    params, x, y = random_point(net, batch=batch, seed=seed)
    la, ga = net.compile(form="loop").value_and_grad(params, x, y)
    lb, gb = net.compile(form="unrolled").value_and_grad(params, x, y)
    assert la == pytest.approx(lb, rel=1e-13)
    assert all(np.allclose(ga[k], gb[k], rtol=1e-11, atol=1e-15) for k in net.param_names)


def test_lstm_gates_are_one_array_and_one_product_per_step():
    source = rs.lstm(steps=4, input_size=3, hidden_size=2).compile().source
    assert "S_n_i1 = S_G[..., 0:2]" in source and "_native.product(S_G, S_XH, _WC.T, stepped='out a')" in source
    assert "_GB = _outer(_DS0[0:4], S_XH[0:4])" in source  # every input, recurrent and bias gradient


def test_a_user_cell_with_the_gate_pattern_and_a_gate_without_bias():
    h, c, x = sp.symbols("h c x")
    A, B, U, V, b = sp.symbols("A B U V b")
    s = rs.functions.sigmoid
    o, g = sp.symbols("o g")
    gates = {o: s(rs.matvec(A, x) + rs.matvec(U, h) + b),
             g: sp.tanh(rs.matvec(B, x) + rs.matvec(V, h))}  # no bias: the block adds zeros there
    cell = rs.Cell(state=(h, c), input=x, params=[A, B, U, V, b], gates=gates, update=(o * sp.tanh(c), c + g),
                   shapes={h: 3, c: 3, x: 2, A: (3, 2), B: (3, 2), U: (3, 3), V: (3, 3), b: 3})
    net = rs.unroll(cell, steps=5)
    assert "_WC = " in net.compile(form="loop").source
    _agree(net, seed=2)
    assert rs.gradcheck(net, seed=2).ok


def test_cells_without_the_pattern_take_the_general_path():
    gru = rs.gru(steps=4, input_size=2, hidden_size=3).compile().source  # r·(W_hn h + b) breaks the pattern
    assert "S_G" not in gru and "_W0 = numpy.concatenate" in gru
    elman = rs.elman_rnn(steps=4, input_size=2, hidden_size=3).compile().source  # one weight: no stack
    assert "S_G" not in elman


@pytest.mark.parametrize("truncate", [1, 3])
def test_truncated_lstm_through_the_gate_block_matches_the_unrolled_form(truncate):
    _agree(rs.lstm(steps=6, input_size=2, hidden_size=3, truncate=truncate), seed=truncate, batch=5)


def test_a_state_of_the_gate_form_is_not_taken_for_a_gate():
    # h' = σ(A·x + U·h + b1) is a state (T + 1 rows of storage), not a gate of the block.
    h, c, x, g = sp.symbols("h c x g")
    A, B, U, V, b1, b2 = sp.symbols("A B U V b1 b2")
    cell = rs.Cell(state=(h, c), input=x, params=[A, B, U, V, b1, b2],
                   gates={g: sp.tanh(rs.matvec(B, x) + rs.matvec(V, h) + b2)},
                   update=(rs.functions.sigmoid(rs.matvec(A, x) + rs.matvec(U, h) + b1), g * c + 1),
                   shapes={h: 2, c: 2, x: 3, A: (2, 3), B: (2, 3), U: (2, 2), V: (2, 2), b1: 2, b2: 2})
    _agree(rs.unroll(cell, steps=4))


def test_weights_that_multiply_a_gate_of_the_same_step_are_not_stacked():
    # Stacking computes its product at the top of the step, before the gate a exists.
    h, x, a = sp.symbols("h x a")
    U, V, W = sp.symbols("U V W")
    cell = rs.Cell(state=h, input=x, params=[U, V, W], gates={a: sp.tanh(rs.matvec(U, h) + x)},
                   update=sp.tanh(rs.matvec(V, a)) + rs.functions.sigmoid(rs.matvec(W, a)),
                   shapes={h: 2, x: 2, a: 2, U: (2, 2), V: (2, 2), W: (2, 2)})
    _agree(rs.unroll(cell, steps=3))
