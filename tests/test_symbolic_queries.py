"""Symbolic queries: every expression a derivation gives is a SymPy expression that SymPy's own
lambdify and code printers handle; derivatives between any two nodes; second derivatives."""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import fields, is_dataclass

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy.printing.numpy import JaxPrinter, SciPyPrinter
from sympy.printing.pytorch import TorchPrinter

import rnnsym as rs
from rnnsym.functions import MatVec, relu, sigmoid, softmax

h, x, a, u, c, b = sp.symbols("h x a u c b")


@functools.cache  # networks are not changed by queries; their derivations are cached on them
def seed():
    return rs.seed_rnn(steps=3)


@functools.cache
def scalar_elman():
    return rs.unroll(rs.Cell(state=h, input=x, update=sp.tanh(a * x + u * h + b), params=[a, u, b]), steps=3)


@functools.cache
def user_cell():  # sigmoid and relu inside the cell: relu's derivative brings Heaviside in
    return rs.unroll(rs.Cell(state=h, input=x, update=sigmoid(a * x + u * h) + relu(c * h - x), params=[a, u, c]),
                     steps=2)  # its expansion nests relu in Heaviside in sigmoid: two steps keep it small


NETWORKS = {"seed": seed, "scalar Elman": scalar_elman, "user cell": user_cell}
WRT = {"seed": ["w", "w1", "b2", "o1", "x2"], "scalar Elman": ["u", "a", "h1"], "user cell": ["u", "h2"]}


def _expressions(item):
    """Every SymPy expression inside a record (records are dataclasses, tuples of them, or SymPy)."""
    if isinstance(item, sp.Expr):
        yield item
    elif isinstance(item, (tuple, list)):
        for i in item:
            yield from _expressions(i)
    elif is_dataclass(item) and not isinstance(item, type):
        for f in fields(item):
            yield from _expressions(getattr(item, f.name))


def exposed(d) -> list[sp.Expr]:
    """expr, terms, expanded and each step's items."""
    found = [d.expr, *d.terms, d.expanded]
    for step in d.steps:
        found.extend(_expressions(step.equations))
    return [e for e in found if not e.is_Number]


def point(net, seed_=0):
    rng = np.random.default_rng(seed_)
    leaves = [n for n in net.graph.nodes.values() if n.kind in ("param", "input")]
    values = {n.symbol: float(rng.uniform(-1, 1)) for n in leaves}
    values[net.target] = 1.0
    return values


def numeric(e, values) -> float:
    """``e`` at ``values`` by SymPy itself (an oracle independent of lambdify)."""
    return float(e.xreplace({k: sp.Float(v, 20) for k, v in values.items()}).evalf(20))


def torch_modules():
    import torch
    # SymPy's torch printer writes Heaviside(z, 0) as torch.heaviside(z, 0), which torch refuses
    # (its second argument must be a tensor): a SymPy printer's gap, not rnnsym's, filled here.
    return [{"heaviside": lambda z, v: torch.heaviside(z, torch.as_tensor(v, dtype=z.dtype))}, "torch"]


@pytest.mark.parametrize("name", NETWORKS)
def test_every_expression_a_derivation_exposes_lambdifies_and_prints_with_sympy(name):
    net = NETWORKS[name]()
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    values = forward_nodes(net, point(net))  # leaves and every node's value
    for wrt in WRT[name]:
        for e in exposed(net.derive(wrt)):  # in node symbols (expanded: in leaves), evaluated as they stand
            symbols = sorted(e.free_symbols, key=str)
            args = [values[s] for s in symbols]
            expected = numeric(e, values)
            assert sp.lambdify(symbols, e, "math")(*args) == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert float(sp.lambdify(symbols, e, "numpy")(*args)) == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert float(sp.lambdify(symbols, e, "scipy")(*args)) == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert float(sp.lambdify(symbols, e, "jax")(*args)) == pytest.approx(expected, rel=1e-4, abs=1e-5)
            tensors = [torch.tensor(v, dtype=torch.float64) for v in args]
            assert float(sp.lambdify(symbols, e, torch_modules())(*tensors)) == pytest.approx(expected, rel=1e-12, abs=1e-12)
            names = {**{s.name: v for s, v in values.items()}, "math": math}
            assert eval(sp.pycode(e), names) == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert "sigmoid(" not in sp.ccode(e) and "relu(" not in sp.ccode(e)
            assert sp.latex(e)


