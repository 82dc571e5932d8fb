"""User-defined cells and unrolling: any recurrent cell written as SymPy expressions.

A :class:`Cell` says how its state(s) at step t follow from the state(s) at t-1, the input at t
and its parameters; :func:`unroll` repeats it ``steps`` times, adds a readout, an output activation
and a loss, and returns a :class:`~rnnsym.network.Network` with the same interface as the seed
network. Symbols are scalars unless ``shapes`` gives them a size: a vector state ``h`` of size
``n`` (``shapes={h: n}``) and a weight ``W`` of shape ``(n, m)`` multiplying it as ``matvec(W, v)``.
Everything else in a cell is elementwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import sympy as sp
from sympy.core.function import AppliedUndef

from .. import functions
from ..errors import RnnsymError, choose, listed, positive_int
from ..engine.truncation import check_truncation
from ..functions import MatVec
from ..graph import Graph, ParamRole, param_role
from ..network import Network, Recurrence
from ..network import step_name as _step_name

RESERVED = ("y", "Y", "L", "W_hy", "b_y")


def matvec(matrix: sp.Symbol, vector: sp.Symbol) -> sp.Expr:
    """The product ``matrix · vector`` inside a cell (a weight times a vector state or input)."""
    return MatVec(matrix, vector)


def _real_valued(expr):
    """``expr`` with ``re(a)`` as ``a``, ``im(a)`` as 0 and ``conjugate(a)`` as ``a``: every value of a
    cell is real, but SymPy's symbols are not declared so, and it rewrites what the user wrote in
    those terms (``Abs(exp(g))`` becomes ``exp(re(g))``), which the cell would refuse by a name the
    user never wrote. Anything that is not a SymPy expression is left for the checks to refuse."""
    if not isinstance(expr, sp.Basic):
        return expr
    return expr.replace(sp.re, lambda a: a).replace(sp.im, lambda a: sp.S.Zero).replace(sp.conjugate, lambda a: a)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell as SymPy expressions.

    >>> import sympy as sp
    >>> h, x, a, u = sp.symbols("h x a u")
    >>> cell = Cell(state=h, input=x, update=sp.tanh(a * x + u * h), params=[a, u])
    >>> unroll(cell, steps=3).param_names
    ('a', 'u', 'W_hy', 'b_y')

    ``gates`` names intermediate values (computed in order, each becomes a node per step, as the
    LSTM's i, f, g, o do); several states are given as tuples, and the first feeds the readout.

    ``roles`` says what a parameter does (a :class:`~rnnsym.graph.ParamRole` or its text:
    ``"input weight"``, ``"recurrent weight"``, ``"bias"``, ``"cell parameter"``), which the
    initialisers use: a bias starts at zero, a recurrent matrix can start orthogonal. A parameter not
    named there is a ``"cell parameter"``, an ordinary weight, whatever its name.
    """

    state: sp.Symbol | tuple
    input: sp.Symbol
    update: sp.Expr | tuple
    params: Sequence[sp.Symbol]
    gates: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)
    shapes: Mapping[sp.Symbol, int | tuple] = field(default_factory=dict)
    name: str = "cell"
    roles: Mapping[sp.Symbol, ParamRole | str] = field(default_factory=dict)
    gate_shapes: dict = field(init=False, repr=False, default_factory=dict)  # inferred while validating

    def __post_init__(self):
        states, updates = _as_tuple(self.state), tuple(_real_valued(u) for u in _as_tuple(self.update))
        object.__setattr__(self, "state", states)
        object.__setattr__(self, "update", updates)
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "gates", {gate: _real_valued(expr) for gate, expr in dict(self.gates).items()})
        shapes = {s: ((v,) if isinstance(v, int) else tuple(v)) for s, v in dict(self.shapes).items()}
        object.__setattr__(self, "shapes", shapes)
        self._validate(states, updates)
        object.__setattr__(self, "roles", self._checked_roles())

    def _checked_roles(self) -> dict:
        """``roles`` with ParamRole values; a role for something that is not a parameter of the cell,
        or a readout's role, is a one-line error."""
        roles = {}
        for symbol, role in dict(self.roles).items():
            if symbol not in self.params:
                raise RnnsymError(f"roles names {symbol}, which is not a parameter of the cell; "
                                  f"parameters: {listed(self.params)}")
            role = param_role(role)
            if role in (ParamRole.READOUT_WEIGHT, ParamRole.READOUT_BIAS):
                raise RnnsymError(f"{symbol} cannot have role {role.value!r}: the readout W_hy, b_y is added by unroll")
            roles[symbol] = role
        return roles

    # ---- checks, all before anything is computed ---------------------------------------------------
    def _validate(self, states, updates) -> None:
        symbols = [*states, self.input, *self.params, *self.gates]
        for s in symbols:
            if not isinstance(s, sp.Symbol):
                raise RnnsymError(f"cell states, input, params and gate names must be SymPy Symbols, got {s!r}")
        if len(updates) != len(states):
            raise RnnsymError(f"the cell has {len(states)} state(s) ({listed(states)}) "
                              f"but {len(updates)} update(s): every state needs exactly one update")
        names = [s.name for s in symbols]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RnnsymError(f"cell symbol names must be distinct; repeated: {listed(duplicates)}")
        reserved = sorted(set(names) & set(RESERVED))
        if reserved:
            raise RnnsymError(f"cell symbol name(s) {listed(reserved)} are reserved for the readout and loss")
        for s in symbols:
            if not s.name.isidentifier():
                raise RnnsymError(f"cell symbol name {s.name!r} must be letters, digits and underscores")
        self._check_step_names(states)
        known = {*states, self.input, *self.params}
        for gate, expr in self.gates.items():
            self._check_expr(expr, known, f"gate {gate}")
            known.add(gate)
        for state, expr in zip(states, updates):
            self._check_expr(expr, known | set(self.gates), f"update of {state}")
        for s, shape in self.shapes.items():
            if s not in set(symbols):
                raise RnnsymError(f"shapes names {s}, which is not a symbol of the cell")
            if not all(isinstance(n, int) and n >= 1 for n in shape) or len(shape) > 2:
                raise RnnsymError(f"shape of {s} must be a size n >= 1 or (rows, columns), got {shape}")
        inferred = dict(self.shapes)
        for gate, expr in self.gates.items():
            inferred[gate] = self._shape(expr, inferred, f"gate {gate}")
        object.__setattr__(self, "gate_shapes", {gate: inferred[gate] for gate in self.gates})
        for state, expr in zip(states, updates):
            got = self._shape(expr, inferred, f"update of {state}")
            if got != inferred.get(state, ()) and got != ():
                raise RnnsymError(f"the update of {state} has shape {got}, but {state} has shape {inferred.get(state, ())}")

    def _check_step_names(self, states) -> None:
        """A name that an unrolled node takes at some step (``h1`` for the state h, ``y2`` for the
        output at step 2) is refused for any other symbol, whatever the number of steps, so that a
        cell valid at T = 4 does not fail at T = 10."""
        kinds = {**{s.name: "state" for s in states}, **{g.name: "gate" for g in self.gates},
                 self.input.name: "input", "y": "output", "Y": "target", "L": "loss"}
        bases = {**kinds, **{f"{b}_reverse": kind for b, kind in kinds.items()}}
        for symbol in (*states, self.input, *self.params, *self.gates):
            for base, kind in bases.items():
                step = _step_of(symbol.name, base)
                if step is not None:
                    raise RnnsymError(f"cell symbol {symbol.name!r} clashes with the node {symbol.name} "
                                      f"({kind} {base} at step {step}); choose another name")

    @staticmethod
    def _check_expr(expr, known, where: str) -> None:
        if not isinstance(expr, sp.Basic):
            raise RnnsymError(f"{where} must be a SymPy expression, got {expr!r}")
        undeclared = sorted(s.name for s in expr.free_symbols if s not in known)
        if undeclared:
            raise RnnsymError(f"{where} uses undeclared symbol(s) {listed(undeclared)}; "
                              "declare them as state, input, params or gates")
        unknown = sorted({type(f).__name__ for f in expr.atoms(AppliedUndef)})
        if unknown:
            raise RnnsymError(f"{where} uses {listed(unknown)}, a function with no known derivative; "
                              "use SymPy functions or rnnsym.functions (sigmoid, relu)")
        piece = functions.unsupported_function(expr)
        if piece is not None:
            allowed = ", ".join(f.__name__ for f in functions.CELL_FUNCTIONS if f is not MatVec)
            raise RnnsymError(f"{where} uses {piece}, which a cell cannot use; allowed: + - * / **, "
                              f"numbers, {allowed} and matvec")

    def _shape(self, expr, shapes, where: str) -> tuple:
        """The shape of an expression: vectors combine elementwise with vectors of the same size or
        with scalars; ``matvec(W, v)`` needs W of shape (n, len(v)) and gives (n,)."""
        if isinstance(expr, sp.Symbol):
            return shapes.get(expr, ())
        if isinstance(expr, MatVec):
            matrix, vector = expr.args
            w, v = shapes.get(matrix, ()), self._shape(vector, shapes, where)
            if not isinstance(vector, sp.Symbol) or len(w) != 2 or len(v) != 1 or w[1] != v[0]:
                raise RnnsymError(f"shapes do not fit in {where}: matvec({matrix}, {vector}) needs a "
                                  f"matrix (n, m) and a vector symbol of size m, got {w or 'scalar'} and {v or 'scalar'}")
            return (w[0],)
        found = {self._shape(a, shapes, where) for a in expr.args}
        if any(len(s) == 2 for s in found):
            raise RnnsymError(f"shapes do not fit in {where}: a matrix can only be used as matvec(W, v)")
        vectors = found - {()}
        if len(vectors) > 1:
            raise RnnsymError(f"shapes do not fit in {where}: {' and '.join(map(str, sorted(vectors)))}")
        return vectors.pop() if vectors else ()


