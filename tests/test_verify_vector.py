"""rnnsym verify for vector networks: δ equations and weight gradients in rnnsym's matrix notation,
checked against the compiled code's adjoints and diagnosed in the derivation's terms."""
import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnsym as rs
from rnnsym.cli.main import main
from rnnsym.errors import RnnsymError
from rnnsym.learn import parse
from rnnsym.learn.parse import parse_matrix_formula

ELMAN = rs.elman_rnn(steps=3, input_size=2, hidden_size=2)
ELMAN_ALL = rs.elman_rnn(steps=3, input_size=2, hidden_size=2, outputs="all")  # an output at every step
LSTM = rs.lstm(steps=2, input_size=2, hidden_size=2)
GRU = rs.gru(steps=2, input_size=2, hidden_size=2)


# ---- right equations are accepted -----------------------------------------------------------------
@pytest.mark.parametrize("net, text", [
    (ELMAN, "δh2 = W_hh^T diag(1 - h3^2) δh3"),
    (ELMAN, "δh₂ = W_hhᵀ·diag(1 − h₃²)·δh₃"),
    (ELMAN, "delta_h2 = W_hh.T @ diag(1 - h3**2) @ delta_h3"),
    (ELMAN, "δh2 = W_hh^T ((1 - h3^2) ⊙ δh3)"),
    (ELMAN, "δh2 = W_hh^T hadamard(1 - h3^2, δh3)"),
    (ELMAN, "δh3 = W_hy^T diag(y (1 - y)) δy"),
    (ELMAN, r"\delta h_2 = W_{hh}^\top \operatorname{diag}(1 - h_3^2) \delta h_3"),
    (ELMAN, r"\delta_{h_2} = W_{hh}^{\top} \left((1 - h_3^2) \odot \delta h_3\right)"),
    (ELMAN, "dL/dW_hh = Σ_t diag(1 − h_t²)·δh_t·h_(t−1)ᵀ"),
    (ELMAN, "dL/dW_hh = sum_t(diag(1 - h_t^2) δh_t h_(t-1)^T)"),
    (ELMAN, r"\frac{\partial L}{\partial W_{hh}} = \sum_{t=1}^{3} \operatorname{diag}(1 - h_t^2)\, \delta h_t\, "
            r"h_{t-1}^\top"),
    (ELMAN, "dL/db_hh = Σ_t diag(1 − h_t²)·δh_t"),
    (ELMAN, "dL/dW_hy = diag(y (1 - y)) δy h3^T"),
    (ELMAN_ALL, "δh2 = W_hh^T diag(1 - h3^2) δh3 + W_hy^T diag(y2 (1 - y2)) δy2"),
    (LSTM, "δc1 = diag(o1 (1 - tanh(c1)^2)) δh1 + diag(f2) δc2"),
    (LSTM, "δc1 = o1 ⊙ (1 - tanh(c1)^2) ⊙ δh1 + f2 ⊙ δc2"),
    (LSTM, "δh1 = W_hi^T diag(i2 (1 - i2)) δi2 + W_hf^T diag(f2 (1 - f2)) δf2 + W_hg^T diag(1 - g2^2) δg2 "
           "+ W_ho^T diag(o2 (1 - o2)) δo2"),
    (LSTM, r"\delta c_1 = \operatorname{diag}(o_1 \odot (1 - \tanh(c_1)^2)) \delta h_1 + f_2 \odot \delta c_2"),
    (LSTM, "dL/dW_hf = Σ_t diag(f_t (1 - f_t)) δf_t h_(t-1)^T"),
    (GRU, "δh1 = W_hr^T diag(r2 (1 - r2)) δr2 + W_hz^T diag(z2 (1 - z2)) δz2 + W_hn^T diag(r2 (1 - n2^2)) δn2 "
          "+ diag(z2) δh2"),
    (GRU, r"\delta h_1 = W_{hr}^\top \operatorname{diag}(r_2 (1 - r_2)) \delta r_2 + W_{hz}^\top "
          r"\operatorname{diag}(z_2 (1 - z_2)) \delta z_2 + W_{hn}^\top \operatorname{diag}(r_2 (1 - n_2^2)) "
          r"\delta n_2 + z_2 \odot \delta h_2"),
    (GRU, "δr2 = diag((1 - n2^2) (b_hn + W_hn h1)) δn2"),
])
def test_a_right_vector_equation_is_accepted(net, text):
    verdict = net.verify(text)
    assert verdict.ok, verdict.text()
    assert verdict.max_rel_error < 1e-10
    assert verdict.symbolic is True  # confirmed component by component in node and δ symbols
    assert verdict.text().splitlines()[1 + len(verdict.notes)].startswith("Right:")