@pytest.mark.parametrize("name", NETWORKS)
def test_lambdified_derivations_equal_the_compiled_gradient(name):
    net = NETWORKS[name]()
    rng = np.random.default_rng(1)
    params = {p: float(rng.uniform(-1, 1)) for p in net.param_names}
    X, Y = rng.uniform(-1, 1, (5, net.steps)), rng.integers(0, 2, 5).astype(float)
    _, grads = net.compile().value_and_grad(params, X, Y)
    inputs = {f"x{t}": X[:, t - 1] for t in range(1, net.steps + 1)}
    for p in net.param_names:
        d = net.derive(p)
        f = d.lambdify()
        per_example = f(**{k: v for k, v in {**params, **inputs, "Y": Y}.items() if k in f.arguments})
        assert np.mean(per_example) == pytest.approx(float(grads[p]), rel=1e-10, abs=1e-12)
        symbols = sorted(d.expanded.free_symbols, key=str)
        leaves = {**params, **inputs, "Y": Y}
        expanded = sp.lambdify(symbols, d.expanded, "numpy")(*(leaves[s.name] for s in symbols))
        assert np.mean(np.broadcast_to(expanded, Y.shape)) == pytest.approx(float(grads[p]), rel=1e-10, abs=1e-12)


def test_lambdify_names_its_arguments_and_refuses_unknown_or_missing_ones():
    f = rs.seed_rnn(steps=2).derive("w1").lambdify()
    assert f.arguments == ("x1", "x2", "w", "w1", "w2", "b1", "b2", "b3", "Y")  # w0 only meets o0 = 0
    with pytest.raises(rs.RnnsymError, match="unknown argument 'zz'; allowed: .*w0"):
        f(zz=1.0)
    with pytest.raises(rs.RnnsymError, match="missing argument 'x1'"):
        f(w=1.0)
    with pytest.raises(rs.RnnsymError, match="scalar networks"):
        rs.elman_rnn(steps=2, hidden_size=2).derive("W_hh").lambdify()


def test_sigmoid_prints_in_stable_forms_that_never_overflow():
    z = sp.Symbol("z")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would be a RuntimeWarning
        values = sp.lambdify([z], sigmoid(z), "numpy")(np.array([-1000.0, 0.0, 1000.0]))
        assert values.tolist() == [0.0, 0.5, 1.0]
        assert sp.lambdify([z], sigmoid(z), "math")(-1000.0) == 0.0  # math.exp(1000) would raise
        assert sp.lambdify([z], sigmoid(z), "math")(-30.0) == pytest.approx(1 / (1 + math.exp(30)), rel=1e-15)
    assert SciPyPrinter().doprint(sigmoid(z)) == "scipy.special.expit(z)"
    assert TorchPrinter().doprint(sigmoid(z)) == "torch.sigmoid(z)"
    assert JaxPrinter().doprint(sigmoid(z)) == "jax.nn.sigmoid(z)"
    assert "exp(-" not in sp.ccode(sigmoid(z)) and "tanh" in sp.ccode(sigmoid(z))
    assert sp.pycode(relu(z)) == "max(0.0, z)" and sp.ccode(relu(z)) == "fmax(0, z)"


