"""The loop form: a shared cell compiled once, run by a Python loop over time.

An unrolled cell repeats the same step T times, so the step is differentiated once (its local
Jacobians are taken from the nodes of step 1) and the generated code is a ``for t in range(T)``
loop around that one step, forward and backward; the source does not grow with T. States and
gates are kept in (T, batch, ...) arrays for the backward pass; a parameter's share is not
reduced inside the loop but stored per step and reduced once afterwards with one matrix product
over all steps and examples (``Σ_t δ_tᵀ h_(t−1)`` as a single BLAS call). Those arrays come from a
workspace (``workspace.py``) that keeps them between calls. A cell of the LSTM's form gets a gate
block (``rnnsym.program.step.find_gate_block``): its gates are one array and each step is one product with
``[x_t, h_(t−1), 1]``. A step's elementwise work runs as fused C kernels where a compiler is at hand
(``loop_fusion.py``, ``native.py``), else as NumPy.
"""
from __future__ import annotations


import sympy as sp

from . import native
from .lines import LineEmitter, time_loop
from .loop_backward import LoopBackward
from .loop_forward import LoopForward
from .compiled import CompiledNetwork
from .printer import RUNTIME, stable




def loop_supported(network) -> bool:
    rec = network.recurrence
    return rec is not None and not rec.bidirectional


def compile_loop(network, truncate: int | None = None) -> CompiledNetwork:
    """The loop form, its step's elementwise work in fused C kernels where they can be built
    (rnnsym.numeric.native), else NumPy alone."""
    writer = _LoopWriter(network, truncate, native=native.enabled())
    source = writer.source()
    library = native.load(writer.kernels)
    if writer.kernels and library is None:  # no compiler here: the same program in NumPy
        writer = _LoopWriter(network, truncate, native=False)
        source = writer.source()
    compiled = CompiledNetwork(network, source, {**RUNTIME, **LOOP_RUNTIME, "_native": library},
                               truncate=truncate, form="loop")
    compiled.gradient_keys = writer.gradient_keys  # gradients are returned by name
    compiled.program = writer.back.step_program  # the adjoint program of one step, lowered into the loop
    return compiled