@pytest.mark.parametrize("net, target", [(ELMAN, "W_hh"), (ELMAN_ALL, "W_hh"), (LSTM, "W_hf"), (GRU, "W_hz")])
def test_rnnsyms_own_recursive_view_verifies_equation_by_equation(net, target):
    """Every δ equation the derivation prints, read back in its own notation, is right."""
    from rnnsym.printing.text import TextPrinter

    for eq in net.derive(target).recursive:
        text = TextPrinter().doprint(eq)
        if text.startswith("δL") or "δL" in text:  # the loss terms' weights: not a node's δ equation
            continue
        verdict = net.verify(text)
        assert verdict.ok, (text, verdict.text())


# ---- each diagnosis --------------------------------------------------------------------------------
def _findings(net, text):
    verdict = net.verify(text)
    assert not verdict.ok
    return "\n".join(verdict.findings)


def test_the_symbolic_confirmation_tells_a_right_formula_from_a_wrong_one():
    from rnnsym.learn.verify import _Symbolic, _VectorCheck

    right = _VectorCheck(ELMAN, parse_matrix_formula("δh2 = W_hh^T diag(1 - h3^2) δh3", ELMAN), 0)
    wrong = _VectorCheck(ELMAN, parse_matrix_formula("δh2 = W_hh^T diag(1 - h3) δh3", ELMAN), 0)
    assert _Symbolic(right).equal() is True
    assert _Symbolic(wrong).equal() is None


def test_a_missing_transpose_is_named():
    found = _findings(ELMAN, "δh2 = W_hh diag(1 - h3^2) δh3")
    assert "a missing transpose: W_hh where W_hhᵀ belongs" in found


def test_a_missing_diag_of_the_activation_derivative_is_named():
    found = _findings(ELMAN, "δh2 = W_hh^T δh3")
    assert "a missing diag(1 − h₃²)" in found


def test_the_wrong_activation_derivative_is_named():
    found = _findings(ELMAN, "δh2 = W_hh^T diag(1 - h3) δh3")
    assert "the wrong activation derivative: diag(1 − h₃) where diag(1 − h₃²) belongs" in found
    found = _findings(LSTM, "δc1 = diag(o1 (1 - tanh(c1))) δh1 + diag(f2) δc2")
    assert "the wrong activation derivative" in found and "1 − tanh(c₁)²" in found
    found = _findings(LSTM, "δh1 = W_hi^T diag(1 - i2) δi2 + W_hf^T diag(f2 (1 - f2)) δf2 "
                            "+ W_hg^T diag(1 - g2^2) δg2 + W_ho^T diag(o2 (1 - o2)) δo2")
    assert "diag(1 − i₂) where diag(i₂·(1 − i₂)) belongs (σ′ is i₂·(1 − i₂))" in found


def test_a_wrong_step_index_is_named():
    found = _findings(ELMAN, "δh2 = W_hh^T diag(1 - h2^2) δh3")
    assert "a wrong step index: h₂ where h₃ belongs" in found
    found = _findings(ELMAN, "dL/dW_hh = Σ_t diag(1 − h_t²)·δh_t·h_tᵀ")
    assert "a wrong step index: h₃ where h₂ belongs" in found


def test_a_missing_term_is_named_with_the_childs_share():
    found = _findings(LSTM, "δc1 = diag(o1 (1 - tanh(c1)^2)) δh1")
    assert "a missing term: δc₁ also gets diag(f₂)·δc₂ from c₂" in found
    assert "the formula ignores the recursion: c₁ also feeds c₂" in found
    found = _findings(GRU, "δh1 = W_hr^T diag(r2 (1 - r2)) δr2 + W_hz^T diag(z2 (1 - z2)) δz2 "
                           "+ W_hn^T diag(r2 (1 - n2^2)) δn2")
    assert "a missing term: δh₁ also gets diag(z₂)·δh₂ from h₂" in found


def test_a_weight_gradient_of_one_step_misses_the_other_steps_shares():
    found = _findings(ELMAN, "dL/dW_hh = diag(1 − h3²)·δh3·h2ᵀ")
    assert "dL/dW_hh also gets diag(1 − h₂²)·δh₂·h₁ᵀ from h₂" in found
    assert "dL/dW_hh also gets diag(1 − h₁²)·δh₁·h₀ᵀ from h₁" in found


