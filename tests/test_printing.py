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


def test_exact_latex_whole_derivation_T1_titles_every_step():
    assert rs.seed_rnn(steps=1).derive("w1").latex() == (
        r"\begin{aligned}&\text{1. Chain rule along the only path}"
        r" \\ \frac{d L}{d w_{1}} &= \frac{\partial L}{\partial o_{2}} \frac{\partial o_{2}}{\partial w_{1}}"
        r" \\ &\text{2. The nodes on the path}"
        r" \\ L &= - Y \log{\left(o_{2} \right)} - \left(1 - Y\right) \log{\left(1 - o_{2} \right)}"
        r" \\ o_{2} &= \sigma\left(b_{2} + o_{1} w_{1}\right)"
        r" \\ &\text{3. Local factors}"
        r" \\ \frac{\partial L}{\partial o_{2}} &= \frac{1 - Y}{1 - o_{2}} - \frac{Y}{o_{2}}"
        r" \\ \frac{\partial o_{2}}{\partial w_{1}} &= o_{1} o_{2} \left(1 - o_{2}\right)"
        r" \\ &\text{4. Substitute the factors and multiply}"
        r" \\ \frac{d L}{d w_{1}} &= \left(\frac{1 - Y}{1 - o_{2}} - \frac{Y}{o_{2}}\right) \cdot \left(o_{1} o_{2} \left(1 - o_{2}\right)\right) = \left(o_{2} - Y\right) o_{1}"
        r" \\ &\text{5. In inputs, target and parameters only}"
        r" \\ \frac{d L}{d w_{1}} &= \left(\sigma\left(b_{2} + w_{1} \tanh{\left(b_{1} + w x_{1} \right)}\right) - Y\right) \tanh{\left(b_{1} + w x_{1} \right)}"
        r" \\ &\text{6. Recursive view (what the compiled code runs)}"
        r" \\ \delta_{o_{2}} &= \frac{1 - Y}{1 - o_{2}} - \frac{Y}{o_{2}}"
        r" \\ \frac{d L}{d w_{1}} &= \delta_{o_{2}} o_{1} o_{2} \left(1 - o_{2}\right)"
        r" \\ &\text{7. Gradient-descent update}"
        r" \\ w_{1} &\leftarrow w_{1} - \eta \frac{d L}{d w_{1}}\end{aligned}"
    )


def test_latex_labels_each_of_the_four_dL_dw3_rows_with_its_step():
    latex = rs.seed_rnn(steps=4).derive("w3").latex()
    rows = latex.removeprefix(r"\begin{aligned}").removesuffix(r"\end{aligned}").split(r" \\ ")
    gradient_rows = [i for i, row in enumerate(rows) if row.startswith(r"\frac{d L}{d w_{3}} &=")]
    assert len(gradient_rows) == 4
    titles = [next(rows[j] for j in range(i, -1, -1) if rows[j].startswith(r"&\text{")) for i in gradient_rows]
    assert titles == [r"&\text{1. Chain rule along the only path}", r"&\text{4. Substitute the factors and multiply}",
                      r"&\text{5. In inputs, target and parameters only}",
                      r"&\text{6. Recursive view (what the compiled code runs)}"]


def test_latex_titles_escape_latex_specials():
    from rnnsym.printing.latex import text_latex

    assert text_latex("a & b_1 {50%} #2 $x$ ~^\\") == (
        r"a \& b\_1 \{50\%\} \#2 \$x\$ \textasciitilde{}\textasciicircum{}\textbackslash{}")


