"""The loop form's forward pass: storage, the work that does not depend on the recurrence before the
loop (the input products, hoisted), and one step in the loop, with the weights that multiply the
same vector stacked into one product and, for a cell of the LSTM's form, the gate block.
"""
from __future__ import annotations

import sympy as sp

from ..functions import MatVec
from ..program.memory import Buffer, Phase
from ..program.step import (Columns, StepForward, Write, find_gate_block, hoist_time_parallel, keep_functions,
                            merge_input_products, place_writes, stack_weights, with_kept)
from .loop_fusion import ForwardFusion
from .printer import IN_PLACE_FUNCTIONS


class LoopForward:
    """Writes the forward pass of a loop form (``w``: the rnnsym.numeric.loop writer, which holds
    the template: the step's nodes, the previous states, the input, the names and the buffers)."""

    def __init__(self, w):
        self.graph, self.em, self.names, self.T, self.rec = w.graph, w.em, w.names, w.T, w.rec
        self.x1, self.col, self.prev, self.new, self.step, self.params = w.x1, w.col, w.prev, w.new, w.step, w.params
        self.buf, self.at, self.stacked = w.buf, w.at, w.stacked
        self.native, self.kernels = w.native, w.kernels  # fused kernels wanted, and those made
        self.before: list[str] = []  # work before the loop
        self.body: list[str] = []  # the loop's body
        # Workspace arrays that only the forward loop reads, shaped (T, batch) + shape.
        self.buffers: list[Buffer] = []

    def plan(self) -> None:
        """The passes over the forward step, without printing it."""
        self._passes()

    def write(self) -> None:
        graph, names, x1 = self.graph, self.names, self.x1
        self._passes()
        self._input_products()
        if any(graph[x1].symbol in e.free_symbols for e in self.step_exprs.values()):  # not only the hoisted terms
            self.body.append(f"        {names[graph[x1].symbol]} = _X[t]")
        # The previous states the step reads (the gate block reads its state from [x_t, h_(t-1), 1]).
        read = set().union(*(e.free_symbols for e in self.step_exprs.values()))
        read |= {v for v in self.stacks if not (self.block and self.block.vector == v)}
        self.body += [f"        {names[graph[name].symbol]} = {self.at(name, 't')}" for name in self.prev
                      if graph[name].symbol in read]
        self._stacked_products()
        for symbol in self.kept.values():  # each kept function's value at every step
            shape = self.em.printer.info(symbol)[1]
            self.before.append(f"    S{symbol.name} = _ws.empty('S{symbol.name}', ({self.T}, _B) + {shape!r})")
        self._step_lines()
        self.storage = storage_lines(self)

    def _passes(self) -> None:
        """The step as data (rnnsym.program.step), through the passes that take work out of the loop:
        time-parallel sums hoisted, weights on one vector stacked, functions the backward pass reads
        again kept. The rest of this class lowers the result."""
        graph, em, x = self.graph, self.em, self.graph[self.x1].symbol
        new_symbol = lambda name, info: em.symbol(name, like=info)  # noqa: E731
        step = StepForward(tuple(self.step), {n: graph[n].expr for n in self.step})
        # A fused step reads x_t and multiplies by a 1×1 weight itself: no pass over all steps before the loop.
        elementwise = (lambda terms: all(graph[m.args[0].name].shape == (1, 1) for m in terms.atoms(MatVec))) if self.native else None
        step = hoist_time_parallel(step, {x} | {graph[p].symbol for p in self.params}, x, new_symbol,
                                   {n: graph[n].shape for n in self.step}, elementwise)
        step = stack_weights(step, {graph[n].symbol for n in self.prev}, lambda m: graph[m.name].shape[0], new_symbol)
        nodes = {graph[n].symbol for n in (*self.step, *self.prev)}
        step = keep_functions(step, nodes, new_symbol, lambda f: _shape_of(graph, f))
        step = find_gate_block(step, x, {graph[p].symbol for p in self.params}, set(self.new),
                               lambda name: graph[name].shape)
        step = merge_input_products(step, x, lambda m: graph[m.name].shape[0], new_symbol)
        per_example = lambda value, name: em.printer.info(value) == (True, graph[name].shape)  # noqa: E731
        step = place_writes(step, per_example, IN_PLACE_FUNCTIONS)
        self.program, self.block = step, step.block
        self.joined = _joined_state(self, step)
        self.hoisted = [(P, value) for P, value, _ in step.hoisted]
        self.hoisted_shape = {P: shape for P, _, shape in step.hoisted}  # (T, batch) + this
        self.step_exprs, self.kept = step.exprs, step.kept
        self.stacks = {st.vector: (st.name, {m: f"{a}:{b}" for m, (a, b) in st.bounds.items()}) for st in step.stacks}
        self.slices = {MatVec(m, st.vector): Columns(st.product, *st.bounds[m]) for st in step.stacks for m in st.weights}
        for st in step.stacks:
            self.before.append(f"    {st.name} = numpy.concatenate([{', '.join(self.names[m] for m in st.weights)}])")

    def _input_products(self) -> None:
        """The hoisted sums before the loop. The input products of several weights (W_ii, W_if,
        W_ig, W_io) are one product; each sum is accumulated in place: into its own column block of
        that product when it starts with one (the biases are added there), else into a workspace
        array that its first term fills. A gate block gets its weights [W_x | W_h | b] instead."""
        graph, em, names, T, block = self.graph, self.em, self.names, self.T, self.block
        x, inputs = graph[self.x1].symbol, self.program.inputs
        x_slices = {}  # each input weight's columns of the merged product (rnnsym.program.step.merge_input_products)
        if inputs:
            x_slices = {MatVec(m, x): Columns(inputs.product, *inputs.bounds[m]) for m in inputs.weights}
            width = max(stop for _, stop in inputs.bounds.values())
            self.before.append(f"    _WX = numpy.concatenate([{', '.join(names[m] for m in inputs.weights)}])")
            self.before.append(f"    _Q = _mm(_X, _WX, out=_ws.empty('_Q', ({T}, _B, {width})))")
            self.buffers.append(Buffer("_Q", (width,), Phase.BEFORE_LOOP, Phase.FORWARD_LOOP))
        x_symbol = {x: em.symbol("_X", like=x)}
        blocks_used = [a for _, v in self.hoisted for a in sp.Add.make_args(v) if a in x_slices.values()]
        if block:  # one weight matrix [W_x | W_h | b] for the product with [x_t, h_(t-1), 1]
            biases = ", ".join(em.code(sp.Add(*g.biases)) if g.biases else f"numpy.zeros({graph[g.node].shape[0]}, dtype=x.dtype)"
                               for g in block.gates.values())
            x_block = ", ".join(names[g.x_weight] for g in block.gates.values())
            self.before.append(f"    _WC = numpy.concatenate([numpy.concatenate([{x_block}]), {self.stacks[block.vector][0]}, "
                               f"numpy.concatenate([{biases}])[:, None]], axis=1)")
        for symbol, value in self.hoisted:
            if block and symbol in block.hoisted:
                continue
            terms = sorted(sp.Add.make_args(value.xreplace(x_symbol)),
                           key=lambda a: (a not in x_slices.values(), not isinstance(a, MatVec)))
            first, P = terms[0], symbol.name
            if first in x_slices.values() and blocks_used.count(first) == 1:
                self.before.append(f"    {P} = {em.code(first)}")
            else:
                self.before.append(f"    {P} = _ws.empty({P!r}, ({T}, _B) + {self.hoisted_shape[symbol]!r})")
                self.buffers.append(Buffer(P, self.hoisted_shape[symbol], Phase.BEFORE_LOOP, Phase.FORWARD_LOOP))
                self.before.append(f"    {em.printer.product_into(first, P)}" if isinstance(first, MatVec)
                                   else f"    {P}[...] = {em.printer.operand(first, self.hoisted_shape[symbol])}")
            large = [a for a in terms[1:] if a.has(em.symbol("_X"), MatVec, *x_slices.values())]
            small = [a for a in terms[1:] if a not in large]  # parameters only: summed before the pass
            self.before += [f"    {P} += {em.printer.operand(term, self.hoisted_shape[symbol])}" for term in large]
            if small:
                self.before.append(f"    {P} += {em.code(sp.Add(*small))}")

    def _stacked_products(self) -> None:
        """Each step's product with a stacked matrix, into a workspace buffer (a gate block's:
        [x_t, h_(t-1), 1] @ [W_x | W_h | b]ᵀ straight into the gates)."""
        for vector, (stacked_name, rows) in self.stacks.items():
            M, width = f"_M{stacked_name[2:]}", sum(self.graph[m.name].shape[0] for m in rows)
            if self.block and self.block.vector == vector:
                self.body.append("        _mm(S_XH[t], _WC, out=S_G[t])")
                continue
            self.before.append(f"    {M}_out = _ws.empty('{M}', (_B, {width}))")
            self.body.append(f"        {M} = {self.em.printer.product_into(MatVec(self.em.symbol(stacked_name), vector), M + '_out')}")

    def with_kept(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every kept function replaced by its stored value, innermost first."""
        return with_kept(expr, self.kept)

    def _step_lines(self) -> None:
        """The step's nodes, each written into its storage as rnnsym.program.step.place_writes decided."""
        em, names, graph = self.em, self.names, self.graph
        fused = ForwardFusion(self, "fwd").fuse() if self.native else None
        if fused:  # one kernel for the whole elementwise step (rnnsym.numeric.loop_fusion)
            self.before += fused[0]
            later = " ".join(self.body + fused[1])
            # The step's loads that only its nodes read: the kernel reads those arrays itself.
            self.body = [line for line in self.body if " = " not in line or later.count(line.split(" = ")[0].strip()) > 1]
            self.body += fused[1]
            return
        for name in self.step:
            value, buffer, shape = self.step_exprs[name], self.at(name, 't'), graph[name].shape
            node = names[graph[name].symbol]
            for f, symbol in self.kept.items():
                if value.has(f):
                    self.body.append(f"        {symbol.name} = {em.printer.call_into(f, f'S{symbol.name}[t]')}")
                    value = value.xreplace({f: symbol})
            write = self.program.writes[name]
            if write is Write.IN_PLACE:
                self.body.append(f"        {node} = {em.printer.in_place(value.func, buffer)}")
            elif write is Write.BROADCAST:
                self.body += [f"        {buffer} = {em.printer.operand(value, shape)}", f"        {node} = {buffer}"]
            elif write is Write.ADD_IN_PLACE:
                a, b = (em.printer.operand(term, shape) for term in value.args[0].args)
                self.body += [f"        numpy.add({a}, {b}, out={buffer})",
                              f"        {node} = {em.printer.in_place(value.func, buffer)}"]
            elif write is Write.CALL_INTO:
                self.body.append(f"        {node} = {em.printer.call_into(value, buffer)}")
            elif write is Write.LAST_OP_INTO:
                self.body.append(f"        {node} = {em.printer.assign_into(value, buffer, shape)}")
            else:
                self.body.append(f"        {node} = {buffer} = {em.code(value)}")


def storage_lines(fwd) -> list[str]:
    """The arrays the forward loop writes, one per step node (a new state's has T + 1 rows, the
    first its initial value). A gate block's gates are column blocks of one (T, batch, width)
    array, and the state the stacked weights multiply a column block of [x_t, h_(t-1), 1]."""
    graph, T, block = fwd.graph, fwd.T, fwd.block
    lines = ["    _B = x.shape[0]", "    _ws = _workspace(_B, x.dtype)"]
    gates = {g.node: "{}:{}".format(*block.bounds[m]) for m, g in block.gates.items()} if block else {}
    if block:
        lines.append(f"    S_G = _ws.empty('S_G', ({T}, _B, {block.width}))")
    # The inputs time-major, copied once into a kept array: every later read (the input products,
    # the weight gradients, each step's x_t) is contiguous, where a strided view of x made each
    # product copy it again or read it element by element.
    x_shape, copy = graph[fwd.x1].shape, "    _time_major(_X, x, _native)" if fwd.native else "    _time_major(_X, x)"
    block_state = fwd.rec.name(fwd.prev[block.vector.name], 1) if block else fwd.joined
    if block_state and not block:  # [x_t, h_(t-1), 1] rows, x written into its columns (rnnsym.numeric.loop_backward)
        (I,), (H,) = x_shape, graph[block_state].shape
        lines += [f"    S_XH = _ws.empty('S_XH', ({T + 1}, _B, {I + H + 1}))", f"    _X = S_XH[:{T}, :, 0:{I}]", copy]
    else:
        lines += [f"    _X = _ws.empty('_X', ({T}, _B) + {x_shape!r})", copy]
    for name in fwd.step:
        buf, rows = fwd.buf(name), T + 1 if name in fwd.new else T
        if name in gates:
            lines.append(f"    {buf} = S_G[..., {gates[name]}]")
        elif name == block_state:
            I, H = block.columns if block else (x_shape[0], graph[name].shape[0])
            if block:
                lines += [f"    S_XH = _ws.empty('S_XH', ({T + 1}, _B, {I + H + 1}))", f"    S_XH[:{T}, :, 0:{I}] = _X"]
            lines += [f"    S_XH[..., {I + H}] = 1.0", f"    {buf} = S_XH[..., {I}:{I + H}]"]
        else:
            lines.append(f"    {buf} = _ws.empty({buf!r}, ({rows}, _B) + {graph[name].shape!r})")
    return lines + [f"    {fwd.at(name, '0')} = {float(graph[name].value)!r}" for name in fwd.prev]



def _joined_state(fwd, step: StepForward) -> str | None:
    """The new state to store beside x in rows [x_t, h_(t-1), 1] (``S_XH``), as a gate block's is,
    in a cell without one whose step multiplies both x and its one previous state by weights (an
    Elman's W_ih x_t and W_hh h_(t-1)): the backward pass then reduces δ against x, h and 1 in one
    product, [δW_ih | δW_hh | δb] (rnnsym.numeric.loop_backward), where three read δ each."""
    graph = fwd.graph
    if step.block or step.stacks or len(fwd.new) != 1 or len(fwd.prev) != 1 or len(graph[fwd.x1].shape) != 1:
        return None
    (prev,), (state,) = fwd.prev, fwd.new
    if len(graph[state].shape) != 1 or graph[state].shape[0] < 2 or fwd.rec.name(fwd.prev[prev], 1) != state:
        return None  # (a state of one value: its step is elementwise, swept, and reads it from its own array)
    products = set().union(*(e.atoms(MatVec) for e in (*step.exprs.values(), *(v for _, v, _ in step.hoisted))))
    multiplied = {m.args[1] for m in products}
    return state if {graph[fwd.x1].symbol, graph[prev].symbol} <= multiplied else None


def _shape_of(graph, expr) -> tuple:
    """The shape of an elementwise function of step nodes: that of its vector arguments."""
    shapes = {graph[s.name].shape for s in expr.free_symbols if s.name in graph}
    return max(shapes, key=len) if shapes else ()
