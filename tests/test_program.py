"""The one backward program: the rule table, the program built from a graph, each pass, and the
recursive view printed from the program."""
from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.engine.local import JacobianTerm
from rnnsym.engine.paths import descendants
from rnnsym.engine.rules import (RULES, Adjoint, Coupled, Diag, Outer, Summed, TermKind, TransposeTimes, elementwise,
                                 kind_of, share)
from rnnsym.functions import MatVec, relu, sigmoid
from rnnsym.numeric.emit import NumPyEmitter
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric.compiled import CompiledNetwork
from rnnsym.numeric.printer import RUNTIME, CodePrinter
from rnnsym.printing.text import TextPrinter
from rnnsym.program import Accumulate, Compute, Role, build_program
from rnnsym.program.passes import (common_subexpressions, fold_constants, fold_zeros, fuse_loss, inline_single_use,
                                   live_statements, lower_products, schedule)
from rnnsym.records import Applied, Delta, Equation, Sum, Total


# ---- the rule table: each kind's share is the transposed Jacobian applied to δ ------------------------------
def _evaluate(expr, values: dict, shapes: dict):
    """``expr`` evaluated by the compiler's printer, for one example (a batch of one row)."""
    names = {s: s.name for s in values}
    printer = CodePrinter(names, shapes, batched={s for s in values if s.name.startswith("v")})
    code = printer.doprint(elementwise(expr))
    return eval(code, {"numpy": np, **RUNTIME}, {s.name: v for s, v in values.items()})  # our own printed code


def test_every_kind_of_term_has_one_rule():
    assert set(RULES) == set(TermKind)
    assert all(rule.formula.count("+=") == 1 for rule in RULES.values())


def test_each_rule_is_the_transposed_jacobian_applied_to_the_adjoint():
    rng = np.random.default_rng(0)
    n, m = 3, 4
    f, d, v = (rng.normal(size=n), rng.normal(size=n), rng.normal(size=m))
    W = rng.normal(size=(n, m))
    F, D, V, M = sp.symbols("vf vd vv M")
    values = {F: f[None], D: d[None], V: v[None], M: W}
    shapes = {F: (n,), D: (n,), V: (m,), M: (n, m)}
    term = JacobianTerm
    # c = f ⊙ p: J = diag(f)
    got = _evaluate(share(term(F), TermKind.ELEMENTWISE, D), values, shapes)
    assert np.allclose(got[0], np.diag(f).T @ d)
    # c = f ⊙ (W·p): J = diag(f)·W
    got = _evaluate(share(term(F, matrix=M), TermKind.THROUGH_MATRIX, D), values, shapes)
    assert np.allclose(got[0], (np.diag(f) @ W).T @ d)
    # c = f ⊙ (W·v), the parent W: dW[i, j] = Σ_k δ_k ∂c_k/∂W[i, j] = δ_i f_i v_j
    got = _evaluate(share(term(F, outer=V), TermKind.WEIGHT, D), values, shapes)
    assert np.allclose(got, np.outer(f * d, v))
    # c = f · s for a scalar s: J is the column f
    got = _evaluate(share(term(F), TermKind.SUMMED, D), values, shapes)
    assert np.allclose(got, f @ d)


def test_the_softmax_coupling_is_the_softmax_jacobian():
    rng = np.random.default_rng(1)
    z, d = rng.normal(size=4), rng.normal(size=4)
    o = np.exp(z) / np.exp(z).sum()
    O, D = sp.symbols("vo vd")
    got = _evaluate(Coupled(O, D), {O: o[None], D: d[None]}, {O: (4,), D: (4,)})
    jacobian = np.diag(o) - np.outer(o, o)
    assert np.allclose(got[0], jacobian.T @ d)


def test_the_kinds_of_an_elman_step():
    net = rs.elman_rnn(steps=3, input_size=2, hidden_size=3)
    graph = net.graph

    def kinds(child, parent):
        return [kind_of(t, graph[parent].shape, graph[child].shape) for t in net.jacobian(child, parent).terms]

    assert kinds("h2", "h1") == [TermKind.THROUGH_MATRIX]
    assert kinds("h2", "W_hh") == [TermKind.WEIGHT]
    assert kinds("h2", "b_hh") == [TermKind.ELEMENTWISE]


