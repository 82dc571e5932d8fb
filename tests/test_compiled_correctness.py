"""Compiled gradients of user cells against an oracle that shares nothing with the compiler: SymPy's
own ``diff`` of the fully nested loss, built here from the cell's expressions step by step.

Each case here once gave a wrong number without any error (issue: correctness and reliability)."""
import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.functions import relu, sigmoid

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

# A function inside a function of one node: the loop form keeps both from the forward pass.
NESTED_FUNCTIONS = {
    "σ(σ(h))": rs.Cell(state=h, input=x, params=[a, u], update=u * sigmoid(sigmoid(h)) + a * x),
    "tanh(σ(h))": rs.Cell(state=h, input=x, params=[a, u], update=u * sp.tanh(sigmoid(h)) + a * x),
    "log(tanh(tanh(h)) + 2)": rs.Cell(state=h, input=x, params=[a, u], update=u * sp.log(sp.tanh(sp.tanh(h)) + 2) + a * x),
    "σ(h) twice, once inside exp": rs.Cell(state=h, input=x, params=[a, u],
                                          update=u * sigmoid(h) + sp.exp(sigmoid(h)) * a * x),
}
CASES = {**PARAMETER_FREE_PIECES, **NESTED_FUNCTIONS}


@pytest.mark.parametrize("form", ["loop", "unrolled"])
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_gradients_equal_sympys_diff_of_the_nested_loss(case, form):
    cell = CASES[case]
    rng = np.random.default_rng(1)
    params = {p.name: float(rng.uniform(-1.5, 1.5)) for p in (*cell.params, W, b)}
    X, Y = rng.normal(size=(2, 3)), np.array([1.0, 0.0])  # three steps: SymPy's nested diff grows fast
    net = rs.unroll(cell, steps=3)
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


# ---- names: any identifier a user picks gives the same numbers as plain names ------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

# Names the compiler itself writes, and shapes of them: the strategy leans on these.
_GENERATED_LOOKING = ["S_XH", "_Q", "_P0", "_t0", "_t1", "_t2", "n_h1", "g_n_h1", "_c3", "_X", "_D0", "_g_n_h1",
                      "_inv_batch", "_B", "_ws", "_W0", "_M0", "_GB", "_G0", "_F0", "S_G", "_z_out", "_loss",
                      "_per_example", "_r0", "_s2", "_d0", "_seed_n_h1", "numpy", "t", "n_3", "n_a", "_WC", "_WX",
                      "d_h1", "d_h2", "dL_da", "dL_du", "d_h1_in_L2", "_u0", "_c0", "_carried0", "_next_n_h0",
                      "_z_n_y", "_forward", "_backward", "value", "grads", "adjoint_values", "_DS0", "x", "y"]
_identifier = st.one_of(st.sampled_from(_GENERATED_LOOKING),
                        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True))
_X_NAMES = np.random.default_rng(3).normal(size=(3, 4)), np.array([1.0, 0.0, 1.0])


def _named_cell(names, vector):
    a, u, c = (sp.Symbol(n) for n in names)
    if vector:  # a gated vector cell: stacked weights, a gate block, an input product
        f = sp.Symbol("f")
        cell = rs.Cell(state=h, input=x, params=[a, u, c], gates={f: sigmoid(rs.matvec(a, x) + rs.matvec(u, h) + c)},
                       update=f * sp.tanh(rs.matvec(a, x) + rs.matvec(u, h) + c) + (1 - f) * h,
                       shapes={h: 2, x: 2, a: (2, 2), u: (2, 2), c: 2})
    else:
        cell = rs.Cell(state=h, input=x, params=[a, u, c], update=sp.tanh(a * x + u * h + c) + c * h)
    rng = np.random.default_rng(7)
    values = {p.name: rng.uniform(-1, 1, size=cell.shapes.get(p, ())) for p in (a, u, c)}
    return cell, [values[a.name], values[u.name], values[c.name]]


