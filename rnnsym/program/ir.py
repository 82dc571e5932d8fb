"""The adjoint program: typed statements over named values with shapes, built once from a graph.

It is data: it can be printed (``Program.text()``), compared and walked. The derivation's recursive
view is a printing of its ``Accumulate`` statements, the passes (rnnsym.program.passes) map a program
to a program, and an emitter (rnnsym.numeric.emit) prints it as source.

Values are SymPy symbols: a node's value is the node's own symbol, every other value (an adjoint,
a gradient, the batch scale) a ``sp.Dummy``, which equals no user symbol whatever its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

import sympy as sp

from ..engine.local import JacobianTerm
from ..engine.rules import TermKind


class Role(Enum):
    INPUT = "input"  # a column of x
    TARGET = "target"  # a column of y
    CONSTANT = "constant"  # a fixed node value (an initial state)
    PARAM = "param"
    NODE = "node"  # a hidden or output node's value
    LOSS = "loss"  # a loss term's per-example value
    SCALE = "scale"  # 1 / batch: the batch mean's factor
    ADJOINT = "adjoint"  # δn for one node (in one truncation window)
    GRADIENT = "gradient"  # dL/dθ for one parameter
    SHARE = "share"  # one share, given a value of its own when the passes schedule the backward pass
    TEMP = "temp"  # a common subexpression


@dataclass(frozen=True)
class Value:
    """A named value of the program: ``name`` is the identifier an emitter prints (generated, never
    a user's text), ``node`` the graph node it belongs to, ``window`` the truncation window's loss
    term for a windowed adjoint."""

    symbol: sp.Symbol
    name: str
    role: Role
    shape: tuple
    batched: bool
    node: str | None = None
    window: str | None = None


class OverBatch(sp.Function):
    """A parameter's share summed over the batch (and, for a scalar parameter ``ndim = 0``, over
    every axis): what the examples contribute to the batch-mean gradient together."""

    nargs = 2
    carries_shares = True  # a share sits inside (rnnsym.engine.rules.elementwise looks there)


class Joined(sp.Function):
    """Several values of one shape that carry the batch axis, one under another along it (steps ×
    batch rows): the batch sum of the joined values is the sum of each one's batch sum, so a
    parameter's shares from every step are one product or one reduction (rnnsym.program.passes.join_steps)."""


class OuterSum(sp.Function):
    """``Σ_k a_k·b_kᵀ`` for each example, from two tuples of vectors that carry the batch axis: a
    stack's adjoint summed from every step's outer product is one batched product of two stacks
    (rnnsym.program.passes.join_steps)."""

    nargs = 2


# ---- statements -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Read:
    """``target`` is a column of the inputs (``source`` "x") or targets ("y") at ``step`` (None:
    the one target of a many-to-one network)."""

    target: sp.Symbol
    source: str
    step: int | None


@dataclass(frozen=True)
class Fill:
    """``target`` holds the constant ``value`` for every example."""

    target: sp.Symbol
    value: float


@dataclass(frozen=True)
class Compute:
    """``target = expr``: a node's value, or a loss term's per-example value (``reduce`` over the
    output's components: "sum" or "mean", None for a scalar output)."""

    target: sp.Symbol
    expr: sp.Expr
    reduce: str | None = None


@dataclass(frozen=True)
class Share:
    """One term of ``∂child/∂parent`` applied to the child's adjoint: ``expr`` is the rule table's
    share (rnnsym.engine.rules), a parent's part of its adjoint or, for a parameter, of its gradient
    (reduced over the batch by the emitter)."""

    child: str
    parent: str
    term: JacobianTerm
    kind: TermKind
    expr: sp.Expr
    delta: sp.Expr  # the child's adjoint that it carries (a value, or an expression of values once fused)


@dataclass(frozen=True)
class Accumulate:
    """``target = Σ shares``: a node's adjoint or a parameter's gradient, the sum of what flows in;
    in one step of a loop over time, a new state's adjoint also adds what the next step carries back
    (``carried``, a value of the loop)."""

    target: sp.Symbol
    node: str
    shares: tuple[Share, ...]
    carried: sp.Symbol | None = None


Statement = Read | Fill | Compute | Accumulate


@dataclass(frozen=True)
class Program:
    """The forward pass, the per-example loss and the backward pass of one network.

    ``backward`` lists the adjoints from the loss back (one walk per truncation window) and ends
    with each parameter's gradient; ``outputs`` are the network's outputs, ``loss_terms`` the
    per-example loss terms and ``loss_weights`` their weights in the loss (1/T for a mean over
    steps); ``passes`` names the passes that made it, in order."""

    values: dict
    params: tuple[str, ...]
    forward: tuple
    loss: tuple
    backward: tuple
    outputs: tuple
    loss_terms: tuple
    loss_weights: tuple
    scale: sp.Symbol
    passes: tuple[str, ...] = field(default=())

    def with_(self, pass_name: str, **changes) -> "Program":
        """A copy with ``changes``, recording the pass that made it."""
        return replace(self, passes=self.passes + (pass_name,), **changes)

    def name(self, symbol: sp.Symbol) -> str:
        return self.values[symbol].name

    def gradients(self) -> dict[str, Accumulate | None]:
        """Each parameter's gradient statement (None: nothing reaches it)."""
        found = {s.node: s for s in self.backward
                 if isinstance(s, Accumulate) and self.values[s.target].role is Role.GRADIENT}
        return {p: found.get(p) for p in self.params}

    def adjoints(self) -> list[Accumulate]:
        return [s for s in self.backward if isinstance(s, Accumulate) and self.values[s.target].role is Role.ADJOINT]

    def text(self) -> str:
        """One line per statement, in the program's own names (for reading and for diffs)."""
        from .show import program_text

        return program_text(self)
