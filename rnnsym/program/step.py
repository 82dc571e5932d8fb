"""One step of a shared cell's forward pass as data, and the passes a loop lowering runs over it.

A network unrolled from one cell repeats the same step, so the loop form computes one step in a
loop over time. Before the loop goes what does not depend on the recurrence. The passes here say
what that is, as data: sums of time-parallel terms (``W_ih·x_t + b``, one product for all steps),
weights that multiply the same vector (an LSTM's four ``W_h*``, one stacked matrix), and the
functions of nodes the backward pass reads again (``tanh(c)``, kept per step). Where each value
lives and how it is printed is the lowering's business (rnnsym.numeric.loop_forward).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Callable, NamedTuple

import sympy as sp

from ..functions import DERIVATIVE_RULES, MatVec, sigmoid

# new_symbol(name, (batched, shape)) -> a value of the lowering's own (a sp.Dummy it can print)
NewSymbol = Callable[[str, tuple], sp.Symbol]


class AtStep(sp.Function):
    """``array[t]``: the current step's slice of a (T, batch, ...) array."""

    nargs = 1


class Columns(sp.Function):
    """``array[..., start:stop]``: a block of columns of one of the lowering's arrays (a gate's
    part of a stacked product)."""

    nargs = 3


@dataclass(frozen=True)
class Stack:
    """Weights that multiply the same ``vector`` in one step, stacked: ``weights`` in order, each
    with its rows ``bounds[weight]`` of the stacked product ``product`` (the array ``name``·vector)."""

    vector: sp.Symbol
    name: str
    product: sp.Symbol
    weights: tuple[sp.Symbol, ...]
    bounds: dict


@dataclass(frozen=True)
class StepForward:
    """The step's nodes with their expressions as the passes leave them, and what the passes took
    out of the loop. ``hoisted``: ``(P, the sum, its node's shape)``, computed for every step before
    the loop and read as ``AtStep(P)``; ``stacks``: the stacked weights; ``kept``: functions of nodes
    kept per step, innermost first (``{tanh(c1): F0}``); ``block``: the gate block, if the cell has
    the LSTM's form; ``inputs``: the input weights of the hoisted sums, stacked into one product
    with all steps' inputs (its columns stand in the sums); ``writes``: how each node's value is
    written into its step's storage (:func:`place_writes`)."""

    nodes: tuple[str, ...]
    exprs: dict
    hoisted: tuple = ()
    stacks: tuple[Stack, ...] = ()
    kept: dict = field(default_factory=dict)
    block: "GateBlock | None" = None
    inputs: "Stack | None" = None
    writes: dict = field(default_factory=dict)
    passes: tuple[str, ...] = ()

    def with_(self, pass_name: str, **changes) -> "StepForward":
        return replace(self, passes=self.passes + (pass_name,), **changes)


def hoist_time_parallel(step: StepForward, time_parallel: set, x: sp.Symbol, new_symbol: NewSymbol,
                        shapes: dict, elementwise: Callable[[sp.Expr], bool] | None = None) -> StepForward:
    """Terms of a sum that read only ``time_parallel`` symbols (the input ``x`` and the parameters) do not
    depend on the recurrence: they become one value ``P`` computed for all steps before the loop
    (one large matrix product), read in the step as ``AtStep(P)``. A single term is left in place
    unless it is a product ``W·x`` (a product is worth taking out on its own). ``elementwise(terms)``:
    whether a fused step computes these terms itself, element by element (a 1×1 weight's ``w·x``),
    cheaper than a pass over all steps before the loop and another to read them back."""
    hoisted: list = []

    def hoist(expr: sp.Expr, shape: tuple) -> sp.Expr:
        if expr.is_Add:
            free = [a for a in expr.args if a.free_symbols <= time_parallel]
            if elementwise is not None and free and elementwise(sp.Add(*free)):
                pass
            elif (any(x in a.free_symbols for a in free) and len(free) > 1) or (free and any(isinstance(a, MatVec) for a in free)):
                symbol = new_symbol(f"_P{len(hoisted)}", (True, shape))  # kept in the node's shape
                hoisted.append((symbol, sp.Add(*free), shape))
                rest = [hoist(a, shape) for a in expr.args if a not in free]
                return sp.Add(AtStep(symbol), *rest, evaluate=False)
        if expr.args and not isinstance(expr, MatVec):
            return expr.func(*[hoist(a, shape) for a in expr.args], evaluate=False)
        return expr

    exprs = {n: hoist(e, shapes[n]) for n, e in step.exprs.items()}
    return step.with_("hoist_time_parallel", exprs=exprs, hoisted=step.hoisted + tuple(hoisted))


