"""The backward rules: how each kind of local Jacobian term carries an adjoint back, in one table.

A local Jacobian ``∂c/∂p`` is a sum of terms (rnnsym.engine.local.JacobianTerm), and every term is
one of a few kinds. Applied backward to the child's adjoint ``δc`` (textbook column vectors):

=================  ======================================  ==========================================
kind               the term                                its share of the parent's adjoint
=================  ======================================  ==========================================
``ELEMENTWISE``    ``diag(f)``                             ``diag(f)·δc``  (``f·δc`` for scalars)
``SUMMED``         a scalar parent of a vector child       ``Σ(diag(f)·δc)``
``THROUGH_MATRIX`` ``diag(f)·W`` (p is v in ``W·v``)       ``Wᵀ·diag(f)·δc``
``WEIGHT``         ``diag(f)·[·]·vᵀ`` (p is W in ``W·v``)  ``diag(f)·δc·vᵀ``
``KEYS``           p is the stack H in ``e = H·q``         ``δe·qᵀ`` (per example)
``QUERY``          p is q in ``e = H·q``                   ``Hᵀ·δe``
``VALUES``         p is the stack H in ``c = Hᵀ·a``        ``a·δcᵀ`` (per example)
``WEIGHTS``        p is a in ``c = Hᵀ·a``                  ``H·δc``
``ROW``            p is row i of ``H = [h_1; …; h_S]``     ``[δH]_i``
``PART``           p is u in ``c = [u; v]`` (joined)       ``δc[start:stop]``, u's components
=================  ======================================  ==========================================

The last five are attention's (rnnsym.functions: Stack, Scores, Mix); scores and weighted sums are
each other's adjoints, so the sum over encoder steps ``δh_i = Σ_t (α_ti·δc_t + δe_ti·q_t)`` is
``[Σ_t (α_t·δc_tᵀ + δe_t·q_tᵀ)]_i``. A softmax puts its coupling ``(diag(o) − o·oᵀ)`` in front of
any of them: an attention weight's own Jacobian; at an output, fused with cross-entropy, it
cancels to ``o − Y``. A share is a SymPy expression built from the operations
below; the derivation's printers and every code emitter print those operations, so this table is
the only place that knows how a kind of term is applied.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

import sympy as sp

from ..functions import Mix, Scores, _Printed
from .local import JacobianTerm


# ---- the operations a share is made of (kept unevaluated: printers and emitters print them) --------
class Diag(sp.Function):
    """``diag(f)·x``: ``f ⊙ x`` elementwise (``f·x`` for scalars)."""

    nargs = 2


class Coupled(sp.Function):
    """``(diag(o) − o·oᵀ)·x``: the softmax output ``o``'s coupling of its components."""

    nargs = 2
    carries_shares = True


class Summed(sp.Function):
    """``Σ x``: a vector summed over its components (a scalar feeding every component)."""

    nargs = 1
    carries_shares = True


class TransposeTimes(sp.Function):
    """``Wᵀ·x``: an adjoint carried back through ``W·v``."""

    nargs = 2
    carries_shares = True


class Outer(sp.Function):
    """``x·vᵀ``: a weight's share, the outer product of the carried adjoint and the vector W multiplies."""

    nargs = 2
    carries_shares = True


class RowOf(sp.Function):
    """``[x]_i``: row ``i`` of a stack's adjoint, the share of the state stacked there."""

    nargs = 2
    carries_shares = True


class ExampleOuter(sp.Function):
    """``x·vᵀ`` for each example (a stack's share: the stack is a node, not a weight summed over the batch)."""

    nargs = 2
    carries_shares = True


class Part(_Printed, sp.Function):
    """``x[start:stop]``: the components of a joined vector's adjoint that belong to one of its parts."""

    nargs = 3
    carries_shares = True

    def _code(self, printer, library, x, start, stop):
        return f"({x})[..., {start}:{stop}]"


class Adjoint(sp.Symbol):
    """``δn``, the adjoint of the node named ``name``, as it appears in a share."""


class TermKind(Enum):
    ELEMENTWISE = "elementwise"
    SUMMED = "summed"
    THROUGH_MATRIX = "through matrix"
    WEIGHT = "weight"
    KEYS = "keys"  # the stack H of the scores H·q
    QUERY = "query"  # the query q of H·q
    VALUES = "values"  # the stack H of the weighted sum Hᵀ·a
    WEIGHTS = "weights"  # the weights a of Hᵀ·a
    ROW = "row"  # a state stacked as row i of H
    PART = "part"  # a vector joined into [u; v] as components start … stop − 1