def _gradients(names, vector, form):
    cell, values = _named_cell(names, vector)
    net = rs.unroll(cell, steps=4)
    rng = np.random.default_rng(11)
    readout = {"W_hy": rng.uniform(-1, 1, size=net.param_shapes["W_hy"]), "b_y": rng.uniform(-1, 1, size=net.param_shapes["b_y"])}
    params = {**dict(zip(names, values)), **readout}
    X = np.repeat(_X_NAMES[0][..., None], 2, axis=-1) if vector else _X_NAMES[0]
    loss, grads = net.compile(form=form).value_and_grad(params, X, _X_NAMES[1])
    return loss, [grads[n] for n in (*names, "W_hy", "b_y")]


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_identifier, min_size=3, max_size=3, unique=True), vector=st.booleans(),
       form=st.sampled_from(["loop", "unrolled"]))
def test_any_parameter_name_gives_the_gradients_of_plain_names(names, vector, form):
    try:
        _named_cell(names, vector)
    except rs.RnnsymError as exc:  # a name the cell refuses must be refused for a stated reason
        assert any(n in str(exc) for n in (*names, "reserved", "keyword")), str(exc)
        return
    want_loss, want = _gradients(["a", "u", "c"], vector, form)
    got_loss, got = _gradients(names, vector, form)
    assert got_loss == pytest.approx(want_loss, rel=1e-13)
    for g_got, g_want in zip(got, want):
        np.testing.assert_allclose(g_got, g_want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,node", [("h1", "state h at step 1"), ("x1", "input x at step 1"),
                                       ("x12", "input x at step 12"), ("y2", "output y at step 2")])
def test_a_parameter_named_like_a_node_is_refused_whatever_the_steps(name, node):
    with pytest.raises(rs.RnnsymError, match=f"clashes with the node {name} \\({node}\\)"):
        rs.Cell(state=h, input=x, params=[a, sp.Symbol(name)], update=sp.tanh(a * x + sp.Symbol(name) * h))


# ---- every function a cell may use: supported in every form, or refused when the cell is built -------
def nested_loss(cell, X, Y):
    """The batch-mean BCE loss as one SymPy expression in the cell's parameters and W_hy, b_y."""
    total = 0
    for xs, y in zip(X, Y):
        state = {s: sp.S.Zero for s in cell.state}
        for xt in xs:
            values = {**state, cell.input: sp.Float(xt)}
            for gate, expr in cell.gates.items():
                values[gate] = expr.xreplace(values)
            state = {s: e.xreplace(values) for s, e in zip(cell.state, cell.update)}
        out = 1 / (1 + sp.exp(-(W * state[cell.state[0]] + b)))
        total += -(y * sp.log(out) + (1 - y) * sp.log(1 - out))
    return total.replace(sigmoid, lambda z: 1 / (1 + sp.exp(-z))) / len(Y)


def central_differences(expr, params, step=1e-12):
    """Central differences of ``expr`` evaluated by SymPy at 40 digits: exact to far below 1e-9."""
    symbols = {s.name: s for s in expr.free_symbols}
    at = {symbols[n]: sp.Float(v, 40) for n, v in params.items() if n in symbols}
    grads = {}
    for name in params:
        if name not in symbols:
            grads[name] = 0.0
            continue
        s = symbols[name]
        up, down = expr.evalf(40, subs={**at, s: at[s] + step}), expr.evalf(40, subs={**at, s: at[s] - step})
        grads[name] = float((up - down) / (2 * step))
    return grads


FUNCTIONS = {
    "Max": sp.tanh(a * x + u * sp.Max(h, 0.5 * h + 0.1)),
    "Min": sp.tanh(a * x + sp.Min(u * h, x, a)),
    "Abs": sp.tanh(a * x + u * sp.Abs(h - 0.05)),
    "erf": sp.erf(a * x + u * h),
    "Heaviside": a * x * sp.Heaviside(h - 0.1) + u * sp.tanh(h) + 0.2,
    "sign": sp.tanh(a * x + u * h) * sp.sign(x + 0.05),
    "relu": relu(a * x + u * h),
    "sin, cos": sp.sin(a * x) + u * sp.cos(h),
    "sinh, cosh, atan": sp.atan(a * sp.sinh(x) + u * sp.cosh(h) - 1),
    "log, exp": sp.log(1 + sp.exp(a * x + u * h)),
    "sign of σ": sp.sign(sigmoid(h)) * a * x + u * h,  # SymPy asks whether σ(h) is real
    "Abs of σ": sp.tanh(a * x + u * sp.Abs(sigmoid(a * h) - sp.Rational(1, 2))),
}