def test_a_scalar_parameter_of_a_vector_cell_sums_its_share():
    h, x, a = sp.symbols("h x a")
    cell = rs.Cell(state=h, input=x, params=[a], update=sp.tanh(a * x + h), shapes={h: 2, x: 2})
    net = rs.unroll(cell, steps=2)
    (term,) = net.jacobian("h2", "a").terms
    assert kind_of(term, (), (2,)) is TermKind.SUMMED
    assert isinstance(share(term, TermKind.SUMMED, Adjoint("h2")), Summed)


# ---- the program: data, printed, compared ----------------------------------------------------------------------
def test_the_program_is_the_recursive_view_one_sum_per_node():
    net = rs.seed_rnn(steps=3)
    program = build_program(net)
    adjoints = {s.node: s for s in program.adjoints()}
    assert set(adjoints) == {"L", "o4", "o3", "o2", "o1"} - {"L"}
    (into_o2,) = adjoints["o2"].shares
    assert (into_o2.child, into_o2.kind) == ("o3", TermKind.ELEMENTWISE)
    gradients = program.gradients()
    assert [s.child for s in gradients["w"].shares] == ["o1", "o2", "o3"]  # one share per step that reads w, in graph order
    assert program.text() == build_program(net).text()  # built the same way twice, it reads the same
    assert "d_o2 = " in program.text() and "dL_dw = " in program.text()


def _program_view(network, program, target: str) -> list[Equation]:
    """The recursive view, printed from the program's statements (independently of the derivation)."""
    graph, loss = network.graph, network.graph.loss.name
    relevant = descendants(graph, target)
    equations = []
    for s in program.adjoints():
        if s.node in relevant and s.node != target:
            items = tuple(Applied(x.term, None if x.child == loss else x.child, x.kind, scalar=network.is_scalar)
                          for x in s.shares)
            equations.append(Equation(Delta(s.node), (items[0] if len(items) == 1 else Sum(items),)))
    final = program.gradients()[target].shares
    items = tuple(Applied(x.term, None if x.child == loss else x.child, x.kind, scalar=network.is_scalar)
                  for x in final)
    equations.append(Equation(Total(loss, target), (items[0] if len(items) == 1 else Sum(items),)))
    return equations


@pytest.mark.parametrize("build, target", [
    (lambda: rs.seed_rnn(steps=4), "w"),
    (lambda: rs.seed_rnn(steps=4), "w2"),
    (lambda: rs.elman_rnn(steps=3, input_size=2, hidden_size=2), "W_hh"),
    (lambda: rs.lstm(steps=2, input_size=2, hidden_size=2), "W_hf"),
    (lambda: rs.gru(steps=2, input_size=1, hidden_size=2, outputs="all", output_size=2, output_activation="softmax",
                    loss="cross_entropy"), "b_hn"),
])
def test_the_recursive_view_printed_from_the_program_is_the_derivations(build, target):
    net = build()
    printer = TextPrinter()
    derived = [printer.doprint(eq) for eq in net.derive(target).full().recursive]
    printed = [printer.doprint(eq) for eq in _program_view(net, build_program(net), target)]
    assert printed == derived


# ---- each pass keeps every gradient, and does its own job ------------------------------------------------------
NETWORKS = {
    "seed": lambda: rs.seed_rnn(steps=4),
    "elman": lambda: rs.elman_rnn(steps=3, input_size=2, hidden_size=3),
    "lstm": lambda: rs.lstm(steps=3, input_size=2, hidden_size=2),
    "gru-softmax-all": lambda: rs.gru(steps=3, input_size=2, hidden_size=2, outputs="all", output_size=3,
                                      output_activation="softmax", loss="cross_entropy"),
}
PIPELINE = [("fuse_loss", None), ("fold_constants", fold_constants), ("schedule", schedule),
            ("lower_products", lower_products), ("common_subexpressions", common_subexpressions),
            ("inline_single_use", inline_single_use)]


def _gradients(network, program, params, x, y):
    emitter = NumPyEmitter(program, network)
    compiled = CompiledNetwork(network, emitter.source(), RUNTIME)
    compiled.gradient_keys = emitter.gradient_keys
    return compiled.value_and_grad(params, x, y)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("truncate", [None, 2])
