"""rnnsym verify / net.verify: a learner's own formula, read without eval, checked and diagnosed."""
import os
import re

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import rnnsym as rs
from rnnsym.cli.main import main
from rnnsym.errors import RnnsymError
from rnnsym.learn.parse import parse_formula

NET = rs.seed_rnn(steps=4)
ARTICLE = open(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "seed", "simple-rnn-article.txt")
               ).read() if os.path.exists(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "seed",
                                                       "simple-rnn-article.txt")) else ""


def statuses(verdict):
    return [p.status for p in verdict.paths]


def findings(verdict):
    return " | ".join(verdict.findings)


# ---- right formulas -------------------------------------------------------------------------------
@pytest.mark.parametrize("formula", [
    "dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3",
    "dL/dw3 = (o5 - Y) w4 (1 - o4^2) o3",  # implicit products and ^
    "∂L/∂w3 = (o5 − Y)·w4·(1 − o4²)·o3",  # the Unicode a page shows
    r"\frac{\partial L}{\partial w_3} = (o_5 - Y) w_4 (1 - o_4^2) o_3",
    r"$\frac{dL}{dw_{3}} = \left(o_{5} - Y\right) \cdot w_{4} \cdot \left(1 - o_{4}^{2}\right) o_{3}$",
    "dL/dw3 = (dL/do5)(do5/do4)(do4/dw3)",  # the article's chain, one path: right for w3
    "dL/dw3 = (dL/do4)*(do4/dw3)",  # dL/do4 is not an edge: the total derivative (the adjoint)
    "dL/dw = (dL/do4)*(do4/dw)",  # total do4/dw: every path through o4
    "dL/dw = (o5 - Y)*w4*(1 - o4**2)*(x4 + w3*do3/dw)",  # the recursion, do3/dw total
    "dL/dw0 = 0",  # o0 = 0
    "dL/dw4 = (o5 - Y)*o4",
    "dL/db4 = (o5 - Y)*w4*(1 - o4**2)",
    "dL/dx2 = (o5-Y)*w4*(1-o4**2)*w3*(1-o3**2)*w2*(1-o2**2)*w",
    "dL/dw3 = (-Y/o5 + (1 - Y)/(1 - o5))*sigmoid(b5 + w4*o4)*(1 - o5)*w4*(1 - tanh(b4 + o3*w3 + w*x4)**2)*o3",
])
def test_a_right_formula_is_right_symbolically_and_numerically(formula):
    verdict = NET.verify(formula)
    assert verdict.ok, verdict.text()
    assert verdict.max_rel_error < 1e-8
    assert verdict.symbolic in (True, None)
    assert verdict.text().splitlines()[1].startswith("Right")


def test_the_whole_gradient_of_the_shared_weight_is_right_and_agrees_with_finite_differences():
    d = NET.derive("w")
    verdict = NET.verify(f"dL/dw = {d.expr}")
    assert verdict.ok and verdict.symbolic
    # an independent number: the compiled network's gradient against central differences at one point
    report = rs.gradcheck(NET)
    assert report.ok


# ---- the article's formulas for w: one path of four --------------------------------------------------
ARTICLE_W = [
    ("dl/dw=(dl/do5)*(do5/do4)*(do4/dw)", "through layer 4 (o4)"),
    ("dl/dw=(dl/do5)*(do5/do4)*(do4/do3)*(do3/w)", "through layer 3 (o3)"),
]


@pytest.mark.parametrize("formula, path", ARTICLE_W)
def test_each_of_the_articles_formulas_for_w_is_diagnosed_as_one_path_of_four(formula, path):
    if ARTICLE:
        assert formula in ARTICLE  # quoted from the seed article, typo (do3/w) and all
    verdict = NET.verify(formula)
    assert not verdict.ok
    assert statuses(verdict).count("matched") == 1 and statuses(verdict).count("missing") == 3
    (matched,) = [p for p in verdict.paths if p.status == "matched"]
    assert matched.label == path
    assert f"your formula is the path {path}" in findings(verdict)
    assert "all 4 path terms" in findings(verdict)
    assert "treats o" in findings(verdict) and "as a constant of w" in findings(verdict)


def test_the_articles_layer_4_formula_would_be_right_only_with_a_total_derivative():
    verdict = NET.verify("dl/dw=(dl/do5)*(do5/do4)*(do4/dw)")
    assert "would be right with the total derivative do4/dw" in findings(verdict)
    assert "do4/dw = ∂o4/∂w + ∂o4/∂o3·do3/dw" in findings(verdict)


