"""Symbolic queries beyond ``dL/dθ``: any node with respect to any node, second derivatives, and
the graph's ancestry.

A derivative ``d(of)/d(wrt)`` between two nodes is the derivation of a smaller network: the
ancestors of ``of``, with ``of`` standing where the loss stands. The same engine then lists its
paths, local factors and recursive view, and the same printers print it (``do4/do1 = …``).

A second derivative ``d²L/dw²`` is the first derivative ``g = dL/dw`` differentiated again:
``g`` is written in node symbols, each of which may depend on ``w``, so it is added to the graph
as a node of its own (``g_w``) and ``dg_w/dw`` is derived the same way, path by path.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import sympy as sp

from .engine.paths import DEFAULT_PATH_LIMIT, PathTerm, enumerate_paths
from .engine.paths import ancestors as _ancestors
from .engine.paths import descendants as _descendants
from .errors import RnnsymError, listed
from .graph import Graph, NodeKind
from .records import Equation, JacobianItem, Product, Step, Sum, Total

ORDERS = (1, 2)


def ancestors(network, node) -> tuple[str, ...]:
    """The nodes ``node``'s value depends on, in graph order (leaves first), without ``node``."""
    name = network.resolve(node, "node")
    found = _ancestors(network.graph, name) - {name}
    return tuple(n for n in network.graph.nodes if n in found)


def descendants(network, node) -> tuple[str, ...]:
    """The nodes whose value depends on ``node``, in graph order (the loss last), without ``node``."""
    name = network.resolve(node, "node")
    found = _descendants(network.graph, name) - {name}
    return tuple(n for n in network.graph.nodes if n in found)


def check_order(order) -> int:
    if isinstance(order, bool) or order not in ORDERS:
        raise RnnsymError(f"order must be 1 or 2 (a second derivative d²L/dw²), got {order!r}")
    return order


def check_descendant(network, of: str, wrt: str) -> None:
    """``of`` must depend on ``wrt`` for ``d(of)/d(wrt)`` to be a query (else it is 0 by definition)."""
    if of == wrt or of not in _descendants(network.graph, wrt):
        below = descendants(network, wrt)
        raise RnnsymError(f"of {of!r} is not a descendant of wrt {wrt!r}, so d{of}/d{wrt} is not a derivative "
                          f"through the network; of may be: {listed(below) if below else 'nothing (nothing depends on ' + repr(wrt) + ')'}")


def _view(network, names, top: str, top_expr: sp.Expr | None = None):
    """A network over the nodes ``names`` (graph order) whose final node, in the loss's place, is
    ``top``: an existing node, or a new one with expression ``top_expr`` (added last). Other nodes keep
    their kinds (a loss among them becomes a hidden node); truncation is left out: a query is about
    the mathematics, not about what the truncated training run computes."""
    from .network import Network

    graph = Graph()
    for name in network.graph.nodes:
        if name not in names:
            continue
        node = network.graph[name]
        kind = NodeKind.LOSS if name == top else (NodeKind.HIDDEN if node.kind == NodeKind.LOSS else node.kind)
        extra = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)
                 if f.name not in ("name", "kind", "symbol", "expr", "param_role")}
        graph.add(name, kind, node.expr, param_role=node.param_role, **extra)
    if top_expr is not None:
        graph.add(top, NodeKind.LOSS, top_expr, role="the first derivative")
    options = {k: v for k, v in network.options.items() if k != "truncate"}
    return Network(graph, name=network.name, steps=network.steps, options=options, title=network.title,
                   recurrence=network.recurrence)


def derive_between(network, of: str, wrt: str, path_limit: int = DEFAULT_PATH_LIMIT):
    """The derivation of ``d(of)/d(wrt)`` between two nodes (``of`` a descendant of ``wrt``)."""
    from .derivation import derive

    check_descendant(network, of, wrt)
    view = _view(network, _ancestors(network.graph, of), of)
    if network.graph[of].shape == ():  # a scalar: exactly the loss's derivation, of standing for L
        return _renamed_notes(derive(view, wrt, path_limit=path_limit), of)
    if len(network.graph[wrt].shape) > 1:
        raise RnnsymError(f"d{of}/d{wrt} of a vector node {of!r} with respect to the matrix {wrt!r} has three "
                          "indices; take wrt a node or an input, or of a scalar node (the loss)")
    return _jacobian_derivation(view, of, wrt, path_limit)


def _renamed_notes(derivation, of: str):
    """A derivation of a view says ``∂of/∂n`` where the loss's says ``∂L/∂n``, and has no
    gradient-descent update (``of`` is not what training minimises)."""
    derivation.steps = tuple(dataclasses.replace(s, note=s.note.replace("δn = ∂L/∂n", f"δn = ∂{of}/∂n"))
                             for s in derivation.steps if s.kind != "update")
    return derivation


