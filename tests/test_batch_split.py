"""value_and_grad over parts of the batch on the cores at once (rnnsym.numeric.batch_split): the
parts' loss and gradients, weighted by their sizes, are the whole batch's. The oracle is the same
compiled function on the whole batch in one call (itself checked against SymPy and central
differences elsewhere); the split is forced on small batches and many parts here."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnsym as rs
from rnnsym.numeric import batch_split
from rnnsym.numeric.gradcheck import random_point


@given(batch=st.integers(1, 5000), steps=st.integers(1, 500), cores=st.integers(1, 16))
@settings(max_examples=200, deadline=None)
def test_parts_cover_the_batch_once_in_order(batch, steps, cores):
    original = batch_split.cores
    batch_split.cores = lambda: cores
    try:
        spans = batch_split.parts(batch, steps)
    finally:
        batch_split.cores = original
    assert spans[0][0] == 0 and spans[-1][1] == batch
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert len(spans) <= cores
    assert len(spans) == 1 or all(b - a >= batch_split.MIN_ROWS for a, b in spans)
    assert len(spans) == 1 or batch * steps >= batch_split.MIN_STEPS_ROWS


@pytest.fixture
def split_everything(monkeypatch):
    """Every call split, into as many parts as it has rows up to five."""
    monkeypatch.setattr(batch_split, "MIN_ROWS", 1)
    monkeypatch.setattr(batch_split, "MIN_STEPS_ROWS", 1)
    monkeypatch.setattr(batch_split, "cores", lambda: 5)


def _whole(monkeypatch):
    monkeypatch.setattr(batch_split, "cores", lambda: 1)


NETWORKS = {
    "lstm": lambda: rs.lstm(steps=5, input_size=2, hidden_size=3),
    "gru, every step's loss": lambda: rs.gru(steps=4, input_size=2, hidden_size=3, outputs="all", loss="mse"),
    "elman, cross-entropy": lambda: rs.elman_rnn(steps=6, input_size=3, hidden_size=4, output_size=3,
                                                 loss="cross_entropy", output_activation="softmax"),
    "seq2seq, dot attention": lambda: rs.seq2seq("gru", "gru", source_steps=3, target_steps=2, input_size=2,
                                                 hidden_size=3, output_size=3, attention="dot"),
}


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("form", ["loop", "unrolled"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_split_gradients_are_the_whole_batchs(name, form, dtype, tol, split_everything, monkeypatch):
    net = NETWORKS[name]()
    if form == "loop" and name.startswith("seq2seq"):
        pytest.skip("seq2seq has the unrolled form only")
    f = net.compile(form=form)
    params, x, y = random_point(net, batch=13, seed=4)  # 13 rows over 5 parts: sizes 2 and 3
    params = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
    x = np.asarray(x, dtype=dtype)
    assert len(batch_split.parts(13, net.steps)) == 5
    value, grads = f.value_and_grad(params, x, y)
    _whole(monkeypatch)
    ref_value, ref_grads = f.value_and_grad(params, x, y)
    assert abs(value - ref_value) <= tol * max(1.0, abs(ref_value))
    assert abs(value - f.loss(params, x, y)) <= tol * max(1.0, abs(ref_value))
    for k, g in ref_grads.items():
        assert grads[k].dtype == dtype and grads[k].shape == g.shape
        np.testing.assert_allclose(grads[k], g, rtol=tol, atol=tol, err_msg=k)


def test_a_swept_loop_is_not_split(split_everything):
    net = rs.elman_rnn(steps=5, input_size=1, hidden_size=1)
    f = net.compile(form="loop")
    if ".sweep(" not in f.source:
        pytest.skip("no C compiler: the loop is NumPy")
    calls = []
    original = batch_split.value_and_grad
    batch_split.value_and_grad = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        params, x, y = random_point(net, batch=40, seed=0)
        f.value_and_grad(params, x, y)
    finally:
        batch_split.value_and_grad = original
    assert calls == []  # its sweeps use the cores already


def test_a_split_call_gives_the_same_numbers_every_time(split_everything):
    net = NETWORKS["lstm"]()
    f = net.compile(form="loop")
    params, x, y = random_point(net, batch=29, seed=2)
    first = f.value_and_grad(params, x, y)
    for _ in range(3):
        value, grads = f.value_and_grad(params, x, y)
        assert value == first[0] and all(np.array_equal(grads[k], first[1][k]) for k in grads)
