"""Worked examples (``d.with_numbers``, ``rnnsym derive --numbers``): every number checked against
an independent computation written here — a forward pass by hand in NumPy, local factors from
SymPy's diff, the gradient from SymPy's diff of the nested loss and from the compiled code."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnsym as rs
from rnnsym.cli.main import main
from rnnsym.errors import RnnsymError

# The article's kind of point: round numbers a learner can follow by hand.
PARAMS = {"w": 0.5, "w0": 0.0, "w1": 0.4, "w2": 0.3, "w3": 0.2, "w4": 0.7,
          "b1": 0.1, "b2": 0.1, "b3": 0.1, "b4": 0.1, "b5": 0.1}
X = [0.3, -0.1, 0.2, 0.5]
Y = 1.0


def by_hand(params, x, y):
    """The seed network (tanh layers, sigmoid output, binary cross-entropy), one example, by hand."""
    o = [0.0]
    for t in range(1, len(x) + 1):
        o.append(np.tanh(params[f"w{t - 1}"] * o[-1] + params["w"] * x[t - 1] + params[f"b{t}"]))
    T = len(x)
    out = 1 / (1 + np.exp(-(params[f"w{T}"] * o[-1] + params[f"b{T + 1}"])))
    loss = -y * np.log(out) - (1 - y) * np.log(1 - out)
    return {**{f"o{t}": o[t] for t in range(1, T + 1)}, f"o{T + 1}": out, "L": loss}


@pytest.fixture(scope="module")
def seed_net():
    return rs.seed_rnn(steps=4)


@pytest.fixture(scope="module")
def worked_w(seed_net):
    return seed_net.derive("w").with_numbers(PARAMS, X, Y)


def test_the_forward_pass_equals_a_forward_pass_by_hand(worked_w):
    hand = by_hand(PARAMS, X, Y)
    assert set(worked_w.numbers["forward"]) == set(hand)
    for name, value in hand.items():
        assert worked_w.numbers["forward"][name] == pytest.approx(value, rel=1e-12), name


def test_every_local_factor_equals_sympys_diff_at_the_point(seed_net, worked_w):
    graph = seed_net.graph
    hand = by_hand(PARAMS, X, Y)
    at = {graph[n].symbol: v for n, v in {**PARAMS, **{f"x{t}": X[t - 1] for t in range(1, 5)}, "Y": Y, "o0": 0.0,
                                          **hand}.items()}
    factors = worked_w.numbers["local_factors"]
    assert len(factors) == 9  # the four paths of w share the first two factors
    for f in factors:
        expected = float(sp.diff(graph[f["of"]].expr, graph[f["wrt"]].symbol).xreplace(at))
        assert f["value"] == pytest.approx(expected, rel=1e-10), f["factor"]


def test_the_gradient_is_the_sum_of_the_path_terms_and_equals_compiled_and_sympy_diff_of_the_nested_loss(seed_net,
                                                                                                           worked_w):
    numbers = worked_w.numbers
    terms = [t["value"] for t in numbers["path_terms"]]
    assert len(terms) == 4 and numbers["gradient"] == pytest.approx(sum(terms), rel=1e-14)
    # each path term is the product of its factors
    factor = {(f["of"], f["wrt"]): f["value"] for f in numbers["local_factors"]}
    for t in numbers["path_terms"]:
        assert t["value"] == pytest.approx(np.prod([factor[e] for e in zip(t["path"], t["path"][1:])]), rel=1e-14)
    graph = seed_net.graph
    nested = seed_net.expansions[graph["L"].symbol]
    point = {graph[n].symbol: v for n, v in {**PARAMS, **{f"x{t}": X[t - 1] for t in range(1, 5)}, "Y": Y}.items()}
    symbolic = float(sp.diff(nested, graph["w"].symbol).xreplace(point).evalf(30))
    _, grads = seed_net.compile().value_and_grad(PARAMS, np.array([X]), np.array([Y]))
    assert numbers["gradient"] == pytest.approx(symbolic, rel=1e-10)
    assert numbers["gradient"] == pytest.approx(float(grads["w"]), rel=1e-12)
    assert numbers["check"]["finite_difference"] == pytest.approx(symbolic, rel=1e-7)
    assert numbers["check"]["rel_error"] < 1e-6


def test_one_update_moves_the_weight_against_the_gradient_with_the_given_eta(seed_net):
    worked = seed_net.derive("w3").with_numbers(PARAMS, X, Y, eta=0.5)
    update = worked.numbers["update"]
    assert update["new"] == pytest.approx(0.2 - 0.5 * worked.gradient, rel=1e-14)
    assert update["loss_after"] < update["loss_before"]
    assert "One gradient-descent step (η = 0.5)" in worked.text()


def test_text_shows_each_node_symbolic_substituted_and_valued(worked_w):
    text = worked_w.text()
    assert "o₁ = tanh(b₁ + o₀·w₀ + w·x₁) = tanh(0.1 + 0·0 + 0.5·0.3) = tanh(0.25) = 0.2449" in text
    assert "o₂ = tanh(b₂ + o₁·w₁ + w·x₂) = tanh(0.1 + 0.2449·0.4 + 0.5·(−0.1)) = tanh(0.148) = 0.1469" in text
    assert "∂o₄/∂w = x₄·(1 − o₄²) = 0.5·(1 − 0.3781²) = 0.4285" in text
    assert "The gradient: the sum of the path terms" in text and "Finite-difference check" in text
    assert "w ← w − η·dL/dw" in text and "every number as given" in text


def test_every_format_renders_the_numbers(worked_w):
    latex = worked_w.latex()
    assert r"\tanh{\left(0.1 + 0 \cdot 0 + 0.5 \cdot 0.3 \right)}" in latex and "0.2449" in latex
    mathml = worked_w.mathml()
    ET.fromstring(mathml)  # well-formed, no LaTeX left (the printer checks)
    assert "<mn>0.2449</mn>" in mathml
    markdown = worked_w.markdown()
    assert "$$" in markdown and "0.2449" in markdown and "Worked example" in markdown
    assert "0.2449" in worked_w._repr_html_() and "0.2449" in worked_w._repr_latex_()
    data = json.loads(json.dumps(worked_w.to_dict(), allow_nan=False))
    assert data["numbers"]["forward"]["o1"] == pytest.approx(np.tanh(0.25), rel=1e-15)  # exact, not 0.2449
    assert any("0.2449" in eq["text"] for step in data["steps"] for eq in step["equations"])


def test_a_small_vector_network_shows_its_vectors_and_matrices():
    net = rs.elman_rnn(steps=2, hidden_size=2)
    worked = net.derive("W_hh").with_numbers(seed=1)
    text, latex = worked.text(), worked.latex()
    h1 = worked.numbers["forward"]["h1"]
    assert len(h1) == 2 and f"h₁ = tanh(" in text
    shown = f"[{h1[0]:.4g}, {h1[1]:.4g}]ᵀ".replace("-", "−")
    assert shown in text and r"\begin{bmatrix}" in latex
    _, grads = net.compile().value_and_grad(*_point(worked))
    assert np.allclose(worked.gradient, grads["W_hh"], rtol=1e-12)
    assert worked.numbers["check"]["rel_error"] < 1e-6 and "norm" not in text
    ET.fromstring(worked.mathml())


def test_a_large_vector_network_shows_norms_and_says_so():
    worked = rs.elman_rnn(steps=2, hidden_size=6, input_size=5).derive("W_hh").with_numbers()
    text = worked.text()
    norm = np.linalg.norm(worked.gradient)
    assert f"[6×6 matrix, norm {norm:.4g}]" in text
    assert "by its size and norm" in text and "along the gradient's direction" in text
    assert worked.numbers["check"]["rel_error"] < 1e-6


def _point(worked):
    point = worked.numbers["point"]
    params = {n: np.array(v) for n, v in point.items() if n not in ("x", "y")}
    return params, np.array([point["x"]]), np.array([point["y"]])


@settings(max_examples=12, deadline=None)
@given(st.lists(st.floats(-1.5, 1.5), min_size=11, max_size=11), st.lists(st.floats(-2, 2), min_size=3, max_size=3),
       st.sampled_from([0.0, 1.0]))
def test_at_random_points_the_worked_gradient_is_the_compiled_one(values, x, y):
    net = _seed3()
    params = dict(zip(net.param_names, values))
    for name in ("w", "w1"):
        worked = net.derive(name).with_numbers(params, x, y)
        _, grads = net.compile().value_and_grad(params, np.array([x]), np.array([y]))
        assert worked.gradient == pytest.approx(float(grads[name]), rel=1e-9, abs=1e-13)
        assert worked.gradient == pytest.approx(sum(t["value"] for t in worked.numbers["path_terms"]), rel=1e-12,
                                                abs=1e-15)


_SEED3 = []


def _seed3():
    if not _SEED3:
        _SEED3.append(rs.seed_rnn(steps=3))
    return _SEED3[0]


@pytest.mark.parametrize("params, x, y, message", [
    ({**PARAMS, "w9": 1.0}, X, Y, "params: unknown w9"),
    ({**PARAMS, "w": [1.0, 2.0]}, X, Y, "parameter 'w' must be a scalar, got shape"),
    ({**PARAMS, "w": "abc"}, X, Y, "parameter 'w' must be numeric"),
    ({**PARAMS, "w": float("nan")}, X, Y, "parameter 'w' contains NaN"),
    (PARAMS, X[:3], Y, "x must hold one example: 4 numbers, one per step; got shape"),
    (PARAMS, X, float("inf"), "y contains NaN or infinite values"),
])
def test_a_bad_point_is_one_line(seed_net, params, x, y, message):
    with pytest.raises(RnnsymError, match=message.replace("(", r"\(")) as info:
        seed_net.derive("w3").with_numbers(params, x, y)
    assert "\n" not in str(info.value)


# ---- the command line -----------------------------------------------------------------------------
def derive(*args):
    return CliRunner().invoke(main, ["derive", *args], catch_exceptions=False)


def test_cli_numbers_at_a_given_point(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(PARAMS))
    run = derive("w", "--numbers", "--params", str(tmp_path / "p.json"), "--x", "0.3,-0.1,0.2,0.5", "--y", "1")
    assert run.exit_code == 0, run.output
    assert "tanh(0.1 + 0·0 + 0.5·0.3) = tanh(0.25) = 0.2449" in run.stdout and "every number as given" in run.stdout
    run = derive("w", "--numbers", "--params", str(tmp_path / "p.json"), "--x", "0.3,-0.1,0.2,0.5", "--y", "1",
                 "--format", "json")
    data = json.loads(run.stdout)
    assert data["derivations"][0]["numbers"]["forward"]["o1"] == pytest.approx(np.tanh(0.25))


def test_cli_numbers_at_a_seeded_random_point_says_the_seed():
    run = derive("w3", "--numbers", "--seed", "5")
    assert run.exit_code == 0 and "drawn at random (seed 5)" in run.stdout
    assert run.stdout == derive("w3", "--numbers", "--seed", "5").stdout  # the same seed, the same example
    assert "drawn at random (seed 0)" in derive("w3", "--numbers").stdout
    for fmt in ("latex", "mathml", "markdown"):
        assert derive("w3", "--numbers", "--format", fmt).exit_code == 0


@pytest.mark.parametrize("content, args, message", [
    (json.dumps({**PARAMS, "zz": 1}), [], "params: unknown zz"),
    (json.dumps({**PARAMS, "w3": [[1, 2]]}), [], "parameter 'w3' must be a scalar"),
    (json.dumps({**PARAMS, "w3": "a"}), [], "parameter 'w3' in '.*' must be a number or a nested list"),
    ('{"w": NaN}', [], "holds NaN; only finite numbers"),
    ("[1, 2]", [], "must hold a JSON object"),
    ("{not json", [], "is not JSON"),
    (json.dumps(PARAMS), ["--x", "1,a,2,3"], "'a' is not a number"),
    (json.dumps(PARAMS), ["--x", "1,2"], "x must hold one example: 4 numbers"),
    (json.dumps(PARAMS), ["--y", "nan"], "only finite numbers"),
])
def test_cli_bad_point_is_one_line_with_exit_2(tmp_path, content, args, message):
    (tmp_path / "p.json").write_text(content)
    run = derive("w3", "--numbers", "--params", str(tmp_path / "p.json"), *args)
    assert run.exit_code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnsym: error: ")
    import re
    assert re.search(message, lines[0]), lines[0]


def test_cli_refuses_comma_x_for_vector_inputs_and_point_options_without_numbers():
    run = derive("W_hh", "--net", "elman", "--hidden-size", "2", "--input-size", "3", "--numbers", "--x", "1,2")
    assert run.exit_code == 2 and "give --x FILE.json holding 4 rows of 3 numbers" in run.stderr
    run = derive("w3", "--seed", "3")
    assert run.exit_code == 2 and "--seed goes with --numbers" in run.stderr
    run = derive("w3", "--numbers", "--params", "/nonexistent/p.json")
    assert run.exit_code == 2 and "cannot read the --params file" in run.stderr


def test_cli_numbers_contract_in_a_fresh_process(tmp_path):
    (tmp_path / "p.json").write_text('{"w": Infinity}')
    run = subprocess.run([sys.executable, "-m", "rnnsym", "derive", "w3", "--numbers", "--params",
                          str(tmp_path / "p.json")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "holds Infinity" in run.stderr


def test_the_docs_page_of_each_parameter_has_a_worked_example(tmp_path):
    from rnnsym.docs import build

    site = build(rs.seed_rnn(steps=2), tmp_path / "site", check=False)
    page = (site / "w1.html").read_text()
    assert "<h2>Worked example with numbers</h2>" in page and "Finite-difference check" in page
    assert page.count('<li class="step worked">') == len(rs.seed_rnn(steps=2).derive("w1").with_numbers().steps)
