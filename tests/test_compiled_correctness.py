"""Compiled gradients of user cells against an oracle that shares nothing with the compiler: SymPy's
own ``diff`` of the fully nested loss, built here from the cell's expressions step by step.

Each case here once gave a wrong number without any error (issue: correctness and reliability)."""
import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.functions import sigmoid

h, c, x, g, a, u, v = sp.symbols("h c x g a u v")
W, b = sp.symbols("W_hy b_y")


def nested_loss_gradients(cell, params, X, Y):
    """The batch-mean BCE loss of a scalar cell with the readout σ(W_hy·h_T + b_y), nested into one
    SymPy expression per example and differentiated by SymPy: the gradient of every parameter."""
    symbols = {p.name: p for p in (*cell.params, W, b)}
    plain = lambda e: e.replace(sigmoid, lambda z: 1 / (1 + sp.exp(-z)))  # SymPy's own functions only
    gates = {gate: plain(e) for gate, e in cell.gates.items()}
    updates = [plain(e) for e in cell.update]
    total = 0
    for xs, y in zip(X, Y):
        state = {s: sp.S.Zero for s in cell.state}
        for xt in xs:
            values = {**state, cell.input: sp.Float(xt)}
            for gate, expr in gates.items():
                values[gate] = expr.xreplace(values)
            state = {s: e.xreplace(values) for s, e in zip(cell.state, updates)}
        z = W * state[cell.state[0]] + b
        total += -(y * sp.log(1 / (1 + sp.exp(-z))) + (1 - y) * sp.log(1 - 1 / (1 + sp.exp(-z))))
    total = total / len(Y)
    names = list(symbols)
    gradient = sp.lambdify([symbols[n] for n in names], [sp.diff(total, symbols[n]) for n in names], "math")
    return dict(zip(names, gradient(*(params[n] for n in names))))


# Nodes that look constant at step 1 (their only recurrent input is the zero initial state) and carry
# the gradient from step 2 on: a parameter-free gate, a delay line, a square of a delayed state.
PARAMETER_FREE_PIECES = {
    "parameter-free gate": rs.Cell(state=h, input=x, params=[a, u], gates={g: sp.tanh(h)},
                                   update=sp.tanh(a * x + u * g)),
    "delay line": rs.Cell(state=(h, c), input=x, params=[a, u], update=(sp.tanh(a * x + u * c**2), h)),
    "gate of a delayed state": rs.Cell(state=(h, c), input=x, params=[a, u, v], gates={g: c * h},
                                       update=(sp.tanh(a * x + u * g + v), sigmoid(h))),
}


@pytest.mark.parametrize("form", ["loop", "unrolled"])
@pytest.mark.parametrize("case", list(PARAMETER_FREE_PIECES))
def test_nodes_that_look_constant_at_step_one_still_carry_the_gradient(case, form):
    cell = PARAMETER_FREE_PIECES[case]
    rng = np.random.default_rng(1)
    params = {p.name: float(rng.uniform(-1.5, 1.5)) for p in (*cell.params, W, b)}
    X, Y = rng.normal(size=(2, 4)), np.array([1.0, 0.0])
    net = rs.unroll(cell, steps=4)
    _, grads = net.compile(form=form).value_and_grad(params, X, Y)
    want = nested_loss_gradients(cell, params, X, Y)
    for name, value in want.items():
        assert grads[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_the_issue_example_of_a_parameter_free_gate():
    cell = PARAMETER_FREE_PIECES["parameter-free gate"]
    p = {"a": 0.8, "u": -1.1, "W_hy": 1.3, "b_y": 0.2}
    X, Y = np.array([[0.5, -1.0, 2.0]]), np.array([1.0])
    _, grads = rs.unroll(cell, steps=3).compile(form="loop").value_and_grad(p, X, Y)
    assert grads["a"] == pytest.approx(-0.01944023671629532, rel=1e-12)