class _LoopWriter:
    """Writes the loop form of one network, in three parts: the forward pass (storage, the work that
    does not depend on the recurrence before the loop, one step in the loop), the readout and loss,
    and the backward pass (the step's adjoints in a loop from the last step back, then every
    parameter's gradient reduced over all steps at once)."""

    def __init__(self, network, truncate: int | None, printer_class=None, native: bool = False):
        self.native, self.kernels = native, []  # fused step kernels wanted (rnnsym.numeric.loop_fusion), and made
        self.network, self.graph, self.rec, self.T = network, network.graph, network.recurrence, network.steps
        self.em = LineEmitter(self.graph, *([printer_class] if printer_class else []))
        self.names = self.em.names
        self.params = [n.name for n in self.graph.of_kind("param")]
        self.k = self.T if truncate is None else min(truncate, self.T)
        self.per_step = network.options.get("outputs") == "all"
        # Truncated with a loss at every step: each L_s is carried back through its own window of
        # k steps (rnnsym.engine.truncation), a loop over the losses around the loop over steps.
        self.windowed = self.per_step and self.k < self.T
        # The template: the nodes of step 1, the previous states (step 0) and the input x1.
        graph, rec = self.graph, self.rec
        self.step = [n for n, node in graph.nodes.items() if node.kind == "hidden" and node.step == 1]
        self.prev = {rec.name(s, 0): s for s in rec.states}
        for name in self.prev:  # the initial states' nodes stand for the previous step's arrays here
            self.em.printer.declare(graph[name].symbol, (True, graph[name].shape))
        self.new = {rec.name(s, 1): s for s in rec.states}
        self.x1 = rec.name(rec.input, 1)
        self.col = "" if graph[self.x1].shape == () else ", :"
        # The forward pass: storage, work before the loop, the loop's body, what follows it.
        self.storage: list[str] = []
        self.before: list[str] = []
        self.body: list[str] = []
        self.after: list[str] = []

    # ---- names of stored values ------------------------------------------------------------------------
    def buf(self, name: str) -> str:
        """The per-step storage of a template node."""
        return f"S_{self.names[self.graph[name].symbol]}"

    def stacked(self, name: str) -> str:
        """All steps' values of a template node, as a (T, batch, ...) array."""
        if name == self.x1:
            return "_X"
        if name in self.prev:
            return f"{self.buf(self.rec.name(self.prev[name], 1))}[:-1]"
        if name in self.new:
            return f"{self.buf(name)}[1:]"
        return self.buf(name)

    def at(self, name: str, t: str) -> str:
        """A template node's value at step t (a name, or a number: then the index is folded)."""
        if name in self.prev:
            return f"{self.buf(self.rec.name(self.prev[name], 1))}[{t}]"
        if name in self.new:
            return f"{self.buf(name)}[{int(t) + 1 if t.isdigit() else f'{t} + 1'}]"
        return f"{self.buf(name)}[{t}]"

    def source(self) -> str:
        self._forward()
        loss_lines = self._readout_and_loss()
        back = self.back = LoopBackward(self)
        backward = back.lines()
        gradients, self.gradient_keys = back.gradients()
        names, T = self.names, self.T
        args = ", ".join(names[self.graph[p].symbol] for p in self.params)
        forward = [*self.storage, *self.before, *time_loop(0, T, 1, self.body), *self.after]
        out = names[self.out_node.symbol]
        header = ["# Generated by rnnsym: one step of the cell, differentiated once, run in a loop over time.",
                  "# Every name below is generated; n_<node>1 stands for the current step's node."]
        return "\n".join([
            *header,
            f"def forward(x, {args}):", *forward,
            f"    return (numpy.moveaxis({out}, 0, 1),)" if self.per_step else f"    return ({out},)",
            "",
            f"def loss(x, y, {args}):", *forward, *loss_lines, "    return numpy.mean(_per_example)",
            "",
            f"def value_and_grad(x, y, {args}):", *forward, *loss_lines, *backward, *gradients,
            f"    return numpy.mean(_per_example), {{{', '.join(f'{k!r}: {k}' for k in self.gradient_keys.values())}}}",
            "",
        ])

    # ---- forward ------------------------------------------------------------------------------------------
    def _forward(self) -> None:
        """The forward pass (rnnsym.numeric.loop_forward), and what the backward pass needs of it."""
        fwd = LoopForward(self)
        fwd.write()
        self.storage, self.before, self.body = fwd.storage, fwd.before, fwd.body
        self._take(fwd)

    def plan_forward(self) -> None:
        """Only the forward step's passes, for a lowering of its own (rnnsym.backends.scan)."""
        fwd = LoopForward(self)
        fwd.plan()
        self._take(fwd)

    def _take(self, fwd: LoopForward) -> None:
        self.kept, self.stacks, self.block, self.with_kept = fwd.kept, fwd.stacks, fwd.block, fwd.with_kept
        self.joined = fwd.joined  # a state stored beside x, in S_XH, without a gate block
        self.forward_program, self.forward_buffers = fwd.program, fwd.buffers

    # ---- readout and loss ---------------------------------------------------------------------------------
    def _readout_and_loss(self) -> list[str]:
        """The readout goes after the forward loop; returns the loss's lines."""
        graph, em, names, rec, T = self.graph, self.em, self.names, self.rec, self.T
        xp = em.printer._module
        if self.per_step:
            out, term, target = "y1", graph["L1"], "Y1"
            views = {rec.name(s, 1): self.stacked(rec.name(s, 1)) for s in rec.states}
            self.after += [f"    {names[graph[n].symbol]} = {v}" for n, v in views.items()]
            tcol = "" if graph[target].shape == () else ", :"
            targets = [f"    {names[graph[target].symbol]} = {xp}.moveaxis(y, 1, 0)" if tcol else
                       f"    {names[graph[target].symbol]} = y.T"]
        else:
            out, term, target = "y", graph.loss, "Y"
            last = {rec.name(s, T): rec.name(s, 1) for s in rec.states}
            self.after += [f"    {names[graph[n].symbol]} = {self.at(t1, str(T - 1))}" for n, t1 in last.items()]
            targets = [f"    {names[graph[target].symbol]} = y"]
        self.out, self.term = out, term
        out_node = self.out_node = graph[out]
        logit = out_node.expr
        if out_node.expr.is_Function and len(out_node.expr.args) == 1:
            z = em.symbol("_z_out", like=out_node.expr.args[0])  # the loss reads the pre-activation again (log(sigmoid(z)))
            self.after.append(f"    {z.name} = {em.code(out_node.expr.args[0])}")
            logit = out_node.expr.func(z)
        self.after.append(f"    {names[out_node.symbol]} = {em.code(logit)}")
        # What the readout read, as arrays that the backward loop does not overwrite.
        self.readout_view = ({rec.name(s, 1): self.stacked(rec.name(s, 1)) for s in rec.states} if self.per_step else
                             {rec.name(s, T): self.at(rec.name(s, 1), str(T - 1)) for s in rec.states})
        reduce_axis = "" if out_node.shape == () else f"{xp}.{'mean' if term.reduce == 'mean' else 'sum'}({{}}, axis=-1)"
        loss_expr = sp.factor_terms(stable(term.expr.xreplace({out_node.symbol: logit})))
        loss_lines = list(targets) + em.lines([("_loss", loss_expr, reduce_axis or "{}")])
        if self.per_step:
            over_steps = f"{xp}.{self.network.options.get('step_reduction', 'mean')}"
            loss_lines.append(f"    _per_example = {over_steps}(_loss, axis=0)")
        else:
            loss_lines.append("    _per_example = _loss")
        return loss_lines

