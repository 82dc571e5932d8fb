"""Plain data (for JSON): every step with its equations in LaTeX and in text."""
from __future__ import annotations

from .base import step_notes
from .latex import LatexStepPrinter
from .text import TextPrinter


def derivation_dict(d) -> dict:
    latex, text = LatexStepPrinter(), TextPrinter()
    total = d.expr if d.path_terms is not None else d.result  # past the limit: the recursive view's
    return {
        "target": d.target,
        "kind": d.kind,
        "path_count": d.path_count,  # paths and terms are null past the path view's limit
        "paths": None if d.path_terms is None else [list(p) for p in d.paths],
        "terms": None if d.path_terms is None else [str(t) for t in d.terms],
        "expr": str(total),
        # The step printers read both SymPy expressions and the records of vector networks.
        "expr_latex": latex.doprint(total),
        "expr_text": text.doprint(total),
        "steps": [
            {
                "kind": step.kind,
                "title": step.title,
                "note": note,  # where relu's derivative first appears, also what H is
                "equations": [
                    {"latex": latex.equation(eq), "text": text.equation(eq), "label": eq.label}
                    for eq in step.equations
                ],
            }
            for step, note in zip(d.steps, step_notes(d.steps))
        ],
    }
