"""Vector derivations are SymPy matrix expressions: expr, terms and result go through SymPy's
free_symbols, subs, latex, NumPy printing and lambdify, and lambdify gives the compiled gradient."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol
from sympy.printing.numpy import NumPyPrinter

import rnnsym as rs
from rnnsym.printing.latex import LatexStepPrinter
from rnnsym.printing.text import TextPrinter


@functools.cache
def user_cell():  # two vector states (tests/test_cells.py's), an identity readout and MSE
    h, c, x, W, U, b = sp.symbols("h c x W U b")
    cell = rs.Cell(state=(h, c), input=x, params=[W, U, b],
                   update=(sp.tanh(c), c + sp.tanh(rs.matvec(W, x) + rs.matvec(U, h) + b)),
                   shapes={h: 3, c: 3, x: 2, W: (3, 2), U: (3, 3), b: 3})
    return rs.unroll(cell, steps=2, output_activation="identity", loss="mse")


NETWORKS = {
    "Elman": (functools.cache(lambda: rs.elman_rnn(steps=2, input_size=2, hidden_size=3)), ["W_hh", "W_ih", "b_hh", "W_hy"]),
    "LSTM": (functools.cache(lambda: rs.lstm(steps=2, hidden_size=2)), ["W_hi", "W_hf", "b_ig", "W_ho"]),
    "GRU": (functools.cache(lambda: rs.gru(steps=2, hidden_size=2)), ["W_hr", "W_hz", "W_hn", "b_in"]),
    "user cell": (user_cell, ["U", "W", "b"]),
}
CASES = [(kind, wrt) for kind, (_, names) in NETWORKS.items() for wrt in names]


def column(graph, name, value):
    """A node's value for one example as its MatrixSymbol's shape (a vector is a column)."""
    shape = graph[name].shape
    value = np.asarray(value, dtype=np.float64)
    return value.reshape(shape[0], 1) if len(shape) == 1 else value.reshape(1, 1) if shape == () else value


def at_random_point(net, seed=0):
    """Every node's value for one example (batch 1) and the compiled gradient there."""
    rng = np.random.default_rng(seed)
    graph = net.graph
    params = {k: rng.uniform(-1, 1, s) for k, s in net.param_shapes.items()}
    inputs = [n for n in graph.nodes.values() if n.kind == "input"]
    targets = [n for n in graph.nodes.values() if n.kind == "target"]
    x = rng.uniform(-1, 1, (1, len(inputs), *inputs[0].shape))
    y = rng.uniform(0.1, 0.9, (1, *targets[0].shape) if len(targets) == 1 else (1, len(targets), *targets[0].shape))
    compiled = net.compile(form="unrolled")
    _, grads = compiled.value_and_grad(params, x, y)
    trace = compiled.trace(params, x, y)
    values = {name: column(graph, name, v[0]) for name, v in trace.items() if name not in params}
    values.update({name: column(graph, name, v) for name, v in params.items()})
    values.update({t.name: column(graph, t.name, y[0] if len(targets) == 1 else y[0, i]) for i, t in enumerate(targets)})
    return values, grads


def lambdified(expr, values):
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    return np.asarray(sp.lambdify(symbols, expr, "numpy")(*(values[s.name] for s in symbols)), dtype=np.float64)


def with_adjoints(d, values):
    """The values with every δ of the recursive view, each lambdified from its matrix expression in order."""
    values = dict(values)
    for symbol, definition in d.adjoints.items():
        values[symbol.name] = lambdified(definition, values)
    return values


def close(ours, theirs):
    theirs = np.asarray(theirs).reshape(ours.shape)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12 * max(1.0, np.max(np.abs(theirs))))