def test_the_articles_typo_do3_over_w_is_read_as_do3_dw_and_said():
    verdict = NET.verify("dl/dw=(dl/do5)*(do5/do4)*(do4/do3)*(do3/w)")
    assert "read do3/w as do3/dw" in verdict.notes


def test_the_articles_w2_chain_under_dl_dw_is_a_wrong_weight():
    verdict = NET.verify("dl/dw=(dl/do5)*(do5/do4)*(do4/do3)*(do3/w2)")
    assert not verdict.ok
    assert "your chain ends with do3/dw2: it is a path of dL/dw2, not of dL/dw" in findings(verdict)


# ---- each diagnosis ---------------------------------------------------------------------------------
DIAGNOSES = [
    # (formula, statuses of the paths, words the diagnosis must contain)
    ("dL/dw3 = (o5 - Y)*w4*(1 - o4)*o3", ["mistake"], "tanh′ is 1 − o4², not 1 − o4"),
    ("dL/dw3 = (o5 - Y)*w4*o3", ["mistake"], "the derivative of tanh left out"),
    ("dL/dw3 = (o5 - Y)*w4*o4*(1 - o4)*o3", ["mistake"], "σ′'s o4·(1 − o4) used for tanh"),
    ("dL/dw3 = (o5 - Y)*w3*(1 - o4**2)*o3", ["mistake"], "w3 where w4 belongs"),
    ("dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o2", ["mistake"], "o2 where o3 belongs"),
    ("dL/dw3 = (o5 - Y)*w4*(1 - o3**2)*o3", ["mistake"], "o3 where o4 belongs"),
    ("dL/dw = (o5 - Y)*w4*(1 - o4**2)*w", ["mistake", "missing", "missing", "missing"], "w where x4 belongs"),
    ("dL/dw3 = (Y - o5)*w4*(1 - o4**2)*o3", ["sign"], "a sign error"),
    ("dL/dw3 = (o5 - Y)*o5*(1 - o5)*w4*(1 - o4**2)*o3", ["mistake"], "o − Y is ∂L/∂z"),
    ("dL/dw3 = 2*(o5 - Y)*w4*(1 - o4**2)*o3", ["count"], "counted 2 times"),
    ("dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3/2", ["count"], "multiplied by 0.5"),
    ("dL/dw = (o5 - Y)*w4*(1 - o4**2)*x4", ["matched", "missing", "missing", "missing"],
     "in ∂o4/∂w your formula treats o3 as a constant of w"),
    ("dL/dw = (o5 - Y)*w4*(1 - o4**2)*x4 - (o5 - Y)*w4*(1 - o4**2)*w3*(1 - o3**2)*x3",
     ["matched", "sign", "missing", "missing"], "the path through layer 3 (o3) has the wrong sign"),
    ("dL/dw = (o5 - Y)*w4*(1 - o4**2)*x4 + 2*(o5 - Y)*w4*(1 - o4**2)*w3*(1 - o3**2)*x3",
     ["matched", "count", "missing", "missing"], "a factor taken as a total derivative"),
    ("dL/dw = (o5 - Y)*w4*((1 - o4**2)*x4 + (1 - o4**2)*w3*(1 - o3)*x3)", ["matched", "mistake", "missing", "missing"],
     "∂o3/∂w is x₃·(1 − o₃²); the formula has x₃·(1 − o₃)"),
]


@pytest.mark.parametrize("formula, expected, words", DIAGNOSES)
def test_a_wrong_formula_is_diagnosed_in_the_derivations_words(formula, expected, words):
    verdict = NET.verify(formula)
    assert not verdict.ok
    assert statuses(verdict) == expected, verdict.text()
    assert words in verdict.text(), verdict.text()


def test_a_local_partial_where_a_total_derivative_belongs_is_named():
    verdict = NET.verify("dL/dw = (o5 - Y)*w4*(1 - o4**2)*(x4 + w3*∂o3/∂w)")
    assert not verdict.ok
    assert "the formula would be right with the total derivative do3/dw" in findings(verdict)
    assert "a local partial where a total derivative belongs" in findings(verdict)


def test_a_total_derivative_where_a_local_partial_belongs_is_named():
    # do4/dw in a product with other algebra is the total derivative; added to the o3 path it counts it twice
    verdict = NET.verify("dL/dw = (o5 - Y)*w4*((do4/dw) + (do4/do3)*(do3/dw))")
    assert not verdict.ok
    assert "counted 2 times" in verdict.text()
    assert "would be right with the local partial ∂o4/∂w" in findings(verdict)
    assert "a total derivative where a local partial belongs" in findings(verdict)


