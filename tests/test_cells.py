"""General cells: Elman, LSTM and GRU against finite differences and PyTorch autograd; a user-defined
cell; the path limit; truncation; the Elman recursive view against the textbook formula."""
import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.numeric.gradcheck import random_point

NETWORKS = {
    "elman": rs.elman_rnn, "lstm": rs.lstm, "gru": rs.gru,
}
SIZES = [dict(input_size=1, hidden_size=1), dict(input_size=3, hidden_size=2), dict(input_size=2, hidden_size=4)]


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"in{s['input_size']}-h{s['hidden_size']}")
def test_gradients_match_finite_differences(kind, sizes):
    net = NETWORKS[kind](steps=4, **sizes)
    report = rs.gradcheck(net, seed=1)
    assert report.ok, report.table()
    assert [r.name for r in report.rows] == list(net.param_names)


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("options", [
    dict(outputs="all", output_activation="identity", loss="mse", output_size=2),
    dict(outputs="all", step_reduction="sum", output_activation="sigmoid", loss="bce"),
    dict(output_activation="softmax", loss="cross_entropy", output_size=3),
    dict(outputs="all", output_activation="softmax", loss="cross_entropy", output_size=3),
    dict(outputs="all", bidirectional=True, output_activation="identity", loss="mse"),
], ids=["all-mse", "all-sum-bce", "last-ce", "all-ce", "bidirectional"])
def test_outputs_losses_and_directions_match_finite_differences(kind, options):
    net = NETWORKS[kind](steps=3, input_size=2, hidden_size=2, **options)
    report = rs.gradcheck(net, seed=2)
    assert report.ok, report.table()


def test_parameter_names_and_shapes_follow_pytorch():
    assert rs.elman_rnn(steps=2, input_size=3, hidden_size=5).param_shapes == {
        "W_ih": (5, 3), "W_hh": (5, 5), "b_ih": (5,), "b_hh": (5,), "W_hy": (1, 5), "b_y": (1,)}
    assert rs.lstm(steps=2, input_size=3, hidden_size=5).param_names[:8] == (
        "W_ii", "W_if", "W_ig", "W_io", "W_hi", "W_hf", "W_hg", "W_ho")
    assert rs.gru(steps=2).param_names[:6] == ("W_ir", "W_iz", "W_in", "W_hr", "W_hz", "W_hn")


def test_a_user_defined_minimal_gated_cell():
    # A minimal gated unit: a forget gate f mixes the old state with a candidate.
    h, x, f = sp.symbols("h x f")
    a, u, c, v = sp.symbols("a u c v")
    cell = rs.Cell(state=h, input=x, params=[a, u, c, v], gates={f: rs.functions.sigmoid(a * x + u * h)},
                   update=f * h + (1 - f) * sp.tanh(c * x + v * h))
    net = rs.unroll(cell, steps=5)
    assert net.param_names == ("a", "u", "c", "v", "W_hy", "b_y")
    d = net.derive("u")
    assert d.paths[0] == ("L", "y", "h5", "f5", "u")
    assert rs.gradcheck(net).ok


def test_a_user_defined_vector_cell_with_two_states():
    h, c, x = sp.symbols("h c x")
    W, U, b = sp.symbols("W U b")
    cell = rs.Cell(state=(h, c), input=x, params=[W, U, b],
                   update=(sp.tanh(c), c + sp.tanh(rs.matvec(W, x) + rs.matvec(U, h) + b)),
                   shapes={h: 3, c: 3, x: 2, W: (3, 2), U: (3, 3), b: 3})
    net = rs.unroll(cell, steps=3, output_activation="identity", loss="mse")
    assert net.param_shapes["U"] == (3, 3) and net.param_shapes["W_hy"] == (1, 3)
    assert rs.gradcheck(net).ok


