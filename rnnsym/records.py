"""Steps as data: immutable records of a derivation, which every printer renders its own way.

A record never holds formatted text, only names and SymPy expressions, so LaTeX, MathML, text,
Markdown and JSON all come from the same computation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import sympy as sp

from .engine.rules import Adjoint, TermKind, share


@dataclass(frozen=True)
class Partial:
    """A local partial ``∂of/∂wrt``: every input of ``of`` except ``wrt`` held fixed."""

    of: str
    wrt: str


@dataclass(frozen=True)
class Total:
    """The total derivative ``d of/d wrt`` (the gradient), summed over every path."""

    of: str
    wrt: str


@dataclass(frozen=True)
class Chain:
    """An ordered product of local partials along one path, e.g. (∂L/∂o5)(∂o5/∂o4)(∂o4/∂w3)."""

    partials: tuple[Partial, ...]


@dataclass(frozen=True)
class Product:
    """An ordered product of expressions, printed in the order given (SymPy would re-sort it).

    ``grouped``: every factor in brackets (the substituted chain); otherwise only sums are.
    """

    factors: tuple[sp.Expr, ...]
    grouped: bool = True


@dataclass(frozen=True)
class Sum:
    """An ordered sum of display items, printed in the order given."""

    terms: tuple["Item", ...]


@dataclass(frozen=True)
class Update:
    """The gradient-descent update ``param - η·dL/dparam`` (the article's W_t = W_(t-1) − η·dL/dW_(t-1))."""

    param: str
    loss: str


@dataclass(frozen=True)
class Delta:
    """The adjoint ``δ_node = ∂L/∂node``: everything downstream of the node, already summed."""

    node: str


@dataclass(frozen=True)
class JacobianItem:
    """A local Jacobian of vector nodes, as a sum of terms (see rnnsym.engine.local.JacobianTerm)."""

    terms: tuple
    gradient: bool = False  # the loss's own Jacobian: a (row) gradient vector, not diag(f)


@dataclass(frozen=True)
class Applied:
    """A local Jacobian term applied backward to a child's adjoint: its share of the parent's
    adjoint, by the rule for its ``kind`` (rnnsym.engine.rules): ``diag(f)·δ``, ``Wᵀ·diag(f)·δ``,
    ``diag(f)·δ·vᵀ``, ``Σ(diag(f)·δ)``; ``f·δ`` when everything is scalar. ``delta`` is None for
    the loss itself (δ_L = 1)."""

    term: object
    delta: str | None
    kind: TermKind
    scalar: bool = False

    @property
    def share(self) -> sp.Expr:
        """The share as an expression of the rule table's operations (what the printers print)."""
        return share(self.term, self.kind, sp.S.One if self.delta is None else Adjoint(self.delta))


@dataclass(frozen=True)
class ComponentOf:
    """One component of a vector or matrix item: ``δh₂[j]``, ``dL/dW_hh[i, j]``."""

    item: object
    index: str


@dataclass(frozen=True)
class Elided:
    """Items left out of a long view, between the ones shown: ``δo₁₉₉₉₇ … δo₅``.

    ``first`` and ``last`` are the first and last items left out, ``count`` how many there are;
    ``unit`` says what they are: ``"equations"`` (a whole equation of a recursive view, as the
    left side of an Equation with no right side) or ``"terms"`` (inside a Sum, one node's share
    each). The full view (``Derivation.full()``, ``--full``) has them all.
    """

    count: int
    first: object
    last: object
    unit: str = "equations"


Item = Union[sp.Expr, Partial, Total, Chain, Product, Sum, Update, Delta, JacobianItem, Applied, Elided]


@dataclass(frozen=True)
class Equation:
    """``lhs = rhs[0] = rhs[1] ...`` (or ``lhs ← rhs[0]`` for an update)."""

    lhs: Item
    rhs: tuple[Item, ...]
    relation: str = "="
    label: str = ""  # a few words shown beside it, e.g. "through layer 4"


@dataclass(frozen=True)
class Step:
    """One step of a derivation: what it does (``kind``), a heading, its equations and a remark."""

    kind: str  # chain_rule | definitions | local_factors | path_terms | total | zero | simplify | expanded | update
    title: str
    equations: tuple[Equation, ...] = ()
    note: str = ""
    facts: dict = field(default_factory=dict)  # small machine-readable extras (path count, sizes)


def as_expr(item: Item) -> sp.Expr:
    """The SymPy value of a display item made of expressions (a Product, a Sum or an expression)."""
    if isinstance(item, Product):
        return sp.Mul(*item.factors)
    if isinstance(item, Sum):
        return sp.Add(*map(as_expr, item.terms))
    if isinstance(item, sp.Basic):
        return item
    raise TypeError(f"{type(item).__name__} has no SymPy value")
