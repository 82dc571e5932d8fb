"""Shapes in the compiled forms: scalars and vectors mixed in one cell or readout, and values that do
not depend on the example. Every case is checked against a NumPy forward pass written here (not
rnnsym's compiled forward or trace) and central differences of its loss, in both compiled forms, with
batch sizes equal to and different from the vector sizes (equal sizes is where a wrong broadcast
gives wrong numbers instead of an error)."""
import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.functions import sigmoid

FORMS = ("loop", "unrolled")
h, c, x, g, a, u, d, W = sp.symbols("h c x g a u d W")


def _sigma(z):
    return 1 / (1 + np.exp(-z))


def _mse(y, Y):
    """rnnsym's loss="mse": the mean over output components, then over steps, then over the batch,
    all of one size each: the mean of every squared difference."""
    return float(np.mean((y - Y) ** 2))


def _central_differences(loss, params: dict) -> dict:
    grads = {}
    for name, value in params.items():
        value = np.asarray(value, dtype=float)
        grad = np.zeros(value.shape)
        for i in np.ndindex(value.shape):
            step = 1e-6
            moved = []
            for k in (1, -1):
                p = dict(params)
                p[name] = value.copy()
                p[name][i] += k * step
                moved.append(loss(p))
            grad[i] = (moved[0] - moved[1]) / (2 * step)
        grads[name] = grad
    return grads


def _check(net, forward, params, X, Y):
    """Every compiled form's outputs, loss and gradient against ``forward`` (NumPy) and central
    differences of its loss."""
    expected_y = forward(params, X)
    expected_loss = _mse(expected_y, Y)
    expected_grads = _central_differences(lambda p: _mse(forward(p, X), Y), params)
    for form in FORMS:
        compiled = net.compile(form=form)
        got_y = compiled.forward(params, X)
        assert got_y.shape == expected_y.shape, form
        np.testing.assert_allclose(got_y, expected_y, rtol=1e-12, atol=1e-12, err_msg=form)
        loss, grads = compiled.value_and_grad(params, X, Y)
        assert loss == pytest.approx(expected_loss, rel=1e-12), form
        assert compiled.loss(params, X, Y) == pytest.approx(expected_loss, rel=1e-12), form
        for name, expected in expected_grads.items():
            np.testing.assert_allclose(grads[name], expected, rtol=1e-6, atol=1e-8, err_msg=f"{form}: dL/d{name}")


# ---- F1: a scalar state read out into several outputs ---------------------------------------------
@pytest.mark.parametrize("outputs", ["last", "all"])
@pytest.mark.parametrize("batch", [3, 2, 1])
def test_a_scalar_state_read_out_into_three_outputs_gives_each_example_its_own_row(batch, outputs):
    # y = W_hy·h + b_y with h one number per example and W_hy of shape (3,): y is (batch, 3).
    T, O = 3, 3
    net = rs.unroll(rs.Cell(state=h, input=x, params=[a, u], update=sp.tanh(a * x + u * h)), steps=T,
                    output_size=O, outputs=outputs, output_activation="identity", loss="mse")

    def forward(p, X):
        state, ys = np.zeros(X.shape[0]), []
        for t in range(T):
            state = np.tanh(p["a"] * X[:, t] + p["u"] * state)
            ys.append(state[:, None] * p["W_hy"] + p["b_y"])
        return np.stack(ys, axis=1) if outputs == "all" else ys[-1]

    rng = np.random.default_rng(batch)
    params = {"a": 0.7, "u": -0.4, "W_hy": rng.normal(size=O), "b_y": rng.normal(size=O)}
    X = rng.normal(size=(batch, T))
    Y = rng.normal(size=(batch, T, O) if outputs == "all" else (batch, O))
    _check(net, forward, params, X, Y)


# ---- F2: a step whose value is the same for every example ----------------------------------------
@pytest.mark.parametrize("batch", [2, 3, 1])
def test_a_delay_line_outputs_the_initial_zero_for_every_example_at_step_one(batch):
    # h' = c, c' = x: h1 = c0 = 0 for every example, then h_t = x_(t-1).
    T = 3
    net = rs.unroll(rs.Cell(state=(h, c), input=x, params=[], update=(c, x)), steps=T, outputs="all",
                    output_activation="identity", loss="mse")

    def forward(p, X):
        hs, cs, ys = np.zeros(X.shape[0]), np.zeros(X.shape[0]), []
        for t in range(T):
            hs, cs = cs, X[:, t]
            ys.append(p["W_hy"] * hs + p["b_y"])
        return np.stack(ys, axis=1)

    rng = np.random.default_rng(batch)
    params = {"W_hy": 1.5, "b_y": 0.1}
    X, Y = rng.normal(size=(batch, T)), rng.normal(size=(batch, T))
    _check(net, forward, params, X, Y)


