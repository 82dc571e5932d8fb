"""Lines of NumPy for the loop form (rnnsym.numeric.loop): SymPy expressions printed under
generated names, with the subexpressions they share computed once.

The unrolled form is printed from the adjoint program instead (rnnsym.numeric.emit); the loop form
still writes its own lines through this class.
"""
from __future__ import annotations

import itertools
import re

import sympy as sp

from ..program.build import Namer
from .printer import CodePrinter
from .step_loop import loop_lines

def time_loop(start: int, stop: int, step: int, body: list[str]) -> list[str]:
    """``for t in range(start, stop, step):`` over ``body``; where the body is one fused kernel's
    call alone (a cell with no matrix product in its step, the scalar Elman's), that kernel's sweep
    instead: row blocks, each through every step in one C call, on the cores at once."""
    call = re.fullmatch(r"\s*(_k\w+)\(t\)", body[0]) if len(body) == 1 else None
    if call:
        return [f"    {call.group(1)}.sweep({start}, {len(range(start, stop, step))}, {step})"]
    in_c = loop_lines(start, stop, step, body)  # products and kernels: the whole loop in one C call
    if in_c:
        return in_c
    steps = f"{stop}" if (start, step) == (0, 1) else f"{start}, {stop}, {step}"
    return [f"    for t in range({steps}):", *body]


def generated_names(graph) -> dict[sp.Symbol, str]:
    """``o5`` → ``n_o5``; a name that is not plain letters and digits gets ``n_<index>`` — the
    program's own node identifiers (rnnsym.program.build.Namer), so both forms print a node alike.
    Every identifier made from a node's name starts with ``n_`` and nothing else the compiler
    writes does, so no user name can ever stand for a generated value."""
    ids = Namer(graph).ids
    return {node.symbol: f"n_{ids[node.name]}" for node in graph.nodes.values()}


class LineEmitter:
    """Prints SymPy expressions as lines of NumPy under generated names, sharing subexpressions.

    The compiler's own values (temporaries, adjoints, buffers) are ``sp.Dummy`` symbols: a Dummy
    equals no other symbol, so a user's parameter named ``_t0`` or ``g_n_h1`` is never mistaken for
    the compiler's value of that name, in substitutions, in ``cse`` or in the name table."""

    def __init__(self, graph, printer_class: type[CodePrinter] = CodePrinter):
        self.graph = graph
        self.names = generated_names(graph)
        # Every value but a parameter's and a scalar constant's (a float) carries the batch axis.
        self.printer = printer_class(self.names, {n.symbol: n.shape for n in graph.nodes.values()},
                                   batched={n.symbol for n in graph.nodes.values()
                                            if n.kind != "param" and (n.kind, n.shape) != ("constant", ())})
        self._symbols: dict[str, sp.Dummy] = {}
        self._temps = (self.symbol(f"_t{i}") for i in itertools.count())

    def symbol(self, name: str, like: sp.Expr | tuple | None = None) -> sp.Dummy:
        """The compiler's value printed as ``name`` (the same Dummy each time it is asked for);
        ``like``: an expression of the same shape, batched or not, or that as ``(batched, shape)``
        (the printer needs to know)."""
        assert not name.startswith("n_"), name  # that namespace belongs to the nodes
        if name not in self._symbols:
            self._symbols[name] = sp.Dummy(name)
            self.names[self._symbols[name]] = name
            if like is not None:
                self.printer.declare(self._symbols[name], like if isinstance(like, tuple) else self.printer.info(like))
        return self._symbols[name]

    def code(self, expr: sp.Expr) -> str:
        return self.printer.doprint(expr)

    def lines(self, targets: list[tuple[str, sp.Expr, str]], indent: str = "    ") -> list[str]:
        """``target = wrap(expr)`` for each (target, expr, wrap); ``wrap`` holds ``{}`` for the code."""
        return cse_lines(self.printer, targets, self._temps, lambda temp: self.names[temp], indent)


def cse_lines(printer, targets: list[tuple[str, sp.Expr, str]], temps, name_of, indent: str = "    ") -> list[str]:
    """``target = wrap(expr)`` for each (target, expr, wrap), the subexpressions they share computed
    once first, as the values ``temps`` gives (``name_of(temp)``: its printed name, registered in the
    printer's name table by then)."""
    replacements, reduced = sp.cse([e for _, e, _ in targets], symbols=temps, order="none")
    out = []
    for temp, value in replacements:
        printer.declare(temp, printer.info(value))
        out.append(f"{indent}{name_of(temp)} = {printer.doprint(value)}")
    return out + [f"{indent}{t} = {wrap.format(printer.doprint(v))}" for (t, _, wrap), v in zip(targets, reduced)]
