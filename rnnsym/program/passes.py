"""Optimisations as passes: each a small function from program to program, with tests of its own.

:func:`optimise` runs them in order: fuse each output with its loss, fold constants, schedule the
backward pass (each share computed as soon as its child's adjoint is known), write ``diag(f)·δ`` as
a product, share common subexpressions, put single-use shares into the one sum that reads them.
:func:`join_steps` then sums each parameter's shares from every step by one product; an emitter runs
it, as it needs the printer's shapes. No pass reads or writes source text.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import sympy as sp

from ..engine.rules import Coupled, Diag, ExampleOuter, Outer, Part, RowOf, Summed, TransposeTimes, elementwise, share
from ..functions import MatVec, Mix, Scores
from ..graph import NodeKind
from .build import fused_gradient
from .ir import Accumulate, Compute, Fill, Joined, OuterSum, OverBatch, Program, Role, Value


def simplify(program: Program, network) -> Program:
    """The program with its loss fused and its constants folded: still one sum per adjoint, each
    share an expression of adjoints and node values (what a trace of the shares prints)."""
    return fold_constants(fuse_loss(program, network))


def optimise(program: Program) -> Program:
    """A simplified program made ready for an emitter: scheduled, with shared work done once."""
    program = schedule(program)
    program = lower_products(program)
    program = common_subexpressions(program)
    return inline_single_use(program)


# ---- fuse: the loss and its output's activation as one factor --------------------------------------------
def fuse_loss(program: Program, network) -> Program:
    """Each output's adjoint and its loss term's are folded into the shares out of the output:
    ``∂L/∂z`` from the fused table (softmax with cross-entropy: ``o − Y``), or the product of the
    loss's and the activation's factors cancelled (sigmoid with BCE: ``o − Y``), so gradients stay
    finite for any logit and no adjoint of an output or a loss term is computed."""
    graph = network.graph
    by_target = {s.target: s for s in program.backward if isinstance(s, Accumulate)}
    dropped = {s.target for s in program.backward if isinstance(s, Accumulate)
               and graph[s.node].kind in (NodeKind.OUTPUT, NodeKind.LOSS_TERM)}

    def seed(share_):
        """The output's share into its parent, through the fused loss factor."""
        (into_output,) = by_target[share_.delta].shares  # from the loss term (or the loss itself)
        weight = into_output.delta if into_output.delta not in by_target else \
            elementwise(sp.Add(*(s.expr for s in by_target[into_output.delta].shares)))
        term, factor = fused_factor(network, share_.term, share_.child, into_output.child)
        return replace(share_, term=term, expr=share(term, share_.kind, weight, factor), delta=weight)

    backward = []
    for s in program.backward:
        if isinstance(s, Accumulate) and s.target not in dropped:
            shares = tuple(seed(x) if x.delta in dropped else x for x in s.shares)
            backward.append(replace(s, shares=shares))
    return program.with_("fuse_loss", backward=tuple(backward))


def fused_factor(network, term, out: str, loss_term: str):
    """``(term, factor)``: the factor of ``term`` (of ``∂out/∂parent``) with ``∂loss_term/∂out``
    fused into it, and the term as it then applies (a softmax's coupling is inside ``o − Y``)."""
    graph, fused = network.graph, fused_gradient(network)
    if fused is not None:
        factor = fused(graph[out].symbol, _target(graph, loss_term).symbol) * term.factor
        return replace(term, softmax=None), factor
    (dl,) = network.jacobian(loss_term, out).terms
    return term, sp.factor(sp.cancel(dl.factor * term.factor))


def _target(graph, loss_term: str):
    (target,) = [graph[p] for p in graph.parents(loss_term) if graph[p].kind == NodeKind.TARGET]
    return target


# ---- fold: constants into expressions, zeros out of sums -----------------------------------------------
_ZERO_IF = {Diag: (0, 1), Coupled: (1,), Summed: (0,), TransposeTimes: (1,), Outer: (0, 1), MatVec: (1,),
            RowOf: (0,), ExampleOuter: (0, 1), Scores: (0, 1), Mix: (0, 1), Part: (0,)}


