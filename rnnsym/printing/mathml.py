"""MathML through latex2mathml, refusing output where a LaTeX command was not understood.

latex2mathml does not raise on an unknown command: it writes ``\\foo`` into the MathML as text.
Every conversion here is parsed as XML and searched for a leftover backslash.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from latex2mathml.converter import convert

from .latex import LatexStepPrinter, derivation_latex


class MathMLError(RuntimeError):
    """latex2mathml produced MathML that is not XML or still holds raw LaTeX."""


def latex_to_mathml(latex: str, display: str = "block") -> str:
    """Convert LaTeX to MathML and check that the result is well-formed and fully converted."""
    mathml = convert(latex, display=display)
    try:
        root = ET.fromstring(mathml)
    except ET.ParseError as exc:  # pragma: no cover - latex2mathml writes XML
        raise MathMLError(f"latex2mathml wrote invalid XML for {latex!r}: {exc}") from exc
    leaked = sorted({t for el in root.iter() for t in (el.text or "").split() if "\\" in t})
    if leaked:
        raise MathMLError(f"LaTeX command(s) not converted to MathML: {', '.join(leaked)} (in {latex!r})")
    return mathml


def equation_mathml(eq, display: str = "block") -> str:
    return latex_to_mathml(LatexStepPrinter().equation(eq), display)


def derivation_mathml(d) -> str:
    """The whole derivation as one MathML block (an aligned table of equations)."""
    # latex2mathml turns `split` into an aligned <mtable> but leaves the `&` of `aligned` as raw
    # text; the two environments mean the same here.
    latex = derivation_latex(d).replace(r"\begin{aligned}", r"\begin{split}").replace(r"\end{aligned}", r"\end{split}")
    return latex_to_mathml(latex)