def test_latex_names_each_path_once_where_a_derivation_has_several():
    latex = rs.seed_rnn(steps=3).derive("w").latex()
    assert (r"&\text{1. Chain rule: 3 paths, one term each} \\ \frac{d L}{d w} &= P_{1} + P_{2} + P_{3}"
            r" \\ P_{1} &= \frac{\partial L}{\partial o_{4}} \frac{\partial o_{4}}{\partial o_{3}} "
            r"\frac{\partial o_{3}}{\partial w} \\ P_{2} &=") in latex
    assert r" \\ &\text{4. Each path's term} \\ P_{1} &= \left(\frac{1 - Y}{1 - o_{4}}" in latex
    # A chain of partials is written once, not again in the sum and in the path terms.
    chain = r"\frac{\partial L}{\partial o_{4}} \frac{\partial o_{4}}{\partial o_{3}} \frac{\partial o_{3}}{\partial w}"
    assert latex.count(chain) == 1


def test_latex_of_a_vector_network_names_the_path_products_in_the_total():
    d = rs.elman_rnn(steps=3, hidden_size=2).derive("W_hh")
    latex = d.latex()
    assert r"&\text{5. The gradient is the sum of the path terms} \\ \frac{d L}{d W_{hh}} &= P_{1} + P_{2} + P_{3}" in latex
    (step,) = [s for s in d.steps if s.kind == "path_terms"]
    for eq in step.equations:  # each path's Jacobian product appears once
        assert latex.count(LatexStepPrinter().doprint(eq.rhs[0])) == 1


def test_lstm_latex_is_half_the_size_and_uses_no_operatorname():
    # 85,345 characters before names and \mathrm (KaTeX refused it: 3 expansions per \operatorname).
    latex = rs.lstm(steps=3).derive("W_ii").latex()
    assert len(latex) < 42_000
    assert r"\operatorname" not in latex and r"\mathrm{diag}\left(" in latex


def test_sympy_function_names_are_set_with_mathrm():
    assert expr_latex(sp.erf(sp.Symbol("x"))) == r"\mathrm{erf}{\left(x \right)}"


def test_exact_text_lines(seed4):
    lines = seed4.derive("w3").text().splitlines()
    assert lines[0] == "dL/dw₃: recurrent weight carrying o₃ into layer 4"
    assert "    dL/dw₃ = (∂L/∂o₅)(∂o₅/∂o₄)(∂o₄/∂w₃)    (L → o₅ → o₄ → w₃)" in lines
    assert "    ∂o₄/∂w₃ = o₃·(1 − o₄²)" in lines
    assert lines[-1] == "Result: dL/dw₃ = (o₅ − Y)·w₄·o₃·(1 − o₄²)"
    assert str(seed4.derive("w3")) == seed4.derive("w3").text()


def test_text_says_local_partials_and_that_the_sum_is_the_gradient(seed4):
    text = seed4.derive("w").text()
    assert "local partial derivative (∂)" in text
    assert "the gradient is the sum of all their terms, not any single one" in text
    assert "(through layer 4 (o₄))" in text and "(through layer 1 (o₁))" in text


def test_text_writes_node_names_in_labels_as_the_equations_do(seed4):
    text = seed4.derive("w").text()
    assert "(∂L/∂o₅)(∂o₅/∂o₄)(∂o₄/∂w)    (through layer 4 (o₄))" in text
    assert "o5" not in text and "o4" not in text


def test_text_says_what_H_is_once_where_relu_s_derivative_first_appears():
    lines = rs.seed_rnn(steps=2, activation="relu").derive("w").text().splitlines()
    said = [i for i, line in enumerate(lines) if "H is the Heaviside step" in line]
    assert len(said) == 1
    first_h = next(i for i, line in enumerate(lines) if "H(o" in line)
    assert first_h < said[0] and lines[said[0]] == (
        "    Note: Each factor is a local partial derivative (∂): the node's other inputs are held fixed, even "
        "those that themselves depend on the target; their dependence is another path. H is the Heaviside step, "
        "the derivative of relu: H(u) = 1 for u > 0 and 0 otherwise; since relu's output is positive exactly "
        "where its input is, H(o) of a relu node o is relu′ at its input (0 at the kink).")
    assert "Heaviside" not in rs.seed_rnn(steps=2).derive("w").text()  # tanh: no H, nothing to say


