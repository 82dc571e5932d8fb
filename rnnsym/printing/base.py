"""What every step printer shares: dispatch on record type, SymPy-style."""
from __future__ import annotations

import re
from dataclasses import fields, is_dataclass

import sympy as sp

from sympy.matrices.expressions import MatAdd, MatMul, OneMatrix

from ..engine.rules import Adjoint, Coupled, Diag, ExampleOuter, Outer, Part, RowOf, Summed, TransposeTimes
from ..functions import MatVec, Mix, Scores
from ..matrix_expr import Elementwise, scalar_form


class StepPrinter:
    """Renders derivation records; subclasses define ``_print_<RecordClass>`` methods.

    As in SymPy's printers, the method is found through the record's class hierarchy, so every
    SymPy expression falls through to ``_print_Basic``.
    """

    def doprint(self, obj) -> str:
        if isinstance(obj, sp.Basic):  # every SymPy object goes to the expression printer
            return self._print_Basic(obj)
        for cls in type(obj).__mro__:
            method = getattr(self, f"_print_{cls.__name__}", None)
            if method is not None:
                return method(obj)
        raise TypeError(f"{type(self).__name__} cannot print {type(obj).__name__}")

    def _print_int(self, obj) -> str:
        return self.doprint(sp.Integer(obj))

    # ---- a share (rnnsym.records.Applied): the rule table's operations, in the printer's notation --
    # A subclass gives the pieces: name, expr, sep (what joins factors), transposed, paren, sum_mark,
    # delta, diag and coupling; the walk over the operations is the same for every notation.
    def _print_Applied(self, a) -> str:
        """``Wᵀ·diag(f)·δ``, ``diag(f)·δ·vᵀ``, ``Σ(…)`` or ``diag(f)·δ`` (``δ·f`` for scalars)."""
        e, sep = a.share, self.sep
        core = lambda x: self._carried(x, a.scalar) or "1"  # noqa: E731
        if isinstance(e, TransposeTimes):
            return f"{self.transposed(self.name(e.args[0].name))}{sep}{core(e.args[1])}"
        if isinstance(e, Outer):
            return f"{core(e.args[0])}{sep}{self.transposed(self.name(e.args[1].name))}"
        if isinstance(e, Summed):
            return f"{self.sum_mark}{self.paren(core(e.args[0]))}"
        if isinstance(e, (RowOf, ExampleOuter, Mix, Scores, Part)):
            return self._attention_share(e, core)
        if not isinstance(e, (Adjoint, Diag, Coupled)):
            return self.expr(e)  # the loss's own gradient (no δ before it)
        return core(e)

    def _attention_share(self, e, core) -> str:
        """Attention's shares: ``[δH]₁`` (a stacked state's row), ``δe·qᵀ`` and ``α·δcᵀ`` (the
        stack's, per example), ``Hᵀ·δe`` (the query's), ``H·δc`` (the weights')."""
        sep = self.sep
        if isinstance(e, RowOf):
            return self.row(core(e.args[0]), int(e.args[1]) + 1)
        if isinstance(e, Part):
            return self.part(core(e.args[0]), int(e.args[1]), int(e.args[2]))
        if isinstance(e, Mix):
            return f"{self.transposed(self.name(e.args[0].name))}{sep}{core(e.args[1])}"
        if isinstance(e, Scores):
            return f"{self.name(e.args[0].name)}{sep}{core(e.args[1])}"
        x, v = e.args
        if isinstance(x, (Adjoint, Diag, Coupled)):  # the scores' stack: δe·qᵀ
            return f"{core(x)}{sep}{self.transposed(self.name(v.name))}"
        carried = core(v)  # the weighted sum's stack: α·δcᵀ
        return f"{self.name(x.name)}{sep}{self.transposed(carried if sep not in carried else self.paren(carried))}"

    def attention_factor(self, t) -> str:
        """An attention term's local Jacobian (rnnsym.engine.local.JacobianTerm): ``H`` for the
        query of ``H·q``, ``Hᵀ`` for the weights of ``Hᵀ·a``, ``[·]·qᵀ`` and ``a·[·]ᵀ`` for the stack
        (how it receives the gradient g: g·qᵀ, a·gᵀ), ``[·]_i`` for the state stacked as row i."""
        sep, hole = self.sep, self.hole
        if t.attention == "row":
            return self.row(self.hole_mark, t.row + 1)
        if t.attention == "part":
            return self.part(self.hole_mark, *t.span)
        other = self.name(t.operand.name)
        return {"query": other, "weights": self.transposed(other),
                "keys": f"{hole}{sep}{self.transposed(other)}",
                "values": f"{other}{sep}{self.transposed(hole)}"}[t.attention]

    hole, hole_mark = "[·]", "·"  # the gradient a factor receives, and the mark inside the brackets

    def row(self, text: str, i: int) -> str:
        """Row ``i`` (from 1) of a matrix written ``text``."""
        return f"[{text}]_{i}"

    def part(self, text: str, start: int, stop: int) -> str:
        """Components ``start + 1`` to ``stop`` (from 1) of a vector written ``text``."""
        return f"[{text}]_({start + 1}…{stop})"

    def _carried(self, x, scalar: bool) -> str:
        """``diag(f)·δ`` (``δ·f`` for scalars), behind a softmax coupling; '' for δ_L alone."""
        sep = self.sep
        if isinstance(x, Adjoint):
            return self.delta(self.name(x.name))
        if isinstance(x, Coupled):
            return f"{self.coupling(self.name(x.args[0].name))}{sep}{self._carried(x.args[1], scalar)}".rstrip(sep)
        if isinstance(x, Diag):
            f, delta = x.args
            if scalar:
                return f"{self._carried(delta, scalar)}{sep}{self.paren(self.expr(f)) if f.is_Add else self.expr(f)}"
            return f"{self.diag(self.expr(f))}{sep}{self._carried(delta, scalar)}"
        if x == 1:
            return "" if not scalar else "1"
        return self.expr(x) if scalar else self.diag(self.expr(x))