def _step_of(name: str, base: str) -> int | None:
    """The step t for which ``name == _step_name(base, t)``, or None."""
    rest = name[len(base):] if name.startswith(base) else ""
    if base[-1].isdigit():
        rest = rest[1:] if rest.startswith("_") else ""
    return int(rest) if rest.isdigit() and rest.isascii() and str(int(rest)) == rest else None


@dataclass(frozen=True)
class Layers:
    """Cells stacked and run in both directions, as PyTorch's bidirectional stacks are: layer l ≥ 1
    reads ``[h_fwd; h_bwd]``, layer l−1's two states at step t joined (its input symbol's nodes
    ``x_l1_t``). Each cell's names carry its layer (``W_ih_l0``); the reverse direction's end in
    ``_reverse``. Unrolled by :func:`unroll` with ``bidirectional=True``."""

    cells: tuple
    name: str


def _run_layers(graph, layers: Sequence[Cell], xs: list, T: int, bidirectional: bool) -> dict:
    """Run every layer over the steps (and back, for two directions) and return the top layer's
    first state by direction suffix and step: ``{"": {t: h_t}, "_reverse": {t: h'_t}}``."""
    directions = [("", range(1, T + 1))] + ([("_reverse", range(T, 0, -1))] if bidirectional else [])
    inputs = dict(zip(range(1, T + 1), xs))
    for l, c in enumerate(layers):
        first: dict[str, dict[int, sp.Symbol]] = {}
        for suffix, order in directions:
            start = 0 if not suffix else T + 1
            initial = {s: graph.add(_step_name(s.name + suffix, start), "constant", value=0, base=s.name + suffix,
                                    step=start, shape=c.shapes.get(s, ()), role=f"initial {s.name}, zero")
                       for s in c.state}
            states = run_cell(graph, c, suffix, order, inputs, initial)
            first[suffix] = {t: states[t][c.state[0]] for t in order}
        if l + 1 < len(layers):  # the layer above reads both directions at once
            above = layers[l + 1].input
            inputs = {t: graph.add(_step_name(above.name, t), "hidden",
                                   functions.Concat(first[""][t], first["_reverse"][t]), step=t, base=above.name,
                                   shape=layers[l + 1].shapes[above], role=f"layer {l + 1}'s input at step {t}: "
                                   f"layer {l}'s two directions joined") for t in range(1, T + 1)}
    return first


