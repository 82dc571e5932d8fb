"""Local partial derivatives, taken from one node's small expression and written in node symbols."""
from __future__ import annotations

import sympy as sp

from ..errors import RnnsymError
from ..functions import DERIVATIVE_RULES
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
    wrt = graph[parent].symbol
    rule = DERIVATIVE_RULES.get(node.expr.func)
    if rule is not None and len(node.expr.args) == 1:
        # The common shape node = f(pre-activation): the rule table gives f' in the node's own
        # symbol, and only the small pre-activation is differentiated.
        derivative = rule(node.symbol) * sp.diff(node.expr.args[0], wrt)
    else:
        derivative = sp.diff(node.expr, wrt)
        if node.expr.is_Function:
            derivative = derivative.subs(node.expr, node.symbol)
    _refuse_unknown_derivatives(derivative, child)
    # 2*o5 - 2*Y -> 2*(o5 - Y); factor_terms never expands (1 - o4**2).
    return sp.factor_terms(derivative) if derivative.is_Add else derivative


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
