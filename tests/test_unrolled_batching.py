"""The unrolled form's sums over steps done in one operation (rnnsym.program.passes.join_steps): a
weight's shares from every step summed by one product, a stack's adjoint from every step's outer
product by one batched product; the numbers those of the per-step sums."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.engine.rules import Outer
from rnnsym.numeric.compiled import CompiledNetwork
from rnnsym.numeric.emit import NumPyEmitter
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric.printer import RUNTIME
from rnnsym.program import Accumulate, Role, build_program, optimise, simplify
from rnnsym.program.ir import Joined, OuterSum, OverBatch
from rnnsym.program.passes import join_steps

NETWORKS = {
    "scalar seed": lambda: rs.seed_rnn(steps=5),
    "scalar elman": lambda: rs.elman_rnn(steps=4),
    "elman": lambda: rs.elman_rnn(steps=4, input_size=2, hidden_size=3),
    "elman, every step, truncated": lambda: rs.elman_rnn(steps=5, input_size=2, hidden_size=3, outputs="all",
                                                         truncate=2),
    "lstm": lambda: rs.lstm(steps=3, input_size=2, hidden_size=2),
    "gru, softmax at every step": lambda: rs.gru(steps=3, input_size=2, hidden_size=2, outputs="all", output_size=3,
                                                 output_activation="softmax", loss="cross_entropy"),
    "bidirectional gru": lambda: rs.gru(steps=3, input_size=2, hidden_size=2, bidirectional=True,
                                                outputs="all"),
    "seq2seq, dot attention": lambda: rs.seq2seq("gru", "gru", source_steps=3, target_steps=3, input_size=2,
                                                 hidden_size=3, output_size=4, attention="dot"),
    "seq2seq, additive attention": lambda: rs.seq2seq("lstm", "elman", source_steps=3, target_steps=2, input_size=2,
                                                      hidden_size=3, output_size=4, attention="additive"),
}


def _emitted(network, join: bool):
    simplified = simplify(build_program(network), network)
    emitter = NumPyEmitter(optimise(simplified), network, simplified, join=join)
    compiled = CompiledNetwork(network, emitter.source(), RUNTIME)
    compiled.gradient_keys = emitter.gradient_keys
    return emitter, compiled


@pytest.mark.parametrize("name", NETWORKS)
def test_joining_the_steps_keeps_the_loss_and_every_gradient(name):
    net = NETWORKS[name]()
    params, x, y = random_point(net, batch=5, seed=3)
    _, per_step = _emitted(net, join=False)
    emitter, joined = _emitted(net, join=True)
    assert "join_steps" in emitter.program.passes
    value, grads = joined.value_and_grad(params, x, y)
    expected_value, expected = per_step.value_and_grad(params, x, y)
    assert value == pytest.approx(expected_value, rel=1e-13)
    for p in net.param_names:
        np.testing.assert_allclose(grads[p], expected[p], rtol=1e-11, atol=1e-14, err_msg=p)
        assert grads[p].shape == expected[p].shape


def test_a_weight_shared_by_every_step_is_summed_by_one_product():
    net = rs.elman_rnn(steps=6, input_size=2, hidden_size=3, outputs="all")
    emitter, _ = _emitted(net, join=True)
    gradient = emitter.program.gradients()["W_hh"]
    (share,) = gradient.shares
    assert isinstance(share.expr, OverBatch) and isinstance(share.expr.args[0], Outer)
    left, right = share.expr.args[0].args
    assert isinstance(left, (Joined, sp.Dummy)) and isinstance(right, (Joined, sp.Dummy))
    # No share of a weight is computed step by step any more.
    shares = [s for s in emitter.program.backward if getattr(s, "target", None) in emitter.program.values
              and emitter.program.values[s.target].role is Role.SHARE and emitter.program.values[s.target].node == "W_hh"]
    assert shares == []
    source = emitter.source()
    assert source.count(").T @ ") == len([p for p in net.param_names if p.startswith("W")])
    assert "numpy.concatenate((" in source


def test_a_joining_two_gradients_read_is_made_once_and_each_gradient_is_its_own_array():
    net = rs.gru(steps=4, input_size=2, hidden_size=3)  # b_ir and b_hr have the same shares
    params, x, y = random_point(net, batch=3, seed=0)
    emitter, compiled = _emitted(net, join=True)
    joinings = [s for s in emitter.program.backward if getattr(s, "target", None) is not None
                and emitter.program.values[s.target].name.startswith("_j")]
    assert joinings and all(isinstance(s.expr, Joined) for s in joinings)
    _, grads = compiled.value_and_grad(params, x, y)
    np.testing.assert_array_equal(grads["b_ir"], grads["b_hr"])
    assert not np.shares_memory(grads["b_ir"], grads["b_hr"])


def test_a_stacks_adjoint_from_every_step_is_one_batched_product():
    net = NETWORKS["seq2seq, dot attention"]()
    emitter, _ = _emitted(net, join=True)
    (stack,) = [s for s in emitter.program.adjoints() if s.node == "H_enc"]
    (share,) = stack.shares
    assert isinstance(share.expr, OuterSum) and len(share.expr.args[0]) == 6  # keys and values of 3 steps
    line = next(line for line in emitter.source().splitlines() if line.lstrip().startswith("d_H_enc = "))
    assert line.count("numpy.stack(") == 2 and "[..., :, None] *" not in line


def test_shares_without_the_batch_axis_are_left_as_they_are():
    net = rs.elman_rnn(steps=3, input_size=2, hidden_size=3)
    program = optimise(simplify(build_program(net), net))
    assert join_steps(program, lambda expr: (False, (3,))) is program  # a constant has no rows to join
    assert join_steps(program, lambda expr: (None, None)) is program  # nor does a value of unknown shape


def test_the_trace_of_shares_still_pairs_each_share_with_its_step():
    net = rs.elman_rnn(steps=4, input_size=2, hidden_size=3, outputs="all")
    params, x, y = random_point(net, batch=2, seed=5)
    compiled = net.compile(form="unrolled")
    _, shares = compiled.adjoints(params, x, y)
    children = [child for child, _ in shares["W_hh"]]
    assert sorted(children) == ["h2", "h3", "h4"]
    total = sum(np.asarray(value) for _, value in shares["W_hh"])
    np.testing.assert_allclose(total, compiled.value_and_grad(params, x, y)[1]["W_hh"], rtol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_array_api_backends_print_the_joinings_with_concat_and_stack(backend):
    pytest.importorskip(backend)
    if backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    net = NETWORKS["seq2seq, dot attention"]()
    params, x, y = random_point(net, batch=3, seed=2)
    compiled = net.compile(backend=backend, form="unrolled")
    assert "xp.concat((" in compiled.source and "xp.stack((" in compiled.source
    value, grads = compiled.value_and_grad(params, x, y)
    expected_value, expected = net.compile(form="unrolled").value_and_grad(params, x, y)
    assert float(value) == pytest.approx(expected_value, rel=1e-10)
    for p in net.param_names:
        np.testing.assert_allclose(np.asarray(grads[p]), expected[p], rtol=1e-9, atol=1e-12, err_msg=p)


def test_every_gradient_of_the_unrolled_program_is_one_sum_per_form():
    net = rs.lstm(steps=5, input_size=2, hidden_size=3)
    emitter, _ = _emitted(net, join=True)
    for name, gradient in emitter.program.gradients().items():
        assert isinstance(gradient, Accumulate) and len(gradient.shares) == 1, name
