"""Plain text with Unicode: ∂, subscripts (o₅), superscripts (o₄²), σ, middle dots."""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.str import StrPrinter

from ..records import Chain, Delta, Equation, JacobianItem, Partial, Product, Step, Sum, Total, Update
from .base import MatrixNotation, StepPrinter, positive_terms_first, prose_names, step_notes

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def text_name(name: str) -> str:
    """``o5`` → ``o₅``; ``W_hh`` stays as it is."""
    m = re.fullmatch(r"([A-Za-z]+)(\d+)", name)
    return m.group(1) + m.group(2).translate(_SUB) if m else name


class TextNotation:
    """Plain text's marks for matrices and sums, shared by the expression printer (matrix
    expressions) and the step printer (the rule table's shares)."""

    sum_mark = "Σ"

    @staticmethod
    def transposed(text: str) -> str:
        return f"{text}ᵀ"

    @staticmethod
    def paren(text: str) -> str:
        return f"({text})"

    @staticmethod
    def diag(text: str) -> str:
        return f"diag({text})"


class _ExprPrinter(TextNotation, MatrixNotation, StrPrinter):
    def _as_ordered_terms(self, expr, order=None):
        return positive_terms_first(super()._as_ordered_terms(expr, order))

    def _print_Symbol(self, expr):
        if expr.name.startswith("delta_"):  # an adjoint's label in the component form
            return "δ" + text_name(expr.name[len("delta_"):])
        return text_name(expr.name)

    def _print_Sum(self, expr):
        (index, low, high), = expr.limits
        return f"Σ_{self._print(index)} {self._print(expr.function)}"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and 1 < exp < 10:
            b = self._print(base)
            if not (base.is_Symbol or base.is_Function or isinstance(base, sp.Indexed)):
                b = f"({b})"
            return b + str(exp).translate(_SUP)
        return super()._print_Pow(expr, rational)

    def _print_sigmoid(self, expr):
        return f"σ({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        return f"H({self._print(expr.args[0])})"

    def _print_MatVec(self, expr):
        return f"{self._print(expr.args[0])}*{self._print(expr.args[1])}"

    def _print_softmax(self, expr):
        return f"softmax({self._print(expr.args[0])})"

    # ---- a vector network's matrix expressions (rnnsym.matrix_expr): MatrixNotation's walk in
    # TextNotation's notation, the step printer's own
    times = "*"


def expr_text(expr) -> str:
    s = _ExprPrinter().doprint(sp.sympify(expr))
    return s.replace("*", "·").replace("-", "−")


class TextPrinter(TextNotation, StepPrinter):
    """Text for records. ``names`` (the graph's node names): prose — labels, titles, notes — writes
    those names as the equations do (``o₅``, not ``o5``)."""

    def __init__(self, names=()):
        self.names = frozenset(names)

    def prose(self, text: str) -> str:
        return prose_names(text, self.names, text_name)

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

    def _print_ComponentOf(self, c):
        return f"{self.doprint(c.item)}[{c.index}]"

    def _print_Delta(self, d: Delta):
        return f"δ{text_name(d.node)}"

    def _print_Elided(self, e):
        # The middle of a long recursive view, left out of print only: the gradient has all of it.
        ends = f"{self.doprint(e.first)} … {self.doprint(e.last)}"
        if e.unit == "terms":
            return f"… ({e.count} terms not shown: {ends}) …"
        return f"{ends}    ({e.count} equations of the same form not shown; --full or full=True lists them)"

    def _left(self, term) -> str:
        """What multiplies the incoming adjoint: the softmax coupling, then diag(f) (omitted when f = 1)."""
        out = ""
        if term.softmax is not None:
            o = text_name(term.softmax.name)
            out += f"(diag({o}) − {o}·{o}ᵀ)·"
        if term.factor != 1:
            out += f"diag({expr_text(term.factor)})·"
        return out

    def _print_JacobianItem(self, j: JacobianItem):
        parts = []
        if j.gradient:
            return " + ".join(f"({expr_text(t.factor)})ᵀ" for t in j.terms)
        for t in j.terms:
            core = self._left(t)
            if t.matrix is not None:
                parts.append(core + text_name(t.matrix.name))
            elif t.outer is not None:
                parts.append(core + f"[·]·{text_name(t.outer.name)}ᵀ")
            elif t.attention is not None:
                parts.append(core + self.attention_factor(t))
            else:
                parts.append(core.rstrip("·") or "I")
        return " + ".join(parts)

    # the notation of a share (StepPrinter._print_Applied walks it): TextNotation's, and these
    sep = "·"
    name, expr = staticmethod(text_name), staticmethod(expr_text)

    @staticmethod
    def delta(name: str) -> str:
        return f"δ{name}"

    @staticmethod
    def coupling(o: str) -> str:
        return f"(diag({o}) − {o}·{o}ᵀ)"

    def row(self, text: str, i: int) -> str:
        return f"[{text}]{str(i).translate(_SUB)}"

    def _print_Update(self, u: Update):
        return f"{text_name(u.param)} − η·d{text_name(u.loss)}/d{text_name(u.param)}"

    def _print_Equation(self, eq: Equation):
        return self.equation(eq, label=True)

    def equation(self, eq: Equation, label: bool = False) -> str:
        rel = f" {eq.relation} "
        s = self.doprint(eq.lhs) + "".join(rel + self.doprint(r) for r in eq.rhs)
        return f"{s}    ({self.prose(eq.label)})" if label and eq.label else s

    def _print_Step(self, step: Step):
        return self.step(step, step.note)

    def step(self, step: Step, note: str) -> str:
        lines = [self.prose(step.title)]
        lines += ["    " + self.doprint(eq) for eq in step.equations]
        if note:
            lines.append("    Note: " + self.prose(note))
        return "\n".join(lines)


def derivation_text(d) -> str:
    graph = d.network.graph
    printer = TextPrinter(graph.nodes)
    head = f"{printer.doprint(Total(d.network.loss_name, d.target))}: {printer.prose(graph[d.target].role)}"
    body = [f"{i}. {printer.step(step, note)}" for i, (step, note) in enumerate(zip(d.steps, step_notes(d.steps)), 1)]
    return "\n".join([head, "=" * len(head), *body, f"Result: {printer.doprint(Total(d.network.loss_name, d.target))} = {printer.doprint(d.shown_result)}"])
