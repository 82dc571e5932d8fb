"""Renderings: exact LaTeX and text, MathML that parses with no leaked LaTeX, Markdown, JSON, HTML."""
import json
import xml.etree.ElementTree as ET

import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.printing.latex import LatexStepPrinter, expr_latex
from rnnsym.printing.mathml import MathMLError, latex_to_mathml
from rnnsym.printing.text import expr_text, text_name
from rnnsym.records import Equation, Partial, Product, Total


def _latex_of_step(d, kind):
    (step,) = [s for s in d.steps if s.kind == kind]
    return [LatexStepPrinter().equation(eq) for eq in step.equations]


def test_exact_latex_dL_dw4(seed4):
    d = seed4.derive("w4")
    assert _latex_of_step(d, "chain_rule") == [
        r"\frac{d L}{d w_{4}} = \frac{\partial L}{\partial o_{5}} \frac{\partial o_{5}}{\partial w_{4}}"]
    assert _latex_of_step(d, "path_terms") == [
        r"\frac{d L}{d w_{4}} = \left(\frac{1 - Y}{1 - o_{5}} - \frac{Y}{o_{5}}\right) \cdot "
        r"\left(o_{4} o_{5} \left(1 - o_{5}\right)\right) = \left(o_{5} - Y\right) o_{4}"]


def test_exact_latex_dL_dw3_keeps_the_article_factor_order(seed4):
    d = seed4.derive("w3")
    assert _latex_of_step(d, "chain_rule") == [
        r"\frac{d L}{d w_{3}} = \frac{\partial L}{\partial o_{5}} \frac{\partial o_{5}}{\partial o_{4}} "
        r"\frac{\partial o_{4}}{\partial w_{3}}"]
    assert _latex_of_step(d, "local_factors") == [
        r"\frac{\partial L}{\partial o_{5}} = \frac{1 - Y}{1 - o_{5}} - \frac{Y}{o_{5}}",
        r"\frac{\partial o_{5}}{\partial o_{4}} = o_{5} w_{4} \left(1 - o_{5}\right)",
        r"\frac{\partial o_{4}}{\partial w_{3}} = o_{3} \left(1 - o_{4}^{2}\right)",
    ]
    assert _latex_of_step(d, "path_terms")[0].endswith(
        r"= \left(o_{5} - Y\right) w_{4} o_{3} \left(1 - o_{4}^{2}\right)")


def test_exact_latex_whole_derivation_T1():
    assert rs.seed_rnn(steps=1).derive("w1").latex() == (
        r"\begin{aligned}\frac{d L}{d w_{1}} &= \frac{\partial L}{\partial o_{2}} \frac{\partial o_{2}}{\partial w_{1}}"
        r" \\ L &= - Y \log{\left(o_{2} \right)} - \left(1 - Y\right) \log{\left(1 - o_{2} \right)}"
        r" \\ o_{2} &= \sigma\left(b_{2} + o_{1} w_{1}\right)"
        r" \\ \frac{\partial L}{\partial o_{2}} &= \frac{1 - Y}{1 - o_{2}} - \frac{Y}{o_{2}}"
        r" \\ \frac{\partial o_{2}}{\partial w_{1}} &= o_{1} o_{2} \left(1 - o_{2}\right)"
        r" \\ \frac{d L}{d w_{1}} &= \left(\frac{1 - Y}{1 - o_{2}} - \frac{Y}{o_{2}}\right) \cdot \left(o_{1} o_{2} \left(1 - o_{2}\right)\right) = \left(o_{2} - Y\right) o_{1}"
        r" \\ \frac{d L}{d w_{1}} &= \left(\sigma\left(b_{2} + w_{1} \tanh{\left(b_{1} + w x_{1} \right)}\right) - Y\right) \tanh{\left(b_{1} + w x_{1} \right)}"
        r" \\ \delta_{o_{2}} &= \frac{1 - Y}{1 - o_{2}} - \frac{Y}{o_{2}}"
        r" \\ \frac{d L}{d w_{1}} &= \delta_{o_{2}} o_{1} o_{2} \left(1 - o_{2}\right)"
        r" \\ w_{1} &\leftarrow w_{1} - \eta \frac{d L}{d w_{1}}\end{aligned}"
    )