def stack_weights(step: StepForward, vectors: set, rows_of: Callable[[sp.Symbol], int],
                  new_symbol: NewSymbol) -> StepForward:
    """Weights that multiply the same vector of ``vectors`` (the previous states) are stacked into
    one matrix: one product per step instead of one per weight, forward and backward, as PyTorch's
    stacked ``weight_hh`` does. Each ``W·v`` becomes its columns of the stacked product."""
    groups: dict[sp.Symbol, list[sp.Symbol]] = {}
    for e in step.exprs.values():
        for product in sorted(e.atoms(MatVec), key=sp.default_sort_key):
            matrix, vector = product.args
            if matrix not in groups.setdefault(vector, []):
                groups[vector].append(matrix)
    stacks, slices = [], {}
    for vector, matrices in groups.items():
        if len(matrices) < 2 or vector not in vectors:  # a node of this step is not known before it
            continue
        name, bounds, start = f"_W{len(stacks)}", {}, 0
        for m in matrices:
            bounds[m], start = (start, start + rows_of(m)), start + rows_of(m)
        product = new_symbol(f"_M{len(stacks)}", (True, (start,)))
        stacks.append(Stack(vector, name, product, tuple(matrices), bounds))
        slices.update({MatVec(m, vector): Columns(product, *bounds[m]) for m in matrices})
    exprs = {n: e.xreplace(slices) for n, e in step.exprs.items()}
    return step.with_("stack_weights", exprs=exprs, stacks=step.stacks + tuple(stacks))


def keep_functions(step: StepForward, nodes: set, new_symbol: NewSymbol, shape_of: Callable) -> StepForward:
    """A function of nodes that is not itself a node (``tanh(c)`` in an LSTM's ``h = o·tanh(c)``)
    is kept per step, since the backward pass reads it again. Inner functions first, each written in
    the kept values inside it (σ(σ(h)) is σ(F0) once σ(h) is F0): replacing in this order, one at a
    time, leaves no kept function behind."""
    kept: dict[sp.Expr, sp.Symbol] = dict(step.kept)
    for name in step.nodes:
        e = step.exprs[name]
        for f in sorted(e.atoms(sp.Function), key=lambda f: (sp.count_ops(f), sp.default_sort_key(f))):
            if f != e and not isinstance(f, MatVec) and f.func in DERIVATIVE_RULES and f.free_symbols <= nodes:
                key = f.func(*[with_kept(a, kept) for a in f.args])
                if key not in kept:
                    kept[key] = new_symbol(f"_F{len(kept)}", (True, shape_of(f)))  # per example, as its buffer is
    return step.with_("keep_functions", kept=kept)


def with_kept(expr: sp.Expr, kept: dict) -> sp.Expr:
    """``expr`` with every kept function replaced by its stored value, innermost first."""
    for f, symbol in kept.items():
        expr = expr.xreplace({f: symbol})
    return expr


class Gate(NamedTuple):
    node: str  # the gate node, act(P + M[..., rows])
    hoisted: sp.Symbol  # P = W_x·x + biases, computed in the block instead
    x_weight: sp.Symbol
    biases: tuple  # P's parameter terms


class GateBlock(NamedTuple):
    vector: sp.Symbol  # what the stacked weights multiply (h_(t-1))
    columns: tuple  # (input size, state size)
    bounds: dict  # stacked weight -> its columns (start, stop)
    width: int
    gates: dict  # stacked weight -> Gate, in stacking order
    hoisted: set  # the gates' hoisted sums


def find_gate_block(step: StepForward, x: sp.Symbol, parameters: set, states: set,
                    shape: Callable[[str], tuple]) -> StepForward:
    """The LSTM pattern, found in any cell: every weight of the one stack feeds exactly one gate
    σ or tanh(W_x·x + b + W_h·h), with its own input weight and biases of the gate's shape. Then the
    gates can be one (T, batch, width) array, each step one product [x_t, h_(t-1), 1] @ [W_x | W_h | b]ᵀ
    written straight into it (the lowering's gate block). ``states``: the new states' nodes, which
    keep storage of their own."""
    return step.with_("find_gate_block", block=_gate_block(step, x, parameters, states, shape))