def test_every_pass_keeps_the_loss_and_every_gradient(name, truncate):
    net = NETWORKS[name]()
    params, x, y = random_point(net, batch=3, seed=4)
    program = build_program(net, truncate)
    reference = _gradients(net, program, params, x, y)  # the plain program: no pass at all
    expected = net.compile(truncate=truncate, form="unrolled").value_and_grad(params, x, y)
    for pass_name, apply in PIPELINE:
        program = fuse_loss(program, net) if apply is None else apply(program)
        assert program.passes[-1] == pass_name
        value, grads = _gradients(net, program, params, x, y)
        assert value == pytest.approx(reference[0], rel=1e-12)
        for p in net.param_names:
            np.testing.assert_allclose(grads[p], reference[1][p], rtol=1e-9, atol=1e-13, err_msg=f"{pass_name}: {p}")
            np.testing.assert_allclose(grads[p], expected[1][p], rtol=1e-9, atol=1e-13)


def test_fusing_leaves_no_adjoint_of_an_output_or_a_loss_term():
    net = NETWORKS["gru-softmax-all"]()
    fused = fuse_loss(build_program(net), net)
    kinds = {net.graph[s.node].kind for s in fused.adjoints()}
    assert kinds == {"hidden"}
    seed = next(x for s in fused.backward if isinstance(s, Accumulate) for x in s.shares if x.child == "y3")
    assert not seed.expr.has(Coupled)  # softmax with cross-entropy: o − Y, no coupling left
    assert (net.graph["y3"].symbol - net.graph["Y3"].symbol) in elementwise(seed.expr).atoms(sp.Add)


def test_folding_writes_the_zero_initial_state_in_and_drops_what_it_zeroes():
    net = rs.seed_rnn(steps=3)
    folded = fold_constants(fuse_loss(build_program(net), net))
    o1 = next(s for s in folded.forward if isinstance(s, Compute) and s.target == net.graph["o1"].symbol)
    assert net.graph["o0"].symbol not in o1.expr.free_symbols
    assert folded.gradients()["w0"] is None  # ∂o1/∂w0 = o0·(…) = 0: nothing reaches w0


def test_fold_zeros_zeroes_every_operation_of_a_zero():
    W, f, v = sp.symbols("W f v")
    assert fold_zeros(TransposeTimes(W, Diag(f, sp.S.Zero))) == 0
    assert fold_zeros(Outer(Diag(f, Adjoint("h")), sp.S.Zero)) == 0
    assert fold_zeros(sp.tanh(MatVec(W, sp.S.Zero) + f)) == sp.tanh(f)
    assert fold_zeros(Summed(Diag(f, Adjoint("h")))) == Summed(Diag(f, Adjoint("h")))


def test_scheduling_computes_each_share_after_its_adjoint_and_before_its_sum():
    net = NETWORKS["lstm"]()
    program = schedule(fold_constants(fuse_loss(build_program(net), net)))
    defined = {program.scale} | {s.symbol for s in program.values.values() if s.role is not Role.ADJOINT
                                 and s.role is not Role.SHARE and s.role is not Role.GRADIENT}
    for s in program.backward:
        reads = s.expr.free_symbols if isinstance(s, Compute) else {x.expr for x in s.shares}
        assert reads <= defined, s
        defined.add(s.target)


def test_common_subexpressions_compute_each_nodes_local_delta_once():
    net = NETWORKS["elman"]()
    program = common_subexpressions(lower_products(schedule(fold_constants(fuse_loss(build_program(net), net)))))
    h2, d_h2 = net.graph["h2"].symbol, next(s.target for s in program.adjoints() if s.node == "h2")
    local_delta = d_h2 * (1 - h2**2)
    holders = [s for s in program.backward if isinstance(s, Compute) and s.expr == local_delta]
    assert len(holders) == 1 and program.values[holders[0].target].role is Role.TEMP
    others = [s for s in program.backward if isinstance(s, Compute) and s is not holders[0]]
    assert not any(s.expr.has(local_delta) for s in others)


