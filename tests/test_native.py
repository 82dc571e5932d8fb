"""Fused step kernels (rnnsym.numeric.kernel_c, loop_fusion, native): the same numbers as NumPy.

The loop form's gradients are checked against independent oracles elsewhere (SymPy's diff, central
differences, PyTorch), with the kernels in use wherever a C compiler is present. Here: the C printer
against rnnsym's NumPy printer element by element, NaN and infinity included; the fused loop
against the NumPy-only loop on random cells; which steps are fused; and the fallbacks (no
compiler, RNNSYM_NATIVE=0, a cached build).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import cellgen
import rnnsym as rs
from rnnsym.functions import relu, sigmoid
from rnnsym.numeric import native
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric.kernel_c import Kernel, Operand, fusable
from rnnsym.numeric.printer import RUNTIME, CodePrinter

needs_compiler = pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine")


def numpy_only(make):
    """``make()`` compiled without the kernels (a fresh network: a network caches its compiled form)."""
    with mock.patch.dict(os.environ, {"RNNSYM_NATIVE": "0"}):
        return make().compile(form="loop")


def _max_relative_error(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) / max(float(np.max(np.abs(b[k]))), 1e-300) for k in b)


# ---- one element: the C printer against the NumPy printer --------------------------------------------
x_, y_ = sp.symbols("x y")
UNARY = [sp.tanh, sigmoid, relu, sp.exp, sp.sin, sp.cos, sp.atan, sp.Abs, sp.sign, sp.erf,
         lambda a: sp.Heaviside(a, 0), lambda a: sp.log(1 + a**2), lambda a: a**2, lambda a: a**3, lambda a: 1 / (1 + a**2)]
BINARY = [sp.Add, sp.Mul, lambda a, b: sp.Max(a, b), lambda a, b: sp.Min(a, b), lambda a, b: a - 2 * b]


@st.composite
def expressions(draw, depth=3):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([x_, y_, x_, y_, sp.Rational(1, 3), sp.Float(2.5)]))
    if draw(st.booleans()):
        return draw(st.sampled_from(UNARY))(draw(expressions(depth - 1)))
    return draw(st.sampled_from(BINARY))(draw(expressions(depth - 1)), draw(expressions(depth - 1)))


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.25, 30.0, -30.0, 800.0, -800.0, np.inf, -np.inf, np.nan, 1e-300])


@needs_compiler
@settings(max_examples=40, deadline=None, derandomize=True, database=None, phases=(Phase.generate,),
          suppress_health_check=[HealthCheck.too_slow])
@given(expressions())
def test_a_kernel_computes_each_element_as_the_numpy_code_does(expr):
    if not expr.free_symbols or not fusable(expr):
        return
    out = sp.Dummy("out")
    kernel = Kernel("elementwise", 7, (Operand("x", False, True, True), Operand("y", False, True, True),
                                      Operand("out", False, True, True)),
                    ((x_, 0), (y_, 1)), ((out, expr),), ((2, out),))
    library = native.load([kernel])
    a, b = np.meshgrid(SPECIAL, SPECIAL)
    a, b = a.reshape(-1, 7), b.reshape(-1, 7)
    got = np.empty_like(a)
    library.kernels["elementwise"].bind(a.shape[0], np.float64, a, b, got)(0)
    printer = CodePrinter({x_: "a", y_: "b"}, {}, batched={x_, y_})
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(eval(printer.doprint(expr), {**RUNTIME, "numpy": np, "a": a, "b": b}), a.shape)
    close = np.isclose(got, expected, rtol=1e-12, atol=1e-300, equal_nan=True)
    assert close.all(), f"{expr}: at x={a[~close][:3]}, y={b[~close][:3]}: {got[~close][:3]} != {expected[~close][:3]}"


@needs_compiler
def test_an_output_in_the_wrong_layout_is_refused_and_an_input_is_copied():
    out = sp.Dummy("out")
    kernel = Kernel("twice", 4, (Operand("x", True, True, True), Operand("out", True, True, True)),
                    ((x_, 0),), ((out, 2 * x_),), ((1, out),))
    fused = native.load([kernel]).kernels["twice"]
    x = np.arange(2 * 3 * 8, dtype=float).reshape(2, 3, 8)[..., ::2]  # a strided input: copied
    out = np.zeros((2, 3, 4))
    fused.bind(3, np.float64, x, out)(1)
    np.testing.assert_array_equal(out[1], 2 * x[1])
    assert not out[0].any()
    with pytest.raises(AssertionError, match="output"):
        fused.bind(3, np.float64, x, np.zeros((2, 3, 8))[..., ::2])


# ---- whole networks: fused against NumPy ---------------------------------------------------------------
BUILT_IN = {
    "lstm": lambda: rs.lstm(steps=5, input_size=3, hidden_size=4, output_size=2),
    "gru": lambda: rs.gru(steps=5, input_size=3, hidden_size=4, output_size=2),
    "elman": lambda: rs.elman_rnn(steps=5, input_size=3, hidden_size=4, output_size=2),
    "elman, a loss at every step": lambda: rs.elman_rnn(steps=5, input_size=3, hidden_size=4, output_size=2, outputs="all"),
    "scalar": lambda: rs.elman_rnn(steps=6, input_size=1, hidden_size=1, output_size=1),
}


@needs_compiler
@pytest.mark.parametrize("name", list(BUILT_IN))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_built_in_cells_run_both_passes_in_kernels_with_numpys_numbers(name, dtype):
    net = BUILT_IN[name]()
    fused = net.compile(form="loop")
    assert "_native.kernels['fwd']" in fused.source and "_native.kernels['bwd']" in fused.source
    plain = numpy_only(BUILT_IN[name])
    assert "_native" not in plain.source
    params, x, y = random_point(net, batch=9, seed=3)
    params = {k: v.astype(dtype) for k, v in params.items()}
    value, grads = fused.value_and_grad(params, x.astype(dtype), y)
    value0, grads0 = plain.value_and_grad(params, x.astype(dtype), y)
    assert all(g.dtype == dtype for g in grads.values())
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    assert math.isclose(value, value0, rel_tol=tolerance)
    assert _max_relative_error(grads, grads0) < tolerance
    np.testing.assert_allclose(fused.forward(params, x.astype(dtype)), plain.forward(params, x.astype(dtype)), rtol=tolerance)


@needs_compiler
@settings(max_examples=25, derandomize=True, deadline=None, database=None, phases=(Phase.generate,),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_random_cell_gets_numpys_gradients_from_its_kernels(data):
    case = cellgen.draw_case(cellgen.HypothesisChooser(data), extended=True)
    try:
        net = rs.unroll(case.cell(), **case.unroll_options())
    except rs.RnnsymError:
        return  # refused when built: tests/test_random_cells.py checks the refusal
    if net.recurrence is None or net.recurrence.bidirectional:
        return
    params, x, y = case.point()
    fused = net.compile(form="loop")
    plain = numpy_only(lambda: rs.unroll(case.cell(), **case.unroll_options()))
    with np.errstate(all="ignore"):
        value, grads = fused.value_and_grad(params, x, y)
        value0, grads0 = plain.value_and_grad(params, x, y)
    if not np.isfinite(value0):
        return
    assert math.isclose(value, value0, rel_tol=1e-11)
    for k in grads0:
        np.testing.assert_allclose(grads[k], grads0[k], rtol=1e-9, atol=1e-12 * max(1.0, float(np.max(np.abs(grads0[k])))),
                                   err_msg=f"{k} of {case}")


# ---- fallbacks -----------------------------------------------------------------------------------------
def test_without_a_compiler_the_loop_is_numpy_with_the_same_numbers(monkeypatch):
    monkeypatch.setattr(native, "_compiler", lambda: None)
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv("RNNSYM_CACHE", "/nonexistent-rnnsym-cache")
    monkeypatch.setattr(native, "_cache_dirs", lambda: [])
    net = BUILT_IN["lstm"]()
    compiled = net.compile(form="loop")
    assert "_native" not in compiled.source
    assert native.last_failure is not None
    params, x, y = random_point(net, batch=4, seed=0)
    value, _ = compiled.value_and_grad(params, x, y)
    assert math.isclose(value, numpy_only(BUILT_IN["lstm"]).value_and_grad(params, x, y)[0], rel_tol=1e-15)


@needs_compiler
def test_a_build_is_cached_and_loaded_again_without_the_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNSYM_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    BUILT_IN["gru"]().compile(form="loop")
    built = sorted(p.name.split("-")[0] for p in tmp_path.glob("rnnsym/kernels/*"))
    assert len(built) == 2 and built[1] == "runtime"  # the network's kernels, and the C every network shares
    BUILT_IN["lstm"]().compile(form="loop")  # another network: its kernels alone are built
    assert len(list(tmp_path.glob("rnnsym/kernels/*"))) == 3
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(native, "_compiler", lambda: None)  # a second process: the cached build is enough
    assert "_native" in BUILT_IN["gru"]().compile(form="loop").source


def test_a_compiler_that_fails_is_reported_and_not_fatal(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNSYM_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(native, "_compiler", lambda: ["false"])
    assert "_native" not in BUILT_IN["elman"]().compile(form="loop").source
    assert "the C compiler failed" in native.last_failure


def test_the_same_network_gives_the_same_c_in_every_process():
    # Cached builds are found by the source's hash: a source that followed set order (hash
    # randomisation) would be rebuilt in every process.
    script = ("import hashlib, rnnsym as rs\nfrom rnnsym.numeric import loop\n"
              "w = loop._LoopWriter(rs.gru(steps=4, input_size=3, hidden_size=5), None, native=True)\nw.source()\n"
              "from rnnsym.numeric.kernel_c import c_source\n"
              "print(hashlib.sha256(c_source(w.kernels).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(digests) == 1


@needs_compiler
def test_what_runs_the_step_is_named(monkeypatch):
    assert native.in_use(BUILT_IN["elman"]().compile(form="loop")) == "fused C kernels"
    monkeypatch.setenv("RNNSYM_NATIVE", "0")
    assert native.in_use(BUILT_IN["elman"]().compile(form="loop")) == "NumPy (RNNSYM_NATIVE=0)"


@needs_compiler
def test_a_cache_folder_others_can_write_is_not_used(monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # as a folder someone else made in /tmp would be
    monkeypatch.setattr(native, "_cache_dirs", lambda: [shared])
    monkeypatch.setattr(native, "_loaded", {})
    assert "_native" not in BUILT_IN["elman"]().compile(form="loop").source
    assert "private" in native.last_failure and not list(shared.iterdir())


@needs_compiler
@pytest.mark.parametrize("make", [lambda: rs.lstm(steps=5, input_size=3, hidden_size=4, num_layers=2),
                                  lambda: rs.gru(steps=5, input_size=3, hidden_size=4, num_layers=3),
                                  lambda: rs.elman_rnn(steps=5, input_size=3, hidden_size=4, num_layers=2)])
def test_a_stacked_step_is_a_chain_of_kernels_and_the_products_between_them(make):
    # Layer l's input products read layer l - 1's new state: a kernel, those products, the next kernel.
    net = make()
    fused = net.compile(form="loop")
    assert "_native.kernels['fwd1']" in fused.source
    params, x, y = random_point(net, batch=6, seed=5)
    value, grads = fused.value_and_grad(params, x, y)
    value0, grads0 = numpy_only(make).value_and_grad(params, x, y)
    assert math.isclose(value, value0, rel_tol=1e-12) and _max_relative_error(grads, grads0) < 1e-12


class _FakeClock:
    """perf_counter and process_time under the test's control (threads.time)."""

    def __init__(self):
        self.wall, self.own = 0.0, 0.0

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.own