@pytest.mark.parametrize("build,message", [
    (lambda h, x, a: rs.Cell(state=h, input=x, update=sp.tanh(a * x + sp.Symbol("q") * h), params=[a]),
     "update of h uses undeclared symbol(s) q"),
    (lambda h, x, a: rs.Cell(state=(h, sp.Symbol("c")), input=x, update=sp.tanh(a * x), params=[a]),
     "2 state(s) (h, c) but 1 update(s): every state needs exactly one update"),
    (lambda h, x, a: rs.Cell(state=h, input=x, update=sp.Function("g")(a * x + h), params=[a]),
     "uses g, a function with no known derivative"),
    (lambda h, x, a: rs.Cell(state=h, input=x, update=sp.tanh(rs.matvec(a, x) + h), params=[a],
                             shapes={h: 3, x: 2, a: (3, 3)}),
     "shapes do not fit in update of h: matvec(a, x)"),
    (lambda h, x, a: rs.Cell(state=h, input=x, update=sp.tanh(a * x + h), params=[a], shapes={h: 3, x: 2}),
     "shapes do not fit in update of h: (2,) and (3,)"),
])
def test_bad_cells_are_refused_before_anything_is_computed(build, message):
    with pytest.raises(rs.RnnsymError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(*sp.symbols("h x a"))


@pytest.mark.parametrize("call,message", [
    (lambda: rs.elman_rnn(steps=3, hidden_size=0), "hidden_size must be a positive integer, got 0"),
    (lambda: rs.lstm(steps=3, truncate=0), "truncate must be a positive integer, got 0"),
    (lambda: rs.gru(steps=3, outputs="some"), "unknown outputs 'some'; allowed: last, all"),
    (lambda: rs.elman_rnn(steps=3, loss="cross_entropy"), "loss 'cross_entropy' and output_activation 'softmax' go together"),
])
def test_bad_options(call, message):
    with pytest.raises(rs.RnnsymError, match=message):
        call()


def test_lstm_path_count_grows_past_the_limit_and_the_recursive_view_takes_over():
    net = rs.lstm(steps=8, hidden_size=2)
    d = net.derive("W_hf")
    assert d.path_count > 2000 and d.steps[0].kind == "path_count"
    with pytest.raises(rs.RnnsymError, match="chain-rule paths lead to 'W_hf'"):
        d.terms
    assert d.recursive[-1].lhs == rs.records.Total("L", "W_hf")
    assert len(d.recursive[-1].rhs[0].terms) == 8  # one share per step: W_hf is used once per step


@pytest.mark.parametrize("kind", NETWORKS)
def test_truncated_gradients_equal_the_full_ones_when_k_reaches_T(kind):
    net = NETWORKS[kind](steps=5, input_size=2, hidden_size=2)
    params, x, y = random_point(net, seed=4)
    full = net.compile().value_and_grad(params, x, y)[1]
    for k in (5, 8):
        cut = net.compile(truncate=k).value_and_grad(params, x, y)[1]
        assert all(np.array_equal(cut[n], full[n]) for n in full)
    short = net.compile(truncate=2).value_and_grad(params, x, y)[1]
    assert not np.allclose(short["W_hh" if kind == "elman" else net.param_names[4]], full["W_hh" if kind == "elman" else net.param_names[4]])


def test_truncated_bptt_matches_a_hand_written_truncated_recursion():
    net = rs.elman_rnn(steps=6, input_size=2, hidden_size=3, output_activation="identity", loss="mse")
    params, x, y = random_point(net, seed=6)
    k = 2
    grads = net.compile(truncate=k).value_and_grad(params, x, y)[1]
    _, reference = _elman_by_hand(params, x, y, truncate=k)
    assert np.allclose(grads["W_hh"], reference["W_hh"], rtol=1e-12, atol=1e-14)
    assert np.allclose(grads["W_ih"], reference["W_ih"], rtol=1e-12, atol=1e-14)


def test_truncation_in_the_derivation_and_the_check():
    net = rs.elman_rnn(steps=5, hidden_size=2, truncate=2)
    d = net.derive("W_hh")
    (step,) = [s for s in d.steps if s.kind == "truncation"]
    assert [(eq.lhs.of, eq.lhs.wrt) for eq in step.equations] == [("h4", "h3")]
    assert len(d.paths) == 2  # through h5 and h4 only
    report = rs.gradcheck(net)
    assert report.ok and report.truncate == 2
    assert report.truncation_error["W_hh"] > 0 and report.truncation_error["W_hy"] == 0
    assert "truncated BPTT (k = 2)" in report.table()


def _elman_by_hand(params, x, y, truncate=None):
    """The textbook Elman BPTT (Goodfellow, Bengio & Courville, section 10.2.2), for an identity
    readout with MSE, written directly in NumPy with column-vector algebra per example."""
    W_ih, W_hh, b_ih, b_hh, W_hy, b_y = (params[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hy", "b_y"))
    B, T, _ = x.shape
    H = W_hh.shape[0]
    hs = [np.zeros((B, H))]
    for t in range(T):
        hs.append(np.tanh(x[:, t] @ W_ih.T + b_ih + hs[-1] @ W_hh.T + b_hh))
    out = hs[-1] @ W_hy.T + b_y
    yy = y.reshape(out.shape)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    d_out = 2 * (out - yy) / (B * out.shape[1])
    grads["W_hy"], grads["b_y"] = d_out.T @ hs[-1], d_out.sum(0)
    delta = d_out @ W_hy  # δ_T = ∂L/∂h_T
    first = 1 if truncate is None else T - truncate + 1
    for t in range(T, first - 1, -1):
        pre = delta * (1 - hs[t] ** 2)  # diag(1 - h_t²) δ_t
        grads["W_hh"] += pre.T @ hs[t - 1]  # Σ_t diag(1 − h_t²) δ_t h_(t−1)ᵀ
        grads["W_ih"] += pre.T @ x[:, t - 1]
        grads["b_ih"] += pre.sum(0)
        grads["b_hh"] += pre.sum(0)
        delta = pre @ W_hh  # δ_(t-1) = W_hhᵀ diag(1 - h_t²) δ_t
    return out, grads


def test_elman_recursive_view_is_the_textbook_formula():
    net = rs.elman_rnn(steps=4, input_size=2, hidden_size=3, output_activation="identity", loss="mse")
    d = net.derive("W_hh")
    # Symbolically: dL/dW_hh = Σ_t diag(1 − h_t²)·δh_t·h_(t−1)ᵀ and δh_(t−1) = W_hhᵀ·diag(1 − h_t²)·δh_t.
    lines = d.text().splitlines()
    assert "    dL/dW_hh = " + " + ".join(f"diag(1 − h{s}²)·δh{s}·h{p}ᵀ" for s, p in
                                         (("₁", "₀"), ("₂", "₁"), ("₃", "₂"), ("₄", "₃"))) in lines
    assert "    δh₂ = W_hhᵀ·diag(1 − h₃²)·δh₃" in lines
    # Numerically: the compiled gradient equals the textbook recursion written by hand.
    params, x, y = random_point(net, batch=5, seed=3)
    grads = net.compile().value_and_grad(params, x, y)[1]
    _, reference = _elman_by_hand(params, x, y)
    for name in net.param_names:
        assert np.allclose(grads[name], reference[name], rtol=1e-12, atol=1e-14), name


# ---- PyTorch as an independent oracle ---------------------------------------------------------------
def _torch_case(kind, module_cls, T=4, I=3, H=2, O=1, outputs="last", bidirectional=False):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; finite differences still check these")
    torch.manual_seed(0)
    rnn = module_cls(I, H, batch_first=True, bidirectional=bidirectional).double()
    readout = torch.nn.Linear(H * (2 if bidirectional else 1), O).double()
    net = NETWORKS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation="identity",
                         loss="mse", outputs=outputs, bidirectional=bidirectional)
    params = rs.params_from_torch(rnn, readout)  # a bidirectional readout is split into W_hy, W_hy_reverse
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, T, I))
    y = rng.normal(size=(5, T, O) if outputs == "all" else (5, O))
    seq, _ = rnn(torch.tensor(x))
    pred = readout(seq if outputs == "all" else seq[:, -1])
    loss = torch.nn.functional.mse_loss(pred, torch.tensor(y))
    loss.backward()
    ours, grads = net.compile().value_and_grad(params, x, y)
    assert ours == pytest.approx(loss.item(), rel=1e-12)
    return torch, rnn, readout, grads