def test_a_share_read_once_is_written_into_its_sum():
    net = NETWORKS["seed"]()
    program = inline_single_use(common_subexpressions(lower_products(schedule(
        fold_constants(fuse_loss(build_program(net), net))))))
    shares = [s for s in program.backward if isinstance(s, Compute) and program.values[s.target].role is Role.SHARE]
    # Only the shared input weight w keeps its shares apart, one per step, computed where its step is.
    assert {program.values[s.target].node for s in shares} == {"w"} and len(shares) == 4
    order = [program.values[s.target].node for s in program.backward]
    assert order.index("w3") < order.index("o2")  # a one-share gradient is summed where its share was
    assert order[-1] == "w"


def test_live_statements_keep_only_what_is_read():
    net = rs.seed_rnn(steps=3)
    program = build_program(net)
    needed = {net.graph["o2"].symbol}
    kept = {program.values[s.target].node for s in live_statements(program.forward, needed)}
    assert kept == {"x1", "x2", "o0", "o1", "o2"}


# ---- the source a reader recognises ---------------------------------------------------------------------------------
def test_generated_code_uses_the_derivations_names_and_returns_gradients_by_name():
    source = rs.lstm(steps=3, input_size=2, hidden_size=2).compile(form="unrolled").source
    assert "d_h2 = " in source and "d_c2 = " in source  # δh₂, δc₂
    assert "dL_dW_hf = " in source and "'dL_dW_hf': dL_dW_hf" in source
    assert "g_" not in source


def test_the_unrolled_seed_network_at_fifty_steps_is_short():
    source = rs.seed_rnn(steps=50).compile(form="unrolled").source
    assert len(source.splitlines()) < 400
    assert source.count("_tanh(") == 50  # the forward pass is written once


# ---- the loop form: the step's program, lowered into a loop ------------------------------------------------------
def _loop_writer(network):
    from rnnsym.numeric.loop import _LoopWriter

    writer = _LoopWriter(network, None)
    writer.generated = writer.source()
    return writer


@pytest.mark.parametrize("build", [lambda: rs.lstm(steps=4, input_size=2, hidden_size=2),
                                   lambda: rs.gru(steps=4, input_size=2, hidden_size=2)])
def test_the_loop_forms_step_program_is_a_step_of_the_unrolled_program(build):
    net = build()
    step = _loop_writer(net).back.step_program
    unrolled = {s.node: s for s in build_program(net).backward if isinstance(s, Accumulate)}
    graph = net.graph
    for s in step.backward:
        node = graph[s.node]
        if node.kind != "hidden" or node.step != 1 or s.node not in {n for n in graph.nodes if graph[n].step == 1}:
            continue
        middle = unrolled[f"{node.base}2"]  # the same node two steps before the last: every child inside the step
        within = {(graph[x.child].base, x.kind) for x in middle.shares if graph[x.child].step == 2}
        assert {(graph[x.child].base, x.kind) for x in s.shares} == within, s.node


def test_the_loop_body_loads_only_what_it_reads_and_folds_its_indices(monkeypatch):
    # The loop's body as Python (the step loop, rnnsym.numeric.step_loop, reads these lines back into C).
    monkeypatch.setattr("rnnsym.numeric.lines.loop_lines", lambda *args: None)
    source = rs.lstm(steps=5, input_size=2, hidden_size=3).compile(form="loop").source
    backward_loop = source.split("for t in range(4, -1, -1):")[1]
    assert "= x[:, t" not in backward_loop  # the gate block's input products are all after the loop
    assert "n_h0 = " not in source.split("for t in range(5):")[1].split("\n    n_")[0]  # the block reads h from S_XH
    assert "+ 1]" not in source.replace("[t + 1]", "")  # S_n_h1[4 + 1] is S_n_h1[5]


def test_two_weights_on_one_input_keep_their_own_batch_sums_in_the_loop_form():
    """Found by the random-cell fuzzer: W1·x and W2·x have the same share, and the common
    subexpression was the weight's already batch-summed outer product, stored per example and
    summed over the batch a second time (the gradient came out batch-size times too large)."""
    h, x, a, W1, W2 = sp.symbols("h x a W1 W2")
    cell = rs.Cell(state=h, input=x, params=[a, W1, W2], update=a * rs.matvec(W1, x) + a * rs.matvec(W2, x),
                   shapes={h: 2, x: 2, W1: (2, 2), W2: (2, 2)})
    net = rs.unroll(cell, steps=2, outputs="all", loss="mse", output_activation="relu", output_size=2)
    params, X, Y = random_point(net, batch=3, seed=2)
    compiled = net.compile(form="loop")
    _, grads = compiled.value_and_grad(params, X, Y)
    for name in ("W1", "W2"):
        numeric = np.zeros_like(params[name])
        for index in np.ndindex(params[name].shape):
            shifted = [{**params, name: params[name].copy()} for _ in range(2)]
            shifted[0][name][index] += 1e-6
            shifted[1][name][index] -= 1e-6
            numeric[index] = (compiled.loss(shifted[0], X, Y) - compiled.loss(shifted[1], X, Y)) / 2e-6
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-9)


