"""Plain text with Unicode: ∂, subscripts (o₅), superscripts (o₄²), σ, middle dots."""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.str import StrPrinter

from ..records import Chain, Equation, Partial, Product, Step, Sum, Total, Update
from .base import StepPrinter, positive_terms_first

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def text_name(name: str) -> str:
    """``o5`` → ``o₅``; ``W_hh`` stays as it is."""
    m = re.fullmatch(r"([A-Za-z]+)(\d+)", name)
    return m.group(1) + m.group(2).translate(_SUB) if m else name


class _ExprPrinter(StrPrinter):
    def _as_ordered_terms(self, expr, order=None):
        return positive_terms_first(super()._as_ordered_terms(expr, order))

    def _print_Symbol(self, expr):
        return text_name(expr.name)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and 1 < exp < 10:
            b = self._print(base)
            if not (base.is_Symbol or base.is_Function):
                b = f"({b})"
            return b + str(exp).translate(_SUP)
        return super()._print_Pow(expr, rational)

    def _print_sigmoid(self, expr):
        return f"σ({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        return f"H({self._print(expr.args[0])})"


def expr_text(expr) -> str:
    s = _ExprPrinter().doprint(sp.sympify(expr))
    return s.replace("*", "·").replace("-", "−")


class TextPrinter(StepPrinter):
    def _print_Basic(self, e):
        return expr_text(e)

    def _print_Partial(self, p: Partial):
        return f"∂{text_name(p.of)}/∂{text_name(p.wrt)}"

    def _print_Total(self, t: Total):
        return f"d{text_name(t.of)}/d{text_name(t.wrt)}"

    def _print_Chain(self, c: Chain):
        return "".join(f"({self.doprint(p)})" for p in c.partials) or "1"

    def _print_Product(self, p: Product):
        if len(p.factors) == 1:
            return self.doprint(p.factors[0])
        if p.grouped:
            return "·".join(f"[{self.doprint(f)}]" for f in p.factors) or "1"
        return "·".join(f"({self.doprint(f)})" if f.is_Add else self.doprint(f) for f in p.factors)

    def _print_Sum(self, s: Sum):
        return " + ".join(self.doprint(t) for t in s.terms)

    def _print_Update(self, u: Update):
        return f"{text_name(u.param)} − η·d{text_name(u.loss)}/d{text_name(u.param)}"

    def _print_Equation(self, eq: Equation):
        return self.equation(eq, label=True)

    def equation(self, eq: Equation, label: bool = False) -> str:
        rel = f" {eq.relation} "
        s = self.doprint(eq.lhs) + "".join(rel + self.doprint(r) for r in eq.rhs)
        return f"{s}    ({eq.label})" if label and eq.label else s

    def _print_Step(self, step: Step):
        lines = [step.title]
        lines += ["    " + self.doprint(eq) for eq in step.equations]
        if step.note:
            lines.append("    Note: " + step.note)
        return "\n".join(lines)


def derivation_text(d) -> str:
    printer = TextPrinter()
    head = f"{printer.doprint(Total(d.network.loss_name, d.target))}: {d.network.graph[d.target].role}"
    body = [f"{i}. {printer.doprint(step)}" for i, step in enumerate(d.steps, 1)]
    return "\n".join([head, "=" * len(head), *body, f"Result: {printer.doprint(Total(d.network.loss_name, d.target))} = {printer.doprint(d.result)}"])