@dataclass(frozen=True)
class Rule:
    """One kind of term: the textbook formula of its share, how it applies to the carried value
    ``x = diag(f)·δc`` (returns the share), and its component form for the component view:
    ``component(term, x_at, size, own)`` with ``x_at(i)`` the carried value's component i,
    ``size(matrix)`` the number of rows summed over (the child's size for ``None``) and ``own`` the
    index of the left-hand side's component. Attention's kinds have none: their shares run over
    a stack's rows and columns at once, and the component view leaves them out, as it does softmax."""

    formula: str
    apply: Callable[[JacobianTerm, sp.Expr], sp.Expr]
    component: Callable[[JacobianTerm, Callable, Callable, sp.Symbol], sp.Expr] | None = None  # None: none short


_I, _J = sp.symbols("i j", integer=True)

RULES: dict[TermKind, Rule] = {
    TermKind.ELEMENTWISE: Rule("δp += diag(f)·δc", lambda t, x: x, lambda t, x_at, size, own: x_at(own)),
    TermKind.SUMMED: Rule("δp += Σ(diag(f)·δc)", lambda t, x: Summed(x),
                          lambda t, x_at, size, own: sp.Sum(x_at(_I), (_I, 1, size(None)))),
    TermKind.THROUGH_MATRIX: Rule(
        "δv += Wᵀ·diag(f)·δc", lambda t, x: TransposeTimes(t.matrix, x),
        lambda t, x_at, size, own: sp.Sum(sp.IndexedBase(t.matrix.name)[_I, _J] * x_at(_I), (_I, 1, size(t.matrix)))),
    TermKind.WEIGHT: Rule("dW += diag(f)·δc·vᵀ", lambda t, x: Outer(x, t.outer),
                          lambda t, x_at, size, own: x_at(_I) * sp.IndexedBase(t.outer.name)[_J]),
    # Attention (rnnsym.functions: Stack, Scores, Mix). Scores and weighted sums are each other's
    # adjoints: δq of e = H·q is Hᵀ·δe, δa of c = Hᵀ·a is H·δc.
    TermKind.KEYS: Rule("δH += diag(f)·δe·qᵀ", lambda t, x: ExampleOuter(x, t.operand)),
    TermKind.QUERY: Rule("δq += Hᵀ·diag(f)·δe", lambda t, x: Mix(t.operand, x)),
    TermKind.VALUES: Rule("δH += a·(diag(f)·δc)ᵀ", lambda t, x: ExampleOuter(t.operand, x)),
    TermKind.WEIGHTS: Rule("δa += H·diag(f)·δc", lambda t, x: Scores(t.operand, x)),
    TermKind.ROW: Rule("δh_i += [diag(f)·δH]_i", lambda t, x: RowOf(x, t.row)),
    TermKind.PART: Rule("δu += [diag(f)·δc]_(start:stop)", lambda t, x: Part(x, *t.span)),
}


def kind_of(term: JacobianTerm, parent_shape: tuple, child_shape: tuple) -> TermKind:
    """The kind of ``term`` in ``∂child/∂parent``."""
    if term.attention is not None:
        return TermKind(term.attention)
    if term.outer is not None:
        return TermKind.WEIGHT
    if term.matrix is not None:
        return TermKind.THROUGH_MATRIX
    return TermKind.SUMMED if parent_shape == () and child_shape != () else TermKind.ELEMENTWISE


def carried(term: JacobianTerm, delta: sp.Expr, factor: sp.Expr | None = None) -> sp.Expr:
    """What the term passes on before its kind's rule: ``diag(f)·δc``, behind the softmax coupling.
    ``factor`` replaces the term's own (an output's fused loss factor)."""
    f = term.factor if factor is None else factor
    if f == 0 or delta == 0:  # a step's derivative (Heaviside, sign): nothing flows back
        return sp.S.Zero
    x = delta if f == 1 else Diag(f, delta) if delta != 1 else f
    return Coupled(term.softmax, x) if term.softmax is not None else x


def share(term: JacobianTerm, kind: TermKind, delta: sp.Expr, factor: sp.Expr | None = None) -> sp.Expr:
    """The term's share of the parent's adjoint (or gradient), given the child's adjoint ``delta``."""
    x = carried(term, delta, factor)
    return sp.S.Zero if x == 0 else RULES[kind].apply(term, x)


def elementwise(expr: sp.Expr) -> sp.Expr:
    """``expr`` with ``Diag(f, x)`` written as the product ``f*x`` (for a code printer, which
    treats every product as elementwise)."""
    if isinstance(expr, Diag):
        return sp.Mul(*(elementwise(a) for a in expr.args))
    if getattr(expr, "carries_shares", False) or expr.is_Add or expr.is_Mul:  # where a share's Diag can sit:
        args = [elementwise(a) for a in expr.args]  # never inside a node's function or a power
        return expr if all(a is b for a, b in zip(args, expr.args)) else expr.func(*args)
    return expr
