"""Local partial derivatives, taken from one node's small expression and written in node symbols."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..errors import RnnsymError
from ..functions import DERIVATIVE_RULES, Concat, MatVec, Mix, Scores, Stack, softmax
from ..graph import Graph


def local_partial(graph: Graph, child: str, parent: str) -> sp.Expr:
    """``∂child/∂parent`` with every other input of ``child`` held fixed.

    The derivative comes from ``child``'s own expression (``tanh(w*x4 + w3*o3 + b4)``), and any
    reappearance of that expression is written as the node's symbol, so ``∂o4/∂w3`` is
    ``o3*(1 - o4**2)`` rather than a function of the nested pre-activation.

    >>> from rnnsym import seed_rnn
    >>> net = seed_rnn(steps=4)
    >>> local_partial(net.graph, "o4", "w3")
    o3*(1 - o4**2)
    """
    node = graph[child]
    if node.expr is None:
        raise RnnsymError(f"{child!r} is a {node.kind} and has no local expression to differentiate")
    if parent not in graph.parents(child):
        return sp.S.Zero
    return _elementwise(node, node.expr, graph[parent].symbol)


def _refuse_unknown_derivatives(expr: sp.Expr, child: str) -> None:
    # SymPy answers a function it cannot differentiate with an unevaluated Derivative or Subs
    # rather than an error; a formula with one of those in it would be silently useless.
    unknown = expr.atoms(sp.Derivative, sp.Subs)
    if unknown:
        names = sorted({str(getattr(d.expr, "func", d.expr)) for d in unknown})
        raise RnnsymError(
            f"no derivative rule for {', '.join(names)} (in node {child!r}); "
            "use an operation SymPy can differentiate or one from rnnsym.functions"
        )


# ---- vectors: Jacobians made of elementwise factors and matrix products -------------------------
@dataclass(frozen=True)
class JacobianTerm:
    """One term of ``∂child/∂parent`` for vector nodes.

    - ``diag(factor)`` when the parent enters elementwise (a scalar parent: summed over components);
    - ``diag(factor)·matrix`` when the parent enters as ``matrix·parent``;
    - for a weight matrix ``W`` entering as ``W·outer``: the gradient share ``(δ ⊙ factor)·outerᵀ``;
    - ``softmax`` (the softmax's output symbol o): the coupling ``diag(o) − o·oᵀ`` comes first;
    - ``attention`` (one of :data:`ATTENTION_ROLES`) when the parent is an argument of an attention
      operation: the stack ``H`` or the query ``q`` of the scores ``H·q``, the stack or the weights
      ``a`` of the sum ``Hᵀ·a``, or row ``row`` of a stack; ``operand`` is the operation's other
      argument (what the rule multiplies by).
    """

    factor: sp.Expr
    matrix: sp.Symbol | None = None
    outer: sp.Symbol | None = None
    softmax: sp.Symbol | None = None
    attention: str | None = None
    operand: sp.Symbol | None = None
    row: int | None = None
    span: tuple[int, int] | None = None  # a joined vector's components that are the parent's (PART)

    def renamed(self, symbols: dict) -> "JacobianTerm":
        """The same term with symbols renamed (another step of a shared cell, or step k)."""
        rename = lambda s: None if s is None else s.xreplace(symbols)  # noqa: E731
        return JacobianTerm(self.factor.xreplace(symbols), rename(self.matrix), rename(self.outer), rename(self.softmax),
                            self.attention, rename(self.operand), self.row, self.span)


# What a parent is to an attention operation: the stack or the query of ``H·q``, the stack or the
# weights of ``Hᵀ·a``, a row of ``H = [h_1; …; h_S]``.
ATTENTION_ROLES = ("keys", "query", "values", "weights", "row", "part")


def _attention_terms(graph, product, wrt: sp.Symbol, factor: sp.Expr) -> list[JacobianTerm]:
    """The terms of ``∂product/∂wrt`` for an attention operation ``product`` (Stack, Scores, Mix),
    or for vectors joined by Concat (each part's components of the joined vector)."""
    if isinstance(product, Concat):
        ends = [0]
        for part in product.args:
            ends.append(ends[-1] + graph[part.name].shape[0])
        return [JacobianTerm(factor, attention="part", span=(ends[i], ends[i + 1]))
                for i, part in enumerate(product.args) if part == wrt]
    if isinstance(product, Stack):
        return [JacobianTerm(factor, attention="row", row=i) for i, h in enumerate(product.args) if h == wrt]
    stack, other = product.args
    roles = ("keys", "query") if isinstance(product, Scores) else ("values", "weights")
    terms = []
    if stack == wrt:
        terms.append(JacobianTerm(factor, attention=roles[0], operand=other))
    if other == wrt:
        terms.append(JacobianTerm(factor, attention=roles[1], operand=stack))
    return terms


@dataclass(frozen=True)
class Jacobian:
    """``∂child/∂parent`` as a sum of :class:`JacobianTerm`."""

    child: str
    parent: str
    terms: tuple[JacobianTerm, ...]


def local_jacobian(graph: Graph, child: str, parent: str) -> Jacobian:
    """``∂child/∂parent`` for a node whose expression may hold matrix products ``MatVec(W, v)``.

    Each ``W·v`` is set aside as a stand-in symbol μ, the rest is differentiated elementwise (the
    same rules as for scalars), and the product rules are applied to each μ that contains the parent.
    """
    node = graph[child]
    if node.expr is None:
        raise RnnsymError(f"{child!r} is a {node.kind} and has no local expression to differentiate")
    wrt = graph[parent].symbol
    products = sorted(node.expr.atoms(MatVec, Stack, Scores, Mix, Concat), key=sp.default_sort_key)
    stand_ins = [sp.Dummy(f"mu{i}") for i in range(len(products))]
    flat = node.expr.xreplace(dict(zip(products, stand_ins)))
    back = dict(zip(stand_ins, products))
    terms = []
    if isinstance(flat, softmax):
        # Softmax couples its components: J = (diag(o) − o·oᵀ)·∂z/∂parent. The factor kept here is
        # the elementwise ∂z/∂parent; `softmax` names the output whose coupling matrix comes first.
        (inner,) = flat.args
        if wrt in inner.free_symbols:
            terms.append(JacobianTerm(sp.diff(inner, wrt), softmax=node.symbol))
        for product, mu in zip(products, stand_ins):
            matrix, vector = product.args
            if wrt in product.args:
                terms.append(JacobianTerm(sp.diff(inner, mu), softmax=node.symbol,
                                          matrix=matrix if vector == wrt else None,
                                          outer=vector if matrix == wrt else None))
        return Jacobian(child, parent, tuple(terms))
    # A loss term averaged over K output components carries 1/K in its gradient.
    scale = sp.Rational(1, graph[parent].shape[0]) if node.reduce == "mean" and graph[parent].shape else 1
    if wrt in flat.free_symbols:
        terms.append(JacobianTerm(scale * _elementwise(node, flat, wrt).xreplace(back)))
    for product, mu in zip(products, stand_ins):
        if wrt not in product.args:
            continue
        factor = _elementwise(node, flat, mu).xreplace(back)
        if not isinstance(product, MatVec):
            terms.extend(_attention_terms(graph, product, wrt, factor))
            continue
        matrix, vector = product.args
        if vector == wrt:
            terms.append(JacobianTerm(factor, matrix=matrix))
        if matrix == wrt:
            terms.append(JacobianTerm(factor, outer=vector))
    return Jacobian(child, parent, tuple(terms))


def _elementwise(node, flat: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    """``∂flat/∂wrt`` elementwise, with ``f'`` written in the node's own symbol."""
    rule = DERIVATIVE_RULES.get(flat.func)
    if rule is not None and len(flat.args) == 1:
        derivative = rule(node.symbol) * real_diff(flat.args[0], wrt)
    else:
        derivative = real_diff(flat, wrt)
        if flat.is_Function:
            derivative = derivative.subs(flat, node.symbol)
    _refuse_unknown_derivatives(derivative, node.name)
    return sp.factor_terms(derivative) if derivative.is_Add else derivative


def _share_of_tie(args: tuple, k: int, above) -> sp.Expr:
    """``∂/∂a_k`` of a max (``above(a, b)``: a − b) or min (b − a) of ``args``: 1 for the one
    extreme argument, 1/m for each of m tied ones. Two arguments: SymPy's ``Heaviside(a − b)``,
    ½ at the tie, is that; with more, SymPy gives each tied argument ½ (``Max(a, 2·(a/2), h)`` at
    h = a: 3/2 where the derivative is 1). Symmetric in the arguments, so it does not depend on the
    order SymPy keeps them in."""
    if len(args) == 2:
        return sp.Heaviside(above(args[k], args[1 - k]))
    extreme = [sp.Mul(*[sp.Heaviside(above(a, b), 1) for j, b in enumerate(args) if j != i]) for i, a in enumerate(args)]
    return extreme[k] / sp.Add(*extreme)


class _EvenMax(sp.Max):
    def fdiff(self, argindex=1):
        return _share_of_tie(self.args, argindex - 1, lambda a, b: a - b)


class _EvenMin(sp.Min):
    def fdiff(self, argindex=1):
        return _share_of_tie(self.args, argindex - 1, lambda a, b: b - a)


_TIE_AWARE = {sp.Max: _EvenMax, sp.Min: _EvenMin}


def real_diff(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    """``∂expr/∂wrt`` for real values, which every value of a network is: ``|z|' = sign(z)``
    (SymPy's answer for a complex z holds re and im). A step's derivative is 0 away from the step:
    the DiracDelta of ``Heaviside'`` and ``sign'`` is dropped, as autograd frameworks do. At a tie
    of Max or Min the tied arguments share the derivative evenly (as PyTorch's amax does)."""
    if expr.has(sp.Max, sp.Min):
        tie_aware = expr.replace(lambda e: type(e) in _TIE_AWARE, lambda e: _TIE_AWARE[type(e)](*e.args))
        derivative = _real_diff(tie_aware, wrt)
        return derivative.replace(lambda e: isinstance(e, (_EvenMax, _EvenMin)),
                                  lambda e: (sp.Max if isinstance(e, _EvenMax) else sp.Min)(*e.args))
    return _real_diff(expr, wrt)


def _real_diff(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    if not expr.has(sp.Abs, sp.sign, sp.Heaviside):
        return sp.diff(expr, wrt)  # nothing assumption-dependent: the common, fast case
    real = {s: sp.Dummy(s.name, real=True) for s in expr.free_symbols | {wrt}}
    derivative = sp.diff(expr.xreplace(real), real[wrt]).xreplace({d: s for s, d in real.items()})
    return derivative.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
