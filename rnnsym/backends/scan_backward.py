"""The backward half of the scan lowering (rnnsym.backends.scan): the step's adjoint program as
a step function run from the last step back, and the gradients reduced after it.

The program is the NumPy loop form's (rnnsym.numeric.loop_backward: the rule table's shares, the
schedule and the common subexpressions); only where values live differs. The carry is the adjoint
carried into the previous state; each parameter's share comes back per step and is reduced once
after the scan. A stack's shares (an LSTM's four gates' δ) are joined side by side, for the one
product that carries them back and for one product per weight family after the scan.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..engine.rules import TermKind, TransposeTimes
from ..numeric.loop_backward import LoopBackward
from ..program.ir import Accumulate, Compute, Role

IN, IN2 = "    ", "        "


@dataclass(frozen=True)
class _Stored:
    """A parameter's share in one step, returned by the backward scan: reduced after it by an outer
    product with ``leaf``'s values (a weight), else summed over all but the parameter's axes."""

    param: str
    value: sp.Symbol
    leaf: str | None
    ndim: int


class ScanBackward:
    """Prints the backward scan of one network (``low``: its ScanLowering, whose forward is written;
    ``back``: the NumPy loop's backward pass, for the seeds, the step program and the gradients)."""

    def __init__(self, low, back: LoopBackward):
        self.w, self.em, self.names, self.graph, self.code, self.back = low.w, low.em, low.names, low.graph, low.code, back

    def lines(self) -> list[str]:
        """The seeds, the backward scan and the reductions after it."""
        back, w, graph, T, k = self.back, self.w, self.graph, self.w.T, self.w.k
        inv_b = self.em.symbol("_inv_batch")
        seeds, carry = back.seeds(inv_b)
        lines = [f"{IN}{inv_b.name} = 1.0 / _B", *seeds]
        zeros = {s: f"_full(x, (_B,) + {graph[w.rec.name(s, 1)].shape!r}, 0.0)" for s in w.rec.states}
        start = {}
        for s in w.rec.states:
            if w.per_step:  # the output's share at every step, read by the step
                if carry[s]:
                    lines.append(f"{IN}{back.seed_of[s]} = {' + '.join(carry[s])}")
                start[s] = zeros[s]
            else:
                start[s] = " + ".join(carry[s]) if carry[s] else zeros[s]
        program = back.optimised_step_program()
        body, reads, stored = self._body(program, carry)
        window = f"{T - k}:{T}"
        xs = [f"{array}[{window}]" for _, array in reads]
        carried = [back.g_carry[s] for s in w.rec.states]
        lines += [f"{IN}def _back(_carry, _xs):", f"{IN2}{tuple_code(carried)} = _carry",
                  *([f"{IN2}{tuple_code([n for n, _ in reads])} = _xs"] if reads else []), *body]
        sources = list(dict.fromkeys(d for d, _ in self.layout.values()))
        returned = {d: f"_D{i}" for i, d in enumerate(sources)}
        lines.append(f"{IN}_, {tuple_code(list(returned.values()))} = "
                     f"_scan(_back, {tuple_code([start[s] for s in w.rec.states])}, {tuple_code(xs)}, {k}, reverse=True)")
        reductions: dict[str, str] = {}  # each product or sum over the steps, once: its code -> its name
        for e in stored:  # reduced over every step of the window and every example
            source, columns = self.layout[e.value]
            d = returned[source]
            if columns is not None and not (e.leaf or e.ndim == 1):  # a slice the reduction cannot share
                d, columns = f"{d}[..., {columns}]", None
            code = f"_outer({d}, {w.stacked(e.leaf)}[{window}])" if e.leaf else f"_total({d}, {e.ndim})"
            if code not in reductions:
                reductions[code] = f"_R{len(reductions)}"
                lines.append(f"{IN}{reductions[code]} = {code}")
            back.grads[e.param].append(reductions[code] + (f"[{columns}]" if columns is not None else ""))
        return lines

    def _body(self, program, carry) -> tuple[list[str], list, list[_Stored]]:
        """The step's adjoints in the program's order; returns the lines (ending in the return of the
        carried adjoints and the stored shares), what the step reads per step ``(name, array over
        time)``, and the stored shares."""
        back, w = self.back, self.w
        self._name_values(program)
        aliases = self._aliases(program)
        joined = self._joined_through_stacks(program)
        body, read, stored, stacks, computed, next_carry = self._statements(program, aliases, joined, carry)
        body.append(self._step_return(stored, stacks, computed, next_carry))
        reads = self._loads(read)
        reads += [(f"{back.seed_of[s]}_t", back.seed_of[s]) for s in w.rec.states if w.per_step and carry[s]]
        return body, reads, stored

    def _name_values(self, program) -> None:
        """The step's shares and temporaries get names of their own, apart from the seeds' temporaries."""
        for symbol, value in program.values.items():
            if value.role is Role.SHARE:
                self.names[symbol] = f"_c{value.name[2:]}"
                self.em.printer.declare(symbol, (value.batched, value.shape))
            elif value.role is Role.TEMP:
                self.names[symbol] = f"_u{value.name[2:]}"

    def _statements(self, program, aliases: dict, joined: dict, carry: dict):
        """The step's statements in the program's order: its lines, what they read, the parameter
        shares to store, the stacks joined, each computed value's (per example?, shape), and the
        parts of each adjoint carried into the previous state."""
        back, w, graph, printer = self.back, self.w, self.graph, self.em.printer
        body, read, stored, stacks = [], set(), [], []
        computed: dict = {}  # each value the step computes: (per example?, shape), as the printer sees it
        next_carry = {s: [] for s in w.rec.states}
        for s in program.backward:
            if isinstance(s, Compute):
                if s.target in aliases or s.target in joined:
                    continue
                if program.values[s.target].role is Role.TEMP:
                    printer.declare(s.target, printer.info(s.expr))
                body.append(f"{IN2}{self.names[s.target]} = {self.code(s.expr)}")
                read |= s.expr.free_symbols
                computed[s.target] = printer.info(s.expr)
                continue
            parts = [self.names[x.expr] for x in s.shares if x.expr not in joined]
            role = program.values[s.target].role
            if role is Role.GRADIENT:
                for x in s.shares:
                    leaf = x.term.outer.name if x.kind is TermKind.WEIGHT else None
                    stored.append(_Stored(s.node, aliases.get(x.expr, x.expr), leaf, len(graph[s.node].shape)))
            elif s.target in back.next_state:
                if s.target in joined:  # the shares through a stack of weights: one product
                    matrix, values, columns = joined[s.target]
                    i = list(back.next_state).index(s.target)
                    body += [f"{IN2}_stack{i} = xp.concat([{', '.join(self.code(v) for v in values)}], axis=-1)",
                             f"{IN2}_joined{i} = _stack{i} @ {matrix}"]
                    parts.append(f"_joined{i}")
                    read |= set().union(*(v.free_symbols for v in values))
                    stacks.append((f"_stack{i}", values, columns))
                next_carry[back.next_state[s.target]] += parts
            else:
                carried = []
                if s.carried is not None:
                    state = w.new[s.node]
                    carried = [self.names[s.carried]] + ([f"{back.seed_of[state]}_t"] if w.per_step and carry[state] else [])
                body.append(f"{IN2}{self.names[s.target]} = {' + '.join(carried + parts) or '0.0'}")
            read |= {aliases.get(x.expr, x.expr) for x in s.shares}
        return body, read, stored, stacks, computed, next_carry

    def _step_return(self, stored: list, stacks: list, computed: dict, next_carry: dict) -> str:
        """The step's return: the adjoints carried into the previous state, then what it stores.
        Each is one array per example: a share that is the same for every example (a constant, a
        function of the parameters only) is broadcast, as the NumPy form's buffers do."""
        w, graph = self.w, self.graph

        def per_example(code: str, info) -> str:
            return code if info[0] is True else f"_full(x, (_B,) + {info[1]!r}, {code})"

        returned = []
        for state in w.rec.states:
            shape, parts = graph[w.rec.name(state, 1)].shape, next_carry[state]
            if any(computed.get(sym, (True,))[0] is True for sym in self._symbols(parts)):
                returned.append(" + ".join(parts))
            else:  # nothing, or constants only
                returned.append(f"_full(x, (_B,) + {shape!r}, {' + '.join(parts) or '0.0'})")
        self.layout = _layout(stored, stacks)
        sources = list(dict.fromkeys(d for d, _ in self.layout.values()))
        values = [d if isinstance(d, str) else per_example(self.names[d], computed.get(d, (True,))) for d in sources]
        return f"{IN2}return {tuple_code(returned)}, {tuple_code(values)}"

    def _symbols(self, names: list[str]) -> list:
        """The values printed under ``names`` (a joined product is its own, per example)."""
        by_name = {name: symbol for symbol, name in self.names.items()}
        return [by_name.get(name, name) for name in names]

    def _aliases(self, program) -> dict:
        """A share that is another value under a new name (``_c13 = _u0``, left by the
        common-subexpression pass) is printed as that value: ``{share: the value}``, and its name
        becomes the value's, so that a step returns each stored value once."""
        aliases = {}
        for s in program.backward:
            if (isinstance(s, Compute) and isinstance(s.expr, sp.Symbol)
                    and program.values[s.target].role is Role.SHARE):
                aliases[s.target] = aliases.get(s.expr, s.expr)
                self.names[s.target] = self.names[aliases[s.target]]
        return aliases

    def _joined_through_stacks(self, program) -> dict:
        """The adjoint carried into a previous state through a stack of weights (an LSTM's four
        ``W_h*``) as one product ``[δ_i, δ_f, δ_g, δ_o] @ W_stack`` instead of four: ``{each share so
        joined: True, the carried adjoint: (the stacked matrix, the values side by side, their columns)}``."""
        back, w, joined = self.back, self.w, {}
        definitions = {s.target: s.expr for s in program.backward if isinstance(s, Compute)}
        for s in program.backward:
            if not (isinstance(s, Accumulate) and s.target in back.next_state and self.graph[s.node].symbol in w.stacks):
                continue
            vector = self.graph[s.node].symbol
            stacked_name, rows = w.stacks[vector]
            through = {x.expr: definitions.get(x.expr) for x in s.shares}
            through = {share: e for share, e in through.items() if isinstance(e, TransposeTimes) and e.args[0] in rows}
            by_weight = {e.args[0]: e.args[1] for e in through.values()}
            if len(by_weight) != len(through) or set(by_weight) != set(rows):
                continue
            joined.update(dict.fromkeys(through, True))
            joined[s.target] = (stacked_name, [by_weight[m] for m in rows], list(rows.values()))
        return joined

    def _loads(self, read: set) -> list[tuple[str, str]]:
        """The stored values of the step the backward step reads: ``(its name, its array over time)``."""
        w, graph = self.w, self.graph
        loads = [(self.names[graph[n].symbol], w.stacked(n)) for n in (w.x1, *w.prev, *w.step) if graph[n].symbol in read]
        return loads + [(symbol.name, f"S{symbol.name}") for symbol in w.kept.values() if symbol in read]


def _layout(stored: list[_Stored], stacks: list) -> dict:
    """Where each stored share comes back from the backward scan: ``{value: (what the step returns,
    its columns or None)}``. The values of a stack (an LSTM's four gates' δ, side by side for the
    carried product) come back as the stack itself when all of them are stored, so that each
    weight family's gradient is one product and a slice, as in the NumPy form."""
    wanted = {e.value for e in stored}
    layout = {}
    for name, values, columns in stacks:
        if all(isinstance(v, sp.Symbol) and v in wanted for v in values) and len(set(values)) == len(values):
            layout.update({v: (name, c) for v, c in zip(values, columns)})
    return {**{e.value: (e.value, None) for e in stored}, **layout}


def tuple_code(items: list[str]) -> str:
    """``(a, b, )``: a tuple, or the names a tuple unpacks into, whatever their number (one too)."""
    return "(" + "".join(f"{i}, " for i in items) + ")"