@pytest.mark.parametrize("form", ["loop", "unrolled"])
@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_every_function_a_cell_may_use_has_the_right_gradient_in_every_form(function, form):
    cell = rs.Cell(state=h, input=x, params=[a, u], update=FUNCTIONS[function])
    X, Y = np.array([[0.5, -1.0, 0.7], [1.2, 0.3, -0.4]]), np.array([1.0, 0.0])
    params = {"a": 0.8, "u": -0.6, "W_hy": 1.3, "b_y": 0.2}
    loss, grads = rs.unroll(cell, steps=3).compile(form=form).value_and_grad(params, X, Y)
    expr = nested_loss(cell, X, Y)
    assert loss == pytest.approx(float(expr.evalf(30, subs={s: params[s.name] for s in expr.free_symbols})), rel=1e-12)
    for name, want in central_differences(expr, params).items():
        assert grads[name] == pytest.approx(want, rel=1e-8, abs=1e-12), name


def test_heaviside_has_its_own_value_at_zero():
    # SymPy's Heaviside(0) is 1/2 unless the expression says otherwise; the zero initial state hits 0.
    for at_zero, want in [(None, 0.5), (0, 0.0), (1, 1.0)]:
        step = sp.Heaviside(h) if at_zero is None else sp.Heaviside(h, at_zero)
        net = rs.unroll(rs.Cell(state=h, input=x, params=[a], update=step + a * x), steps=1,
                        output_activation="identity", loss="mse")
        for form in ("loop", "unrolled"):
            out = net.compile(form=form).forward({"a": 0.0, "W_hy": 1.0, "b_y": 0.0}, np.ones((1, 1)))
            assert float(np.ravel(out)[0]) == want, (at_zero, form)


@pytest.mark.parametrize("update,piece", [
    (sp.Piecewise((a * h, x > 0), (x, True)), "Piecewise"),
    (sp.tanh(a * x + u * h + sp.I), "ImaginaryUnit"),
    (sp.gamma(h) + a * x + u, "gamma"),
    (sp.tanh(a * x) + sp.oo * u * h, "oo"),
    (sp.Integral(h, x) * a * u, "Integral"),
])
def test_what_a_cell_cannot_use_is_refused_when_it_is_built(update, piece):
    with pytest.raises(rs.RnnsymError, match=f"update of h uses {piece}, which a cell cannot use; allowed: .*Max"):
        rs.Cell(state=h, input=x, params=[a, u], update=update)


