"""LaTeX, in SymPy's printer style, keeping the chain-rule factor order and writing ∂ for local partials."""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..records import Applied, Chain, Delta, Equation, JacobianItem, Partial, Product, Step, Sum, Total, Update
from .base import StepPrinter, positive_terms_first


class _ExprPrinter(LatexPrinter):
    def _as_ordered_terms(self, expr, order=None):
        return positive_terms_first(super()._as_ordered_terms(expr, order))

    def _print_Symbol(self, expr, style="plain"):
        if expr.name.startswith("delta_"):  # an adjoint's label in the component form
            return r"\delta_{%s}" % super()._print_Symbol(sp.Symbol(expr.name[len("delta_"):]))
        return super()._print_Symbol(expr, style)

    def _print_sigmoid(self, expr, exp=None):
        tex = r"\sigma\left(%s\right)" % self._print(expr.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)

    def _print_relu(self, expr, exp=None):
        tex = r"\operatorname{relu}\left(%s\right)" % self._print(expr.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)

    def _print_MatVec(self, expr, exp=None):
        return "%s %s" % (self._print(expr.args[0]), self._print(expr.args[1]))

    def _print_softmax(self, expr, exp=None):
        return r"\operatorname{softmax}\left(%s\right)" % self._print(expr.args[0])

    def _print_Heaviside(self, expr, exp=None):
        tex = r"H\left(%s\right)" % self._print(expr.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)


_expr_printer = _ExprPrinter()


def expr_latex(expr) -> str:
    return _expr_printer.doprint(sp.sympify(expr))


def name_latex(name: str) -> str:
    """A node name as SymPy writes a symbol: ``o5`` → ``o_{5}``, ``W_hh`` → ``W_{hh}``."""
    return _expr_printer.doprint(sp.Symbol(name))


class LatexStepPrinter(StepPrinter):
    def _print_Basic(self, e):
        return expr_latex(e)

    def _print_Partial(self, p: Partial):
        return r"\frac{\partial %s}{\partial %s}" % (name_latex(p.of), name_latex(p.wrt))

    def _print_Total(self, t: Total):
        return r"\frac{d %s}{d %s}" % (name_latex(t.of), name_latex(t.wrt))

    def _print_Chain(self, c: Chain):
        return " ".join(self.doprint(p) for p in c.partials) or "1"

    def _print_Product(self, p: Product):
        if len(p.factors) == 1:
            return self.doprint(p.factors[0])
        if p.grouped:
            return r" \cdot ".join(r"\left(%s\right)" % self.doprint(f) for f in p.factors) or "1"
        return " ".join(r"\left(%s\right)" % self.doprint(f) if f.is_Add else self.doprint(f) for f in p.factors)

    def _print_Sum(self, s: Sum):
        out = ""
        for i, term in enumerate(s.terms):
            tex = self.doprint(term)
            if i and tex.startswith("-"):
                out += " - " + tex[1:].lstrip()
            else:
                out += (" + " if i else "") + tex
        return out

    def _print_ComponentOf(self, c):
        return r"\left[%s\right]_{%s}" % (self.doprint(c.item), c.index)

    def _print_Delta(self, d: Delta):
        return r"\delta_{%s}" % name_latex(d.node)

    def _left(self, term) -> str:
        """What multiplies the incoming adjoint: the softmax coupling, then diag(f) (omitted when f = 1)."""
        out = ""
        if term.softmax is not None:
            o = name_latex(term.softmax.name)
            out += r"\left(\operatorname{diag}\left(%s\right) - %s %s^{T}\right) " % (o, o, o)
        if term.factor != 1:
            out += r"\operatorname{diag}\left(%s\right) " % expr_latex(term.factor)
        return out

    def _print_JacobianItem(self, j: JacobianItem):
        parts = []
        if j.gradient:
            return " + ".join(r"\left(%s\right)^{T}" % expr_latex(t.factor) for t in j.terms)
        for t in j.terms:
            core = self._left(t)
            if t.matrix is not None:
                parts.append(core + name_latex(t.matrix.name))
            elif t.outer is not None:
                parts.append(core + r"\left[\cdot\right] " + name_latex(t.outer.name) + "^{T}")
            else:
                parts.append(core.strip() or "I")
        return " + ".join(parts)

    def _print_Applied(self, a: Applied):
        t = a.term
        delta = "" if a.delta is None else r"\delta_{%s}" % name_latex(a.delta)
        if a.scalar:
            f = expr_latex(t.factor)
            if not delta:
                return f
            return delta if t.factor == 1 else r"%s \left(%s\right)" % (delta, f) if t.factor.is_Add else f"{delta} {f}"
        if not delta and t.matrix is None and t.outer is None and t.softmax is None:
            return expr_latex(t.factor)  # the loss's gradient vector itself
        core = (self._left(t) + delta).strip() or "1"
        if t.matrix is not None:
            return f"{name_latex(t.matrix.name)}^{{T}} {core}"
        if t.outer is not None:
            return f"{core} {name_latex(t.outer.name)}^{{T}}"
        return r"\sum \left(%s\right)" % core if a.summed else core

    def _print_Update(self, u: Update):
        return r"%s - \eta \frac{d %s}{d %s}" % (name_latex(u.param), name_latex(u.loss), name_latex(u.param))

    def _print_Equation(self, eq: Equation):
        return self.equation(eq)

    def equation(self, eq: Equation, align: bool = False) -> str:
        rel = r" \leftarrow " if eq.relation == "←" else " = "
        rhs = [self.doprint(r) for r in eq.rhs]
        if align and rhs:
            return self.doprint(eq.lhs) + " &" + rel.lstrip() + rel.join(rhs)
        return self.doprint(eq.lhs) + "".join(rel + r for r in rhs)

    def _print_Step(self, step: Step):
        return r" \\ ".join(self.doprint(eq) for eq in step.equations)


def equation_latex(eq: Equation) -> str:
    return LatexStepPrinter().doprint(eq)


def derivation_latex(d) -> str:
    """The derivation as one LaTeX ``aligned`` block, one row per equation of every step."""
    printer = LatexStepPrinter()
    rows = [printer.equation(eq, align=True) for step in d.steps for eq in step.equations]
    return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"