def _gate_block(step: StepForward, x, parameters, states, shape) -> GateBlock | None:
    if len(step.stacks) != 1 or len(shape(x.name)) != 1:
        return None
    (stack,) = step.stacks
    hoisted = {P: value for P, value, _ in step.hoisted}
    gates, used = {}, set()
    for m in stack.weights:
        product = Columns(stack.product, *stack.bounds[m])
        users = [n for n in step.nodes if step.exprs[n].has(product)]
        if len(users) != 1 or users[0] in states:  # a new state has storage of its own (T + 1 rows)
            return None
        node, e = users[0], step.exprs[users[0]]
        if not (e.func in (sigmoid, sp.tanh) and e.args[0].is_Add and len(e.args[0].args) == 2 and product in e.args[0].args):
            return None
        (P,) = [a.args[0] if isinstance(a, AtStep) else a for a in e.args[0].args if a != product]
        if P not in hoisted:
            return None
        terms = sp.Add.make_args(hoisted[P])
        inputs = [a for a in terms if isinstance(a, MatVec) and a.args[1] == x]
        biases = tuple(a for a in terms if a not in inputs)
        # One input weight of its own, and biases that are parameters of the gate's shape.
        if (len(inputs) != 1 or inputs[0].args[0] in used
                or not all(b in parameters and shape(b.name) == shape(node) for b in biases)):
            return None
        used.add(inputs[0].args[0])
        gates[m] = Gate(node, P, inputs[0].args[0], biases)
    width = max(stop for _, stop in stack.bounds.values())
    columns = (shape(x.name)[0], shape(stack.vector.name)[0])
    return GateBlock(stack.vector, columns, dict(stack.bounds), width, gates, {g.hoisted for g in gates.values()})


def merge_input_products(step: StepForward, x: sp.Symbol, rows_of: Callable[[sp.Symbol], int],
                         new_symbol: NewSymbol) -> StepForward:
    """The input products of several weights in the hoisted sums (an LSTM's W_ii, W_if, W_ig, W_io
    outside a gate block) become one product ``Q = X·[W_1 | W_2 | …]ᵀ`` for all steps: each
    ``W_k·x`` in a sum is its columns of ``Q``. A gate block's sums are left to the block."""
    gated = step.block.hoisted if step.block else set()
    weights: list[sp.Symbol] = []
    for P, value, _ in step.hoisted:
        if P not in gated:
            for product in sorted(value.atoms(MatVec), key=sp.default_sort_key):
                if product.args[1] == x and product.args[0] not in weights:
                    weights.append(product.args[0])
    if len(weights) < 2:
        return step.with_("merge_input_products")
    bounds, start = {}, 0
    for m in weights:
        bounds[m], start = (start, start + rows_of(m)), start + rows_of(m)
    product = new_symbol("_Q", (True, (start,)))
    columns = {MatVec(m, x): Columns(product, *bounds[m]) for m in weights}
    hoisted = tuple((P, value.xreplace(columns), shape) for P, value, shape in step.hoisted)
    return step.with_("merge_input_products", hoisted=hoisted, inputs=Stack(x, "_WX", product, tuple(weights), bounds))


class Write(Enum):
    """How a step node's value reaches its storage ``S[t]`` (decided by :func:`place_writes`)."""

    IN_PLACE = "activation in place"  # a gate: its argument is already in the gate block
    ADD_IN_PLACE = "sum, then activation in place"  # f(a + b): a + b into S[t], then f on S[t]
    CALL_INTO = "activation into"  # f(z) written into S[t]
    LAST_OP_INTO = "last operation into"  # a sum or product: its last operation writes S[t]
    BROADCAST = "broadcast"  # the same for every example (or a scalar of a vector node): filled
    COPY = "computed, then copied"


def place_writes(step: StepForward, per_example: Callable[[sp.Expr, str], bool],
                 in_place: set) -> StepForward:
    """How each node is written into its storage, with as few temporary arrays as the node allows.
    ``per_example(expr, node)``: whether ``expr`` has the node's own shape, one row per example;
    ``in_place``: the functions that have an in-place form (σ, tanh). A gate of the gate block runs
    its activation in place on its columns, which the step's product has just filled; an activation
    of a sum of two adds them into the storage and runs in place there."""
    gates = {g.node for g in step.block.gates.values()} if step.block else set()
    writes = {}
    for name in step.nodes:
        value = with_kept(step.exprs[name], step.kept)
        if name in gates:
            writes[name] = Write.IN_PLACE
        elif not per_example(value, name):
            writes[name] = Write.BROADCAST
        elif value.func in in_place:
            arg = value.args[0]
            writes[name] = Write.ADD_IN_PLACE if arg.is_Add and len(arg.args) == 2 else Write.CALL_INTO
        else:
            writes[name] = Write.LAST_OP_INTO if value.is_Add or value.is_Mul else Write.COPY
    return step.with_("place_writes", writes=writes)
