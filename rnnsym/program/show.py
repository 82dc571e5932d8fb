"""A program as plain text, one line per statement, in its own names: for reading and for diffs."""
from __future__ import annotations

import sympy as sp

from .ir import Accumulate, Compute, Fill, Read


def program_text(program) -> str:
    names = {s: sp.Symbol(v.name) for s, v in program.values.items()}

    def show(expr) -> str:
        return sp.sstr(expr.xreplace(names)) if isinstance(expr, sp.Basic) else str(expr)

    def line(s) -> str:
        target = program.values[s.target].name
        if isinstance(s, Read):
            return f"{target} = {s.source}[step {s.step}]" if s.step else f"{target} = {s.source}"
        if isinstance(s, Fill):
            return f"{target} = {s.value!r}"
        if isinstance(s, Compute):
            return f"{target} = {show(s.expr)}" + (f"  ({s.reduce} over components)" if s.reduce else "")
        if isinstance(s, Accumulate):
            parts = [show(s.carried) + "  [carried from the next step]"] if s.carried is not None else []
            parts += [f"{show(x.expr)}  [{x.kind.value} from {x.child}]" if len(s.shares) == 1 else show(x.expr)
                      for x in s.shares]
            return f"{target} = " + " + ".join(parts)
        raise TypeError(type(s).__name__)

    parts = [("forward", program.forward), ("loss", program.loss), ("backward", program.backward)]
    out = [f"# passes: {', '.join(program.passes) or 'none'}"]
    for title, statements in parts:
        out.append(f"{title}:")
        out += [f"    {line(s)}" for s in statements]
    return "\n".join(out)