def positive_terms_first(terms: list) -> list:
    """Put terms with a minus sign last, so ``o5 - Y`` prints as written rather than ``-Y + o5``."""
    return sorted(terms, key=lambda t: t.could_extract_minus_sign())


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prose_names(text: str, names, write) -> str:
    """``text`` (a label, title, note or role) with every word that is a node name in ``names``
    written by ``write``, so prose says ``o₅`` where the equations do: "L → o5" → "L → o₅"."""
    if not names:
        return text
    return _WORD.sub(lambda m: write(m.group()) if m.group() in names else m.group(), text)


HEAVISIDE_NOTE = ("H is the Heaviside step, the derivative of relu: H(u) = 1 for u > 0 and 0 otherwise; "
                  "since relu's output is positive exactly where its input is, H(o) of a relu node o is "
                  "relu′ at its input (0 at the kink).")


def _expressions(item):
    """Every SymPy expression inside a record (records are dataclasses, tuples of them, or SymPy)."""
    if isinstance(item, sp.Basic):
        yield item
    elif isinstance(item, (tuple, list)):
        for x in item:
            yield from _expressions(x)
    elif is_dataclass(item) and not isinstance(item, type):
        for f in fields(item):
            yield from _expressions(getattr(item, f.name))


def uses_heaviside(step) -> bool:
    return any(e.has(sp.Heaviside) for e in _expressions(step.equations))


def heaviside_step(steps) -> int | None:
    """The index of the first step whose equations use H (relu's derivative), if any."""
    return next((i for i, step in enumerate(steps) if uses_heaviside(step)), None)


def step_notes(steps) -> list[str]:
    """Each step's note; the first step whose equations use H (relu's derivative) also says what H is."""
    first = heaviside_step(steps)
    notes = [step.note for step in steps]
    if first is not None:
        notes[first] = f"{notes[first]} {HEAVISIDE_NOTE}" if notes[first] else HEAVISIDE_NOTE
    return notes


class MatrixNotation:
    """A vector network's matrix expressions (rnnsym.matrix_expr) in the recursive view's notation,
    for a SymPy expression printer: one walk, the notation from the printer (``times`` between
    factors, ``transposed``, ``diag``, ``paren`` and ``sum_mark``, the step printers' own)."""

    def _print_MatrixSymbol(self, expr, **kwargs):
        return self._print_Symbol(sp.Symbol(expr.name), **kwargs)

    def _print_Transpose(self, expr):
        return self.transposed(self._matrix_factor(expr.arg))

    def _print_DiagMatrix(self, expr):
        return self.diag(self._elementwise(expr.args[0]))

    def _print_Elementwise(self, expr):
        return self._elementwise(expr)

    def _print_OneMatrix(self, expr):
        return "1"

    def _print_ZeroMatrix(self, expr):
        return "0"

    def _print_MatMul(self, expr):
        factors = list(expr.args)
        if isinstance(factors[0], OneMatrix) and factors[0].shape[0] == 1 and len(factors) > 1:  # Σ x
            return f"{self.sum_mark}{self.paren(self._print_MatMul(MatMul(*factors[1:])))}"
        form = scalar_form(expr)  # c·OneMatrix: the number c, as a factor writes it
        if form is not None and not isinstance(form, MatVec):
            return self._print(form)
        sign = ""
        if factors[0] == -1:
            sign, factors = "-", factors[1:]
        return sign + self.times.join(self._matrix_factor(f) for f in factors)

    def _print_MatAdd(self, expr):
        out = ""
        for i, term in enumerate(expr.args):
            text = self._print(term)
            out += (" - " + text[1:].lstrip() if text.startswith("-") else " + " + text) if i else text
        return out

    def _matrix_factor(self, m) -> str:
        """A factor of a product: a sum in brackets, an elementwise factor as its expression."""
        text = self._print(m)
        if isinstance(m, MatAdd) or isinstance(m, Elementwise) and m.scalar().is_Add:
            return self.paren(text)
        return text

    def _elementwise(self, m) -> str:
        form = scalar_form(m)
        return self._print(form) if form is not None else self._print(m)