def fold_zeros(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every operation that has a zero operand (``W·0``, ``diag(f)·0``) as 0."""
    def zero(e):
        return any(e.args[i] == 0 for i in _ZERO_IF[type(e)])
    previous = None
    while previous != expr:  # a zero can make its enclosing operation zero in turn
        previous = expr
        expr = expr.replace(lambda e: type(e) in _ZERO_IF and zero(e), lambda e: sp.S.Zero)
    return expr


def fold_constants(program: Program) -> Program:
    """Scalar constants and zero vectors (an initial state h₀ = 0) are written into the expressions
    that read them, and a share that folds to 0 (``∂o₁/∂w₀ = o₀·(…)`` with ``o₀ = 0``; a step's
    derivative) is dropped with every share that carried only it. The Fill stays for the trace."""
    constants = {s.target: s.value for s in program.forward if isinstance(s, Fill)
                 and (program.values[s.target].shape == () or s.value == 0)}
    fold = {c: sp.Float(v) if v != int(v) else sp.Integer(int(v)) for c, v in constants.items()}

    def folded(expr, known=fold):
        new = expr.xreplace(known)
        return expr if new is expr else fold_zeros(new)  # only a folded value makes a new zero

    forward = tuple(replace(s, expr=folded(s.expr)) if isinstance(s, Compute) else s for s in program.forward)
    loss = tuple(replace(s, expr=folded(s.expr)) if isinstance(s, Compute) else s for s in program.loss)
    zero: dict = {}  # adjoints that folded to zero
    backward = []
    for s in program.backward:
        shares = []
        for x in s.shares:
            expr = folded(x.expr, {**fold, **zero})
            if expr != 0:
                shares.append(replace(x, expr=expr))
        if shares:
            backward.append(replace(s, shares=tuple(shares)))
        else:
            zero[s.target] = sp.S.Zero
    return program.with_("fold_constants", forward=forward, loss=loss, backward=tuple(backward))


# ---- schedule: shares computed as soon as their child's adjoint is known ----------------------------------
def schedule(program: Program, reduce_gradients: bool = True) -> Program:
    """Every share gets a value of its own, computed right after the adjoint it carries (the shares
    out of one node together, which is what lets them share work), and the sums read those values.
    A parameter's share is summed over the batch where it is computed (``reduce_gradients``; the loop
    form stores it per example and step instead, and reduces it after the loop)."""
    values = dict(program.values)
    adjoints = {s.target for s in program.backward if values[s.target].role is Role.ADJOINT}
    out_of: dict = {}  # adjoint -> the shares that carry it, as Compute statements
    sums = []
    numbers = iter(range(10**9))
    for acc in program.backward:
        shares = []
        for x in acc.shares:
            number = next(numbers)
            symbol = sp.Dummy(f"s{number}")
            parent = values[acc.target]
            if parent.role is Role.GRADIENT and reduce_gradients:
                expr = OverBatch(x.expr, len(parent.shape))
                values[symbol] = Value(symbol, f"_s{number}", Role.SHARE, parent.shape, False, acc.node)
            else:
                expr = x.expr
                values[symbol] = Value(symbol, f"_s{number}", Role.SHARE, parent.shape, True, acc.node)
            out_of.setdefault(x.delta if x.delta in adjoints else None, []).append(Compute(symbol, expr))
            shares.append(replace(x, expr=symbol))
        sums.append(replace(acc, shares=tuple(shares)))
    backward = list(out_of.pop(None, []))  # the seeds: they read no adjoint
    for acc in sums:
        backward.append(acc)
        backward += out_of.pop(acc.target, [])
    return program.with_("schedule", values=values, backward=tuple(backward))


def lower_products(program: Program) -> Program:
    """``diag(f)·x`` as the elementwise product ``f*x``, so that common factors of several shares
    (the ``(1 − h²)·δh`` of a tanh node) are visible to :func:`common_subexpressions`."""
    backward = tuple(replace(s, expr=elementwise(s.expr)) if isinstance(s, Compute) else s for s in program.backward)
    return program.with_("lower_products", backward=backward)


# ---- common subexpressions: once per group of shares out of one node -------------------------------------
def common_subexpressions(program: Program) -> Program:
    """Each run of share computations (the shares out of one node) is searched for subexpressions
    they have in common; each is computed once, as a temporary, before the run."""
    values, backward, run = dict(program.values), [], []
    temps = (sp.Dummy(f"t{i}") for i in range(10**9))
    numbers = iter(range(10**9))

    def flush():
        if not run:
            return
        replacements, reduced = sp.cse([s.expr for s in run], symbols=temps, order="none")
        for temp, value in replacements:
            values[temp] = Value(temp, f"_t{next(numbers)}", Role.TEMP, (), True)  # shape: the emitter asks its printer
            backward.append(Compute(temp, value))
        backward.extend(replace(s, expr=e) for s, e in zip(run, reduced))
        run.clear()

    for s in program.backward:
        if isinstance(s, Compute):
            run.append(s)
        else:
            flush()
            backward.append(s)
    flush()
    return program.with_("common_subexpressions", values=values, backward=tuple(backward))


def inline_single_use(program: Program) -> Program:
    """A share read by one sum only is written into that sum, one line instead of two (a share that
    is just another value's name always is), where that
    costs nothing: into a node's adjoint (computed next anyway), and into a gradient that has only
    that share, which then moves up to where the share was (so it reads the step's values while
    they are still in cache; a gradient summed from many steps keeps its shares as they come)."""
    uses = Counter(sym for s in program.backward for e in reads_of(s) for sym in e.free_symbols)
    # A share that is only another value's name (the bias share (1 − h²)·δh after CSE) is that value.
    aliases = {s.target: s.expr for s in program.backward if isinstance(s, Compute)
               and program.values[s.target].role is Role.SHARE and isinstance(s.expr, sp.Symbol)}
    if aliases:
        program = replace(program, backward=tuple(
            replace(s, shares=tuple(replace(x, expr=aliases.get(x.expr, x.expr)) for x in s.shares))
            if isinstance(s, Accumulate) else s for s in program.backward if getattr(s, "target", None) not in aliases))
    single = {s.target for s in program.backward if isinstance(s, Compute)
              and program.values[s.target].role is Role.SHARE and uses[s.target] == 1}
    gradients = {x.expr: s for s in program.backward if isinstance(s, Accumulate)
                 and program.values[s.target].role is Role.GRADIENT for x in s.shares}
    definitions = {s.target: s.expr for s in program.backward if isinstance(s, Compute) and s.target in single}
    backward, moved = [], set()
    for s in program.backward:
        if isinstance(s, Compute) and s.target in single:
            gradient = gradients.get(s.target)
            if gradient is None:  # into a node's adjoint, below
                continue
            if len(gradient.shares) == 1:  # the gradient itself, here
                backward.append(replace(gradient, shares=(replace(gradient.shares[0], expr=s.expr),)))
                moved.add(gradient.target)
                continue
        if isinstance(s, Accumulate):
            if s.target in moved:
                continue
            if program.values[s.target].role is not Role.GRADIENT:
                s = replace(s, shares=tuple(replace(x, expr=definitions.get(x.expr, x.expr)) for x in s.shares))
        backward.append(s)
    return program.with_("inline_single_use", backward=tuple(backward))


def reads_of(statement) -> list[sp.Expr]:
    if isinstance(statement, Compute):
        return [statement.expr]
    if isinstance(statement, Accumulate):
        return [x.expr for x in statement.shares]
    return []


# ---- join: a parameter's shares from every step summed by one product --------------------------------------
def join_steps(program: Program, info) -> Program:
    """Each sum of several steps' shares of one form sums them in one operation. A gradient's batch
    sums become one batch sum over the steps' values joined along the batch axis: ``Σ_t x_tᵀ·v_t``
    is ``[x_1; …; x_T]ᵀ·[v_1; …; v_T]``, one product where there were T products and T − 1
    additions, and a bias's ``Σ_t Σ_b g_t`` one reduction; a stack's adjoint from every step's
    per-example outer product ``a_t·b_tᵀ`` becomes one batched product of two stacks. ``info`` (the
    printer's: expression -> (batched, shape)) says which shares join: values that carry the batch
    axis, all of one shape. A joining that several gradients read is made once; the shares that
    nothing reads any more are dropped."""
    definitions = {s.target: s.expr for s in program.backward if isinstance(s, Compute)}
    rewritten = {}
    for s in program.backward:
        if isinstance(s, Accumulate) and len(s.shares) > 1:
            shares = _joined_shares(s.shares, definitions, info)
            if shares is not None:
                rewritten[s.target] = replace(s, shares=shares)
    if not rewritten:
        return program
    values, rewritten, made = _join_once(program, rewritten)
    backward, placed = [], set()
    for s in program.backward:
        if s.target in rewritten:  # a joining goes just before the first gradient that reads it
            reads = {x for share in rewritten[s.target].shares for x in share.expr.free_symbols}
            backward += [m for m in made if m.target in reads - placed]
            placed |= reads
        backward.append(rewritten.get(s.target, s))
    return program.with_("join_steps", values=values, backward=tuple(_without_dead_computes(backward)))


def _joined_shares(shares, definitions: dict, info) -> tuple | None:
    """A gradient's shares with those of one form joined into one, or None where none join."""
    groups: dict = {}
    for x in shares:
        expr = definitions.get(x.expr, x.expr) if isinstance(x.expr, sp.Symbol) else x.expr
        groups.setdefault(_join_key(expr, info), []).append((x, expr))
    out, joined = [], False
    for key, members in groups.items():
        if key is None or len(members) < 2:
            out += [x for x, _ in members]
            continue
        if key[0] == "example":
            out.append(replace(members[0][0], expr=OuterSum(*(sp.Tuple(*(e.args[i] for _, e in members)) for i in (0, 1)))))
            joined = True
            continue
        exprs = [e.args[0] for _, e in members]  # the shares inside their batch sums
        ndim = key[1]
        if key[0] == "outer":
            inner = Outer(Joined(*(e.args[0] for e in exprs)), Joined(*(e.args[1] for e in exprs)))
        else:  # a scalar parameter's total sums what Summed would have summed first
            inner = Joined(*(e.args[0] if isinstance(e, Summed) and not ndim else e for e in exprs))
        out.append(replace(members[0][0], expr=OverBatch(inner, ndim)))
        joined = True
    return tuple(out) if joined else None


def _join_key(expr, info):
    """What a share joins with (shares of one key join), or None: it does not join."""
    if isinstance(expr, ExampleOuter):
        infos = tuple(info(a) for a in expr.args)
        return ("example", infos) if all(batched is True and shape is not None and len(shape) == 1
                                         for batched, shape in infos) else None
    if not isinstance(expr, OverBatch):
        return None
    inner, ndim = expr.args[0], int(expr.args[1])
    operands = inner.args if isinstance(inner, Outer) else (
        inner.args[:1] if isinstance(inner, Summed) and not ndim else (inner,))
    infos = tuple(info(a) for a in operands)
    if any(batched is not True or shape is None for batched, shape in infos):
        return None  # a value without the batch axis (a constant) has no rows to join
    return ("outer" if isinstance(inner, Outer) else "rows", ndim, infos)


def _join_once(program: Program, rewritten: dict):
    """``(values, rewritten, made)``: each joining read by more than one gradient computed once, as
    a temporary (``made``: their statements); the gradients' own batch sums stay apart (each
    gradient is an array of its own, which a caller may change in place)."""
    counts = Counter(j for s in rewritten.values() for x in s.shares for j in x.expr.atoms(Joined))
    values, made, replacements = dict(program.values), [], {}
    taken = {v.name for v in values.values()}
    numbers = iter(range(10**9))
    for joined in sorted((j for j, n in counts.items() if n > 1), key=sp.default_sort_key):
        name = next(n for n in (f"_j{k}" for k in numbers) if n not in taken)
        temp = sp.Dummy(name[1:])
        values[temp] = Value(temp, name, Role.TEMP, (), True)  # shape: the emitter asks its printer
        made.append(Compute(temp, joined))
        replacements[joined] = temp
    rewritten = {t: replace(s, shares=tuple(replace(x, expr=x.expr.xreplace(replacements)) for x in s.shares))
                 for t, s in rewritten.items()}
    return values, rewritten, made


def _without_dead_computes(statements: list) -> list:
    """The statements less the computations that nothing after them reads (every sum stays: the
    adjoints are traced, the gradients returned)."""
    live, out = set(), []
    for s in reversed(statements):
        if isinstance(s, Compute) and s.target not in live:
            continue
        out.append(s)
        for e in reads_of(s):
            live |= e.free_symbols
    return out[::-1]


# ---- dead stores: per entry point ----------------------------------------------------------------------
def live_statements(statements, needed: set) -> list:
    """The statements whose values ``needed`` reads, directly or through other statements (a read of
    x that only the trace uses is left out of the gradient)."""
    live, out = set(needed), []
    for s in reversed(statements):
        if s.target in live:
            out.append(s)
            for e in reads_of(s):
                live |= e.free_symbols
    return out[::-1]


__all__ = ["simplify", "optimise", "fuse_loss", "fold_constants", "fold_zeros", "schedule", "lower_products",
           "common_subexpressions", "inline_single_use", "join_steps", "live_statements", "reads_of"]
