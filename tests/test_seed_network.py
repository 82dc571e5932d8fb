"""The seed network's names, node expressions and local partials, and its bad-input errors."""
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.functions import sigmoid


def test_article_names_in_stable_order(seed4):
    assert seed4.param_names == ("w", "w0", "w1", "w2", "w3", "w4", "b1", "b2", "b3", "b4", "b5")
    assert seed4.params == sp.symbols("w w0 w1 w2 w3 w4 b1 b2 b3 b4 b5")
    assert seed4.inputs == sp.symbols("x1 x2 x3 x4")
    assert seed4.target == sp.Symbol("Y")
    assert seed4.output_name == "o5"


def test_shared_bias_has_one_hidden_bias():
    net = rs.seed_rnn(steps=3, shared_bias=True)
    assert net.param_names == ("w", "w0", "w1", "w2", "w3", "b", "b4")
    b, o1, o2 = sp.symbols("b o1 o2")
    assert net.node("o2") == sp.tanh(sp.Symbol("w") * sp.Symbol("x2") + sp.Symbol("w1") * o1 + b)


def test_node_expressions_are_local(seed4):
    w, w3, w4, x4, o3, o4, b4, b5, Y, o5 = sp.symbols("w w3 w4 x4 o3 o4 b4 b5 Y o5")
    assert seed4.node("o4") == sp.tanh(w * x4 + w3 * o3 + b4)
    assert seed4.node("o5") == sigmoid(w4 * o4 + b5)
    assert seed4.node("L") == -(Y * sp.log(o5) + (1 - Y) * sp.log(1 - o5))
    assert seed4.node("o0") == 0
    assert seed4.node("x2") == sp.Symbol("x2")


# (child, parent, expected local partial in node symbols), written out by hand.
o1, o3, o4, o5, Y, w, w3, w4, x4 = sp.symbols("o1 o3 o4 o5 Y w w3 w4 x4")
LOCAL_CASES = [
    ("o4", "o3", w3 * (1 - o4**2)),
    ("o4", "w3", o3 * (1 - o4**2)),
    ("o4", "w", x4 * (1 - o4**2)),
    ("o4", "b4", 1 - o4**2),
    ("o5", "o4", w4 * o5 * (1 - o5)),
    ("o5", "w4", o4 * o5 * (1 - o5)),
    ("o1", "w0", sp.Symbol("o0") * (1 - o1**2)),
    ("o4", "o2", 0),
]


@pytest.mark.parametrize("child,parent,expected", LOCAL_CASES)
def test_local_partials_in_node_symbols(seed4, child, parent, expected):
    assert sp.expand(seed4.local(child, parent) - expected) == 0


def test_local_partials_agree_with_sympy_diff(seed4):
    # Independent oracle: differentiate the node's expression directly, then compare numerically.
    for child in ("o1", "o2", "o3", "o4", "o5"):
        node = seed4.graph[child]
        for parent in seed4.graph.parents(child):
            ours = seed4.local(child, parent).xreplace({node.symbol: node.expr})
            theirs = sp.diff(node.expr.rewrite(sp.exp), seed4.graph[parent].symbol)
            point = {s: 0.1 * (i + 1) for i, s in enumerate(sorted(theirs.free_symbols | ours.free_symbols, key=str))}
            assert float((ours - theirs).subs(point).evalf()) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("loss,output_activation", [("bce", "sigmoid"), ("mse", "identity"), ("mse", "sigmoid")])
def test_every_activation_and_loss_builds_and_checks(activation, loss, output_activation):
    net = rs.seed_rnn(steps=3, activation=activation, output_activation=output_activation, loss=loss)
    report = rs.gradcheck(net, seed=3)
    assert report.ok, report.table()


@pytest.mark.parametrize("kwargs,message", [
    (dict(steps=0), "steps must be a positive integer, got 0"),
    (dict(steps=2.5), "steps must be a positive integer, got 2.5"),
    (dict(steps=True), "steps must be a positive integer, got True"),
    (dict(activation="softsign"), "unknown activation 'softsign'; allowed: tanh, sigmoid, relu, identity"),
    (dict(loss="hinge"), "unknown loss 'hinge'; allowed: bce, mse"),
    (dict(output_activation="tanh"), "loss 'bce' needs outputs in (0, 1)"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(rs.RnnsymError) as err:
        rs.seed_rnn(**kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_name_lists_the_valid_ones(seed4):
    with pytest.raises(rs.RnnsymError, match=r"unknown parameter, node or input 'w9'; parameters: w, w0, w1, w2, w3, w4, b1"):
        seed4.derive("w9")
    with pytest.raises(rs.RnnsymError, match="unknown node 'q'"):
        seed4.local("q", "o3")


SEED_SOFTMAX = ("output activation 'softmax' (--output-activation) does not apply to the seed network: its one "
                "scalar output would always be 1; softmax needs a vector network with output_size >= 2 (--net "
                "elman, lstm or gru with --output-size 2 or more); for the seed network choose tanh, sigmoid, "
                "relu, identity")


def test_softmax_on_the_seed_network_is_refused_saying_why_and_naming_the_option():
    with pytest.raises(rs.RnnsymError) as err:
        rs.seed_rnn(steps=2, output_activation="softmax", loss="cross_entropy")
    assert str(err.value) == SEED_SOFTMAX
    with pytest.raises(rs.RnnsymError, match=r"^unknown output activation 'foo'; allowed: tanh, sigmoid, relu, identity$"):
        rs.seed_rnn(steps=2, output_activation="foo")


def test_softmax_on_the_seed_network_from_the_command_line_is_one_line_exit_2():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "rnnsym", "derive", "--output-activation", "softmax"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"rnnsym: error: {SEED_SOFTMAX}\n"
