"""The recursive view: ``δn = ∂L/∂n = Σ_children δc · ∂c/∂n``, accumulated in reverse graph order.

Linear in the number of nodes whatever the number of paths; it is what compiled code runs.
"""
from __future__ import annotations

import sympy as sp

from ..graph import Graph
from .local import local_partial


def adjoints(graph: Graph, delta=lambda name: sp.Symbol(f"delta_{name}"), local=local_partial):
    """For each node that the loss depends on, its adjoint in terms of its children's adjoints.

    Returns ``{name: expression}``, where ``delta(child)`` stands for the child's adjoint. The
    loss's own adjoint is 1. Contributions are *summed* over children: a weight used at every step
    gets one term per step.
    """
    loss = graph.loss.name
    result: dict[str, sp.Expr] = {loss: sp.S.One}
    for name in reversed(list(graph.nodes)):
        if name == loss:
            continue
        terms = [delta(c) * local(graph, c, name) for c in graph.children(name) if c in result]
        if terms:
            result[name] = sp.Add(*terms)
    return result