def unroll(cell: Cell, steps: int, *, output_size: int = 1, output_activation: str = "sigmoid",
           loss: str = "bce", outputs: str = "last", step_reduction: str = "mean",
           truncate: int | None = None, bidirectional: bool = False, name: str | None = None,
           title: str | None = None, options: dict | None = None, param_roles: dict | None = None) -> Network:
    """Unroll ``cell`` over ``steps`` inputs, with a readout ``y = g(W_hy·h + b_y)`` and a loss.

    ``outputs="last"``: one loss on the last step (many-to-one); ``"all"``: a loss at every step,
    averaged over the steps (``step_reduction="mean"``) or summed (``"sum"``).
    ``bidirectional=True`` runs a second copy of the cell over the reversed sequence (its symbols
    suffixed ``_reverse``, as in PyTorch) and joins the two states in the readout:
    ``y = g(W_hy·h_fwd + W_hy_reverse·h_bwd + b_y)``.
    """
    T = positive_int("steps", steps)
    positive_int("output_size", output_size)
    choose("outputs", outputs, ("last", "all"))
    choose("step_reduction", step_reduction, ("mean", "sum"))
    g = functions.output_activation(output_activation)
    loss_fn = functions.loss(loss, output_activation)
    check_truncation(truncate, bidirectional)
    if output_activation == "softmax" and output_size < 2:
        raise RnnsymError(f"softmax needs output_size >= 2 classes, got {output_size}")
    if bidirectional and outputs == "last":
        raise RnnsymError("a bidirectional network needs outputs='all' (each step sees both directions)")

    layers = tuple(cell.cells) if isinstance(cell, Layers) else (cell,)
    if len(layers) > 1 and not bidirectional:
        raise RnnsymError("Layers are run in both directions: unroll them with bidirectional=True")
    graph = Graph()
    roles = dict(param_roles or {})
    in_shape = layers[0].shapes.get(layers[0].input, ())
    xs = [graph.add(_step_name(layers[0].input.name, t), "input", step=t, shape=in_shape, role=f"input at step {t}",
                    base=layers[0].input.name)
          for t in range(1, T + 1)]
    for c in layers:
        for suffix in ("", "_reverse") if bidirectional else ("",):
            for p in c.params:
                graph.add(p.name + suffix, "param", shape=c.shapes.get(p, ()),
                          role=roles.get(p.name, "cell parameter") + (", reverse direction" if suffix else ""),
                          param_role=c.roles.get(p, ParamRole.CELL_PARAMETER))
    h_shape = layers[-1].shapes.get(layers[-1].state[0], ())
    y_shape = (output_size,) if (h_shape or output_size > 1) else ()
    w_shape = (output_size, h_shape[0]) if h_shape else y_shape
    graph.add("W_hy", "param", shape=w_shape, role="readout weight", param_role=ParamRole.READOUT_WEIGHT)
    if bidirectional:
        graph.add("W_hy_reverse", "param", shape=w_shape, role="readout weight, reverse direction",
                  param_role=ParamRole.READOUT_WEIGHT)
    b_y = graph.add("b_y", "param", shape=y_shape, role="readout bias", param_role=ParamRole.READOUT_BIAS)

    first_states = _run_layers(graph, layers, xs, T, bidirectional)

    W = graph["W_hy"].symbol

    def readout(t: int) -> sp.Expr:
        h = first_states[""][t]
        z = (MatVec(W, h) if h_shape else W * h) + b_y
        if bidirectional:
            hb = first_states["_reverse"][t]
            z += MatVec(graph["W_hy_reverse"].symbol, hb) if h_shape else graph["W_hy_reverse"].symbol * hb
        return g(z)

    reduction = functions.LOSS_REDUCTION[loss]
    if outputs == "last":
        y = graph.add("y", "output", readout(T), step=T, shape=y_shape, role="network output")
        Y = graph.add("Y", "target", shape=y_shape, role="the target")
        graph.add("L", "loss", loss_fn(y, Y), step=T, reduce=reduction,
                  role=f"loss ({functions.LOSS_TITLES[loss]})")
    else:
        terms = []
        for t in range(1, T + 1):
            y = graph.add(f"y{t}", "output", readout(t), step=t, shape=y_shape, role=f"output at step {t}")
            Y = graph.add(f"Y{t}", "target", step=t, shape=y_shape, role=f"target at step {t}")
            terms.append(graph.add(f"L{t}", "loss_term", loss_fn(y, Y), step=t, reduce=reduction,
                                   role=f"loss at step {t}"))
        total = sp.Add(*terms) / (T if step_reduction == "mean" else 1)
        graph.add("L", "loss", total, step=T,
                  role=f"loss ({functions.LOSS_TITLES[loss]}, {step_reduction} over the {T} steps)")

    opts = dict(options or {})
    opts.update(output_activation=output_activation, loss=loss, outputs=outputs, output_size=output_size,
                input_size=in_shape[0] if in_shape else 1, bidirectional=bidirectional)
    if outputs == "all":
        opts["step_reduction"] = step_reduction
    if truncate is not None:
        opts["truncate"] = truncate
    # A stack run in both directions is no one shared cell: it compiles unrolled, as any bidirectional network.
    recurrence = None if isinstance(cell, Layers) else Recurrence(
        tuple(s.name for s in cell.state), tuple(g.name for g in cell.gates), cell.input.name,
        tuple(p.name for p in cell.params), bidirectional)
    return Network(graph, name=name or cell.name, steps=T, options=opts, title=title or f"a {cell.name} network",
                   recurrence=recurrence)


