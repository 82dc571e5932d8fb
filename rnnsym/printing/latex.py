"""LaTeX, in SymPy's printer style, keeping the chain-rule factor order and writing ∂ for local partials."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..records import Chain, Delta, Equation, JacobianItem, Partial, Product, Step, Sum, Total, Update
from .base import MatrixNotation, StepPrinter, heaviside_step, positive_terms_first


class LatexNotation:
    """LaTeX's marks for matrices and sums, shared by the expression printer (matrix expressions)
    and the step printer (the rule table's shares)."""

    sum_mark = r"\sum "

    @staticmethod
    def transposed(text: str) -> str:
        return f"{text}^{{T}}"

    @staticmethod
    def paren(text: str) -> str:
        return r"\left(%s\right)" % text

    @staticmethod
    def diag(text: str) -> str:
        return r"\mathrm{diag}\left(%s\right)" % text


class _ExprPrinter(LatexNotation, MatrixNotation, LatexPrinter):
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
        tex = r"\mathrm{relu}\left(%s\right)" % self._print(expr.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)

    def _print_MatVec(self, expr, exp=None):
        return "%s %s" % (self._print(expr.args[0]), self._print(expr.args[1]))

    def _print_softmax(self, expr, exp=None):
        return r"\mathrm{softmax}\left(%s\right)" % self._print(expr.args[0])

    def _print_Heaviside(self, expr, exp=None):
        tex = r"H\left(%s\right)" % self._print(expr.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)

    # ---- a vector network's matrix expressions (rnnsym.matrix_expr): MatrixNotation's walk in
    # LatexNotation's notation, the step printer's own
    times = " "


_expr_printer = _ExprPrinter()


def expr_latex(expr) -> str:
    # Function names are set upright with \mathrm, not \operatorname (SymPy's choice for names it
    # does not know, such as erf): KaTeX counts three macro expansions for each \operatorname and
    # refuses a block past 1000, which one LSTM derivation passes; before a bracket both look the same.
    return _expr_printer.doprint(sp.sympify(expr)).replace("\\operatorname{", "\\mathrm{")


def name_latex(name: str) -> str:
    """A node name as SymPy writes a symbol: ``o5`` → ``o_{5}``, ``W_hh`` → ``W_{hh}``."""
    return _expr_printer.doprint(sp.Symbol(name))


class LatexStepPrinter(LatexNotation, StepPrinter):
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

    def _print_Elided(self, e):
        # The middle of a long recursive view, left out of print only: the gradient has all of it.
        ends = r"%s \;\ldots\; %s" % (self.doprint(e.first), self.doprint(e.last))
        if e.unit == "terms":
            return r"\ldots \left[\text{%d terms not shown: } %s\right] \ldots" % (e.count, ends)
        return r"%s \qquad \text{(%d equations of the same form not shown)}" % (ends, e.count)

    def _left(self, term) -> str:
        """What multiplies the incoming adjoint: the softmax coupling, then diag(f) (omitted when f = 1)."""
        out = ""
        if term.softmax is not None:
            o = name_latex(term.softmax.name)
            out += r"\left(\mathrm{diag}\left(%s\right) - %s %s^{T}\right) " % (o, o, o)
        if term.factor != 1:
            out += r"\mathrm{diag}\left(%s\right) " % expr_latex(term.factor)
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
            elif t.attention is not None:
                parts.append(core + self.attention_factor(t))
            else:
                parts.append(core.strip() or "I")
        return " + ".join(parts)

    # the notation of a share (StepPrinter._print_Applied walks it)
    sep = " "
    name, expr = staticmethod(name_latex), staticmethod(expr_latex)

    @staticmethod
    def delta(name: str) -> str:
        return r"\delta_{%s}" % name

    @staticmethod
    def coupling(o: str) -> str:
        return r"\left(\mathrm{diag}\left(%s\right) - %s %s^{T}\right)" % (o, o, o)

    hole, hole_mark = r"\left[\cdot\right]", r"\cdot"

    def row(self, text: str, i: int) -> str:
        return rf"\left[{text}\right]_{{{i}}}"

    def part(self, text: str, start: int, stop: int) -> str:
        return rf"\left[{text}\right]_{{{start + 1}:{stop}}}"

    def _print_Update(self, u: Update):
        return r"%s - \eta \frac{d %s}{d %s}" % (name_latex(u.param), name_latex(u.loss), name_latex(u.param))

    def _print_Equation(self, eq: Equation):
        return self.equation(eq)

    def equation(self, eq: Equation, align: bool = False) -> str:
        lhs, rhs = self.equation_sides(eq)
        if align and rhs:
            return f"{lhs} &{rhs}"
        return f"{lhs} {rhs}" if rhs else lhs

    def equation_sides(self, eq: Equation) -> tuple[str, str]:
        """The left-hand side, and the rest from the first relation on (``= a = b``; '' if none)."""
        rel = r"\leftarrow " if eq.relation == "←" else "= "
        return self.doprint(eq.lhs), " ".join(rel + self.doprint(r) for r in eq.rhs)

    def _print_Step(self, step: Step):
        return r" \\ ".join(self.doprint(eq) for eq in step.equations)


def equation_latex(eq: Equation) -> str:
    return LatexStepPrinter().doprint(eq)


_TEXT_SPECIALS = {c: "\\" + c for c in "#$%&_{}"}
_TEXT_SPECIALS.update({"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"})


def text_latex(text: str) -> str:
    """Prose for ``\\text{...}``: LaTeX's special characters escaped (``&`` would end a column)."""
    return "".join(_TEXT_SPECIALS.get(c, c) for c in text)


# Where relu's derivative first appears, a row of the block says what H is.
HEAVISIDE_LATEX = (r"\text{where } H(u) = 1 \text{ for } u > 0 \text{ and } 0 \text{ otherwise: "
                   r"the Heaviside step, relu's derivative}")


@dataclass(frozen=True)
class PathName:
    """Path ``k``'s term, named ``P_k`` where a derivation would otherwise repeat it."""

    k: int


@dataclass(frozen=True)
class PathNames:
    """The sum of every path's term, ``P_1 + … + P_n``."""

    n: int


class NamedPathsPrinter(LatexStepPrinter):
    def _print_PathName(self, p: PathName):
        return "P_{%d}" % p.k

    def _print_PathNames(self, p: PathNames):
        if p.n <= 4:
            return " + ".join("P_{%d}" % k for k in range(1, p.n + 1))
        return r"P_{1} + P_{2} + \dots + P_{%d}" % p.n


def name_paths(steps) -> list:
    """The equations of each step with every path's chain, and its substituted product where the
    total repeats it, replaced by the name ``P_k`` after the chain rule's step has defined it.

    With many paths the chains and products fill most of a derivation three times over (an LSTM's
    weight at T = 3: 30 paths, 85 kB of LaTeX); named, each is written once."""
    chains = {}
    for step in steps:
        if step.kind == "chain_rule" and len(step.equations) > 2:
            chains = {eq.lhs: k for k, eq in enumerate(step.equations[1:], 1) if isinstance(eq.lhs, Chain)}
    if not chains:
        return [list(step.equations) for step in steps]
    products = {}
    out = []
    for step in steps:
        equations = []
        for eq in step.equations:
            if step.kind == "chain_rule" and isinstance(eq.lhs, Chain) and not eq.rhs:
                eq = Equation(PathName(chains[eq.lhs]), (eq.lhs,))
            elif step.kind == "chain_rule" and isinstance(eq.lhs, Total):
                eq = Equation(eq.lhs, (PathNames(len(chains)),))
            elif step.kind == "path_terms" and eq.lhs in chains:
                products[eq.rhs[0]] = chains[eq.lhs]
                eq = Equation(PathName(chains[eq.lhs]), eq.rhs)
            elif step.kind == "total" and eq.rhs and isinstance(eq.rhs[0], Sum):
                terms = tuple(PathName(products[t]) if isinstance(t, Product) and t in products else t
                              for t in eq.rhs[0].terms)
                named = all(isinstance(t, PathName) for t in terms) and len(terms) == len(chains)
                eq = Equation(eq.lhs, (PathNames(len(terms)) if named else Sum(terms),))
            equations.append(eq)
        out.append(equations)
    return out


def derivation_latex(d) -> str:
    """The derivation as one LaTeX ``aligned`` block: each step's title as a ``\\text`` row, then
    one row per equation; with several paths, path k's term is named ``P_k`` and written once."""
    printer = NamedPathsPrinter()
    rows = []
    heaviside = heaviside_step(d.steps)
    for i, (step, equations) in enumerate(zip(d.steps, name_paths(d.steps)), 1):
        rows.append(r"&\text{%d. %s}" % (i, text_latex(step.title)))
        rows += [printer.equation(eq, align=True) for eq in equations]
        if i - 1 == heaviside:
            rows.append("&" + HEAVISIDE_LATEX)
    return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"