def test_every_value_of_a_program_has_its_own_identifier():
    # A cell whose node and parameter names look like the compiler's own (d_…, dL_d…, _t0, n_…).
    h, x, u, d_h, dL_dh = sp.symbols("h x u d_h dL_dh")
    cell = rs.Cell(state=h, input=x, params=[u, d_h, dL_dh], update=sp.tanh(u * x + d_h * h + dL_dh))
    for truncate in (None, 1):
        program = build_program(rs.unroll(cell, steps=3, outputs="all"), truncate)
        names = [v.name for v in program.values.values()]
        assert len(names) == len(set(names))
        assert all(n.isidentifier() for n in names)


def test_the_namer_never_gives_one_identifier_twice():
    from rnnsym.program.build import RESERVED, Namer

    namer = Namer(rs.seed_rnn(steps=2).graph)
    given = [namer("d_o1"), namer("d_o1"), namer("d_o1_2"), namer("numpy"), namer("x")]
    assert given == ["d_o1", "d_o1_2", "d_o1_2_2", "numpy_2", "x_2"]
    assert not set(given) & RESERVED


@pytest.mark.parametrize("outputs", ["last", "all"])
def test_two_states_each_with_a_stack_of_weights_get_their_own_buffers(outputs):
    """Found in review: h and c each multiplied by two weights make two stacks whose shares are the
    same values; the second stack's buffer took them from the first, which was never written (its
    product read leftover memory) and the weights' gradients were counted once per stack."""
    h, c, x, A, B, C, D, V = sp.symbols("h c x A B C D V")
    cell = rs.Cell(state=(h, c), input=x, params=[A, B, C, D, V],
                   update=(sp.tanh(rs.matvec(A, h) + rs.matvec(B, c) + V * x), sp.tanh(rs.matvec(C, h) + rs.matvec(D, c))),
                   shapes={h: 2, c: 2, A: (2, 2), B: (2, 2), C: (2, 2), D: (2, 2), V: 2})
    net = rs.unroll(cell, steps=3, outputs=outputs)
    params, X, Y = random_point(net, batch=3, seed=0)
    compiled = net.compile(form="loop")
    _, grads = compiled.value_and_grad(params, X, Y)
    for name in net.param_names:
        numeric = np.zeros_like(params[name], dtype=float)
        for index in np.ndindex(np.shape(params[name])):
            up, down = ({**params, name: np.array(params[name], dtype=float)} for _ in range(2))
            up[name][index] += 1e-6
            down[name][index] -= 1e-6
            numeric[index] = (compiled.loss(up, X, Y) - compiled.loss(down, X, Y)) / 2e-6
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


# ---- the loop form's forward step: passes over it ------------------------------------------------------------------
def _step_of(network):
    from rnnsym.program.step import StepForward

    graph, rec = network.graph, network.recurrence
    nodes = tuple(n for n, node in graph.nodes.items() if node.kind == "hidden" and node.step == 1)
    counter = iter(range(100))
    new_symbol = lambda name, info: sp.Dummy(f"{name}_{next(counter)}")  # noqa: E731
    return graph, rec, StepForward(nodes, {n: graph[n].expr for n in nodes}), new_symbol