@pytest.mark.parametrize("kind,cls", [("elman", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
@pytest.mark.parametrize("outputs", ["last", "all"])
def test_gradients_match_pytorch_autograd(kind, cls, outputs):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; finite differences still check these")
    _, rnn, readout, grads = _torch_case(kind, getattr(torch.nn, cls), outputs=outputs)
    reference = rs.params_from_torch({k: v.grad for k, v in rnn.named_parameters()})
    reference.update(W_hy=readout.weight.grad.numpy(), b_y=readout.bias.grad.numpy())
    assert set(reference) == set(grads)
    for name, value in reference.items():
        assert np.allclose(grads[name], value, rtol=1e-10, atol=1e-13), name


def test_bidirectional_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; finite differences still check these")
    _, rnn, readout, grads = _torch_case("gru", torch.nn.GRU, outputs="all", bidirectional=True)
    reference = rs.params_from_torch({k: v.grad for k, v in rnn.named_parameters()},
                                     {k: v.grad for k, v in readout.named_parameters()})
    assert set(reference) == set(grads)
    for name, value in reference.items():
        assert np.allclose(grads[name], value, rtol=1e-10, atol=1e-13), name


# ---- the loop form: one differentiated step in a loop over time -------------------------------------
LOOP_CASES = {
    "elman": lambda T: rs.elman_rnn(steps=T, input_size=2, hidden_size=3),
    "elman-scalar": lambda T: rs.elman_rnn(steps=T),
    "lstm": lambda T: rs.lstm(steps=T, input_size=2, hidden_size=3),
    "gru-ce": lambda T: rs.gru(steps=T, input_size=2, hidden_size=3, output_size=4, output_activation="softmax",
                               loss="cross_entropy"),
    "elman-all": lambda T: rs.elman_rnn(steps=T, input_size=2, hidden_size=2, output_size=2,
                                        output_activation="identity", loss="mse", outputs="all"),
    "lstm-all-sum": lambda T: rs.lstm(steps=T, hidden_size=2, outputs="all", step_reduction="sum"),
    "lstm-truncated": lambda T: rs.lstm(steps=T, hidden_size=2, truncate=2),
}


@pytest.mark.parametrize("kind", LOOP_CASES)
@pytest.mark.parametrize("T", [1, 3, 7])
def test_loop_and_unrolled_forms_agree(kind, T):
    net = LOOP_CASES[kind](T)
    params, x, y = random_point(net, batch=5, seed=T)
    loop, unrolled = net.compile(form="loop"), net.compile(form="unrolled")
    # a loop over time: in Python, or in C: as sweeps where a step is one fused kernel (rnnsym.numeric.native),
    # as the step loop where it is products and kernels (rnnsym.numeric.step_loop)
    looped = any(loop_ in loop.source for loop_ in ("for t in range", ".sweep(", "_native.steps("))
    assert loop.form == "loop" and looped and "for t in" not in unrolled.source and ".sweep(" not in unrolled.source
    la, ga = loop.value_and_grad(params, x, y)
    lb, gb = unrolled.value_and_grad(params, x, y)
    assert la == pytest.approx(lb, rel=1e-13)
    for name in net.param_names:
        assert np.allclose(ga[name], gb[name], rtol=1e-11, atol=1e-15), name
    assert np.allclose(loop.forward(params, x), unrolled.forward(params, x), rtol=1e-13)


@pytest.mark.parametrize("T", [2, 10, 40])
@pytest.mark.parametrize("kind", ["elman", "lstm", "gru"])
def test_loop_form_matches_finite_differences_at_several_lengths(kind, T):
    net = NETWORKS[kind](steps=T, input_size=2, hidden_size=3)
    assert net.compile().form == "loop"
    report = rs.gradcheck(net, seed=T)
    assert report.ok, report.table()


def test_loop_source_does_not_grow_with_T():
    short, long = (rs.lstm(steps=T, hidden_size=2).compile().source for T in (5, 500))
    assert abs(len(long.splitlines()) - len(short.splitlines())) == 0


@pytest.mark.parametrize("kind", NETWORKS)
def test_jacobians_derived_once_per_cell_equal_direct_differentiation(kind):
    from rnnsym.engine.local import local_jacobian

    net = NETWORKS[kind](steps=6, input_size=2, hidden_size=2)
    checked = 0
    for child, node in net.graph.nodes.items():
        if node.kind == "hidden" and node.step and node.step > 1:
            for parent in net.graph.parents(child):
                assert net._template_of(child, parent) is not None
                assert net.jacobian(child, parent) == local_jacobian(net.graph, child, parent), (child, parent)
                checked += 1
    assert checked > 20


def test_a_cell_message_about_hundreds_of_symbols_gives_a_count_not_a_list():
    h, x = sp.symbols("h x")
    many = sp.symbols("q0:700")
    with pytest.raises(rs.RnnsymError, match=r"undeclared symbol\(s\) q0, q1, .*, …, q99 \(700 in all\)") as info:
        rs.Cell(state=h, input=x, params=[], update=sum(many) + h)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("form", ["loop", "unrolled"])
def test_tied_arguments_of_max_and_min_share_the_derivative_evenly(form):
    # Max(a, 2·(a/2), h) ties all three arguments from step 2 on (h = a), so h_t = a and dh_t/da = 1.
    # SymPy's Max derivative gives each tied argument ½: 3/2 per step, a wrong number without an error.
    h, x, g, a = sp.symbols("h x g a")
    for extreme, sign in ((sp.Max, 1), (sp.Min, -1)):
        cell = rs.Cell(state=h, input=x, params=[a], gates={g: a / 2}, update=extreme(a, 2 * g, h) + 0 * x)
        net = rs.unroll(cell, steps=3, output_activation="identity", loss="mse")
        a0 = 0.55 * sign  # the extreme of a, a and h0 = 0: a itself
        params = {"a": np.array(a0), "W_hy": np.array(0.7), "b_y": np.array(0.1)}
        x0, y0 = np.zeros((1, 3)), np.array([0.3])
        # y = W·h3 + b with h3 = a: dL/da = (W·a + b − y)·2·W (the mean over one output of (y − Y)²)
        expected = 2 * (0.7 * a0 + 0.1 - 0.3) * 0.7
        _, grads = net.compile(form=form).value_and_grad(params, x0, y0)
        assert grads["a"] == pytest.approx(expected, rel=1e-12), extreme


@pytest.mark.parametrize("form", ["loop", "unrolled"])
def test_a_state_updated_to_a_number_does_not_replace_that_number_in_other_updates(form):
    # Fuzzer case 93023: with h' = 1/2, unroll shared h's update by turning every 1/2 inside c's
    # update into the node h_t, Heaviside's value at 0 included, and compiling failed with a TypeError.
    c, h, x, a = sp.symbols("c h x a")
    cell = rs.Cell(state=(c, h), input=x, params=[a], update=(2 * a * sp.Heaviside(h) + x / 2, sp.S.Half))
    net = rs.unroll(cell, steps=3, output_activation="identity", loss="mse")
    assert net.graph["c2"].expr == 2 * a * sp.Heaviside(sp.Symbol("h1")) + sp.Symbol("x2") / 2
    params = {"a": np.array(0.4), "W_hy": np.array(0.7), "b_y": np.array(0.1)}
    X, Y = np.array([[0.3, -0.2, 0.9]]), np.array([0.5])
    # h_t = 1/2 for t >= 1, so c3 = 2a·H(1/2) + x3/2 = 2a + x3/2, and y = W·c3 + b
    y = 0.7 * (2 * 0.4 + 0.9 / 2) + 0.1
    value, grads = net.compile(form=form).value_and_grad(params, X, Y)
    assert value == pytest.approx((y - 0.5) ** 2, rel=1e-12)
    assert grads["a"] == pytest.approx(2 * (y - 0.5) * 0.7 * 2, rel=1e-12)


def test_heaviside_with_a_symbolic_value_at_zero_is_refused_in_one_line():
    h, x, a = sp.symbols("h x a")
    with pytest.raises(rs.RnnsymError, match=r"Heaviside's value at 0 must be a number") as info:
        rs.Cell(state=h, input=x, params=[a], update=a * sp.Heaviside(h - x, a))
    assert "\n" not in str(info.value)


def test_sympys_complex_rewrites_of_real_values_are_accepted():
    """SymPy does not know a cell's symbols are real: it writes Abs(exp(g)) as exp(re(g)), and a
    cell refused that for re, which the user never wrote (found by the random-cell fuzzer, case
    98816). Every value of a cell is real, so re(a) is a, im(a) is 0 and conjugate(a) is a; the
    gradient is checked against central differences."""
    h, x, g, r, W = sp.symbols("h x g r W")
    assert sp.Abs(sp.exp(g)).has(sp.re)  # the rewrite this is about
    cell = rs.Cell(state=h, input=x, params=[W], shapes={h: 2, x: 2, W: (2, 2)},
                   gates={g: rs.matvec(W, x) + h, r: sp.Abs(sp.exp(g)) + sp.im(g) + sp.conjugate(h)},
                   update=sp.tanh(r / 4))
    assert not any(e.has(sp.re, sp.im, sp.conjugate) for e in (*cell.gates.values(), *cell.update))
    assert cell.gates[r] == sp.exp(g) + h
    net = rs.unroll(cell, steps=3)
    report = rs.gradcheck(net, seed=1)
    assert report.ok, report.table()
    params, x, y = random_point(net, batch=4, seed=2)  # and the two compiled forms agree
    (la, ga), (lb, gb) = (net.compile(form=f).value_and_grad(params, x, y) for f in ("loop", "unrolled"))
    assert la == pytest.approx(lb, rel=1e-12) and all(np.allclose(ga[k], gb[k], rtol=1e-10) for k in ga)
