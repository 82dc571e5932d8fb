"""MathML through latex2mathml, refusing output where a LaTeX command was not understood.

A whole derivation is an HTML table of ``<math>`` cells (see :func:`derivation_mathml`).

latex2mathml does not raise on an unknown command: it writes ``\\foo`` into the MathML as text.
Every conversion here is parsed as XML and searched for a leftover backslash.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from latex2mathml.converter import convert

from .latex import LatexStepPrinter


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


# MathML Core (Chromium) ignores mtable's alignment attributes and its CSS ``text-align: right``
# on mtd, so one <math> holding an aligned table centres every row. An HTML table of one <math> per
# side aligns in every browser: left-hand sides flush right, right-hand sides flush left, the
# relations in one column. Inline styles, so the fragment needs no style sheet.
_TABLE = "border-collapse: collapse"
_TITLE = "text-align: left; font-weight: bold; padding: 0.8em 0 0.2em"
_LHS = "text-align: right; vertical-align: middle; white-space: nowrap; padding: 0.2em 0"
_RHS = "text-align: left; vertical-align: middle; white-space: nowrap; padding: 0.2em 0"


def _cell(latex: str) -> str:
    # Display style, as in an aligned block; "{}" first so a leading "=" spaces as a relation.
    return latex_to_mathml(r"\displaystyle {}" + latex, display="inline")


def derivation_mathml(d) -> str:
    """The derivation as an HTML fragment (well-formed XML): a table with each step's title, then
    one row per equation, its two sides in their own ``<math>`` so that rows align in a MathML
    Core browser; a wide row scrolls inside the fragment's box instead of pushing the page."""
    from html import escape

    from .base import heaviside_step, prose_names
    from .latex import HEAVISIDE_LATEX, NamedPathsPrinter, name_paths
    from .text import text_name

    printer = NamedPathsPrinter()
    names = d.network.graph.nodes
    heaviside = heaviside_step(d.steps)
    rows = []
    for i, (step, equations) in enumerate(zip(d.steps, name_paths(d.steps)), 1):
        title = prose_names(f"{i}. {step.title}", names, text_name)
        rows.append(f'<tr><th colspan="2" style="{_TITLE}">{escape(title)}</th></tr>')
        for eq in equations:
            lhs, rhs = printer.equation_sides(eq)
            rows.append(f'<tr><td style="{_LHS}">{_cell(lhs)}</td>'
                        f'<td style="{_RHS}">{_cell(" " + rhs) if rhs else ""}</td></tr>')
        if i - 1 == heaviside:
            rows.append(f'<tr><td></td><td style="{_RHS}">{_cell(" " + HEAVISIDE_LATEX)}</td></tr>')
    return (f'<div class="rnnsym-derivation" style="overflow-x: auto"><table style="{_TABLE}">'
            + "".join(rows) + "</table></div>")