def run_cell(graph, c: Cell, suffix: str, order, inputs: dict, initial: dict, step_offset: int = 0) -> dict:
    """Add the nodes of ``c`` run over the steps ``order`` (``inputs[t]`` its input node at step t,
    ``initial`` each state's node before the first step; every name suffixed ``suffix``, every
    parameter the graph's ``name + suffix``) and return each step's state nodes: ``{t: {state: node}}``.
    ``step_offset`` is added to the steps the nodes record (a decoder's steps follow the encoder's)."""
    rename = {p: graph[p.name + suffix].symbol for p in c.params}
    previous, states = dict(initial), {}
    for t in order:
        subs = {**rename, **previous, c.input: inputs[t]}
        for gate, expr in c.gates.items():
            subs[gate] = graph.add(_step_name(gate.name + suffix, t), "hidden", _rename(expr, subs),
                                   step=t + step_offset, base=gate.name + suffix, shape=c.gate_shapes[gate],
                                   role=f"gate {gate.name} at step {t}")
        new = {}
        for s, expr in _dependency_order(c.state, c.update):
            value = expr.xreplace({e: new[k] for k, e in zip(c.state, c.update) if k in new and _shared(e)})
            new[s] = graph.add(_step_name(s.name + suffix, t), "hidden", _rename(value, subs), step=t + step_offset,
                               base=s.name + suffix, shape=c.shapes.get(s, ()), role=f"state {s.name} at step {t}")
        previous = states[t] = {s: new[s] for s in c.state}
    return states