def test_a_node_written_out_without_its_bias_is_a_missing_bias():
    verdict = NET.verify("dL/dw3 = (o5 - Y)*w4*(1 - tanh(o3*w3 + w*x4)**2)*o3")
    assert not verdict.ok
    assert "is o4 without its bias b₄" in findings(verdict)
    assert statuses(verdict) == ["matched"]  # the rest of the formula is right


def test_a_node_written_out_with_a_wrong_name_is_named():
    verdict = NET.verify("dL/dw3 = (o5 - Y)*w4*(1 - tanh(b4 + o2*w3 + w*x4)**2)*o3")
    assert "has o2 where o4 has o3" in findings(verdict)


def test_a_formula_that_matches_nothing_lists_the_paths_to_compare():
    verdict = NET.verify("dL/dw3 = exp(o5)*sin(w4)")
    assert not verdict.ok
    assert statuses(verdict) == ["unmatched"]
    assert "nor of paths with one factor changed" in findings(verdict)


def test_a_scalar_cell_is_verified_fully():
    h, x, a, u = sp.symbols("h x a u")
    net = rs.unroll(rs.Cell(state=h, input=x, update=sp.tanh(a * x + u * h), params=[a, u]), 3)
    assert net.verify("dL/du = (y - Y)*W_hy*(1 - h3**2)*(h2 + u*(1 - h2**2)*h1)").ok
    verdict = net.verify("dL/du = (y - Y)*W_hy*(1 - h3**2)*h2")
    assert statuses(verdict) == ["matched", "missing", "zero"]  # the last path passes h0 = 0


# ---- what cannot be read: one line, exit status 2, nothing run ----------------------------------------
HOSTILE = [
    "__import__('os').system('echo x')",
    "dL/dw = __import__('os').system('echo x')",
    "dL/dw = o5.__class__",
    "dL/dw = [c for c in ().__class__.__bases__]",
    "dL/dw = lambda: 0",
    "dL/dw = x1 if x1 else x2",
    "dL/dw = 'text'",
    "dL/dw = open('/etc/passwd')",
    "dL/dw = " + "(" * 200 + "x1" + ")" * 200,
    "dL/dw = " + "tanh(" * 30 + "x1" + ")" * 30,
    "dL/dw = " + "-" * 3000 + "x1",
    "dL/dw = " + "x1**" * 2000 + "x1",
    "dL/dw = " + "x1 + " * 20_000 + "x1",  # 100 kB
    "x" * 100_000,
    "dL/dw = 2**99**99",
    "dL/dw = 9" * 400,
    "dL/dw = 1/0",
    r"\input{/etc/passwd}",
    r"\frac{\partial L}{\partial w} = \csname x\endcsname",
    "dL/dw == x1",
    "dL/dw = x1; import os",
    "dL/dw = x1 \n import os",
    "do4/do1 = w",
    "dL/dL = 1",
    "dL/dw = dx1",
    "dL/dw = x1 @ x2",
    "",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_is_refused_in_one_line_without_running_anything(text, monkeypatch, capfd):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    with pytest.raises(RnnsymError) as info:
        NET.verify(text)
    message = str(info.value)
    assert "\n" not in message and 0 < len(message) < 600
    assert calls == []
    assert "x" not in capfd.readouterr().out


def test_the_limits_are_checked_before_parsing(monkeypatch):
    import ast

    def never(*args, **kwargs):
        raise AssertionError("parsed")

    monkeypatch.setattr(ast, "parse", never)
    for text in ("x1 + " * 20_000 + "x1", "(" * 100 + "x1" + ")" * 100):
        with pytest.raises(RnnsymError):
            NET.verify(text, wrt="w")


# ---- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("args, status", [
    (["dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3"], 0),
    (["dl/dw=(dl/do5)*(do5/do4)*(do4/dw)"], 1),
    (["__import__('os').system('echo x')"], 2),
    (["--wrt", "w3", "(o5 - Y)*w4*(1 - o4**2)*o3"], 0),
    (["(o5 - Y)*w4*(1 - o4**2)*o3"], 2),  # no left side, no --wrt
    (["-T", "3", "dL/dw2 = (o4 - Y)*w3*(1 - o3**2)*o2"], 0),
])
def test_rnnsym_verify_exits_0_when_right_1_when_wrong_2_when_unreadable(args, status):
    result = CliRunner().invoke(main, ["verify", *args])
    assert result.exit_code == status, result.output
    if status == 2:
        assert result.output.count("\n") == 1 and result.output.startswith("rnnsym: error: ")
    if status == 1:
        assert "your formula is the path through layer 4 (o4)" in result.output