@pytest.mark.parametrize("kind,wrt", CASES)
def test_expr_terms_and_result_of_a_vector_derivation_are_sympy_matrix_expressions(kind, wrt):
    net = NETWORKS[kind][0]()
    d = net.derive(wrt)
    shape = net.param_shapes[wrt]
    dims = (shape[0], 1) if len(shape) == 1 else shape
    nodes = set(net.graph.nodes)
    for e in [d.expr, *d.terms, d.result, *d.adjoints.values()]:
        assert isinstance(e, MatrixExpr)
        assert all(isinstance(s, MatrixSymbol) for s in e.free_symbols)
        assert {s.name.removeprefix("delta_") for s in e.free_symbols} <= nodes
        assert sp.latex(e) and NumPyPrinter().doprint(e) and str(e)
    assert d.expr.shape == d.result.shape == dims and all(t.shape == dims for t in d.terms)
    # expr is in node values only; result reads the adjoints δn that d.adjoints defines
    assert not any(s.name.startswith("delta_") for s in d.expr.free_symbols)
    assert {s for s in d.result.free_symbols if s.name.startswith("delta_")} <= set(d.adjoints)


@pytest.mark.parametrize("kind,wrt", CASES)
def test_lambdified_expr_terms_and_result_equal_the_compiled_gradient(kind, wrt):
    net = NETWORKS[kind][0]()
    d = net.derive(wrt)
    values, grads = at_random_point(net, seed=len(wrt))
    close(lambdified(d.expr, values), grads[wrt])
    close(sum(lambdified(t, values) for t in d.terms), grads[wrt])
    close(lambdified(d.result, with_adjoints(d, values)), grads[wrt])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.integers(1, 3), input_size=st.integers(1, 3), hidden_size=st.integers(1, 3),
       output_size=st.integers(1, 2), seed=st.integers(0, 10_000))
def test_lambdified_elman_gradients_equal_the_compiled_ones_at_random_sizes(steps, input_size, hidden_size,
                                                                             output_size, seed):
    net = rs.elman_rnn(steps=steps, input_size=input_size, hidden_size=hidden_size, output_size=output_size)
    values, grads = at_random_point(net, seed)
    for wrt in net.param_names:
        d = net.derive(wrt)
        close(lambdified(d.expr, values), grads[wrt])
        close(lambdified(d.result, with_adjoints(d, values)), grads[wrt])


def test_subs_with_explicit_matrices_gives_the_gradient():
    net = NETWORKS["Elman"][0]()
    d = net.derive("W_hh")
    values, grads = at_random_point(net, seed=3)
    explicit = {s: sp.ImmutableMatrix(values[s.name]) for s in d.expr.free_symbols}
    value = d.expr.subs(explicit).doit()
    assert value.shape == (3, 3) and not value.free_symbols
    close(np.array(value, dtype=np.float64), grads["W_hh"])


@pytest.mark.parametrize("kind,wrt", CASES)
def test_rnnsym_printers_print_the_matrix_result_as_the_recursive_view_writes_it(kind, wrt):
    d = NETWORKS[kind][0]().derive(wrt)
    equations = {eq.lhs.node: eq.rhs[0] for eq in d.recursive[:-1]}
    for printer in (TextPrinter(), LatexStepPrinter()):
        assert printer.doprint(d.result) == printer.doprint(d.recursive[-1].rhs[0])
        for delta, definition in d.adjoints.items():
            assert printer.doprint(definition) == printer.doprint(equations[delta.name.removeprefix("delta_")])


def test_the_text_of_an_elman_result_keeps_its_notation():
    d = rs.elman_rnn(steps=2, hidden_size=2).derive("W_hh")
    assert TextPrinter().doprint(d.result) == "diag(1 − h₁²)·δh₁·h₀ᵀ + diag(1 − h₂²)·δh₂·h₁ᵀ"
    assert TextPrinter().doprint(d.terms[0]) == "diag(1 − h₂²)·W_hyᵀ·diag(y·(1 − y))·((1 − Y)/(1 − y) − Y/y)·h₁ᵀ"
    assert d.text().endswith("Result: dL/dW_hh = diag(1 − h₁²)·δh₁·h₀ᵀ + diag(1 − h₂²)·δh₂·h₁ᵀ")