def _rename(expr: sp.Expr, symbols: dict) -> sp.Expr:
    """``expr`` with symbols renamed for one step. Renaming cannot make anything simplify, so
    SymPy's evaluation (assumption queries on every tanh and σ) is skipped: it would cost T times."""
    with sp.evaluate(False):
        return expr.xreplace(symbols)


def _shared(update: sp.Expr) -> bool:
    """Whether another state's update reads this update's value from its node instead of a copy:
    any update of the step's symbols (a stacked layer's state is its new-value gate, which the
    layer above reads as that state). A constant is never shared: a state updated to 1/2 must not
    turn every 1/2 of another update, such as Heaviside's value at 0, into that state's node
    (fuzzer case 93023)."""
    return bool(update.free_symbols)


def _dependency_order(states, updates):
    """States in an order where a state whose new value appears inside another's update comes first
    (the LSTM's h' = o·tanh(c') reads the new c from its node, not a second copy of f·c + i·g)."""
    pairs = list(zip(states, updates))
    ordered = []
    while pairs:
        for i, (s, expr) in enumerate(pairs):
            if not any(other_expr != expr and _shared(other_expr) and expr.has(other_expr) for _, other_expr in pairs):
                ordered.append(pairs.pop(i))
                break
        else:  # pragma: no cover - a cycle is impossible for finite expressions
            ordered.extend(pairs)
            break
    return ordered