def test_rnnsym_verify_json_and_stdin():
    import json

    result = CliRunner().invoke(main, ["verify", "--format", "json", "-"], input="dL/dw3 = (o5 - Y)*w4*o3\n")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False and data["paths"][0]["status"] == "mistake"


# ---- the parser, property-based ------------------------------------------------------------------
NAMES = ["x1", "x2", "w", "w3", "w4", "b4", "o3", "o4", "o5", "Y"]
FUNCS = {"tanh": sp.tanh, "sigmoid": rs.functions.sigmoid if hasattr(rs, "functions") else None, "exp": sp.exp}


def _formulas(depth=3):
    leaf = st.one_of(st.sampled_from(NAMES).map(lambda n: (n, sp.Symbol(n))),
                     st.integers(1, 9).map(lambda k: (str(k), sp.Integer(k))))

    def extend(children):
        binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
            lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})", _apply(t[1], t[0][1], t[2][1])))
        power = st.tuples(children, st.integers(1, 3)).map(lambda t: (f"({t[0][0]})**{t[1]}", t[0][1] ** t[1]))
        neg = children.map(lambda c: (f"-({c[0]})", -c[1]))
        call = st.tuples(st.sampled_from(["tanh", "exp"]), children).map(
            lambda t: (f"{t[0]}({t[1][0]})", getattr(sp, t[0])(t[1][1])))
        return st.one_of(binary, power, neg, call)

    return st.recursive(leaf, extend, max_leaves=8)


def _apply(op, a, b):
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_formulas())
def test_random_well_formed_formulas_parse_to_the_expression_sympy_builds(pair):
    text, expected = pair
    if expected.has(sp.zoo, sp.nan, sp.oo):
        return
    try:
        formula = parse_formula(f"dL/dw = {text}", NET)
    except RnnsymError as exc:  # only the documented limits may refuse a well-formed formula (docs/guide.md:
        # brackets nested 40 deep, calls 6 deep, numbers up to 1e15: ((8**3)**2)**3 is past it)
        assert "divides by zero" in str(exc) or "nests" in str(exc) or "is too large for a formula" in str(exc)
        return
    assert formula.wrt == "w"
    assert sp.simplify(formula.rhs - expected) == 0


HOSTILE_PIECES = list("()[]{}+-*/^=.,;:'\"\\_ $@!#%&|~`<>?") + [
    "__import__", "os", "system", "lambda", "eval", "exec", "x1", "w", "dL", "dw", "o4", "tanh", "\\frac",
    "\\partial", "\\input", "import", "open", "2", "9", "**", "\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(HOSTILE_PIECES), max_size=40).map("".join))
@example("\\\n")  # a backslash before a newline: the error once quoted it raw, on two lines
def test_random_hostile_strings_never_run_anything_and_end_in_one_line(text):
    calls = []
    real = os.system
    os.system = lambda *a: calls.append(a)
    try:
        try:
            verdict = NET.verify(text, wrt="w")
        except RnnsymError as exc:
            assert "\n" not in str(exc)
        else:
            assert isinstance(verdict.ok, bool)
    finally:
        os.system = real
    assert calls == []


def test_no_eval_exec_or_parse_expr_in_the_reader():
    source = open(os.path.join(os.path.dirname(rs.__file__), "learn", "parse.py")).read()
    code = re.sub(r'""".*?"""|#.*', "", source, flags=re.S)
    assert not re.search(r"\b(eval|exec|parse_expr|sympify|compile)\(", code)
    assert np is not None


def test_no_lower_layer_imports_the_learners_layer():
    root = os.path.dirname(rs.__file__)
    for folder, _, files in os.walk(root):
        if os.path.relpath(folder, root).split(os.sep)[0] in ("learn", "cli"):
            continue
        for name in files:
            if name.endswith(".py") and not (folder == root and name in ("network.py", "__init__.py")):
                source = open(os.path.join(folder, name)).read()
                imported = {m for pair in re.findall(r"from \.+(\w+)|import rnnsym\.(\w+)", source) for m in pair}
                assert "learn" not in imported, name
    # the one method on Network imports it lazily, inside the method
    network = open(os.path.join(root, "network.py")).read()
    assert "\nfrom .learn" not in network and "        from .learn import verify" in network