def _jacobian_derivation(view, of: str, wrt: str, path_limit: int):
    """``d(of)/d(wrt)`` for a vector ``of``: the sum over paths of ordered Jacobian products (the path
    view only: the recursive view carries a gradient, a row, not a Jacobian)."""
    from .derivation import Derivation, _path_view_steps

    paths = enumerate_paths(view.graph, wrt, limit=path_limit)
    terms = []
    for path in paths:
        jacobians = tuple(JacobianItem(view.jacobian(a, b).terms) for a, b in zip(path, path[1:]))
        terms.append(PathTerm(path, jacobians, Product(jacobians), Product(jacobians)))
    steps = _path_view_steps(view, wrt, paths, terms)
    values = tuple(t.value for t in terms)
    result = values[0] if len(values) == 1 else Sum(values)
    derivation = Derivation(view, wrt, terms, tuple(steps), (Equation(Total(of, wrt), (result,)),),
                            path_limit=path_limit)
    derivation.jacobian = True  # its terms are Jacobian products (rnnsym.matrix_expr.jacobian_product)
    return derivation


def second_derivative(network, wrt: str, of: str | None = None, path_limit: int = DEFAULT_PATH_LIMIT):
    """The derivation of ``d²(of)/d(wrt)²`` (``of`` the loss by default) for a scalar network."""
    from .derivation import derive

    if not network.is_scalar:
        raise RnnsymError(f"order=2 (d²L/d{wrt}²) is given for scalar networks only; {network.name} has vector "
                          "nodes, whose second derivatives are tensors")
    loss = network.loss_name
    first = network.derive(wrt, path_limit=path_limit) if of in (None, loss) else derive_between(
        network, of, wrt, path_limit)
    of = loss if of is None else of
    g = first.expr
    name = _fresh(network.graph, f"g_{wrt}")
    names = set(_ancestors(network.graph, wrt))
    for s in g.free_symbols:
        names |= _ancestors(network.graph, s.name)
    view = _view(network, names, name, g)
    if wrt in _ancestors(view.graph, name):
        derivation = derive_between(view, name, wrt, path_limit)
    else:  # the first derivative does not depend on wrt (dL/dw0 = 0): the path view says "no path"
        derivation = _renamed_notes(derive(view, wrt, path_limit=path_limit), name)
    intro = Step("first_derivative", f"The first derivative, named {name}",
                 (Equation(sp.Symbol(name), (Total(of, wrt),)), Equation(sp.Symbol(name), (g,))),
                 note=f"d²{of}/d{wrt}² is the total derivative of {name} = d{of}/d{wrt}: {name} is written in node "
                      f"symbols, each of which may depend on {wrt}, so the chain rule runs again through every "
                      f"node {name} reads.")
    derivation.steps = (intro, *derivation.steps)
    derivation.order, derivation.first = 2, first
    return derivation


def _fresh(graph: Graph, name: str) -> str:
    while name in graph:
        name += "_"
    return name


def expression_function(network, expr: sp.Expr):
    """``expr`` (in node symbols) as a NumPy function of the network's leaves, by name: every node it
    reads is computed from its own expression, in graph order, once (no nested expansion). Constants
    are put in first, so a weight that only ever multiplies ``o0 = 0`` is not asked for."""
    graph = network.graph
    constants = graph.constants()
    local = {n.symbol: n.expr.xreplace(constants) for n in graph.nodes.values() if n.expr is not None}
    expr = expr.xreplace(constants)
    needed, todo = set(), list(expr.free_symbols)
    while todo:  # the nodes expr reads, and theirs, constants put in
        s = todo.pop()
        if s not in needed:
            needed.add(s)
            todo.extend(local[s].free_symbols if s in local else ())
    order = [n for n in graph.nodes if graph[n].symbol in needed]
    leaves = [n for n in order if graph[n].symbol not in local]
    computed = [(graph[n].symbol, _lambdified(graph, local[graph[n].symbol])) for n in order if n not in leaves]
    final = _lambdified(graph, expr)
    allowed = [n.name for n in graph.nodes.values() if n.kind in (NodeKind.PARAM, NodeKind.INPUT, NodeKind.TARGET)]

    def evaluate(**arguments):
        unknown = sorted(set(arguments) - set(allowed))
        if unknown:
            raise RnnsymError(f"unknown argument {unknown[0]!r}; allowed: {listed(allowed)}")
        missing = [n for n in leaves if n not in arguments]
        if missing:
            raise RnnsymError(f"missing argument {missing[0]!r}; this expression needs: {listed(leaves)}")
        values = {}
        values.update({graph[n].symbol: np.asarray(arguments[n], dtype=float) for n in leaves})
        for symbol, (symbols, function) in computed:
            values[symbol] = function(*(values[s] for s in symbols))
        symbols, function = final
        shape = np.broadcast_shapes(*(np.shape(values[graph[n].symbol]) for n in leaves))
        return np.broadcast_to(function(*(values[s] for s in symbols)), shape)  # 0 is 0 for every example

    evaluate.arguments = tuple(leaves)
    return evaluate


def _lambdified(graph: Graph, expr: sp.Expr):
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    unknown = [s.name for s in symbols if s.name not in graph]
    if unknown:
        raise RnnsymError(f"the expression uses {listed(unknown)}, which are not nodes of the network")
    return symbols, sp.lambdify(symbols, expr, "numpy")