def test_exact_text_lines(seed4):
    lines = seed4.derive("w3").text().splitlines()
    assert lines[0] == "dL/dw₃: recurrent weight carrying o3 into layer 4"
    assert "    dL/dw₃ = (∂L/∂o₅)(∂o₅/∂o₄)(∂o₄/∂w₃)    (L → o5 → o4 → w3)" in lines
    assert "    ∂o₄/∂w₃ = o₃·(1 − o₄²)" in lines
    assert lines[-1] == "Result: dL/dw₃ = (o₅ − Y)·w₄·o₃·(1 − o₄²)"
    assert str(seed4.derive("w3")) == seed4.derive("w3").text()


def test_text_says_local_partials_and_that_the_sum_is_the_gradient(seed4):
    text = seed4.derive("w").text()
    assert "local partial derivative (∂)" in text
    assert "the gradient is the sum of all their terms, not any single one" in text
    assert "(through layer 4 (o4))" in text and "(through layer 1 (o1))" in text


@pytest.mark.parametrize("expr,text", [
    (sp.Symbol("o5") - sp.Symbol("Y"), "o₅ − Y"),
    (sp.Symbol("w3") * (1 - sp.Symbol("o4") ** 2), "w₃·(1 − o₄²)"),
    (sp.Heaviside(sp.Symbol("o2"), 0), "H(o₂)"),
])
def test_expression_text(expr, text):
    assert expr_text(expr) == text


def test_names(seed4):
    assert text_name("o15") == "o₁₅" and text_name("W_hh") == "W_hh"
    assert expr_latex(sp.Symbol("o15")) == "o_{15}"


def _mathml_ok(mathml: str) -> None:
    root = ET.fromstring(mathml)
    assert root.tag.endswith("math")
    for el in root.iter():
        assert "\\" not in (el.text or ""), el.text


def test_mathml_of_every_derivation_parses_and_leaks_nothing(seed4):
    for name in seed4.param_names + ("o2", "x2"):
        _mathml_ok(seed4.derive(name).mathml())


def test_mathml_refuses_unknown_latex_commands():
    with pytest.raises(MathMLError, match=r"\\notacommand"):
        latex_to_mathml(r"x + \notacommand{y}")


def test_markdown_has_display_math(seed4):
    md = seed4.derive("w3").markdown()
    assert md.startswith("## dL/dw3: recurrent weight")
    assert md.count("$$") % 2 == 0 and md.count("$$") >= 10
    assert "\\frac{\\partial o_{4}}{\\partial w_{3}} = o_{3} \\left(1 - o_{4}^{2}\\right)" in md


def test_json_is_plain_data(seed4):
    data = json.loads(json.dumps(seed4.derive("w").to_dict()))
    assert data["paths"][0] == ["L", "o5", "o4", "w"]
    assert [s["kind"] for s in data["steps"]][:3] == ["chain_rule", "definitions", "local_factors"]


def test_notebook_reprs(seed4):
    d = seed4.derive("w2")
    assert d._repr_latex_().startswith("$\\displaystyle \\begin{aligned}")
    html = d._repr_html_()
    assert "<math" in html and "<ol>" in html


def test_html_escapes_text():
    from rnnsym.printing.html import derivation_html

    class Fake:
        target = "<b>"
        steps = ()
        path_terms = None
    assert "&lt;b&gt;" in derivation_html(Fake())


def test_notebook_html_shows_the_paths_in_the_picture(seed4):
    html = seed4.derive("w")._repr_html_()
    assert html.count("<svg") == 1 and 'data-path="4"' in html


def test_ordered_product_and_records_print_in_every_format():
    eq = Equation(Total("L", "w"), (Product((sp.Symbol("a") + 1, sp.Symbol("b"))),), label="x")
    assert LatexStepPrinter().equation(eq) == r"\frac{d L}{d w} = \left(a + 1\right) \cdot \left(b\right)"
    from rnnsym.printing.text import TextPrinter
    assert TextPrinter().equation(eq) == "dL/dw = [a + 1]·[b]"
    assert TextPrinter().doprint(Partial("o4", "w3")) == "∂o₄/∂w₃"
