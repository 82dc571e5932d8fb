"""The unrolled computation graph: every node is a SymPy symbol with a small local expression.

``o4`` is the symbol ``o4`` whose expression is ``tanh(w*x4 + w3*o3 + b4)``, written in its
parents' symbols, never in the fully nested form. Everything else (derivations, compiled code,
pictures) reads this graph.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Iterator

import sympy as sp

from .errors import RnnsymError


class _TextEnum(str, Enum):
    """An enum whose members are their text: ``NodeKind.HIDDEN == "hidden"`` and
    ``f"{NodeKind.HIDDEN}" == "hidden"`` (a plain ``(str, Enum)`` formats as ``NodeKind.HIDDEN``
    from Python 3.11 on), so code and pages that compare or print the text keep working."""

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class NodeKind(_TextEnum):
    """What a node is. Leaves have no expression; a constant leaf has a fixed value (o0 = 0)."""

    INPUT = "input"
    PARAM = "param"
    TARGET = "target"
    CONSTANT = "constant"
    HIDDEN = "hidden"
    OUTPUT = "output"
    LOSS_TERM = "loss_term"
    LOSS = "loss"


LEAF_KINDS = (NodeKind.INPUT, NodeKind.PARAM, NodeKind.TARGET, NodeKind.CONSTANT)
COMPUTED_KINDS = (NodeKind.HIDDEN, NodeKind.OUTPUT, NodeKind.LOSS_TERM, NodeKind.LOSS)


class ParamRole(_TextEnum):
    """What a parameter does, which initialisers and the gradient-flow bound act on. Set by the
    network constructors, never guessed from a name (a user's ``beta`` is not a bias)."""

    INPUT_WEIGHT = "input weight"
    RECURRENT_WEIGHT = "recurrent weight"  # carries a state from one step to the next
    BIAS = "bias"
    READOUT_WEIGHT = "readout weight"
    READOUT_BIAS = "readout bias"
    CELL_PARAMETER = "cell parameter"  # anything else a cell computes with: an ordinary weight

    @property
    def is_bias(self) -> bool:
        return self in (ParamRole.BIAS, ParamRole.READOUT_BIAS)


def node_kind(kind) -> NodeKind:
    """``kind`` as a NodeKind; an unknown one is a one-line error naming the allowed kinds."""
    try:
        return NodeKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in NodeKind)
        raise RnnsymError(f"unknown node kind {kind!r}; allowed: {allowed}") from None


def param_role(role) -> ParamRole:
    """``role`` (a ParamRole or its text, such as ``"bias"``) as a ParamRole; an unknown one is a
    one-line error naming the allowed roles."""
    try:
        return ParamRole(role)
    except ValueError:
        allowed = ", ".join(repr(r.value) for r in ParamRole)
        raise RnnsymError(f"unknown parameter role {role!r}; allowed: {allowed}") from None


@dataclass(frozen=True)
class Node:
    """One node of the unrolled network."""

    name: str
    kind: NodeKind
    symbol: sp.Symbol
    expr: sp.Expr | None = None  # local expression in parent symbols; None for leaves
    value: float | None = None  # for constants
    step: int | None = None  # time step (layer) the node belongs to, for ordering and pictures
    role: str = ""  # a few words for people: "recurrent weight carrying o3 into layer 4"
    shape: tuple[int, ...] = ()  # () scalar, (n,) vector, (n, m) matrix (parameters only)
    reduce: str | None = None  # a loss term's reduction over output components: "mean" or "sum"
    base: str | None = None  # the cell symbol this node instantiates ("h" for h3), for derive-once caching
    param_role: ParamRole | None = None  # what a parameter does (None for every other kind)


@dataclass
class Graph:
    """Nodes in topological order (leaves first, the loss last), with parent/child lookups."""

    nodes: dict[str, Node] = field(default_factory=dict)
    _parents: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _children: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _position: dict[str, int] = field(default_factory=dict, repr=False)  # insertion (topological) order

    def add(self, name: str, kind: NodeKind | str, expr: sp.Expr | None = None, **extra) -> sp.Symbol:
        """Add a node and return its symbol. A parameter's ``param_role`` defaults to an ordinary
        cell parameter; other kinds take none."""
        if name in self.nodes:
            raise RnnsymError(f"duplicate node name {name!r}")
        kind = node_kind(kind)
        if kind is NodeKind.PARAM:
            extra["param_role"] = param_role(extra.get("param_role") or ParamRole.CELL_PARAMETER)
        elif extra.get("param_role") is not None:
            raise RnnsymError(f"node {name!r} is of kind {kind}, not a parameter: it takes no param_role")
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

    def of_kind(self, *kinds: NodeKind | str) -> list[Node]:
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