def test_a_scalar_network_keeps_plain_expressions_within_and_past_the_path_limit():
    net = rs.seed_rnn(steps=3)
    within, past = net.derive("w"), net.derive("w", path_limit=1)
    assert all(isinstance(e, sp.Expr) and not isinstance(e, MatrixExpr) for e in (within.expr, within.result, past.result))
    assert within.result == within.expr
    values = {s: v for s, v in zip(sorted(within.expr.free_symbols, key=str), np.linspace(0.1, 0.7, 20))}
    adjoints = {}
    for delta, definition in past.adjoints.items():
        adjoints[delta] = definition.xreplace(adjoints)
    assert sp.simplify(past.result.xreplace(adjoints) - within.expr) == 0 or abs(
        float(past.result.xreplace(adjoints).xreplace(values)) - float(within.expr.xreplace(values))) < 1e-12


def test_a_windowed_truncation_result_is_the_truncated_gradient():
    net = rs.elman_rnn(steps=4, hidden_size=2, outputs="all", truncate=2)
    d = net.derive("W_hh")
    assert isinstance(d.result, MatrixExpr) and not any(s.name.startswith("delta_") for s in d.result.free_symbols)
    values, grads = at_random_point(net, seed=5)
    close(lambdified(d.result, values), grads["W_hh"])


def test_a_jacobian_between_vector_nodes_is_a_matrix_product():
    net = rs.elman_rnn(steps=3, hidden_size=2)
    d = net.derive(of="h3", wrt="h1")
    assert isinstance(d.expr, MatrixExpr) and d.expr.shape == (2, 2) and d.result == d.expr
    values, _ = at_random_point(net, seed=1)
    f = lambda h: np.diagflat(1 - h ** 2)  # noqa: E731
    close(lambdified(d.expr, values), f(values["h3"]) @ values["W_hh"] @ f(values["h2"]) @ values["W_hh"])


# ---- attention: seq2seq networks ------------------------------------------------------------------
SEQ2SEQ_WEIGHTS = {None: ["W_hh", "W_hh_dec", "W_hy"], "dot": ["W_ih", "W_hh", "W_cc", "b_c", "W_ih_dec"],
                   "general": ["W_hh", "W_a", "W_ch"], "additive": ["W_hh", "W_k", "W_q", "v_a", "b_hh_dec"]}
SEQ2SEQ_CASES = [(attention, wrt) for attention, names in SEQ2SEQ_WEIGHTS.items() for wrt in names]


@functools.cache
def seq2seq(attention, loss="cross_entropy", encoder="elman", decoder="elman"):
    return rs.seq2seq(encoder, decoder, source_steps=2, target_steps=2, input_size=2, hidden_size=2, output_size=3,
                      attention=attention, loss=loss)


def per_example(net, batch=3, seed=0):
    """Every node's value for each example of a batch (attention's stacks S×n matrices) and the
    compiled gradient of the batch-mean loss there: the matrix expressions have no batch axis, so
    they are evaluated example by example and averaged."""
    rng = np.random.default_rng(seed)
    graph = net.graph
    params = {k: rng.uniform(-1, 1, s) for k, s in net.param_shapes.items()}
    x = rng.uniform(-1, 1, (batch, net.options["source_steps"], net.options["input_size"]))
    V, T = net.options["output_size"], net.options["target_steps"]
    y = rng.uniform(0.1, 0.9, (batch, T, V))
    if net.options["loss"] == "cross_entropy":
        y = y / y.sum(axis=-1, keepdims=True)  # probability rows
    compiled = net.compile(form="unrolled")
    _, grads = compiled.value_and_grad(params, x, y)
    trace = compiled.trace(params, x, y)
    examples = []
    for b in range(batch):
        values = {name: column(graph, name, v[b]) for name, v in trace.items() if name not in params}
        values.update({name: column(graph, name, v) for name, v in params.items()})
        values.update({f"Y{t}": column(graph, f"Y{t}", y[b, t - 1]) for t in range(1, T + 1)})
        examples.append(values)
    return examples, grads, (params, x, y)