def test_component_view_note_says_plainly_what_i_and_j_index():
    text = rs.elman_rnn(steps=2, hidden_size=2).derive("W_hh").text()
    assert "    δh₁[j] = Σ_i (1 − h₂[i]²)·W_hh[i, j]·δh₂[i]" in text
    assert ("    Note: j indexes the components of the node on the left, whose gradient is computed; i those of "
            "the later node it feeds, whose δ is carried back, and Σ_i sums over them (the rows of W). In "
            "dL/dW[i, j], i is W's row (a component of the node W feeds) and j its column (a component of the "
            "vector W multiplies).") in text.splitlines()
    assert "receiving" not in text


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


MATH = "{http://www.w3.org/1998/Math/MathML}math"


def test_mathml_of_every_derivation_parses_and_leaks_nothing(seed4):
    for name in seed4.param_names + ("o2", "x2"):
        root = ET.fromstring(seed4.derive(name).mathml())
        maths = list(root.iter(MATH))
        assert maths
        for math in maths:
            _mathml_ok(ET.tostring(math, encoding="unicode"))


def test_mathml_derivation_is_a_table_with_each_side_in_its_own_math():
    # MathML Core ignores an mtable's alignment: one <math> per side, in HTML cells aligned by CSS.
    root = ET.fromstring(rs.seed_rnn(steps=1).derive("w1").mathml())
    assert root.tag == "div" and "overflow-x: auto" in root.get("style")
    rows = root.find("table").findall("tr")
    assert [r.find("th").text for r in rows if r.find("th") is not None] == [
        "1. Chain rule along the only path", "2. The nodes on the path", "3. Local factors",
        "4. Substitute the factors and multiply", "5. In inputs, target and parameters only",
        "6. Recursive view (what the compiled code runs)", "7. Gradient-descent update"]
    lhs, rhs = rows[1].findall("td")
    assert lhs.get("style").startswith("text-align: right") and rhs.get("style").startswith("text-align: left")
    assert [len(list(cell.iter(MATH))) for cell in (lhs, rhs)] == [1, 1]
    assert "".join(rhs.itertext()).startswith("=")


def test_mathml_and_latex_say_what_H_is_where_relu_s_derivative_first_appears():
    d = rs.seed_rnn(steps=2, activation="relu").derive("w")
    latex = d.latex()
    where = r"&\text{where } H(u) = 1 \text{ for } u > 0 \text{ and } 0 \text{ otherwise: the Heaviside step, relu's derivative}"
    assert latex.count(where) == 1
    assert latex.index(where) < latex.index(r"&\text{4.") and latex.index(where) > latex.index("H\\left(")
    shown = "".join(ET.fromstring(d.mathml()).itertext()).replace("\xa0", " ")
    assert shown.count("the Heaviside step, relu's derivative") == 1


def test_mathml_refuses_unknown_latex_commands():
    with pytest.raises(MathMLError, match=r"\\notacommand"):
        latex_to_mathml(r"x + \notacommand{y}")


def test_markdown_has_display_math(seed4):
    md = seed4.derive("w3").markdown()
    assert md.startswith("## dL/dw₃: recurrent weight carrying o₃ into layer 4\n")
    assert "*L → o₅ → o₄ → w₃*" in md
    assert md.count("$$") % 2 == 0 and md.count("$$") >= 10
    assert "\\frac{\\partial o_{4}}{\\partial w_{3}} = o_{3} \\left(1 - o_{4}^{2}\\right)" in md


def test_json_notes_say_what_H_is_where_it_first_appears():
    steps = rs.seed_rnn(steps=2, activation="relu").derive("w").to_dict()["steps"]
    assert [("Heaviside" in s["note"], s["kind"]) for s in steps if "Heaviside" in s["note"]] == [(True, "local_factors")]


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
