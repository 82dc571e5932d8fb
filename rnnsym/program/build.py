"""Build the adjoint program of a network: its forward pass, per-example loss and backward pass.

The backward pass is the recursive view, one ``Accumulate`` per node: ``δn = Σ_c share(∂c/∂n, δc)``
with each share taken from the rule table (rnnsym.engine.rules), in reverse graph order from the
loss, then each parameter's gradient as the sum of its shares. With truncated BPTT there is one such
walk per loss term inside its own window (rnnsym.engine.truncation): the adjoints of different
windows are different values, and a parameter's gradient sums the shares of every window.

The program is built unfused and unoptimised; rnnsym.program.passes makes it fast.
"""
from __future__ import annotations

import re

import sympy as sp

from ..engine.paths import ancestors
from ..engine.rules import Adjoint, kind_of, share
from ..engine.truncation import windows
from ..functions import FUSED_OUTPUT_GRADIENTS
from ..graph import NodeKind
from .ir import Accumulate, Compute, Fill, Program, Read, Role, Share, Value

_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")
# Names the generated source uses for itself: never given to a value.
RESERVED = {"x", "y", "t", "numpy", "sum", "_workspace", "_per_example", "_loss"}


class Namer:
    """Identifiers for a program's values. A node's name appears only behind a prefix (``n_o4``,
    ``d_o4``, ``dL_dW_hh``) and only if it is plain letters, digits and underscores (else its
    index); every identifier is unique (a clash gets a numbered suffix), so no user name can stand
    for another value."""

    def __init__(self, graph):
        self.taken = set(RESERVED)
        self.ids = {name: name if _SAFE.fullmatch(name) else str(i) for i, name in enumerate(graph.nodes)}

    def __call__(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def build_program(network, truncate: int | None = None) -> Program:
    """The unfused, unoptimised program of ``network`` (``truncate``: truncated BPTT's k)."""
    graph = network.graph
    namer = Namer(graph)
    values: dict[sp.Symbol, Value] = {}

    def node_value(node, role: Role) -> sp.Symbol:
        batched = role not in (Role.PARAM,) and not (role is Role.CONSTANT and node.shape == ())
        values[node.symbol] = Value(node.symbol, namer(f"n_{namer.ids[node.name]}"), role, node.shape, batched,
                                    node.name)
        return node.symbol

    forward, loss = [], []
    # y's columns are the targets in order (a decoder's targets record steps after the encoder's)
    columns = {n.name: i for i, n in enumerate(graph.of_kind(NodeKind.TARGET), 1) if n.step is not None}
    for node in graph.nodes.values():
        kind = node.kind
        if kind == NodeKind.PARAM:
            node_value(node, Role.PARAM)
        elif kind == NodeKind.INPUT:
            forward.append(Read(node_value(node, Role.INPUT), "x", node.step))
        elif kind == NodeKind.CONSTANT:
            forward.append(Fill(node_value(node, Role.CONSTANT), float(node.value)))
        elif kind in (NodeKind.HIDDEN, NodeKind.OUTPUT):
            forward.append(Compute(node_value(node, Role.NODE), node.expr))
        elif kind == NodeKind.TARGET:  # a decoder's input under teacher forcing is read with the inputs
            (forward if teacher_forced(graph, node.name) else loss).append(
                Read(node_value(node, Role.TARGET), "y", columns.get(node.name)))
        elif kind == NodeKind.LOSS_TERM or (kind == NodeKind.LOSS and not graph.of_kind(NodeKind.LOSS_TERM)):
            reduce = None if _output_of(graph, node.name).shape == () else node.reduce or "sum"
            loss.append(Compute(node_value(node, Role.LOSS), node.expr, reduce))
    terms = graph.of_kind(NodeKind.LOSS_TERM) or [graph.loss]
    weights = tuple(sp.S.One if t is graph.loss else graph.loss.expr.diff(t.symbol) for t in terms)
    scale = sp.Dummy("inv_batch")
    values[scale] = Value(scale, namer("_inv_batch"), Role.SCALE, (), False)

    backward = _backward(network, truncate, values, namer, scale)
    return Program(values, tuple(n.name for n in graph.of_kind(NodeKind.PARAM)), tuple(forward), tuple(loss),
                   tuple(backward), tuple(n.symbol for n in graph.of_kind(NodeKind.OUTPUT)),
                   tuple(t.symbol for t in terms), weights, scale)


def teacher_forced(graph, target: str) -> bool:
    """Whether the forward pass reads ``target`` (a decoder's previous target as its input)."""
    return any(graph[c].kind in (NodeKind.HIDDEN, NodeKind.OUTPUT) for c in graph.children(target))


def reads_targets(graph) -> bool:
    """Whether the forward pass needs the targets (teacher forcing): its functions then take y."""
    return any(teacher_forced(graph, t.name) for t in graph.of_kind(NodeKind.TARGET))


def _backward(network, truncate, values: dict, namer: Namer, scale: sp.Symbol) -> list:
    graph = network.graph
    needs = nodes_needing_adjoints(graph)
    param_shares: dict[str, list[Share]] = {p.name: [] for p in graph.of_kind(NodeKind.PARAM)}
    statements: list = []
    windowed = windows(network, truncate)
    terms = [t.name for t in graph.of_kind(NodeKind.LOSS_TERM)]
    if windowed is None:
        walks = [(frozenset(), None)]
    else:  # L_s alone in its own window: the loss's edges to the other terms are cut too
        walks = [(w.cuts | {(graph.loss.name, t) for t in terms if t != w.source}, w.source if len(windowed) > 1 else None)
                 for w in windowed]
    for cuts, window in walks:
        delta = {graph.loss.name: scale}
        for name in reversed(graph.nodes):
            if name not in needs:
                continue
            shares = adjoint_shares(network, name, [c for c in graph.children(name) if c in delta and (c, name) not in cuts],
                                    lambda c: delta[c])
            if not shares:
                continue
            if graph[name].kind == NodeKind.PARAM:
                param_shares[name] += shares
                continue
            node = graph[name]
            label = f"d_{namer.ids[name]}" if window is None else f"d_{namer.ids[name]}_in_{namer.ids[window]}"
            symbol = delta[name] = sp.Dummy(label)
            per_example = node.kind != NodeKind.LOSS_TERM  # δL_s is the loss term's weight, the same for every example
            values[symbol] = Value(symbol, namer(label), Role.ADJOINT, node.shape, per_example, name, window)
            statements.append(Accumulate(symbol, name, tuple(shares)))
    for p, shares in param_shares.items():
        if shares:
            symbol = sp.Dummy(f"dL_d{p}")
            values[symbol] = Value(symbol, namer(f"dL_d{namer.ids[p]}"), Role.GRADIENT, graph[p].shape, False, p)
            statements.append(Accumulate(symbol, p, tuple(shares)))
    return statements


def adjoint_shares(network, name: str, sources, delta) -> list[Share]:
    """The shares of ``name``'s adjoint from each child in ``sources``, one per Jacobian term, by the
    rule table; ``delta(child)`` is the child's adjoint. The recursive view prints exactly these."""
    graph = network.graph
    out = []
    for c in sources:
        for term in network.jacobian(c, name).terms:
            kind = kind_of(term, graph[name].shape, graph[c].shape)
            out.append(Share(c, name, term, kind, share(term, kind, delta(c)), delta(c)))
    return out


def view_shares(network, name: str, sources) -> list[Share]:
    """The shares as the derivation prints them: each child's adjoint as ``δc`` (the loss's as 1)."""
    loss = network.graph.loss.name
    return adjoint_shares(network, name, sources, lambda c: sp.S.One if c == loss else Adjoint(c))


def nodes_needing_adjoints(graph) -> set[str]:
    """Parameters, and every node between a parameter and the loss (output and loss terms too)."""
    needed = set()
    for node in graph.nodes.values():
        if node.kind == NodeKind.PARAM:
            needed.add(node.name)
        elif node.kind in (NodeKind.HIDDEN, NodeKind.OUTPUT, NodeKind.LOSS_TERM) and any(
                p in needed for p in graph.parents(node.name)):
            needed.add(node.name)
    return needed & ancestors(graph, graph.loss.name)


def _output_of(graph, loss_term: str):
    (out,) = [graph[p] for p in graph.parents(loss_term) if graph[p].kind == NodeKind.OUTPUT]
    return out


def fused_gradient(network):
    """The table's fused ``∂L/∂z`` of the network's output activation and loss, or None."""
    return FUSED_OUTPUT_GRADIENTS.get((network.options.get("loss"), network.options.get("output_activation")))
