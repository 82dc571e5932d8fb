"""A loop whose step is one fused kernel runs as sweeps: row blocks, each through every step, on
the cores at once (rnnsym.numeric.native, FusedKernel.bind(...).sweep). The blocks here are forced
small and many, so the threaded path runs whatever the machine, and its gradients are checked
against the unrolled form's (another program, no kernels) and against one block."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnsym as rs
from rnnsym.functions import sigmoid
from rnnsym.numeric import native, threads
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric.loop import _time_major

@given(B=st.integers(1, 5000), n=st.integers(1, 3000))
@settings(max_examples=200, deadline=None)
def test_row_blocks_cover_every_row_once_in_order(B, n):
    blocks = native.row_blocks(B, n)
    assert blocks[0][0] == 0 and blocks[-1][1] == B
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))  # contiguous, no gap, no overlap
    assert all(b0 < b1 for b0, b1 in blocks)
    assert all((b1 - b0) % 16 == 0 for b0, b1 in blocks[:-1])  # whole vectors but the last
    assert len(blocks) <= native.MAX_BLOCKS
    assert len(blocks) == 1 or all((b1 - b0) * n >= native.MIN_BLOCK_WORK for b0, b1 in blocks[:-1])


@pytest.fixture
def many_blocks(monkeypatch):
    """Every sweep and copy split into blocks of a few rows, on four threads."""
    monkeypatch.setattr(native, "MIN_BLOCK_WORK", 1)
    monkeypatch.setattr(threads, "cores", lambda: 4)


def _two_state_cell():
    h, c, x, a, b, u = sp.symbols("h c x a b u")
    return rs.Cell(state=(h, c), input=x, update=(sp.tanh(a * x + b * h + c), sigmoid(u * c + x) * c), params=[a, b, u])


def _diagonal_cell():
    """A vector cell with no matrix product: elementwise weights, and a scalar one times a vector."""
    h, x, w, v, b, a = sp.symbols("h x w v b a")
    return rs.Cell(state=h, input=x, update=sp.tanh(w * h + v * x + b) + a * h, params=[w, v, b, a],
                   shapes={h: 3, x: 3, w: 3, v: 3, b: 3})


NETWORKS = {
    "scalar elman": lambda: rs.elman_rnn(steps=37, input_size=1, hidden_size=1),
    "two-state cell, every step's loss": lambda: rs.unroll(_two_state_cell(), steps=23, outputs="all", loss="mse"),
    "diagonal vector cell": lambda: rs.unroll(_diagonal_cell(), steps=19, loss="mse"),
}


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 2e-4)])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_swept_gradients_are_the_unrolled_forms(name, dtype, tol, many_blocks):
    net = NETWORKS[name]()
    swept, unrolled = net.compile(form="loop"), net.compile(form="unrolled")
    if "_native.kernels" not in swept.source:
        pytest.skip("no C compiler: the loop is NumPy")
    assert "_kfwd.sweep(" in swept.source
    # A loss at every step adds its seeds in NumPy each step: that backward stays a loop.
    assert ("_SUMS = _kbwd.sweep(" in swept.source) == ("every step" not in name)  # shares summed in the kernel
    params, x, y = random_point(net, batch=101, seed=3)  # 101 rows: blocks of 16 and a short last one
    params32 = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
    value, grads = swept.value_and_grad(params32, np.asarray(x, dtype=dtype), y)
    ref_value, ref_grads = unrolled.value_and_grad(params, x, y)
    assert abs(value - ref_value) <= tol * max(1.0, abs(ref_value))
    for k in ref_grads:
        assert grads[k].dtype == dtype
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=tol, atol=tol, err_msg=k)


def test_many_blocks_give_one_blocks_numbers(many_blocks, monkeypatch):
    net = NETWORKS["scalar elman"]()
    f = net.compile(form="loop")
    params, x, y = random_point(net, batch=333, seed=5)
    value, grads = f.value_and_grad(params, x, y)
    monkeypatch.setattr(threads, "cores", lambda: 1)
    value1, grads1 = f.value_and_grad(params, x, y)
    assert value == value1 and all(np.array_equal(grads[k], grads1[k]) for k in grads)  # rows are independent


@pytest.mark.parametrize("shape", [(1, 5), (300, 7), (517, 3, 4)])
def test_time_major_copy_is_moveaxis(shape, many_blocks):
    x = np.random.default_rng(0).normal(size=shape)
    out = np.empty((shape[1], shape[0], *shape[2:]))
    _time_major(out, x)
    assert np.array_equal(out, np.moveaxis(x, 1, 0))
