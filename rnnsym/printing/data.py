"""Plain data (for JSON): every step with its equations in LaTeX and in text."""
from __future__ import annotations

from .latex import LatexStepPrinter, expr_latex
from .text import TextPrinter, expr_text


def derivation_dict(d) -> dict:
    latex, text = LatexStepPrinter(), TextPrinter()
    return {
        "target": d.target,
        "kind": d.kind,
        "paths": [list(p) for p in d.paths],
        "terms": [str(t) for t in d.terms],
        "expr": str(d.expr),
        "expr_latex": expr_latex(d.expr),
        "expr_text": expr_text(d.expr),
        "steps": [
            {
                "kind": step.kind,
                "title": step.title,
                "note": step.note,
                "equations": [
                    {"latex": latex.equation(eq), "text": text.equation(eq), "label": eq.label}
                    for eq in step.equations
                ],
            }
            for step in d.steps
        ],
    }