# ---- cross-entropy targets: the fused gradient o − Y belongs to the loss only for rows summing to 1 ---
def _elman_softmax_loss(p, X, Y):
    """PyTorch's Elman equations, a softmax readout and −Σ Y·log softmax, batch mean: by hand."""
    h = np.zeros((X.shape[0], p["W_hh"].shape[0]))
    for t in range(X.shape[1]):
        h = np.tanh(X[:, t] @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"])
    z = h @ p["W_hy"].T + p["b_y"]
    log_softmax = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
    return float(np.mean(-(Y * log_softmax).sum(-1)))


def _softmax_net():
    net = rs.elman_rnn(steps=3, input_size=2, hidden_size=3, output_size=3, output_activation="softmax",
                       loss="cross_entropy")
    rng = np.random.default_rng(0)
    return net, {n: rng.normal(size=s) for n, s in net.param_shapes.items()}, rng.normal(size=(2, 3, 2))


@pytest.mark.parametrize("Y", [[[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                               [[0.5, 0.5, 0.5], [0.0, 1.0, 0.0]], [[1.5, -0.5, 0.0], [0.0, 1.0, 0.0]]])
def test_cross_entropy_targets_that_are_not_probability_rows_are_refused(Y):
    net, p, X = _softmax_net()
    for form in ("loop", "unrolled"):
        with pytest.raises(rs.RnnsymError, match=r"y (row 0 sums to|holds -0.5).*probability rows"):
            net.compile(form=form).value_and_grad(p, X, np.array(Y))


def test_soft_cross_entropy_targets_get_the_gradient_of_their_loss():
    net, p, X = _softmax_net()
    Y = np.array([[0.2, 0.3, 0.5], [0.05, 0.9, 0.05]])  # label smoothing: rows sum to 1
    for form in ("loop", "unrolled"):
        loss, grads = net.compile(form=form).value_and_grad(p, X, Y)
        assert loss == pytest.approx(_elman_softmax_loss(p, X, Y), rel=1e-12)
        for name, value in p.items():
            want = np.zeros_like(value)
            for i in np.ndindex(value.shape):
                up, down = {k: v.copy() for k, v in p.items()}, {k: v.copy() for k, v in p.items()}
                up[name][i] += 1e-6
                down[name][i] -= 1e-6
                want[i] = (_elman_softmax_loss(up, X, Y) - _elman_softmax_loss(down, X, Y)) / 2e-6
            np.testing.assert_allclose(grads[name], want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("form", ["loop", "unrolled"])
def test_a_parameter_whose_gradient_is_zero_everywhere_gets_zeros_of_its_shape(form):
    W_, d = sp.symbols("W d")
    for cell, name, shape in [
        (rs.Cell(state=h, input=x, params=[W_], update=sp.Heaviside(rs.matvec(W_, x)),
                 shapes={h: 2, x: 1, W_: (2, 1)}), "W", (2, 1)),
        (rs.Cell(state=h, input=x, params=[d], update=sp.sign(d) + x, shapes={h: 2, d: 2}), "d", (2,)),
    ]:
        net = rs.unroll(cell, steps=2, output_activation="identity", loss="mse")
        params = {name: np.full(shape, 0.3), "W_hy": np.array([[0.5, -1.0]]), "b_y": np.array([0.1])}
        _, grads = net.compile(form=form).value_and_grad(params, np.array([[0.5, -1.0], [1.0, 2.0]]), np.zeros(2))
        assert grads[name].shape == shape and not grads[name].any()


@pytest.mark.parametrize("form", ["loop", "unrolled"])
def test_a_share_through_a_step_function_of_a_stacked_product_is_zero_not_a_crash(form):
    W_ = sp.Symbol("W")
    cell = rs.Cell(state=(h, c), input=x, params=[W_], update=(sp.sign(sp.Min(h, rs.matvec(W_, c))), h),
                   shapes={h: 3, c: 3, x: 1, W_: (3, 3)})
    net = rs.unroll(cell, steps=2, output_size=2)
    rng = np.random.default_rng(2)
    params = {"W": rng.normal(size=(3, 3)), "W_hy": rng.normal(size=(2, 3)), "b_y": rng.normal(size=2)}
    _, grads = net.compile(form=form).value_and_grad(params, rng.normal(size=(3, 2, 1)), rng.uniform(size=(3, 2)))
    assert not grads["W"].any() and grads["b_y"].any()


@pytest.mark.parametrize("form", ["loop", "unrolled"])
def test_a_state_that_never_reaches_the_loss_gets_no_adjoint(form):
    # c' = exp(2·a·c) overflows to inf; c feeds nothing the loss reads, so dL/da is exactly 0, not 0·inf = NaN.
    cell = rs.Cell(state=(h, c), input=x, params=[a], update=(sp.tanh(x), sp.exp(2 * a * c + 400)))
    net = rs.unroll(cell, steps=3)
    with np.errstate(over="ignore"):
        _, grads = net.compile(form=form).value_and_grad({"a": 0.5, "W_hy": 1.0, "b_y": 0.0},
                                                          np.ones((2, 3)), np.array([1.0, 0.0]))
    assert grads["a"] == 0.0


def test_a_long_unrolled_network_compiles_its_long_sums():
    # The shared weight's gradient sums a share from each of 3000 steps: one chain of + was too deep
    # for Python's compiler (RecursionError). The per-step loss of a long sequence is such a sum too.
    from rnnsym.numeric.emit import sum_code

    assert sum_code(["a", "b"]) == "a + b" and sum_code([f"c{i}" for i in range(40)]).startswith("sum((c0, c1,")
    namespace = {}
    exec(compile(f"value = {sum_code([str(i) for i in range(5000)])}", "<test>", "exec"), namespace)
    assert namespace["value"] == sum(range(5000))
    net = rs.elman_rnn(steps=200, outputs="all", output_activation="identity", loss="mse")
    loop, unrolled = net.compile(form="loop"), net.compile(form="unrolled")
    from rnnsym.numeric.gradcheck import random_point
    params, X, Y = random_point(net, batch=2, seed=0)
    assert unrolled.value_and_grad(params, X, Y)[0] == pytest.approx(loop.value_and_grad(params, X, Y)[0], rel=1e-12)