@pytest.mark.parametrize("attention,wrt", SEQ2SEQ_CASES)
def test_lambdified_seq2seq_expr_terms_result_and_adjoints_equal_the_compiled_gradient(attention, wrt):
    net = seq2seq(attention)
    d = net.derive(wrt)
    examples, grads, _ = per_example(net, seed=len(wrt))
    for e in [d.expr, *d.terms, d.result, *d.adjoints.values()]:
        assert isinstance(e, MatrixExpr) and all(isinstance(s, MatrixSymbol) for s in e.free_symbols)
        assert {s.name.removeprefix("delta_") for s in e.free_symbols} <= set(net.graph.nodes)
    stack = MatrixSymbol("delta_H_enc", 2, 2)  # one example's S×n matrix, as the stack is
    if attention is not None and wrt in ("W_ih", "W_hh"):  # an encoder weight: reached through the stack
        assert stack in d.adjoints
        assert MatrixSymbol("H_enc", 2, 2) in d.adjoints[MatrixSymbol("delta_alpha1", 2, 1)].free_symbols
    mean = lambda f: sum(f(values) for values in examples) / len(examples)  # noqa: E731
    close(mean(lambda v: lambdified(d.expr, v)), grads[wrt])
    close(mean(lambda v: sum(lambdified(t, v) for t in d.terms)), grads[wrt])
    close(mean(lambda v: lambdified(d.result, with_adjoints(d, v))), grads[wrt])


@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
def test_each_encoder_state_adjoint_is_the_compiled_adjoint_through_attention(attention):
    # δh_i reads row i of δH_enc (and for additive, δk_i): evaluated in order, every δ equals the
    # compiled per-example adjoint, the stacks' δ included.
    net = seq2seq(attention, loss="mse", encoder="gru", decoder="gru")
    d = net.derive("W_hr")
    examples, _, point = per_example(net, batch=2, seed=4)
    adjoints, _ = net.compile(form="unrolled").adjoints(*point)
    for b, values in enumerate(examples):
        values = with_adjoints(d, values)
        for name in ("H_enc", "h1", "h2", "e1", "alpha2", "ctx1"):
            # the batch-mean loss's adjoints are per example over the batch: 2·δ of example b
            close(values["delta_" + name], 2 * np.asarray(adjoints[name][b]).reshape(values["delta_" + name].shape))
    assert "delta_H_enc[:1, :].T" in str(d.adjoints[MatrixSymbol("delta_h1", 2, 1)])


def test_a_jacobian_through_attention_is_a_matrix_product_equal_to_autograd():
    torch = pytest.importorskip("torch")
    net = seq2seq("dot")
    d = net.derive(of="ht2", wrt="h_dec2")
    assert isinstance(d.expr, MatrixExpr) and d.expr.shape == (2, 2)
    assert "H_enc.T*(DiagMatrix(alpha2) - alpha2*alpha2.T)*H_enc" in str(d.expr)
    (values, *_), _, _ = per_example(net, batch=1, seed=2)
    H = torch.tensor(values["H_enc"])
    W_cc, W_ch, b_c = (torch.tensor(values[n]).reshape(2, -1) for n in ("W_cc", "W_ch", "b_c"))
    attend = lambda s: torch.tanh(W_cc @ (H.T @ torch.softmax(H @ s, 0)) + W_ch @ s + b_c)  # noqa: E731
    expected = torch.autograd.functional.jacobian(attend, torch.tensor(values["h_dec2"]))
    close(lambdified(d.expr, values), expected.reshape(2, 2).numpy())
    with pytest.raises(rs.RnnsymError, match="three indices"):
        net.derive(of="ctx1", wrt="h1").expr