def test_softmax_and_matrix_products_print_for_array_libraries_only():
    z, W, v = sp.symbols("z W v")
    rows = np.array([[1000.0, 0.0, 1000.0], [1.0, 2.0, 3.0]])
    expected = np.exp(rows - rows.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    for module in ("numpy", "scipy"):
        assert np.allclose(sp.lambdify([z], softmax(z), module)(rows), expected)
    batch, matrix = np.arange(6.0).reshape(3, 2), np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.allclose(sp.lambdify([W, v], MatVec(W, v), "numpy")(matrix, batch), batch @ matrix.T)
    with pytest.raises(rs.RnnsymError, match="softmax is over a vector"):
        sp.ccode(softmax(z))
    with pytest.raises(rs.RnnsymError, match="matrix product"):
        sp.pycode(MatVec(W, v))


def test_functions_know_their_sympy_properties():
    r = sp.Symbol("r", real=True)
    assert sigmoid(r).is_real and sigmoid(r).is_positive and sigmoid(r).is_finite
    assert relu(r).is_real and relu(r).is_nonnegative
    assert sp.simplify((sigmoid(r).rewrite(sp.tanh) - sigmoid(r).rewrite(sp.exp)).rewrite(sp.exp)) == 0
    assert sp.diff(sigmoid(r), r) == sigmoid(r) * (1 - sigmoid(r))
    assert relu(r).rewrite(sp.Piecewise).subs(r, -2) == 0 and relu(r).rewrite(sp.Heaviside).subs(r, 3) == 3
    assert float(sigmoid(sp.Integer(2)).evalf()) == pytest.approx(1 / (1 + math.exp(-2)))


def test_rnnsyms_compiled_code_keeps_its_own_activations():
    # A printer's own _print_sigmoid wins over the function's code hook: the generated code calls
    # the runtime's _sigmoid, not the lambdify form.
    source = rs.lstm(steps=2, input_size=2, hidden_size=3).compile().source
    assert "_sigmoid" in source and "logaddexp(0, -(" not in source and "expit" not in source
    relu_source = rs.elman_rnn(steps=2, hidden_size=2, activation="relu").compile(form="unrolled").source
    assert "numpy.maximum(" in relu_source and "max(0.0" not in relu_source


# ---- derivatives between nodes ------------------------------------------------------------------
def forward_nodes(net, values, wrt=None, wrt_value=None):
    """Every node's value, with node ``wrt`` set to ``wrt_value`` (its descendants follow)."""
    out = dict(values)
    for node in net.graph.nodes.values():
        if node.name == wrt:
            out[node.symbol] = wrt_value
        elif node.kind == "constant":
            out[node.symbol] = float(node.value)
        elif node.expr is not None:
            out[node.symbol] = numeric(node.expr, out)
    return out


def node_derivative_by_differences(net, of, wrt, values, step=1e-6):
    base = forward_nodes(net, values)
    w = base[net.graph[wrt].symbol]
    plus = forward_nodes(net, values, wrt, w + step)[net.graph[of].symbol]
    minus = forward_nodes(net, values, wrt, w - step)[net.graph[of].symbol]
    return (plus - minus) / (2 * step)


PAIRS = {"seed": [("o3", "o1"), ("o4", "w"), ("o3", "x1"), ("L", "o2")],
         "scalar Elman": [("h3", "h1"), ("y", "u"), ("h2", "x1")],
         "user cell": [("h2", "h1"), ("h2", "c"), ("y", "x1")]}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_=st.integers(0, 10_000))
@pytest.mark.parametrize("name", NETWORKS)
def test_derivative_between_nodes_matches_finite_differences_of_the_forward(name, seed_):
    net = NETWORKS[name]()
    values = point(net, seed_)
    nodes = forward_nodes(net, values)
    for of, wrt in PAIRS[name]:
        d = net.derive(of=of, wrt=wrt)
        exact = numeric(d.expr, nodes)
        assert exact == pytest.approx(node_derivative_by_differences(net, of, wrt, values), rel=1e-6, abs=1e-8)
        f = d.lambdify()
        args = {s.name: v for s, v in values.items() if s.name in f.arguments}
        assert float(f(**args)) == pytest.approx(exact, rel=1e-12, abs=1e-14)


def test_derivative_between_nodes_has_the_steps_and_printers_of_a_derivation():
    d = rs.seed_rnn(steps=4).derive(of="o4", wrt="o2")
    assert d.paths == [("o4", "o3", "o2")]
    assert d.expr == sp.sympify("w3*(1 - o4**2)*w2*(1 - o3**2)")
    assert d.text().startswith("do₄/do₂") and r"\frac{d o_{4}}{d o_{2}}" in d.latex()
    assert "update" not in [s.kind for s in d.steps]
    assert any("∂o4/∂n" in s.note for s in d.steps)
    assert d.mathml() and d.to_dict()


def test_derivative_between_vector_nodes_is_the_jacobian_product():
    net = rs.elman_rnn(steps=3, hidden_size=2)
    d = net.derive(of="h3", wrt="h1")
    assert d.paths == [("h3", "h2", "h1")]
    assert "dh₃/dh₁ = [diag(1 − h₃²)·W_hh]·[diag(1 − h₂²)·W_hh]" in d.text()


