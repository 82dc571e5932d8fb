"""The loop form's backward pass: the adjoint program of one step, lowered into a loop over time.

The step's program is built by the same function as the unrolled program and the derivation's
recursive view (rnnsym.program.build.adjoint_shares: each node's adjoint as the sum of its rule-table
shares) and made fast by the same passes (schedule, lower_products, common_subexpressions). The
lowering then decides where each value lives: a step node's adjoint is a local of the loop body,
the shares into the previous states are the adjoints carried to the step before, and a parameter's
shares are stored per step and reduced once after the loop, over all steps and examples together
(a weight's: one matrix product). The shares of a stack's weights (the LSTM's four gates) go side
by side into one buffer, so that the carried adjoint and the weights' gradients are single products.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, replace

import sympy as sp

from ..engine.rules import Outer, Summed, TermKind, TransposeTimes, elementwise, kind_of, share
from ..program.build import Namer, adjoint_shares, nodes_needing_adjoints
from ..program.memory import Buffer, Phase, share_memory
from ..program.ir import Accumulate, Compute, Program, Role, Value
from ..program.passes import common_subexpressions, fold_zeros, fused_factor, lower_products, schedule
from .lines import time_loop
from .loop_fusion import BackwardFusion
from .loop_sweep import summed_in_sweep

IN2 = "        "  # the loop body's indent


@dataclass(frozen=True)
class Stored:
    """A parameter's share in one step, stored per step and reduced after the loop: ``value`` is what
    is stored, ``kind`` how it is reduced ("outer" with ``leaf``'s values, "dot" with ``leaf``'s,
    "total" over every axis but the parameter's ``ndim``)."""

    param: str
    value: sp.Expr
    kind: str
    leaf: str | None
    ndim: int


class LoopBackward:
    """Writes the backward pass of a loop form (``w``: the rnnsym.numeric.loop writer, whose forward
    pass is written)."""

    def __init__(self, w):
        self.w = w
        self.graph, self.em, self.names = w.graph, w.em, w.names
        self.needs = template_needs(w)
        self.ids = Namer(w.graph).ids  # a node's name where it is plain, else its index (as in the unrolled form)
        self.grads: dict[str, list[str]] = {p: [] for p in w.params}
        self.counter = itertools.count()
        # δh₁ is d_h1 (as in the unrolled form); what the next step carries back into it d_h1_carried,
        # and the output's share into it at every step d_h1_seeds. Generated names only.
        state_id = {s: self.ids[w.rec.name(s, 1)] for s in w.rec.states}
        self.g_carry = {s: f"d_{state_id[s]}_carried" for s in w.rec.states}
        self.seed_of = {s: f"d_{state_id[s]}_seeds" for s in w.rec.states}

    # ---- the whole backward pass -------------------------------------------------------------------------
    def lines(self) -> list[str]:
        """The seeds at the output, the loop from the last step back (truncated BPTT stops after k
        steps), then the reductions of the stored parameter shares."""
        w, graph, rec, T = self.w, self.graph, self.w.rec, self.w.T
        inv_b = self.em.symbol("_inv_batch")
        backward = [f"    {inv_b.name} = 1.0 / _B"]
        seeds, carry = self.seeds(inv_b)
        backward += seeds
        self.carry = carry
        self.fused_before = self.fusion = None
        self.summed: set = set()  # the stored shares a sweep summed (rnnsym.numeric.loop_fusion.reduce_in_kernel)
        body, next_carry, allocations = self._step()
        zeros = {s: f"numpy.zeros((_B,) + {graph[rec.name(s, 1)].shape!r}, dtype=x.dtype)" for s in rec.states}
        for s in rec.states:
            if w.per_step:
                backward.append(f"    {self.seed_of[s]} = {' + '.join(carry[s])}" if carry[s] else f"    {self.seed_of[s]} = None")
            first = " + ".join(carry[s]) if carry[s] and not w.per_step else None
            backward += _carried_start(self.g_carry[s], graph[rec.name(s, 1)].shape, first, zeros[s], self.fused_before is not None)
        if self.fused_before is None:
            body += [f"{IN2}{self.g_carry[s]} = {' + '.join(next_carry[s]) if next_carry[s] else zeros[s]}" for s in rec.states]
        if w.windowed:  # for each loss L_s: its seed, then back k steps from step s
            header = [f"    for _s in range({T - 1}, -1, -1):"]
            header += [f"        {self.g_carry[s]} = {self.seed_of[s]}[_s]" if carry[s] else f"        {self.g_carry[s]} = {zeros[s]}"
                       for s in rec.states]
            loop = [*header, f"        for t in range(_s, max(_s - {w.k}, -1), -1):", *("    " + line for line in body)]
        else:
            loop = summed_in_sweep(self, time_loop(T - 1, T - 1 - w.k, -1, body))
        return backward + self._allocate(allocations) + (self.fused_before or []) + loop + self._reductions()

    def gradients(self) -> tuple[list[str], dict[str, str]]:
        """Each parameter's gradient, the sum of its reduced shares (zero when nothing reads it), as
        lines ``dL_dW_hh = …``, and ``{parameter: its name}`` (the key it is returned under)."""
        lines, keys = [], {}
        for p in self.w.params:
            shape = self.graph[p].shape
            keys[p] = f"dL_d{self.ids[p]}"
            value = " + ".join(self.grads[p]) if self.grads[p] else self.em.printer.zeros_like(self.names[self.graph[p].symbol], shape)
            lines.append(f"    {keys[p]} = {value}")
        return lines, keys

    # ---- the seeds: the output's shares, through the fused loss --------------------------------------------
    def seeds(self, inv_b) -> tuple[list[str], dict]:
        """The output's shares through the fused loss, as lines: a readout parameter's reduced where
        it is (into ``grads``), a state's returned as ``{state: the names carried into the loop}``."""
        w, graph = self.w, self.graph
        state_of = {w.rec.name(s, t): s for s in w.rec.states for t in (1, w.T)}
        carry: dict[str, list[str]] = {s: [] for s in w.rec.states}  # adjoints flowing into the loop
        loss = graph.loss  # the loss term's weight in it: 1/T for a mean over steps
        weight = sp.S.One if w.term.name == loss.name else loss.expr.diff(w.term.symbol)
        targets = []
        for parent in graph.parents(w.out):
            if parent not in self.needs:
                continue
            for t_ in w.network.jacobian(w.out, parent).terms:
                kind = kind_of(t_, graph[parent].shape, w.out_node.shape)
                term, factor = fused_factor(w.network, t_, w.out, w.term.name)
                value = elementwise(share(term, kind, inv_b * weight, factor))
                if value == 0:
                    continue
                if graph[parent].kind == "param":  # the readout's parameters: reduced where they are
                    name = f"_r{next(self.counter)}"
                    targets.append((name, value.args[0] if isinstance(value, Outer) else value, "{}"))
                    self.grads[parent].append(f"_outer({name}, {w.readout_view[term.outer.name]})" if isinstance(value, Outer)
                                              else f"_total({name}, {len(graph[parent].shape)})")
                else:  # the output reads the last state (every state, with outputs at every step)
                    name = f"_s{next(self.counter)}"
                    targets.append((name, value, "{}"))
                    carry[state_of[parent]].append(name)
        return self.em.lines(targets), carry

    # ---- one step: its program, the passes, the lowering ------------------------------------------------------
    def _step(self):
        return StepLowering(self, self.optimised_step_program()).lower()

    def optimised_step_program(self) -> Program:
        """The step's program (``step_program``), each parameter share per example, through the passes."""
        program = self.step_program = self._step_program()
        program = per_example_shares(program)
        return common_subexpressions(lower_products(schedule(program, reduce_gradients=False)))

    def _step_program(self) -> Program:
        """The adjoints of the template step's nodes (the new states' include what the next step
        carries back), the shares into the previous states and every parameter's shares."""
        w, graph, net = self.w, self.graph, self.w.network
        values: dict = {}
        delta: dict[str, sp.Symbol] = {}
        statements = []

        def shares_into(name):
            sources = [c for c in graph.children(name) if c in delta]
            out = []
            for s in adjoint_shares(net, name, sources, delta.get):
                expr = fold_zeros(w.with_kept(s.expr))
                if expr != 0:  # a step's derivative (Heaviside, sign): nothing flows back
                    out.append(type(s)(s.child, s.parent, s.term, s.kind, expr, s.delta))
            return tuple(out)

        carried_values = {}  # a new state -> what the next step carries back into it (a value of the loop)
        for state in w.rec.states:
            c = carried_values[state] = self.em.symbol(self.g_carry[state], like=graph[w.rec.name(state, 1)].symbol)
            values[c] = Value(c, c.name, Role.ADJOINT, graph[w.rec.name(state, 1)].shape, True, w.rec.name(state, 1))
        for name in reversed(w.step):
            if name not in self.needs:
                continue
            shares = shares_into(name)
            state = w.new.get(name)
            if not shares and state is None:
                continue
            g = self.em.symbol(f"d_{self.ids[name]}", like=graph[name].symbol)
            values[g] = Value(g, g.name, Role.ADJOINT, graph[name].shape, True, name)
            delta[name] = g
            statements.append(Accumulate(g, name, shares, carried_values[state] if state is not None else None))
        self.next_state = {}  # the previous state's adjoint (d_h0) is what this step carries back
        for prev, state in w.prev.items():
            shares = shares_into(prev)
            if shares and w.rec.name(state, 1) in self.needs:  # a state that never reaches the loss carries nothing
                g = sp.Dummy(f"d_{prev}")
                values[g] = Value(g, f"d_{self.ids[prev]}", Role.ADJOINT, graph[prev].shape, True, prev)
                self.next_state[g] = state
                statements.append(Accumulate(g, prev, shares))
        for p in w.params:
            shares = shares_into(p)
            if shares:  # this step's share of the gradient
                g = sp.Dummy(f"dL_d{p}")
                values[g] = Value(g, f"dL_d{self.ids[p]}_step", Role.GRADIENT, graph[p].shape, False, p)
                statements.append(Accumulate(g, p, shares))
        scale = self.em.symbol("_inv_batch")
        values[scale] = Value(scale, "_inv_batch", Role.SCALE, (), False)
        return Program(values, tuple(w.params), (), (), tuple(statements), (), (), (), scale)

    # ---- after the loop -----------------------------------------------------------------------------------------
    def _allocate(self, allocations: list) -> list[str]:
        """The (T, batch, ...) share buffers, placed by rnnsym.program.memory.share_memory: the
        input products are dead once the forward loop is done, so a share buffer of the same shape
        takes their memory and a long sequence holds one array less."""
        w = self.w
        allocate = "zeros" if w.k < w.T else "empty"  # truncated: the steps before the window stay unused
        shares = [Buffer(b, shape, Phase.BACKWARD_LOOP, Phase.REDUCTIONS) for b, shape in allocations]
        memory = share_memory([*w.forward_buffers, *shares])
        return [f"    {b.name} = _ws.{allocate}({memory[b.name]!r}, ({w.T}, _B) + {b.shape!r})"
                + (f"  # {memory[b.name]}'s memory" if memory[b.name] != b.name else "") for b in shares]

    def _reductions(self) -> list[str]:
        """Every stored share reduced over its steps and examples: one product per weight family of
        a stack (one for all of a gate block's weights and biases), else one per parameter."""
        w = self.w
        window = f"0:{w.T}" if w.windowed else f"{w.T - w.k}:{w.T}"
        reductions, done = [], set()
        for group, columns in self.groups:
            if w.block:  # [δW_x | δW_h | δb] = Σ δ_gatesᵀ [x_t, h_(t-1), 1]: one product
                I, H = w.block.columns
                reductions.append(f"    _GB = _outer({group}[{window}], S_XH[{window}])")
                part = {("outer", w.x1): f"0:{I}", ("outer", w.block.vector.name): f"{I}:{I + H}", ("total", 1): f"{I + H}"}
                for entry in self.stored:
                    if entry.value in columns and entry not in done and (entry.kind, entry.leaf or entry.ndim) in part:
                        self.grads[entry.param].append(f"_GB[{columns[entry.value]}, {part[(entry.kind, entry.leaf or entry.ndim)]}]")
                        done.add(entry)
                continue
            by_signature: dict = {}
            for entry in self.stored:
                if entry.value in columns and entry not in done and entry not in self.summed:
                    by_signature.setdefault((entry.kind, entry.leaf or entry.ndim), []).append(entry)
            for (kind, what), entries in by_signature.items():
                if {e.value for e in entries} != set(columns) or kind == "dot":
                    continue
                g = f"_G{len(reductions)}"
                reductions.append(f"    {g} = _outer({group}[{window}], {w.stacked(what)}[{window}])" if kind == "outer"
                                  else f"    {g} = _total({group}[{window}], 1)")
                for e in entries:
                    self.grads[e.param].append(f"{g}[{columns[e.value]}]")
                    done.add(e)
        reductions += joined_reductions(self, window, done)
        rest = []
        for e in self.stored:
            if e in done or e in self.summed:
                continue
            b, rng = self.buffers[e.value]
            d = f"{b}[{window}]" if rng is None else f"{b}[{window}, ..., {rng}]"
            rest.append((e.param, f"_outer({d}, {w.stacked(e.leaf)}[{window}])" if e.kind == "outer" else
                                  f"_dot({d}, {w.stacked(e.leaf)}[{window}])" if e.kind == "dot" else f"_total({d}, {e.ndim})"))
        return reductions + _once(rest, self.grads)


def joined_reductions(back: "LoopBackward", window: str, done: set) -> list[str]:
    """Where the state is stored beside x (rnnsym.numeric.loop_forward._joined_state), the
    shares that one δ gives against x, against h_(t-1) and as a bias, as one product
    [δW_x | δW_h | δb] = Σ δᵀ [x_t, h_(t-1), 1] (an Elman 256's: one pass over δ instead of three)."""
    w = back.w
    if not w.joined or w.block:
        return []
    (prev,) = w.prev
    I, H = w.graph[w.x1].shape[0], w.graph[w.joined].shape[0]
    part = {("outer", w.x1): f"0:{I}", ("outer", prev): f"{I}:{I + H}", ("total", 1): f"{I + H}"}
    by_share: dict = {}
    for e in back.stored:
        if e not in done and e not in back.summed and (e.kind, e.leaf or e.ndim) in part:
            by_share.setdefault(back.buffers[e.value], []).append(e)
    lines = []
    for (b, rng), entries in by_share.items():
        if not {("outer", w.x1), ("outer", prev)} <= {(e.kind, e.leaf) for e in entries}:
            continue
        g = f"_GJ{len(lines)}"
        d = f"{b}[{window}]" if rng is None else f"{b}[{window}, ..., {rng}]"
        lines.append(f"    {g} = _outer({d}, S_XH[{window}])")
        for e in entries:
            back.grads[e.param].append(f"{g}[:, {part[(e.kind, e.leaf or e.ndim)]}]")
            done.add(e)
    return lines


class StepLowering:
    """Prints one step's optimised program as the loop's body, deciding where each value lives."""

    def __init__(self, back: LoopBackward, program: Program):
        self.back, self.w, self.program = back, back.w, program
        self.names = back.names  # the emitter's table: the step's own values join it, under names of their own
        for symbol, value in program.values.items():
            if value.role is Role.SHARE:
                self.names[symbol] = f"_c{value.name[2:]}"
            elif value.role is Role.TEMP:
                self.names[symbol] = f"_u{value.name[2:]}"
        self.consumer = {x.expr: (acc, x) for acc in program.backward if isinstance(acc, Accumulate) for x in acc.shares}
        self.read: set = set()  # every symbol the body's code reads
        self.reads: Counter = Counter()  # how many lines read each
        self.joined: set = set()  # shares carried back through a stacked matrix, in one product

    def code(self, expr) -> str:
        self.read |= expr.free_symbols
        for symbol in expr.free_symbols:
            self.reads[symbol] += 1
        return self.back.em.printer.doprint(expr)

    def lower(self):
        """``(body lines, {state: carried share names}, share buffers to allocate)``: first where
        every share goes (parameter shares to their buffers, shares through a stack to one product),
        then the body, in the program's order."""
        back, w, printer = self.back, self.w, self.w.em.printer
        back.stored, back.buffers, back.groups = [], {}, []
        next_carry: dict[str, list[str]] = {s: [] for s in w.rec.states}
        through_stack: dict = {}  # vector -> {stacked matrix: the share it carries back}
        printed = [s for s in self.program.backward if isinstance(s, Accumulate) or not self._placed(s, through_stack)]
        for s in printed:  # the temporaries' shapes, for the buffers
            if isinstance(s, Compute) and self.program.values[s.target].role is Role.TEMP:
                printer.declare(s.target, printer.info(s.expr))
        stores, carried, allocations = self._buffers(through_stack, next_carry)
        read, reads = set(self.read), Counter(self.reads)
        fusion = BackwardFusion(self, printed, self.carried_products) if w.native else None
        fused = fusion.fuse() if fusion is not None else None
        if fused is not None:  # one kernel, then what depends on a product: the carried adjoints updated in place
            back.fused_before, back.fusion = fused[0], fusion
            return fused[1], None, allocations
        self.read, self.reads = read, reads  # a fusion given up leaves what the NumPy body reads as it was
        body: list[tuple] = []  # (statement or None, line)
        for s in printed:
            if isinstance(s, Accumulate):
                lines: list[str] = []
                self._accumulate(s, lines, next_carry)
                body += [(None, line) for line in lines]
            else:
                body.append((s, f"{IN2}{self.names[s.target]} = {self.code(s.expr)}"))
        direct = self._straight_into_buffers(printed)
        lines = [f"{IN2}{direct[s.target]}" if s is not None and s.target in direct else line for s, line in body]
        stores = [line for value, line in stores if value not in direct]
        return self._loads() + lines + stores + carried, next_carry, allocations

    def _straight_into_buffers(self, printed: list) -> dict:
        """``{temporary: its line}`` for each temporary that is stored: its last operation writes
        into the buffer (``numpy.multiply(…, out=_DS0[t, ..., 0:4])``), no copy; where another line
        reads it too, its name is bound to the buffer's row (the store being the one other read)."""
        if self.w.windowed:  # the buffers add up the windows' shares: no plain store
            return {}
        definitions = {s.target: s.expr for s in printed if isinstance(s, Compute)}
        direct = {}
        for value, (b, rng) in self.back.buffers.items():
            if value not in definitions or self.program.values[value].role is not Role.TEMP:
                continue
            where = f"{b}[t]" if rng is None else f"{b}[t, ..., {rng}]"
            line = self.w.em.printer.assign_into(definitions[value], where, self.w.em.printer.info(value)[1])
            if line:  # its name is the buffer's row, for the lines that read it
                direct[value] = f"{self.names[value]} = {line}" if self.reads[value] > 1 else line
        return direct

    def _placed(self, s: Compute, through_stack: dict) -> bool:
        """Whether a share is placed rather than printed: a parameter's (stored per step) or one
        carried back through a stacked matrix (joined into one product)."""
        if self.program.values[s.target].role is Role.TEMP:
            return False
        acc, x = self.consumer[s.target]
        if self.program.values[acc.target].role is Role.GRADIENT:
            self._store(acc.node, s.expr, x)
            return True
        vector = self.w.graph[acc.node].symbol
        if (acc.target in self.back.next_state and isinstance(s.expr, TransposeTimes) and vector in self.w.stacks
                and s.expr.args[0] in self.w.stacks[vector][1]):
            through_stack.setdefault(vector, {})[s.expr.args[0]] = (s.target, s.expr.args[1])
            self.joined.add(s.target)
            return True
        return False

    def _accumulate(self, s: Accumulate, body: list, next_carry: dict) -> None:
        role = self.program.values[s.target].role
        parts = [self.names[x.expr] for x in s.shares if x.expr in self.names]
        if role is Role.GRADIENT:
            return  # stored per step, reduced after the loop
        if s.target in self.back.next_state:  # less the shares carried back through a stacked matrix
            next_carry[self.back.next_state[s.target]] += [p for x, p in zip(s.shares, parts) if x.expr not in self.joined]
            return
        carried = []
        if s.carried is not None:  # what the next step carries back, and at every step the output's share
            state = self.w.new[s.node]
            carried = [self.names[s.carried] + (f" + {self.back.seed_of[state]}[t]" if self.w.per_step
                                                 and self.back.carry[state] and not self.w.windowed else "")]
        body.append(f"{IN2}{self.names[s.target]} = {' + '.join(carried + parts)}")

    def _store(self, param: str, inner, share) -> None:
        self.back.stored.append(stored_share(self.w, param, inner, share))

    def _buffers(self, through_stack: dict, next_carry: dict) -> tuple[list, list, list]:
        """The stores of the step's parameter shares into their buffers (``(value, line)``, one per
        distinct value; a stack's side by side), the adjoints carried back through each stacked
        matrix (each one product, after the stores it reads), and the buffers to allocate."""
        back, w, graph = self.back, self.w, self.w.graph
        self.carried_products = []  # (name, left, stacked matrix, state): for a fused step (rnnsym.numeric.loop_fusion)
        stored_values = {e.value for e in back.stored}
        allocations, stores, carried = [], [], []
        for vector, shares in through_stack.items():
            stacked_name, rows = w.stacks[vector]
            inner = [shares[m][1] if m in shares else None for m in rows]
            # The carried adjoint reads the step's shares from their buffer, unless the buffer sums
            # the shares of several windows, or a value already sits in another stack's buffer (h
            # and c each multiplied by two weights, with the same shares: one buffer per value).
            if (not w.windowed and all(v in stored_values and v not in back.buffers for v in inner)
                    and len(set(inner)) == len(inner)):
                group = f"_DS{len(back.groups)}"
                allocations.append((group, (sum(graph[m.name].shape[0] for m in rows),)))
                back.buffers.update({v: (group, rng) for v, rng in zip(inner, rows.values())})
                back.groups.append((group, dict(zip(inner, rows.values()))))
                product, group_used = f"{group}[t] @ {stacked_name}", True
            else:
                group_used = False
                parts = [self.code(v) if v is not None else f"numpy.zeros((_B, {graph[m.name].shape[0]}), dtype=x.dtype)"
                         for v, m in zip(inner, rows)]
                product = f"numpy.concatenate([{', '.join(parts)}], axis=-1) @ {stacked_name}"
            c = f"_carried{next(back.counter)}"
            carried.append(f"{IN2}{c} = {product}")
            next_carry[w.prev[vector.name]].append(c)
            self.carried_products.append((c, product.rsplit(" @ ", 1)[0] if group_used else inner, stacked_name,
                                          w.prev[vector.name]))
        for e in back.stored:  # a share has the shape of the value stored
            if e.value not in back.buffers:
                back.buffers[e.value] = (f"_D{len(allocations)}", None)
                allocations.append((f"_D{len(allocations)}", w.em.printer.info(e.value)[1]))
        op = "+=" if w.windowed else "="  # a step's shares add up over the windows that reach it
        for value, (b, rng) in back.buffers.items():
            where = f"{b}[t]" if rng is None else f"{b}[t, ..., {rng}]"
            stores.append((value, f"{IN2}{where} {op} {self.code(value)}"))
        return stores, carried, allocations

    def _loads(self) -> list[str]:
        """The values of this step the body's code reads, and only those (no dead loads)."""
        w, graph = self.w, self.w.graph
        loads = [f"{IN2}{self.names[graph[name].symbol]} = " + ("_X[t]" if name == w.x1 else w.at(name, "t"))
                 for name in (w.x1, *w.prev, *w.step) if graph[name].symbol in self.read]
        return loads + [f"{IN2}{symbol.name} = S{symbol.name}[t]" for symbol in w.kept.values() if symbol in self.read]


def _once(reductions: list[tuple[str, str]], grads: dict) -> list[str]:
    """Each ``(parameter, reduction)`` added to the parameter's gradient; a reduction that two
    parameters share (an Elman's b_ih and b_hh) computed once, by the lines returned."""
    shared = {code: f"_S{i}" for i, code in enumerate(c for c, n in Counter(c for _, c in reductions).items() if n > 1)}
    for param, code in reductions:
        grads[param].append(shared.get(code, code))
    return [f"    {name} = {code}" for code, name in shared.items()]


def _carried_start(name: str, shape: tuple, first: str | None, zeros: str, fused: bool) -> list[str]:
    """The adjoint carried into the loop's first step: ``first`` (the output's shares) or zeros; a
    fused step updates it in place, so it gets a buffer of its own."""
    if not fused:
        return [f"    {name} = {first or zeros}"]
    return [f"    {name} = _ws.empty({name!r}, (_B,) + {shape!r})", f"    {name}[...] = {first or 0.0}"]


def stored_share(w, param: str, inner, share) -> Stored:
    """A parameter's share (``inner``: its per-example value, before a weight's outer product), kept
    for the reduction after the loop: what to store and how to reduce it."""
    ndim = len(w.graph[param].shape)
    if share.kind is TermKind.WEIGHT:
        return Stored(param, inner, "outer", share.term.outer.name, ndim)
    leaf = None
    if ndim == 0:  # a scalar weight times a stored value (w·x, u·h): keep the rest, dot it later
        stored = {w.graph[n].symbol: n for n in (w.x1, *w.prev, *w.step)}  # nodes, not a temporary of that name
        for arg in sp.Mul.make_args(inner):
            if arg in stored:
                leaf, inner = stored[arg], inner / arg
                break
    return Stored(param, inner, "dot" if leaf else "total", leaf, ndim)


def per_example_shares(program: Program) -> Program:
    """Each parameter's share as its per-example value, before a weight's outer product (or a
    scalar's sum over components): the loop stores it per step and reduces it after the loop, so no
    later pass can share a reduced value between two stores."""
    def stripped(acc):
        if program.values[acc.target].role is not Role.GRADIENT:
            return acc
        return replace(acc, shares=tuple(replace(x, expr=x.expr.args[0]) if isinstance(x.expr, (Outer, Summed)) else x
                                         for x in acc.shares))
    return program.with_("per_example_shares", backward=tuple(map(stripped, program.backward)))


def template_needs(w) -> set[str]:
    """The nodes that need an adjoint, with every template node of the step that needs one at
    *some* step. Step 1 alone is not enough: there the previous states are the constant initial
    ones, so a parameter-free gate g = tanh(h) looks constant at step 1 and only at step 2 lies
    between a parameter and the loss. A state that never reaches the loss gets no adjoint (a zero
    one times an infinite factor would be NaN)."""
    graph = w.graph
    needs = nodes_needing_adjoints(graph)
    bases = {graph[n].base for n in needs if graph[n].base is not None}
    return needs | {n for n in w.step if graph[n].base in bases}