@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
def test_rnnsym_printers_print_a_seq2seq_result_as_the_recursive_view_writes_it(attention):
    net = seq2seq(attention)
    d = net.derive("W_hh")
    equations = {eq.lhs.node: eq.rhs[0] for eq in d.recursive[:-1]}
    for printer in (TextPrinter(), LatexStepPrinter()):
        assert printer.doprint(d.result) == printer.doprint(d.recursive[-1].rhs[0])
        for delta, definition in d.adjoints.items():
            node = delta.name.removeprefix("delta_")
            if net.graph[node].kind == "output":
                # δy_t = f·δL_t, a loss term's number spread over the output: the records write
                # diag(f)·δL_t (so does an Elman network with a loss at every step), not attention's
                continue
            assert printer.doprint(definition) == printer.doprint(equations[node]), node
    assert "+ [δH_enc]₁" in TextPrinter().doprint(d.adjoints[MatrixSymbol("delta_h1", 2, 1)])
    assert "delta_H_enc[:1, :].T" in str(d.adjoints[MatrixSymbol("delta_h1", 2, 1)])  # SymPy's own notation


def test_subs_with_explicit_matrices_evaluates_a_stacked_row():
    net = seq2seq("dot")
    d = net.derive("W_hh")
    (values, *_), _, _ = per_example(net, batch=1, seed=6)
    values = with_adjoints(d, values)
    definition = d.adjoints[MatrixSymbol("delta_h1", 2, 1)]  # W_hhᵀ·diag(1 − h₂²)·δh₂ + [δH_enc]₁
    explicit = {s: sp.ImmutableMatrix(values[s.name]) for s in definition.free_symbols}
    value = definition.subs(explicit).doit()
    assert isinstance(value, sp.MatrixBase) and not value.free_symbols
    close(np.array(value, dtype=np.float64), values["delta_h1"])


# ---- a bidirectional stack: each direction's part of the joined layer input ---------------------------
@pytest.mark.parametrize("wrt", ["W_ir_l0", "W_ir_l0_reverse", "W_hz_l1"])
def test_lambdified_bidirectional_stack_gradients_equal_the_compiled_ones(wrt):
    net = rs.gru(steps=2, input_size=2, hidden_size=2, num_layers=2, bidirectional=True, outputs="all", loss="mse",
                 output_activation="identity")
    values, grads = at_random_point(net)
    d = net.derive(wrt)
    close(lambdified(d.expr, values), grads[wrt])
    close(lambdified(d.result, with_adjoints(d, values)), grads[wrt])
    parts = [e for e in d.adjoints.values() if e.atoms(sp.MatrixSlice)]
    if wrt.endswith("_l0") or wrt.endswith("_l0_reverse"):  # below the join: δ through the layer input's parts
        assert parts and "]_(" in TextPrinter().doprint(parts[0])  # [δx_l1_2]_(1…2), as the recursive view


# ---- SymPy's Python and C printers: a matrix expression made explicit, entry by entry -----------------
@pytest.mark.parametrize("kind,wrt", [("Elman", "W_hh"), ("LSTM", "W_hf"), ("GRU", "W_hn"), ("user cell", "U")])
def test_the_explicit_gradient_prints_with_pycode_and_ccode_and_evaluates_to_the_compiled_one(kind, wrt):
    import math

    net = NETWORKS[kind][0]()
    values, grads = at_random_point(net)
    explicit = net.derive(wrt).expr.as_explicit()  # a Matrix of plain expressions in the nodes' entries
    names = {**values, "math": math}
    got = np.array([[eval(sp.pycode(entry), names) for entry in row] for row in explicit.tolist()])
    close(got, grads[wrt])
    c = sp.ccode(explicit, assign_to=sp.MatrixSymbol("G", *explicit.shape))
    assert c.count("G[") == explicit.rows * explicit.cols and "sigmoid(" not in c and "Elementwise" not in c
