"""Plain data (for JSON): every step with its equations in LaTeX and in text."""
from __future__ import annotations

from ..records import Sum
from .base import step_notes
from .latex import LatexStepPrinter
from .text import TextPrinter


def derivation_dict(d) -> dict:
    latex, text = LatexStepPrinter(), TextPrinter()
    # In print, a vector network's total is its paths' Jacobian products, as the path view writes them;
    # past the limit, the recursive view's last equation (its long sums elided).
    if d.path_terms is None:
        total, shown = d.result, d.shown_result
    else:
        total = d.expr
        shown = total if d.scalar else _path_sum(d)
    return {
        "target": d.target,
        "kind": d.kind,
        "path_count": d.path_count,  # paths and terms are null past the path view's limit
        "paths": None if d.path_terms is None else [list(p) for p in d.paths],
        "terms": None if d.path_terms is None else [str(t) for t in d.terms],  # SymPy's str (matrix expressions)
        "expr": str(total),
        # The step printers read both SymPy expressions and the records of vector networks.
        "expr_latex": latex.doprint(shown),
        "expr_text": text.doprint(shown),
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


def _path_sum(d):
    """The sum of a vector network's path terms as records (Jacobian products, in path order)."""
    values = tuple(t.value for t in d.path_terms)
    return values[0] if len(values) == 1 else Sum(values)