def test_hoisting_takes_the_input_product_and_biases_out_of_the_step():
    from rnnsym.program.step import AtStep, hoist_time_parallel

    net = rs.elman_rnn(steps=3, input_size=2, hidden_size=3)
    graph, rec, step, new_symbol = _step_of(net)
    x = graph["x1"].symbol
    params = {graph[p].symbol for p in net.param_names}
    hoisted = hoist_time_parallel(step, {x} | params, x, new_symbol, {n: graph[n].shape for n in step.nodes})
    ((P, value, shape),) = hoisted.hoisted
    W_ih, b_ih, b_hh = (graph[n].symbol for n in ("W_ih", "b_ih", "b_hh"))
    assert value == MatVec(W_ih, x) + b_ih + b_hh and shape == (3,)
    assert hoisted.exprs["h1"] == sp.tanh(AtStep(P) + MatVec(graph["W_hh"].symbol, graph["h0"].symbol))
    assert hoisted.passes == ("hoist_time_parallel",)


def test_stacking_puts_the_lstm_recurrent_weights_in_one_product():
    from rnnsym.program.step import Columns, stack_weights

    net = rs.lstm(steps=2, input_size=2, hidden_size=3)
    graph, rec, step, new_symbol = _step_of(net)
    stacked = stack_weights(step, {graph["h0"].symbol, graph["c0"].symbol}, lambda m: graph[m.name].shape[0], new_symbol)
    (stack,) = stacked.stacks
    assert [m.name for m in stack.weights] == ["W_hi", "W_hf", "W_hg", "W_ho"]
    assert stack.bounds[graph["W_hg"].symbol] == (6, 9)
    assert Columns(stack.product, 3, 6) in stacked.exprs["f1"].atoms(Columns)
    assert not any(isinstance(a, MatVec) and a.args[1] == graph["h0"].symbol
                   for e in stacked.exprs.values() for a in e.atoms(MatVec))


def test_the_lstm_keeps_tanh_of_its_cell_state_for_the_backward_pass():
    from rnnsym.program.step import keep_functions, with_kept

    net = rs.lstm(steps=2, input_size=2, hidden_size=3)
    graph, rec, step, new_symbol = _step_of(net)
    nodes = {graph[n].symbol for n in (*step.nodes, "h0", "c0")}
    kept = keep_functions(step, nodes, new_symbol, lambda f: (3,))
    (function,) = kept.kept
    assert function == sp.tanh(graph["c1"].symbol)
    assert not with_kept(graph["h1"].expr, kept.kept).has(sp.tanh)


@pytest.mark.parametrize("build, found", [(lambda: rs.lstm(steps=2, input_size=2, hidden_size=3), True),
                                          (lambda: rs.gru(steps=2, input_size=2, hidden_size=3), False),
                                          (lambda: rs.elman_rnn(steps=2, input_size=2, hidden_size=3), False)])
def test_the_gate_block_is_found_in_the_lstm_form_only(build, found):
    from rnnsym.program.step import find_gate_block, hoist_time_parallel, stack_weights

    net = build()
    graph, rec, step, new_symbol = _step_of(net)
    x = graph["x1"].symbol
    params = {graph[p].symbol for p in net.param_names}
    step = hoist_time_parallel(step, {x} | params, x, new_symbol, {n: graph[n].shape for n in step.nodes})
    prev = {graph[rec.name(s, 0)].symbol for s in rec.states}
    step = stack_weights(step, prev, lambda m: graph[m.name].shape[0], new_symbol)
    new_states = {rec.name(s, 1) for s in rec.states}
    block = find_gate_block(step, x, params, new_states, lambda name: graph[name].shape).block
    assert (block is not None) == found
    if found:  # i, f, g, o: each gate's own input weight, its biases, its columns of the one product
        assert [g.node for g in block.gates.values()] == ["i1", "f1", "g1", "o1"]
        assert [g.x_weight.name for g in block.gates.values()] == ["W_ii", "W_if", "W_ig", "W_io"]
        assert block.width == 12 and block.columns == (2, 3)


@pytest.mark.parametrize("build, merged", [(lambda: rs.gru(steps=2, input_size=2, hidden_size=3), ["W_ir", "W_iz", "W_in"]),
                                           (lambda: rs.lstm(steps=2, input_size=2, hidden_size=3), None),
                                           (lambda: rs.elman_rnn(steps=2, input_size=2, hidden_size=3), None)])
