"""Gradient flow: per-step sizes against finite differences, the symbolic product against a numeric
Jacobian product, the singular-value condition, the picture and the LSTM/Elman comparison."""
import subprocess
import sys

import numpy as np
import pytest

import rnnsym as rs
from rnnsym.flow import compare_lstm_elman, condition_statement, flow_sweep, plot_flow, scaled_params
from rnnsym.graph import Graph
from rnnsym.network import Network
from rnnsym.numeric.emit import expression_function
from rnnsym.numeric.gradcheck import random_point


def rebuilt(network, change):
    """A copy of the network's graph where ``change(name, expr, add)`` may rewrite a node's
    expression and add new parameters first (an independent way to probe one step)."""
    graph = Graph()
    for node in network.graph.nodes.values():
        expr = node.expr
        if expr is not None:
            expr = change(node.name, expr, lambda name, shape: graph.add(name, "param", shape=shape))
        graph.add(node.name, node.kind, expr, value=node.value, step=node.step, role=node.role,
                  shape=node.shape, reduce=node.reduce)
    return Network(graph, name=network.name + "-probed", steps=network.steps, options=network.options,
                   title=network.title)


# Central differences of a float64 loss are good to about 1e-10 absolute (rounding / h): the
# comparisons below allow abs=1e-9 besides rel=1e-6.
def numeric_gradient(f, params, name, x, y, h=1e-6):
    base = np.array(params[name], dtype=float)
    out = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        values = []
        for sign in (1, -1):
            moved = base.copy()
            moved[index] += sign * h
            values.append(f.loss({**params, name: moved}, x, y))
        out[index] = (values[0] - values[1]) / (2 * h)
    return out


@pytest.mark.parametrize("make,weight", [(lambda: rs.seed_rnn(steps=5), "w"),
                                         (lambda: rs.elman_rnn(steps=5, input_size=2, hidden_size=2), "W_hh")])
def test_per_step_terms_match_finite_differences_on_an_untied_copy(make, weight):
    net = make()
    params, x, y = random_point(net, batch=3, seed=2)
    flow = rs.gradient_flow(net, params, x, y)
    steps = [n for n in flow.states]
    for t, state in enumerate(steps, start=1):
        # The weight as used by step t only: a separate copy, moved by finite differences.
        def untie(name, expr, add, state=state):
            if name == state:
                copy = add(f"{weight}_copy", net.graph[weight].shape)
                return expr.xreplace({net.graph[weight].symbol: copy})
            return expr
        probed = rebuilt(net, untie)
        f = probed.compile(form="unrolled")
        numeric = numeric_gradient(f, {**params, f"{weight}_copy": params[weight]}, f"{weight}_copy", x, y)
        assert np.linalg.norm(numeric) == pytest.approx(flow.term_norms[weight][t - 1], rel=1e-6, abs=1e-9), t


@pytest.mark.parametrize("make", [lambda: rs.seed_rnn(steps=5), lambda: rs.lstm(steps=4, hidden_size=2)])
def test_per_step_gradient_sizes_match_finite_differences(make):
    net = make()
    params, x, y = random_point(net, batch=1, seed=5)  # one example: the batch-mean loss is its loss
    flow = rs.gradient_flow(net, params, x, y)
    for t, state in enumerate(flow.states, start=1):
        # A zero offset added to step t's state: its gradient is ∂L/∂h_t.
        def probe(name, expr, add, state=state):
            return expr + add("probe", net.graph[state].shape) if name == state else expr
        f = rebuilt(net, probe).compile(form="unrolled")
        zero = np.zeros(net.graph[state].shape) if net.graph[state].shape else 0.0
        numeric = numeric_gradient(f, {**params, "probe": zero}, "probe", x, y)
        assert np.linalg.norm(numeric) == pytest.approx(flow.grad_norms[t - 1], rel=1e-6, abs=1e-9), t


def test_symbolic_product_evaluated_equals_the_numeric_jacobian_product():
    net = rs.elman_rnn(steps=5, input_size=2, hidden_size=3)
    params, x, y = random_point(net, batch=1, seed=8)
    assert rs.gradient_flow(net, params, x, y).product == "∏_k diag(1 − hₖ²)·W_hh"
    unrolled = net.compile(form="unrolled")
    values = unrolled.trace(params, x, y)
    values.update({k: np.asarray(v) for k, v in params.items()})
    # The engine's own local Jacobian ∂h_k/∂h_(k−1), evaluated step by step and multiplied.
    product = np.eye(3)
    for k in range(3, 6):
        (term,) = net.jacobian(f"h{k}", f"h{k - 1}").terms
        factor = np.asarray(expression_function(net.compile(form="unrolled").program, net.graph, [term.factor])(values)[0]).reshape(-1)
        product = (np.diag(factor) @ params["W_hh"]) @ product
    # The numeric Jacobian ∂h_5/∂h_2: move h_2 by a probe and watch h_5.
    def probe(name, expr, add):
        return expr + add("probe", (3,)) if name == "h2" else expr
    f = rebuilt(net, probe).compile(form="unrolled")
    numeric = np.zeros((3, 3))
    for j in range(3):
        outs = []
        for sign in (1, -1):
            offset = np.zeros(3)
            offset[j] = sign * 1e-6
            outs.append(f.trace({**params, "probe": offset}, x, y)["h5"][0])
        numeric[:, j] = (outs[0] - outs[1]) / 2e-6
    assert np.allclose(product, numeric, rtol=1e-6, atol=1e-10)


def test_singular_value_condition_on_hand_made_matrices():
    net = rs.elman_rnn(steps=30, hidden_size=4)
    _, x, y = random_point(net, batch=8, seed=1)
    small = rs.gradient_flow(net, scaled_params(net, 0.5), x, y)
    assert small.sigma_max == pytest.approx(0.5) and small.gamma == 1.0
    assert small.case == "vanishing" and "sufficient for the gradients to vanish" in small.statement
    assert small.grad_norms[0] < 1e-6 * small.grad_norms[-1]
    large = rs.gradient_flow(net, scaled_params(net, 3.0), x, y)
    assert large.case == "may explode"
    assert "necessary for exploding" in large.statement and "not sufficient" in large.statement
    assert "sufficient for the gradients to vanish" not in large.statement
    # sigmoid: γ = 1/4, so the same σ = 3 is below 1/γ = 4 and vanishing is guaranteed.
    assert condition_statement(0.25, 3.0).startswith("σ_max = 3 < 1/γ = 4: this is sufficient")


def test_the_picture_is_written(tmp_path):
    path = tmp_path / "flow.png"
    plot_flow(flow_sweep("seed", 8, [0.5, 2.0], activations=("tanh", "sigmoid", "relu")), path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_lstm_gradients_survive_longer_than_elman_under_the_same_conditions():
    numbers = compare_lstm_elman(steps=50)
    assert numbers["lstm"]["ratio"] > 10 * numbers["elman"]["ratio"]


def test_flow_command_line(tmp_path):
    out = tmp_path / "flow.png"
    run = subprocess.run([sys.executable, "-m", "rnnsym", "flow", "--net", "seed", "--steps", "12",
                          "--scale", "0.5,2", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Factor product between steps: ∏_k w₍ₖ₋₁₎·(1 − oₖ²)" in run.stdout and out.stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "rnnsym", "flow", "--scale", "0,-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--scale values must be positive" in bad.stderr and "Traceback" not in bad.stderr
