"""The unrolled computation graph: every node is a SymPy symbol with a small local expression.

``o4`` is the symbol ``o4`` whose expression is ``tanh(w*x4 + w3*o3 + b4)``, written in its
parents' symbols, never in the fully nested form. Everything else (derivations, compiled code,
pictures) reads this graph.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import sympy as sp

from .errors import RnnsymError

# What a node is. Leaves have no expression; a constant leaf has a fixed value (o0 = 0).
LEAF_KINDS = ("input", "param", "target", "constant")
COMPUTED_KINDS = ("hidden", "output", "loss_term", "loss")


@dataclass(frozen=True)
class Node:
    """One node of the unrolled network."""

    name: str
    kind: str
    symbol: sp.Symbol
    expr: sp.Expr | None = None  # local expression in parent symbols; None for leaves
    value: float | None = None  # for constants
    step: int | None = None  # time step (layer) the node belongs to, for ordering and pictures
    role: str = ""  # a few words for people: "recurrent weight carrying o3 into layer 4"
    shape: tuple[int, ...] = ()  # () scalar, (n,) vector, (n, m) matrix (parameters only)
    reduce: str | None = None  # a loss term's reduction over output components: "mean" or "sum"
    base: str | None = None  # the cell symbol this node instantiates ("h" for h3), for derive-once caching


@dataclass
class Graph:
    """Nodes in topological order (leaves first, the loss last), with parent/child lookups."""

    nodes: dict[str, Node] = field(default_factory=dict)
    _parents: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _children: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _position: dict[str, int] = field(default_factory=dict, repr=False)  # insertion (topological) order

    def add(self, name: str, kind: str, expr: sp.Expr | None = None, **extra) -> sp.Symbol:
        if name in self.nodes:
            raise RnnsymError(f"duplicate node name {name!r}")
        symbol = sp.Symbol(name)
        # free_symbols walks the whole expression each time it is asked: ask once.
        used = {s.name for s in expr.free_symbols} if expr is not None else set()
        unknown = sorted(u for u in used if u not in self.nodes)
        if unknown:
            raise RnnsymError(f"node {name!r} uses undeclared symbols: {', '.join(unknown)}")
        self._position[name] = len(self.nodes)
        self.nodes[name] = Node(name, kind, symbol, expr, **extra)
        self._parents[name] = tuple(sorted(used, key=self._position.__getitem__))
        self._children[name] = []
        for parent in self._parents[name]:
            self._children[parent].append(name)
        return symbol

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def of_kind(self, *kinds: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind in kinds]

    @property
    def loss(self) -> Node:
        (node,) = self.of_kind("loss")
        return node

    def parents(self, name: str) -> tuple[str, ...]:
        """Names of the nodes that ``name``'s expression reads, in graph order."""
        return self._parents[name]

    def children(self, name: str) -> tuple[str, ...]:
        """Names of the nodes whose expressions read ``name``, in graph order."""
        return tuple(self._children[name])

    def constants(self) -> dict[sp.Symbol, float]:
        return {n.symbol: n.value for n in self.of_kind("constant")}

    def symbols(self, names: Iterable[str]) -> tuple[sp.Symbol, ...]:
        return tuple(self.nodes[n].symbol for n in names)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Build a large graph without the cyclic garbage collector: every collection walks all the
    SymPy objects made so far, which made building a T = 20000 network about twice as slow.
    Nothing built here is garbage, so nothing is lost; the collector's state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