@pytest.mark.parametrize("others, busy", [(0.0, False), (0.2, False), (0.9, True), (1.0, True)])
def test_other_processes_cpu_use_decides_one_blas_thread_per_call(monkeypatch, others, busy):
    from rnnsym.numeric import threads

    clock, machine = _FakeClock(), [100.0]
    monkeypatch.setattr(threads, "time", clock)
    monkeypatch.setattr(threads, "_machine_busy_seconds", lambda: machine[0])
    load = threads._OtherLoad()
    assert load() is False  # the first look only marks
    # one second: this process used 1.5 CPU seconds, others `others` cores on average
    clock.wall, clock.own = 1.0, 1.5
    machine[0] += 1.5 + others
    assert load() is busy
    clock.wall += threads.WINDOW / 2
    machine[0] += 10.0  # within the window: the last judgement stands
    assert load() is busy


def test_a_call_on_a_busy_machine_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    from rnnsym.numeric import threads

    libs = threads._blas()
    if not libs or max(lib.num_threads for lib in libs) < 2:
        pytest.skip("BLAS runs on one thread here")
    before = [lib.num_threads for lib in libs]
    monkeypatch.setattr(threads, "other_load", lambda: True)
    with threads.call_threads():
        assert all(lib.num_threads == 1 for lib in libs)
    assert [lib.num_threads for lib in libs] == before
    with pytest.raises(ZeroDivisionError), threads.call_threads():
        1 / 0
    assert [lib.num_threads for lib in libs] == before  # restored after an error too
    monkeypatch.setattr(threads, "other_load", lambda: False)
    with threads.call_threads():
        assert [lib.num_threads for lib in libs] == before


def test_a_backward_step_the_kernel_gives_up_on_keeps_its_numpy_loads():
    # Fuzzer case 93014: the backward fusion gave up (a carried adjoint read after the kernel) after
    # it had rewritten what the NumPy body reads, and the body lost its load of c1 (a shape error).
    h, c, x, a, b = sp.symbols("h c x a b")
    make = lambda: rs.unroll(rs.Cell(state=(h, c), input=x, params=[a, b], update=(sp.Max(a, -c + x), relu(b))),  # noqa: E731
                             steps=2, outputs="all", loss="mse", output_activation="identity", step_reduction="sum")
    net = make()
    params, x0, y0 = random_point(net, batch=3, seed=1)
    value, grads = net.compile(form="loop").value_and_grad(params, x0, y0)
    value0, grads0 = numpy_only(make).value_and_grad(params, x0, y0)
    unrolled = make().compile(form="unrolled").value_and_grad(params, x0, y0)
    assert math.isclose(value, value0, rel_tol=1e-13) and _max_relative_error(grads, unrolled[1]) < 1e-12