def test_the_input_products_of_several_weights_become_one(build, merged):
    from rnnsym.program.step import (Columns, find_gate_block, hoist_time_parallel, merge_input_products,
                                     stack_weights)

    net = build()
    graph, rec, step, new_symbol = _step_of(net)
    x = graph["x1"].symbol
    params = {graph[p].symbol for p in net.param_names}
    step = hoist_time_parallel(step, {x} | params, x, new_symbol, {n: graph[n].shape for n in step.nodes})
    step = stack_weights(step, {graph[rec.name(s, 0)].symbol for s in rec.states}, lambda m: graph[m.name].shape[0],
                         new_symbol)
    step = find_gate_block(step, x, params, {rec.name(s, 1) for s in rec.states}, lambda name: graph[name].shape)
    step = merge_input_products(step, x, lambda m: graph[m.name].shape[0], new_symbol)
    if merged is None:  # an LSTM's input weights go to its gate block; Elman has one input weight
        assert step.inputs is None
        return
    assert [m.name for m in step.inputs.weights] == merged
    assert step.inputs.bounds[graph["W_in"].symbol] == (6, 9)
    sums = [value for _, value, _ in step.hoisted]
    assert not any(isinstance(a, MatVec) and a.args[1] == x for v in sums for a in v.atoms(MatVec))
    assert all(v.atoms(Columns) for v in sums)


def test_each_step_node_is_written_into_its_storage_without_a_temporary_where_it_can_be():
    from rnnsym.program.step import StepForward, Write, place_writes

    h, x, a, b = sp.symbols("h x a b")
    nodes = ("g1", "s1", "m1", "r1", "c1", "k1")
    exprs = {"g1": sp.tanh(h + x), "s1": sigmoid(a * h), "m1": a * h * x, "r1": relu(h),
             "c1": sigmoid(b), "k1": h + x}
    step = StepForward(nodes, exprs)
    per_example = lambda value, name: bool(value.free_symbols & {h, x})  # noqa: E731
    writes = place_writes(step, per_example, {sp.tanh, sigmoid}).writes
    assert writes == {"g1": Write.ADD_IN_PLACE, "s1": Write.CALL_INTO, "m1": Write.LAST_OP_INTO,
                      "r1": Write.COPY, "c1": Write.BROADCAST, "k1": Write.LAST_OP_INTO}


def test_the_lstm_gates_run_their_activations_in_place_in_the_gate_block():
    from rnnsym.program.step import Write

    writer = _loop_writer(rs.lstm(steps=3, input_size=2, hidden_size=3))
    writes = writer.forward_program.writes
    assert {n: writes[n] for n in ("i1", "f1", "g1", "o1")} == dict.fromkeys(("i1", "f1", "g1", "o1"), Write.IN_PLACE)
    assert writes["c1"] is Write.LAST_OP_INTO and writes["h1"] is Write.LAST_OP_INTO
    assert "_sigmoid_(S_n_i1[t])" in writer.generated


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.lists(st.tuples(st.sampled_from([(2,), (3,), (2, 2)]), st.integers(0, 4), st.integers(0, 4)),
                           max_size=12))
def test_buffers_share_memory_only_when_their_lifetimes_do_not_meet_and_as_few_as_can_be(drawn):
    from rnnsym.program.memory import Buffer, Phase, share_memory

    buffers = [Buffer(f"b{i}", shape, Phase(min(a, b)), Phase(max(a, b))) for i, (shape, a, b) in enumerate(drawn)]
    memory = share_memory(buffers)
    assert set(memory) == {b.name for b in buffers}
    for one in buffers:
        for other in buffers:
            if one is not other and memory[one.name] == memory[other.name]:
                assert one.shape == other.shape
                assert one.last < other.first or other.last < one.first
    # Lifetimes are intervals: the fewest memories a shape needs is the most of its buffers alive at once.
    for shape in {b.shape for b in buffers}:
        tenants = [b for b in buffers if b.shape == shape]
        most_alive = max(sum(b.first <= phase <= b.last for b in tenants) for phase in Phase)
        assert len({memory[b.name] for b in tenants}) == most_alive


def test_a_share_buffer_takes_the_memory_of_the_input_product_the_forward_loop_has_read():
    source = _loop_writer(rs.gru(steps=4, input_size=2, hidden_size=3)).generated
    assert "'_Q'" in source.split("for t in range(4):")[0]  # the GRU's merged input product
    assert "# _Q's memory" in source.split("for t in range(3, -1, -1):")[0]