@pytest.mark.parametrize("outputs", ["last", "all"])
@pytest.mark.parametrize("batch", [2, 3])
def test_a_parameter_only_vector_state_is_the_same_row_for_every_example(batch, outputs):
    # h' = d ⊙ sigmoid(u) + 1 (no input, no previous state), read out into two outputs, and a second
    # state c' = tanh(W·h) that only parameters reach either.
    T, n = 2, 2
    cell = rs.Cell(state=(h, c), input=x, params=[d, u, W], update=(d * sigmoid(u) + 1, sp.tanh(rs.matvec(W, h))),
                   shapes={h: n, c: n, d: n, W: (n, n)})
    net = rs.unroll(cell, steps=T, outputs=outputs, output_size=2, output_activation="identity", loss="mse")

    def forward(p, X):
        ys = []
        for t in range(T):
            hs = np.broadcast_to(p["d"] * _sigma(p["u"]) + 1, (X.shape[0], n))
            ys.append(hs @ p["W_hy"].T + p["b_y"])
        return np.stack(ys, axis=1) if outputs == "all" else ys[-1]

    rng = np.random.default_rng(batch)
    params = {"d": rng.normal(size=n), "u": 0.3, "W": rng.normal(size=(n, n)),
              "W_hy": rng.normal(size=(2, n)), "b_y": rng.normal(size=2)}
    X = rng.normal(size=(batch, T))
    Y = rng.normal(size=(batch, T, 2) if outputs == "all" else (batch, 2))
    _check(net, forward, params, X, Y)


# ---- F3: a per-example scalar combined with a vector state ---------------------------------------
@pytest.mark.parametrize("batch", [3, 2, 1])
def test_a_scalar_input_gate_and_state_scale_every_component_of_a_vector_state(batch):
    # n = 3: a scalar input x, a scalar gate g = σ(a·x) and a scalar state c, each combined
    # elementwise with the vector state h (and h's update is a scalar for every component at step 1).
    T, n = 3, 3
    cell = rs.Cell(state=(h, c), input=x, params=[a, u, d, W], gates={g: sigmoid(a * x + u * c)},
                   update=(g * sp.tanh(rs.matvec(W, h) + x * d) + (1 - g) * h + x / 2 + c * d,
                           sp.tanh(u * c + x)),
                   shapes={h: n, d: n, W: (n, n)})
    net = rs.unroll(cell, steps=T, outputs="last", output_size=1, output_activation="identity", loss="mse")

    def forward(p, X):
        B = X.shape[0]
        hs, cs = np.zeros((B, n)), np.zeros(B)
        for t in range(T):
            xt = X[:, t]
            gate = _sigma(p["a"] * xt + p["u"] * cs)
            hs, cs = (gate[:, None] * np.tanh(hs @ p["W"].T + xt[:, None] * p["d"]) + (1 - gate[:, None]) * hs
                      + xt[:, None] / 2 + cs[:, None] * p["d"]), np.tanh(p["u"] * cs + xt)
        return hs @ p["W_hy"].T + p["b_y"]

    rng = np.random.default_rng(batch)
    params = {"a": 0.8, "u": -0.6, "d": rng.normal(size=n), "W": rng.normal(size=(n, n)) / 2,
              "W_hy": rng.normal(size=(1, n)), "b_y": rng.normal(size=1)}
    X, Y = rng.normal(size=(batch, T)), rng.normal(size=(batch, 1))
    _check(net, forward, params, X, Y)


@pytest.mark.parametrize("batch", [2, 3])
def test_a_vector_state_set_to_half_a_scalar_input_holds_it_in_every_component(batch):
    # The fuzzer's reproducer: h' = x/2 with h of size 2, a scalar x.
    net = rs.unroll(rs.Cell(state=h, input=x, params=[], update=x / 2, shapes={h: 2}), steps=1,
                    output_activation="identity", loss="mse")

    def forward(p, X):
        return np.repeat(X[:, :1] / 2, 2, axis=1) @ p["W_hy"].T + p["b_y"]

    params = {"W_hy": np.array([[1.0, 2.0]]), "b_y": np.array([0.25])}
    X = np.arange(1.0, batch + 1)[:, None]
    Y = np.zeros((batch, 1))
    _check(net, forward, params, X, Y)