# ---- helpers the generated code calls -----------------------------------------------------------------
def _outer(d, v):
    """Σ over steps and examples of d ⊗ v: one matrix product (rows of d, columns of v).

    A strided view (the time-major input) that is large is contracted in place with einsum rather
    than copied; a small one is copied so the product can go to BLAS.
    """
    import numpy

    n, m = d.shape[-1], v.shape[-1]
    contiguous = d.flags.c_contiguous and v.flags.c_contiguous
    if n == m == 1 and contiguous:  # a 1×1 weight: one dot product (BLAS gemm is slow for this shape)
        return numpy.dot(d.reshape(-1), v.reshape(-1)).reshape(1, 1)
    if not contiguous and v.nbytes > 16 * 2**20 and n * m <= 64:
        letters = "abcdefgh"[: d.ndim - 1]
        return numpy.einsum(f"{letters}i,{letters}j->ij", d, v)
    if n > m:  # OpenBLAS makes a wide result faster than a tall one (LSTM 128's [δW_x | δW_h | δb]: 18 ms, not 23)
        return (v.reshape(-1, m).T @ d.reshape(-1, n)).T
    return d.reshape(-1, n).T @ v.reshape(-1, m)


def _dot(d, v):
    """Σ over steps and examples of d·v; einsum reads strided views without copying them."""
    import numpy

    v = numpy.broadcast_to(v[(...,) + (None,) * (d.ndim - v.ndim)], d.shape)  # a scalar leaf of a vector share
    letters = "abcdefgh"[:d.ndim]
    return numpy.einsum(f"{letters},{letters}->", d, v)


def _total(d, ndim):
    """Sum over every axis but the parameter's own (ndim trailing axes)."""
    import numpy

    return numpy.sum(d) if ndim == 0 else numpy.sum(d.reshape(-1, *d.shape[-ndim:]), axis=0)


def _time_major(out, x, library=None):
    """``out[...] = moveaxis(x, 1, 0)``, x checked finite on the way: by the kernel library's C
    (rnnsym.numeric.time_major) where there is one, else NumPy in blocks of rows on the cores at
    once. NumPy's one strided copy of a large batch-major x misses the cache at every element (the
    scalar Elman's 80 MB x: 63 ms, where a contiguous copy takes 12); a block of rows is transposed
    within the cache, and NumPy lets go of the GIL for each block's copy."""
    import numpy

    from ..errors import RnnsymError
    from .native import for_each_block, row_blocks

    blocks = row_blocks(x.shape[0], out.size // max(x.shape[0], 1))
    finite = library.time_major(out, x, blocks) if library is not None else None
    if finite is None:
        checked = [True] * len(blocks)

        def copy(i: int) -> None:
            b0, b1 = blocks[i]
            for r in range(b0, b1, 256):
                rows = x[r:min(r + 256, b1)]
                out[:, r:min(r + 256, b1)] = rows.swapaxes(0, 1)
                checked[i] = checked[i] and bool(numpy.isfinite(rows).all())
        for_each_block(copy, len(blocks))
        finite = all(checked)
    if not finite:
        raise RnnsymError("x contains NaN or infinite values")


LOOP_RUNTIME = {"_outer": _outer, "_dot": _dot, "_total": _total, "_time_major": _time_major}