def test_ancestors_and_descendants_are_in_graph_order_without_the_node():
    net = rs.seed_rnn(steps=2)
    assert net.ancestors("o1") == ("x1", "w", "w0", "b1", "o0")
    assert net.descendants("o1") == ("o2", "o3", "L")
    assert net.descendants("L") == () and net.ancestors("w") == ()
    with pytest.raises(rs.RnnsymError, match="unknown node 'o9'"):
        net.ancestors("o9")


@pytest.mark.parametrize("query, message", [
    (dict(wrt="o9"), "unknown parameter, node or input 'o9'"),
    (dict(of="o9", wrt="o1"), "unknown node 'o9'"),
    (dict(of="o1", wrt="o3"), "of 'o1' is not a descendant of wrt 'o3'.*of may be: o4, L"),
    (dict(of="o2", wrt="o2"), "of 'o2' is not a descendant of wrt 'o2'"),
    (dict(wrt="w", order=3), "order must be 1 or 2.*got 3"),
    (dict(wrt="w", order=True), "order must be 1 or 2"),
])
def test_bad_queries_are_one_line_errors(query, message):
    with pytest.raises(rs.RnnsymError, match=message) as error:
        rs.seed_rnn(steps=3).derive(**query)
    assert "\n" not in str(error.value)


def test_second_derivative_of_a_vector_network_is_refused_in_one_line():
    with pytest.raises(rs.RnnsymError, match=r"order=2 \(d²L/dW_hh²\) is given for scalar networks only"):
        rs.elman_rnn(steps=2, hidden_size=2).derive("W_hh", order=2)
    with pytest.raises(rs.RnnsymError, match="three indices"):
        rs.elman_rnn(steps=2, hidden_size=2).derive(of="h2", wrt="W_hh")


# ---- second derivatives ----------------------------------------------------------------------------
@functools.cache
def second(name, wrt):
    return NETWORKS[name]().derive(wrt, order=2)


@pytest.mark.parametrize("name", NETWORKS)
def test_second_derivative_equals_sympys_diff_of_the_nested_loss(name):
    net = NETWORKS[name]()
    loss = net.expansions[net.graph.loss.symbol]
    values = point(net, 3)
    for wrt in [p for p in net.param_names if p in WRT[name]] + ["W_hy"][: name != "seed"]:
        w = net.graph[wrt].symbol
        d = second(name, wrt)
        naive = numeric(sp.diff(loss, w, 2), values)
        assert numeric(d.expanded, values) == pytest.approx(naive, rel=1e-10, abs=1e-12)
        f = d.lambdify()
        assert float(f(**{s.name: v for s, v in values.items() if s.name in f.arguments})) == pytest.approx(
            naive, rel=1e-10, abs=1e-12)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_=st.integers(0, 10_000))
def test_second_derivative_matches_finite_differences_of_the_compiled_gradient(seed_):
    net = user_cell()
    rng = np.random.default_rng(seed_)
    params = {p: float(rng.uniform(-1, 1)) for p in net.param_names}
    X, Y = rng.uniform(-1, 1, (4, net.steps)), rng.integers(0, 2, 4).astype(float)
    f = net.compile()
    inputs = {f"x{t}": X[:, t - 1] for t in range(1, net.steps + 1)}
    for wrt in ("a", "u"):
        second_ = second("user cell", wrt).lambdify()
        exact = np.mean(second_(**{k: v for k, v in {**params, **inputs, "Y": Y}.items() if k in second_.arguments}))
        step = 1e-5
        up = f.value_and_grad({**params, wrt: params[wrt] + step}, X, Y)[1][wrt]
        down = f.value_and_grad({**params, wrt: params[wrt] - step}, X, Y)[1][wrt]
        assert exact == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-7)


def test_second_derivative_shows_the_first_derivative_as_a_node():
    d = rs.seed_rnn(steps=3).derive("w2", order=2)
    assert d.steps[0].kind == "first_derivative" and d.order == 2
    assert d.first.expr == rs.seed_rnn(steps=3).derive("w2").expr
    assert d.text().startswith("dg_w2/dw₂")
    assert rs.seed_rnn(steps=3).derive("w0", order=2).expr == 0  # dL/dw0 = 0 since o0 = 0
