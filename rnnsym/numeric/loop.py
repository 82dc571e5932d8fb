"""The loop form: a shared cell compiled once, run by a Python loop over time.

An unrolled cell repeats the same step T times, so the step is differentiated once (its local
Jacobians are taken from the nodes of step 1) and the generated code is a ``for t in range(T)``
loop around that one step, forward and backward; the source does not grow with T. States and
gates are kept in (T, batch, ...) arrays for the backward pass; a parameter's share is not
reduced inside the loop but stored per step and reduced once afterwards with one matrix product
over all steps and examples (``Σ_t δ_tᵀ h_(t−1)`` as a single BLAS call). Those arrays come from a
workspace (``workspace.py``) that keeps them between calls. A cell of the LSTM's form gets a gate
block (``_gate_block``): its gates are one array and each step is one product with
``[x_t, h_(t−1), 1]``.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import sympy as sp

from ..engine.local import local_jacobian
from ..engine.rules import TermKind, elementwise, kind_of, share
from ..functions import DERIVATIVE_RULES, MatVec, sigmoid
from ..program.build import nodes_needing_adjoints
from ..program.passes import fused_factor
from .lines import LineEmitter
from .compiled import CompiledNetwork
from .printer import RUNTIME, stable

IN2 = "        "  # the loop body's indent


def loop_supported(network) -> bool:
    rec = network.recurrence
    return rec is not None and not rec.bidirectional


def compile_loop(network, truncate: int | None = None) -> CompiledNetwork:
    source = _LoopWriter(network, truncate).source()
    return CompiledNetwork(network, source, {**RUNTIME, **LOOP_RUNTIME}, truncate=truncate, form="loop")


class _LoopWriter:
    """Writes the loop form of one network, in three parts: the forward pass (storage, the work that
    does not depend on the recurrence before the loop, one step in the loop), the readout and loss,
    and the backward pass (the step's adjoints in a loop from the last step back, then every
    parameter's gradient reduced over all steps at once)."""

    def __init__(self, network, truncate: int | None):
        self.network, self.graph, self.rec, self.T = network, network.graph, network.recurrence, network.steps
        self.em = LineEmitter(self.graph)
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
        """A template node's value at step t."""
        if name in self.prev:
            return f"{self.buf(self.rec.name(self.prev[name], 1))}[{t}]"
        if name in self.new:
            return f"{self.buf(name)}[{t} + 1]"
        return f"{self.buf(name)}[{t}]"

    def source(self) -> str:
        self._forward()
        loss_lines = self._readout_and_loss()
        backward = self._backward()
        names, T = self.names, self.T
        args = ", ".join(names[self.graph[p].symbol] for p in self.params)
        forward = [*self.storage, *self.before, f"    for t in range({T}):", *self.body, *self.after]
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
            f"def value_and_grad(x, y, {args}):", *forward, *loss_lines, *backward,
            f"    return numpy.mean(_per_example), ({', '.join(self._gradients())},)",
            "",
        ])

    # ---- forward ------------------------------------------------------------------------------------------
    def _forward(self) -> None:
        graph, names, T, x1 = self.graph, self.names, self.T, self.x1
        # Time-major view of the inputs (no copy: products that need it contiguous make their own).
        # Large arrays come from the workspace (rnnsym.numeric.workspace): the same memory every call.
        self.storage += ["    _B = x.shape[0]", "    _ws = _workspace(_B)", "    _X = numpy.moveaxis(x, 1, 0)"]
        for name in self.step:
            extra = "1" if name in self.new else "0"
            self.storage.append(f"    {self.buf(name)} = _ws.empty({self.buf(name)!r}, ({T} + {extra}, _B) + {graph[name].shape!r})")
        for name in self.prev:
            self.storage.append(f"    {self.at(name, '0')} = {float(graph[name].value)!r}")
        self.body.append(f"        {names[graph[x1].symbol]} = x[:, t{self.col}]")
        for name in self.prev:
            self.body.append(f"        {names[graph[name].symbol]} = {self.at(name, 't')}")
        self._hoist()
        self._stack_weights()
        self.block = _gate_block(graph, self.rec, self.step, self.step_exprs, self.stacks, self.slices, dict(self.hoisted),
                                 graph[x1].symbol, self.params)
        self._input_products()
        if not any(graph[x1].symbol in e.free_symbols for e in self.step_exprs.values()):
            self.body.remove(f"        {names[graph[x1].symbol]} = x[:, t{self.col}]")  # only the hoisted terms read it
        self._stacked_products()
        self._keep_functions()
        self._step_lines()
        if self.block:
            self._block_storage()

    def _hoist(self) -> None:
        """Terms that read only the input and parameters (W_ih·x_t + b) do not depend on the
        recurrence: they are computed for all steps at once, one large matrix product, before the loop."""
        graph, em, x = self.graph, self.em, self.graph[self.x1].symbol
        self.hoisted: list[tuple[sp.Symbol, sp.Expr]] = []
        self.hoisted_shape: dict[sp.Symbol, tuple] = {}  # (T, batch) + this: the node whose argument it is
        time_parallel = {x} | {graph[p].symbol for p in self.params}

        def hoist(expr: sp.Expr, shape: tuple) -> sp.Expr:
            if expr.is_Add:
                free = [a for a in expr.args if a.free_symbols <= time_parallel]
                if any(x in a.free_symbols for a in free) and len(free) > 1 or (
                        free and any(isinstance(a, MatVec) for a in free)):
                    symbol = em.symbol(f"_P{len(self.hoisted)}", like=(True, shape))  # kept in the node's shape
                    self.hoisted.append((symbol, sp.Add(*free)))
                    self.hoisted_shape[symbol] = shape
                    rest = [hoist(a, shape) for a in expr.args if a not in free]
                    return sp.Add(symbol, *rest, evaluate=False)
            if expr.args and not isinstance(expr, MatVec):
                return expr.func(*[hoist(a, shape) for a in expr.args], evaluate=False)
            return expr

        self.step_exprs = {name: hoist(graph[name].expr, graph[name].shape) for name in self.step}
        self.per_t = {symbol: em.symbol(f"{self.names[symbol]}[t]", like=(True, self.hoisted_shape[symbol]))
                      for symbol, _ in self.hoisted}

    def _stack_weights(self) -> None:
        """Weights that multiply the same vector in one step (an LSTM's W_hi, W_hf, W_hg, W_ho all
        multiply h_(t-1)) are stacked into one matrix: one BLAS call per step instead of four,
        forward and backward, as PyTorch's stacked weight_hh does."""
        graph, em = self.graph, self.em
        groups: dict[sp.Symbol, list[sp.Symbol]] = {}
        for e in self.step_exprs.values():
            for product in sorted(e.atoms(MatVec), key=sp.default_sort_key):
                matrix, vector = product.args
                if matrix not in groups.setdefault(vector, []):
                    groups[vector].append(matrix)
        self.stacks: dict[sp.Symbol, tuple[str, dict]] = {}  # vector -> (stacked name, {matrix: slice})
        for vector, matrices in groups.items():
            if len(matrices) < 2 or vector.name not in self.prev:  # a node of this step is not known yet
                continue
            stacked_name = f"_W{len(self.stacks)}"
            rows, start = {}, 0
            for m in matrices:
                n = graph[m.name].shape[0]
                rows[m], start = f"{start}:{start + n}", start + n
            self.stacks[vector] = (stacked_name, rows)
            self.before.append(f"    {stacked_name} = numpy.concatenate([{', '.join(self.names[m] for m in matrices)}])")
        self.slices = {}
        for vector, (stacked_name, rows) in self.stacks.items():
            for m, rng in rows.items():
                symbol = em.symbol(f"_M{stacked_name[2:]}[..., {rng}]", like=MatVec(m, vector))
                self.slices[MatVec(m, vector)] = symbol
        self.step_exprs = {name: e.xreplace(self.slices) for name, e in self.step_exprs.items()}

    def _input_products(self) -> None:
        """The hoisted sums before the loop. The input products of several weights (W_ii, W_if,
        W_ig, W_io) are one product; each sum is accumulated in place: into its own column block of
        that product when it starts with one (the biases are added there), else into a workspace
        array that its first term fills. A gate block gets its weights [W_x | W_h | b] instead."""
        graph, em, names, T, block = self.graph, self.em, self.names, self.T, self.block
        x = graph[self.x1].symbol
        x_weights = []
        for P, value in self.hoisted:
            if block and P in block.hoisted:
                continue
            for product in sorted(value.atoms(MatVec), key=sp.default_sort_key):
                if product.args[1] == x and product.args[0] not in x_weights:
                    x_weights.append(product.args[0])
        x_slices = {}
        self.dead: list[tuple[str, tuple]] = []  # workspace arrays only the forward loop reads: (name, shape)
        if len(x_weights) > 1:
            start = 0
            for m in x_weights:
                n = graph[m.name].shape[0]
                symbol = em.symbol(f"_Q[..., {start}:{start + n}]", like=MatVec(m, x))
                x_slices[MatVec(m, x)] = symbol
                start += n
            self.before.append(f"    _WX = numpy.concatenate([{', '.join(names[m] for m in x_weights)}])")
            self.before.append(f"    _Q = _mm(_X, _WX, out=_ws.empty('_Q', ({T}, _B, {start})))")
            self.dead.append(("_Q", (start,)))
        x_symbol = {x: em.symbol("_X", like=x)}
        blocks_used = [a for _, v in self.hoisted for a in sp.Add.make_args(v.xreplace(x_slices)) if a in x_slices.values()]
        if block:  # one weight matrix [W_x | W_h | b] for the product with [x_t, h_(t-1), 1]
            biases = ", ".join(em.code(sp.Add(*g.biases)) if g.biases else f"numpy.zeros({graph[g.node].shape[0]})"
                               for g in block.gates.values())
            x_block = ", ".join(names[g.x_weight] for g in block.gates.values())
            self.before.append(f"    _WC = numpy.concatenate([numpy.concatenate([{x_block}]), {self.stacks[block.vector][0]}, "
                               f"numpy.concatenate([{biases}])[:, None]], axis=1)")
        for symbol, value in self.hoisted:
            if block and symbol in block.hoisted:
                continue
            terms = sorted(sp.Add.make_args(value.xreplace(x_slices).xreplace(x_symbol)),
                           key=lambda a: (a not in x_slices.values(), not isinstance(a, MatVec)))
            first, P = terms[0], symbol.name
            if first in x_slices.values() and blocks_used.count(first) == 1:
                self.before.append(f"    {P} = {em.code(first)}")
            else:
                self.before.append(f"    {P} = _ws.empty({P!r}, ({T}, _B) + {self.hoisted_shape[symbol]!r})")
                self.dead.append((P, self.hoisted_shape[symbol]))
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

    def _keep_functions(self) -> None:
        """A function of a node that is not itself a node (tanh(c) in an LSTM's h = o·tanh(c)) is
        kept from the forward pass, since the backward pass needs it again."""
        graph, em, nodes = self.graph, self.em, {self.graph[n].symbol for n in (*self.step, *self.prev)}
        # Inner functions first, and each kept function written in the kept values inside it
        # (σ(σ(h)) is kept as σ(_F0) once σ(h) is _F0): replacing in this order, one at a time,
        # leaves no kept function behind in a node's expression or in a local factor.
        self.kept: dict[sp.Expr, sp.Symbol] = {}
        for name in self.step:
            e = self.step_exprs[name]
            for f in sorted(e.atoms(sp.Function), key=lambda f: (sp.count_ops(f), sp.default_sort_key(f))):
                if f != e and not isinstance(f, MatVec) and f.func in DERIVATIVE_RULES and f.free_symbols <= nodes:
                    key = f.func(*[self._with_kept(a) for a in f.args])
                    if key not in self.kept:
                        shape = _shape_of(graph, f)  # kept per example, as its buffer is (tanh(1/2) too)
                        symbol = self.kept[key] = em.symbol(f"_F{len(self.kept)}", like=(True, shape))
                        self.before.append(f"    S{symbol.name} = _ws.empty('S{symbol.name}', ({self.T}, _B) + {shape!r})")

    def _with_kept(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every kept function replaced by its stored value, innermost first."""
        for f, symbol in self.kept.items():
            expr = expr.xreplace({f: symbol})
        return expr

    def _step_lines(self) -> None:
        """The step's nodes, each written into its storage."""
        em, names, graph = self.em, self.names, self.graph
        gate_nodes = {g.node for g in self.block.gates.values()} if self.block else set()
        for name in self.step:
            value = self.step_exprs[name]
            if name in gate_nodes:  # its argument is already in the gate block: the activation in place
                activation = em.code(value).split("(", 1)[0]
                self.body.append(f"        {names[graph[name].symbol]} = {activation}_({self.at(name, 't')})")
                continue
            for f, symbol in self.kept.items():
                if value.has(f):
                    self.body.append(f"        {symbol.name} = {em.code(f)[:-1]}, out=S{symbol.name}[t])")
                    value = value.xreplace({f: symbol})
            value = value.xreplace(self.per_t)
            code = em.code(value)
            shape = graph[name].shape
            if em.printer.info(value) != (True, shape):  # the same for every example, or a scalar for a vector
                self.body.append(f"        {self.at(name, 't')} = {em.printer.operand(value, shape)}")
                self.body.append(f"        {names[graph[name].symbol]} = {self.at(name, 't')}")
            elif value.func in (sigmoid, sp.tanh):  # one call (not, say, σ(a) + tanh(b))
                # Written straight into the step's buffer, its argument too when it is a sum of two:
                # no temporary arrays.
                buffer = self.at(name, 't')
                arg = value.args[0]
                if arg.is_Add and len(arg.args) == 2:  # then the activation runs in place
                    self.body.append(f"        numpy.add({em.printer.operand(arg.args[0], shape)}, "
                                     f"{em.printer.operand(arg.args[1], shape)}, out={buffer})")
                    self.body.append(f"        {names[graph[name].symbol]} = {code.split('(', 1)[0]}_({buffer})")
                else:
                    self.body.append(f"        {names[graph[name].symbol]} = {code[:-1]}, out={buffer})")
            else:
                self.body.append(f"        {names[graph[name].symbol]} = {self.at(name, 't')} = {code}")

    def _block_storage(self) -> None:
        """The gates' storage: column blocks of one (T, batch, width) array. The state the stacked
        weights multiply is a column block of [x_t, h_(t-1), 1], kept for all steps."""
        block, T, graph = self.block, self.T, self.graph
        views = []
        for m, gate in block.gates.items():
            self.storage.remove(f"    {self.buf(gate.node)} = _ws.empty({self.buf(gate.node)!r}, ({T} + 0, _B) + {graph[gate.node].shape!r})")
            views.append(f"    {self.buf(gate.node)} = S_G[..., {block.rows[m]}]")
        self.storage[2:2] = [f"    S_G = _ws.empty('S_G', ({T}, _B, {block.width}))", *views]
        state = self.buf(self.rec.name(self.prev[block.vector.name], 1))
        I, H = block.columns
        at_state = self.storage.index(f"    {state} = _ws.empty({state!r}, ({T} + 1, _B) + ({H},))")
        self.storage[at_state:at_state + 1] = [
            f"    S_XH = _ws.empty('S_XH', ({T} + 1, _B, {I + H + 1}))",
            f"    S_XH[:{T}, :, 0:{I}] = _X",
            f"    S_XH[..., {I + H}] = 1.0",
            f"    {state} = S_XH[..., {I}:{I + H}]"]

    # ---- readout and loss ---------------------------------------------------------------------------------
    def _readout_and_loss(self) -> list[str]:
        """The readout goes after the forward loop; returns the loss's lines."""
        graph, em, names, rec, T = self.graph, self.em, self.names, self.rec, self.T
        if self.per_step:
            out, term, target = "y1", graph["L1"], "Y1"
            views = {rec.name(s, 1): self.stacked(rec.name(s, 1)) for s in rec.states}
            self.after += [f"    {names[graph[n].symbol]} = {v}" for n, v in views.items()]
            tcol = "" if graph[target].shape == () else ", :"
            targets = [f"    {names[graph[target].symbol]} = numpy.moveaxis(y, 1, 0)" if tcol else
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
        reduce_axis = "" if out_node.shape == () else ("numpy.mean({}, axis=-1)" if term.reduce == "mean" else "numpy.sum({}, axis=-1)")
        loss_expr = sp.factor_terms(stable(term.expr.xreplace({out_node.symbol: logit})))
        loss_lines = list(targets) + em.lines([("_loss", loss_expr, reduce_axis or "{}")])
        if self.per_step:
            over_steps = "numpy.mean" if self.network.options.get("step_reduction", "mean") == "mean" else "numpy.sum"
            loss_lines.append(f"    _per_example = {over_steps}(_loss, axis=0)")
        else:
            loss_lines.append("    _per_example = _loss")
        return loss_lines

    # ---- backward -----------------------------------------------------------------------------------------
    def _backward(self) -> list[str]:
        """The seeds at the output, the loop from the last step back (truncated BPTT stops after k
        steps), then the reductions of the stored parameter shares."""
        graph, em, rec, T = self.graph, self.em, self.rec, self.T
        self.needs = self._template_needs()
        self.grads: dict[str, list[str]] = {p: [] for p in self.params}
        self.counter = itertools.count()
        self.deferred: list = []  # (parameter, share name, Jacobian term, leaf): reduced after the loop
        self.owner: dict[str, str] = {}  # deferred share -> the step node it flows out of
        inv_b = em.symbol("_inv_batch")
        backward = [f"    {inv_b.name} = 1.0 / _B"]
        seed_lines: list = []
        state_of = {rec.name(s, t): s for s in rec.states for t in (1, T)}
        carry: dict[str, list[str]] = {s: [] for s in rec.states}  # adjoints flowing into the loop
        loss = graph.loss  # the loss term's weight in it: 1/T for a mean over steps
        weight = sp.S.One if self.term.name == loss.name else loss.expr.diff(self.term.symbol)
        for parent in graph.parents(self.out):
            if parent not in self.needs:
                continue
            for t_ in self.network.jacobian(self.out, parent).terms:
                kind = kind_of(t_, graph[parent].shape, self.out_node.shape)
                term, factor = fused_factor(self.network, t_, self.out, self.term.name)
                seed = inv_b * weight
                if factor * seed == 0:
                    continue
                if graph[parent].kind == "param":
                    self._param_share(parent, term, kind, factor * seed, seed_lines, None)
                else:  # the output reads the first state: its adjoint enters the loop
                    name = f"_s{next(self.counter)}"
                    seed_lines.append((name, elementwise(share(term, kind, seed, factor)), "{}"))
                    carry[state_of[parent]].append(name)
        backward += em.lines(seed_lines)
        # Named after the state's node (its generated name), never after the user's name alone.
        state_id = {s: self.names[graph[rec.name(s, 1)].symbol] for s in rec.states}
        g_carry = {s: f"_g_{state_id[s]}" for s in rec.states}
        self.seed_of = {s: f"_seed_{state_id[s]}" for s in rec.states}
        for s in rec.states:
            shape = graph[rec.name(s, 1)].shape
            if self.per_step:
                backward.append(f"    {self.seed_of[s]} = {' + '.join(carry[s])}" if carry[s] else f"    {self.seed_of[s]} = None")
                backward.append(f"    {g_carry[s]} = numpy.zeros((_B,) + {shape!r})")
            else:
                backward.append(f"    {g_carry[s]} = {' + '.join(carry[s])}" if carry[s]
                                else f"    {g_carry[s]} = numpy.zeros((_B,) + {shape!r})")
        loop, next_carry, joined = self._adjoint_step(carry, g_carry)
        loop, allocations = self._store_shares(loop, next_carry, joined)
        zeros = {s: f"numpy.zeros((_B,) + {graph[rec.name(s, 1)].shape!r})" for s in rec.states}
        for s in rec.states:
            loop.append(f"        {g_carry[s]} = {' + '.join(next_carry[s]) if next_carry[s] else zeros[s]}")
        if self.windowed:  # for each loss L_s: its seed, then back k steps from step s
            header = [f"    for _s in range({T - 1}, -1, -1):"]
            header += [f"        {g_carry[s]} = {self.seed_of[s]}[_s]" if carry[s] else f"        {g_carry[s]} = {zeros[s]}"
                       for s in rec.states]
            loop = [*header, f"        for t in range(_s, max(_s - {self.k}, -1), -1):", *("    " + line for line in loop)]
        else:
            loop = [f"    for t in range({T - 1}, {T - 1 - self.k}, -1):", *loop]
        backward += self._allocate_shares(allocations)
        return backward + loop + self._reductions()

    def _template_needs(self) -> set[str]:
        """The nodes that need an adjoint, with every template node of the step that needs one at
        *some* step. Step 1 alone is not enough: there the previous states are the constant initial
        ones, so a parameter-free gate g = tanh(h) looks constant at step 1 and only at step 2 lies
        between a parameter and the loss."""
        graph = self.graph
        needs = nodes_needing_adjoints(graph)  # a state that never reaches the loss gets no adjoint
        # (a zero one times an infinite factor would be NaN)
        bases = {graph[n].base for n in needs if graph[n].base is not None}
        return needs | {n for n in self.step if graph[n].base in bases}

    def _param_share(self, p: str, term, kind: TermKind, factor, lines: list, t: str | None) -> None:
        """A parameter's share (``factor``: the carried ``diag(f)·δ``): inside the loop it is stored per
        step and reduced after the loop, over all steps at once (a weight's: one outer product)."""
        shape = self.graph[p].shape
        if t is None:  # outside the loop: the readout's parameters, from (batch, ...) or (T, batch, ...) arrays
            name = f"_r{next(self.counter)}"
            lines.append((name, factor, "{}"))
            if kind is TermKind.WEIGHT:
                self.grads[p].append(f"_outer({name}, {self.readout_view[term.outer.name]})")
            else:
                self.grads[p].append(f"_total({name}, {len(shape)})")
            return
        leaf = None
        if kind is not TermKind.WEIGHT and shape == ():
            # A scalar weight times a stored value (w·x, u·h): keep the common factor, dot it later.
            for arg in sp.Mul.make_args(factor):
                if isinstance(arg, sp.Symbol) and arg.name in (self.x1, *self.prev, *self.step):
                    leaf, factor = arg.name, factor / arg
                    break
        name = f"_d{next(self.counter)}"
        lines.append((name, factor, "{}"))
        self.deferred.append((p, name, term, leaf))
        self.owner[name] = self.current

    def _adjoint_step(self, carry: dict, g_carry: dict):
        """One step's adjoints, from its last node back to the previous states."""
        graph, em, names, rec, T = self.graph, self.em, self.names, self.rec, self.T
        loop = [f"        {names[graph[self.x1].symbol]} = x[:, t{self.col}]"]
        for name in (*self.prev, *self.step):
            loop.append(f"        {names[graph[name].symbol]} = {self.at(name, 't')}")
        for symbol in self.kept.values():
            loop.append(f"        {symbol.name} = S{symbol.name}[t]")
        within: dict[str, list[str]] = {n: [] for n in self.step}
        for s in rec.states:
            if rec.name(s, 1) in self.needs:  # a state that never reaches the loss carries nothing
                within[rec.name(s, 1)].append(g_carry[s] + (f" + {self.seed_of[s]}[t]" if self.per_step and carry[s] and not self.windowed else ""))
        next_carry: dict[str, list[str]] = {s: [] for s in rec.states}
        joined: dict[sp.Symbol, dict] = {}  # vector -> {stacked matrix: its share of the carried adjoint}
        for name in reversed(self.step):
            if not within[name]:
                continue
            g = em.symbol(f"g_{names[graph[name].symbol]}", like=graph[name].symbol)
            self.current = name
            loop.append(f"        {g.name} = {' + '.join(within[name])}")
            targets = []
            for parent in graph.parents(name):
                if parent not in self.needs and parent not in self.prev:
                    continue
                pnode = graph[parent]
                for t_ in local_jacobian(graph, name, parent).terms:
                    if t_.factor == 0:  # a step's derivative (Heaviside, sign): nothing flows back
                        continue
                    kind = kind_of(t_, pnode.shape, graph[name].shape)
                    factor = g * self._with_kept(t_.factor)
                    if pnode.kind == "param":
                        self._param_share(parent, t_, kind, factor, targets, "t")
                        continue
                    c = f"_c{next(self.counter)}"
                    vector = graph[parent].symbol
                    if kind is TermKind.THROUGH_MATRIX and parent in self.prev and vector in self.stacks:
                        targets.append((c, factor, "{}"))  # joined below: one product with the stacked matrix
                        joined.setdefault(vector, {})[t_.matrix] = c
                        continue
                    targets.append((c, elementwise(share(t_, kind, g, self._with_kept(t_.factor))), "{}"))
                    (next_carry[self.prev[parent]] if parent in self.prev else within[parent]).append(c)
            loop += em.lines(targets, indent=IN2)
        return loop, next_carry, joined

    def _store_shares(self, loop: list[str], next_carry: dict, joined: dict):
        """Per-step parameter shares are stored and reduced once after the loop. The shares of a
        stack's weights (the LSTM's four gates) go side by side into one buffer, so that both the
        adjoint carried back (δ_stack @ W_stack) and the weights' gradients are single products."""
        graph = self.graph
        self.code_of, body = {}, []
        for line in loop:
            stripped = line.strip()
            if stripped.startswith("_d") and " = " in stripped:
                target, code = stripped.split(" = ", 1)
                self.code_of[target] = code
            else:
                body.append(line)
        line_code = {}
        for line in body:
            stripped = line.strip()
            if stripped.startswith("_c") and " = " in stripped:
                target, code = stripped.split(" = ", 1)
                line_code[target] = code
        shared_codes = {self.code_of[name] for _, name, _, _ in self.deferred}
        self.buffers: dict[str, tuple[str, str | None]] = {}  # share code -> (buffer, column slice or None)
        allocations, carried, self.groups = [], [], []
        for vector, shares in joined.items():
            stacked_name, rows = self.stacks[vector]
            codes = [line_code.get(shares.get(m)) for m in rows]
            # The carried adjoint reads the step's shares from their buffer, unless the buffer sums
            # the shares of several windows.
            if not self.windowed and all(c in shared_codes for c in codes) and len(set(codes)) == len(codes):
                group = f"_DS{len(self.groups)}"
                width = sum(graph[m.name].shape[0] for m in rows)
                allocations.append((group, (width,)))
                for code, rng in zip(codes, rows.values()):
                    self.buffers[code] = (group, rng)
                self.groups.append((group, dict(zip(codes, rows.values()))))
                product = f"{group}[t] @ {stacked_name}"
            else:
                parts = [shares.get(m) or f"numpy.zeros((_B, {graph[m.name].shape[0]}))" for m in rows]
                product = f"numpy.concatenate([{', '.join(parts)}], axis=-1) @ {stacked_name}"
            c = f"_c{next(self.counter)}"
            carried.append(f"        {c} = {product}")
            next_carry[self.prev[vector.name]].append(c)
        for p, name, t_, leaf in self.deferred:  # a share has the shape of the node it flows out of
            code = self.code_of[name]
            if code not in self.buffers:
                self.buffers[code] = (f"_D{len(allocations)}", None)
                allocations.append((self.buffers[code][0], graph[self.owner[name]].shape))
        op = "+=" if self.windowed else "="  # a step's shares add up over the windows that reach it
        stores = [f"        {b}[t] {op} {code}" if rng is None else f"        {b}[t, ..., {rng}] {op} {code}"
                  for code, (b, rng) in self.buffers.items()]
        return body + stores + carried, allocations

    def _allocate_shares(self, allocations: list) -> list[str]:
        """The (T, batch, ...) share buffers. The input products are dead once the forward loop is
        done: a buffer of the same shape takes their memory, so a long sequence holds one array less."""
        T, lines, dead = self.T, [], list(self.dead)
        allocate = "zeros" if self.k < T else "empty"  # truncated: the steps before the window stay unused
        for b, shape in allocations:
            reused = next((P for P, s in dead if s == shape), None)
            if reused:
                dead.remove((reused, shape))
                lines.append(f"    {b} = _ws.{allocate}({reused!r}, ({T}, _B) + {shape!r})  # {reused}'s memory")
            else:
                lines.append(f"    {b} = _ws.{allocate}({b!r}, ({T}, _B) + {shape!r})")
        return lines

    def _reductions(self) -> list[str]:
        """Every stored share reduced over its steps and examples: one product per weight family of
        a stack (one for all of a gate block's weights and biases), else one per parameter."""
        graph, T, block = self.graph, self.T, self.block
        window = f"0:{T}" if self.windowed else f"{T - self.k}:{T}"
        reductions, done = [], set()

        def signature(t_, leaf, p):
            return ("outer", t_.outer.name) if t_.outer is not None else ("dot", leaf) if leaf else ("total", len(graph[p].shape))

        for group, columns in self.groups:
            if block:  # [δW_x | δW_h | δb] = Σ δ_gatesᵀ [x_t, h_(t-1), 1]: one product
                I, H = block.columns
                reductions.append(f"    _GB = _outer({group}[{window}], S_XH[{window}])")
                part = {("outer", self.x1): f"0:{I}", ("outer", block.vector.name): f"{I}:{I + H}", ("total", 1): f"{I + H}"}
                for p, name, t_, leaf in self.deferred:
                    if self.code_of[name] in columns and signature(t_, leaf, p) in part:
                        self.grads[p].append(f"_GB[{columns[self.code_of[name]]}, {part[signature(t_, leaf, p)]}]")
                        done.add(name)
                continue
            by_signature: dict = {}
            for entry in self.deferred:
                p, name, t_, leaf = entry
                if self.code_of[name] in columns:
                    by_signature.setdefault(signature(t_, leaf, p), []).append(entry)
            for (kind, what), entries in by_signature.items():
                if {self.code_of[e[1]] for e in entries} != set(columns) or kind == "dot":
                    continue
                g = f"_G{len(reductions)}"
                if kind == "outer":
                    reductions.append(f"    {g} = _outer({group}[{window}], {self.stacked(what)}[{window}])")
                else:
                    reductions.append(f"    {g} = _total({group}[{window}], 1)")
                for p, name, t_, leaf in entries:
                    self.grads[p].append(f"{g}[{columns[self.code_of[name]]}]")
                    done.add(name)
        for p, name, t_, leaf in self.deferred:
            if name in done:
                continue
            b, rng = self.buffers[self.code_of[name]]
            d = f"{b}[{window}]" if rng is None else f"{b}[{window}, ..., {rng}]"
            if t_.outer is not None:
                self.grads[p].append(f"_outer({d}, {self.stacked(t_.outer.name)}[{window}])")
            elif leaf is not None:
                self.grads[p].append(f"_dot({d}, {self.stacked(leaf)}[{window}])")
            else:
                self.grads[p].append(f"_total({d}, {len(graph[p].shape)})")
        return reductions

    def _gradients(self) -> list[str]:
        """Each parameter's gradient: the sum of its reduced shares (zero when nothing reads it)."""
        out = []
        for p in self.params:
            shape = self.graph[p].shape
            out.append(" + ".join(self.grads[p]) if self.grads[p] else (f"numpy.zeros({shape})" if shape else "0.0"))
        return out


class _Gate(NamedTuple):
    node: str  # the gate node, act(P + M[..., rows])
    hoisted: sp.Symbol  # P = W_x·x + biases, computed in the block instead
    x_weight: sp.Symbol
    biases: tuple  # P's parameter terms


class _GateBlock(NamedTuple):
    vector: sp.Symbol  # what the stacked weights multiply (h_(t-1))
    columns: tuple  # (input size, state size)
    rows: dict  # stacked weight -> its column slice
    width: int
    gates: dict  # stacked weight -> _Gate, in stacking order
    hoisted: set  # the gates' hoisted sums


def _gate_block(graph, rec, step, step_exprs, stacks, slices, hoisted, x, params) -> _GateBlock | None:
    """The LSTM pattern, found in any cell: every weight of the one stack feeds exactly one gate
    σ or tanh(W_x·x + b + W_h·h), with its own input weight. Then the gates are one
    (T, batch, width) array; each step is one product [x_t, h_(t-1), 1] @ [W_x | W_h | b]ᵀ written
    straight into it, and each gate's activation runs in place on its column block.
    """
    if len(stacks) != 1 or len(graph[x.name].shape) != 1:
        return None
    vector, (_, rows) = next(iter(stacks.items()))
    states = {rec.name(s, 1) for s in rec.states}
    parameters = {graph[p].symbol for p in params}
    gates, used = {}, set()
    for m, rng in rows.items():
        product = slices[MatVec(m, vector)]
        users = [n for n in step if step_exprs[n].has(product)]
        if len(users) != 1:
            return None
        node, e = users[0], step_exprs[users[0]]
        if node in states:  # a new state has storage of its own (T + 1 rows), not a gate's
            return None
        if not (e.func in (sigmoid, sp.tanh) and e.args[0].is_Add and len(e.args[0].args) == 2 and product in e.args[0].args):
            return None
        (P,) = [a for a in e.args[0].args if a != product]
        if P not in hoisted:
            return None
        terms = sp.Add.make_args(hoisted[P])
        inputs = [a for a in terms if isinstance(a, MatVec) and a.args[1] == x]
        biases = tuple(a for a in terms if a not in inputs)
        # One input weight of its own, and biases that are parameters of the gate's shape.
        if (len(inputs) != 1 or inputs[0].args[0] in used or not all(
                b in parameters and graph[b.name].shape == graph[node].shape for b in biases)):
            return None
        used.add(inputs[0].args[0])
        gates[m] = _Gate(node, P, inputs[0].args[0], biases)
    width = sum(graph[m.name].shape[0] for m in rows)
    columns = (graph[x.name].shape[0], graph[vector.name].shape[0])
    return _GateBlock(vector, columns, rows, width, gates, {g.hoisted for g in gates.values()})


def _shape_of(graph, expr) -> tuple:
    """The shape of an elementwise function of step nodes: that of its vector arguments."""
    shapes = {graph[s.name].shape for s in expr.free_symbols if s.name in graph}
    return max(shapes, key=len) if shapes else ()


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


LOOP_RUNTIME = {"_outer": _outer, "_dot": _dot, "_total": _total}