def test_the_d2l_style_formula_that_ignores_the_recursion_is_caught():
    found = _findings(ELMAN_ALL, "δh2 = W_hy^T diag(y2 (1 - y2)) δy2")
    assert "a missing term: δh₂ also gets W_hhᵀ·diag(1 − h₃²)·δh₃ from h₃" in found
    assert "the formula ignores the recursion: h₂ also feeds h₃ at the next step" in found
    assert "δh_t = W_hyᵀ·δy_t alone" in found
    # as d2l writes it, with δy the gradient before the output's activation: also the missing diag(σ′)
    found = _findings(ELMAN_ALL, "δh2 = W_hy^T δy2")
    assert "the formula ignores the recursion" in found and "a missing diag(y₂·(1 − y₂))" in found


def test_shapes_that_do_not_fit_are_a_wrong_formula_not_an_unreadable_one():
    assert "does not fit" in _findings(ELMAN, "δh2 = δh3 W_hh")
    assert "a row where a column belongs" in _findings(ELMAN, "δh2 = δh3^T W_hh")


def test_a_number_for_a_weight_gradient_misses_every_share():
    found = _findings(ELMAN, "dL/dW_hh = 0")
    assert found.count("a missing term") == 3


# ---- hostile and unreadable input ------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "__import__('os').system('echo x')",
    "δh2 = __import__('os').system('echo x')",
    "δh2 = W_hh.__class__",
    "δh2 = (lambda: 1)()",
    "δh2 = W_hh^T [δh3 for _ in ()]",
    "δh2 = W_hh^(10**100)",
    "δh2 = " + "(" * 200 + "δh3" + ")" * 200,
    "δh2 = " + "δh3 + " * 20_000 + "δh3",
    "δh2 = " + "-" * 500 + "δh3",
    "δh2 = W_hh^T diag(δh3, h3)",
    "δh2 = open(h3)",
    r"\delta h_2 = \input{/etc/passwd}",
    "δq9 = h3",
    "δh2 = h_t",
    "dL/dW_hh = Σ_t Σ_t h_t",
])
def test_hostile_or_unreadable_vector_input_is_refused_in_one_line(text, monkeypatch):
    import os

    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("ran a command"))
    with pytest.raises(RnnsymError) as info:
        ELMAN.verify(text)
    assert "\n" not in str(info.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("δh2W_T^.()[]{}*@⊙=+-/ ,'\"\\:;!_lambdaimportsys0123456789ᵀ·Σ"
                                             "\n\t")), max_size=80))
def test_any_string_is_read_or_refused_in_one_line_never_run(text):
    try:
        formula = parse_matrix_formula(text, ELMAN)
    except RnnsymError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(formula.rhs, tuple)


def test_the_matrix_reader_never_calls_eval_or_parse_expr(monkeypatch):
    import builtins

    import sympy

    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval called"))
    monkeypatch.setattr(builtins, "exec", lambda *a, **k: pytest.fail("exec called"))
    monkeypatch.setattr(sympy, "parse_expr", lambda *a, **k: pytest.fail("parse_expr called"), raising=False)
    assert parse_matrix_formula("δh2 = W_hh^T diag(1 - h3^2) δh3", ELMAN).kind == "delta"
    assert "sympify" not in parse.parse_matrix_formula.__code__.co_names


# ---- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("args, status", [
    (["δh2 = W_hh^T diag(1 - h3^2) δh3"], 0),
    (["dL/dW_hh = Σ_t diag(1 − h_t²)·δh_t·h_(t−1)ᵀ"], 0),
    (["δh2 = W_hh diag(1 - h3^2) δh3"], 1),
    (["dL/dW_hh = 0"], 1),
    (["δh2 = __import__('os').system('echo x')"], 2),
    (["δh2 = W_hh^T diag(1 - h3^2) δq3"], 2),
])
def test_rnnsym_verify_on_a_vector_network_exits_0_1_2(args, status):
    result = CliRunner().invoke(main, ["verify", "--net", "elman", "-T", "3", "--input-size", "2",
                                       "--hidden-size", "2", *args])
    assert result.exit_code == status, result.output
    if status == 2:
        assert result.output.count("\n") == 1 and result.output.startswith("rnnsym: error: ")
    if status == 1:
        assert "Wrong:" in result.output and "\n- " in result.output  # the diagnosis, line by line


def test_rnnsym_verify_json_for_a_vector_network():
    result = CliRunner().invoke(main, ["verify", "--net", "lstm", "-T", "2", "--input-size", "2", "--hidden-size",
                                       "2", "--format", "json", "δc1 = diag(o1 (1 - tanh(c1)^2)) δh1"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["ok"] is False and data["lhs"] == "δc₁"
    assert any("δc₁ also gets diag(f₂)·δc₂ from c₂" in f for f in data["findings"])
