"""Markdown with ``$$…$$`` display math, as GitHub and common static-site tools render it."""
from __future__ import annotations

from html import escape

from ..records import Equation, Total
from .base import prose_names, step_notes
from .latex import LatexStepPrinter, expr_latex, name_latex
from .text import text_name


def _text(value) -> str:
    """Prose and names for Markdown: HTML-escaped, since Markdown renderers pass HTML through."""
    return escape(str(value), quote=False)


def derivation_markdown(d, heading_level: int = 2) -> str:
    latex = LatexStepPrinter()
    graph = d.network.graph

    def prose(value) -> str:  # node names as the math shows them: o₅, not o5
        return _text(prose_names(str(value), graph.nodes, text_name))

    h = "#" * heading_level
    out = [f"{h} dL/d{prose(d.target)}: {prose(graph[d.target].role)}", ""]
    for i, (step, note) in enumerate(zip(d.steps, step_notes(d.steps)), 1):
        out += [f"**{i}. {prose(step.title)}**", ""]
        for eq in step.equations:
            if eq.label:
                out.append(f"*{prose(eq.label)}*")
                out.append("")
            out += ["$$", latex.equation(eq), "$$", ""]
        if note:
            out += [f"> {prose(note)}", ""]
    result = latex.equation(Equation(Total(d.network.loss_name, d.target), (d.shown_result,)))
    out += ["Result, in node symbols:", "", "$$", result, "$$", ""]
    return "\n".join(out)


def network_markdown(network, derivations) -> str:
    """One Markdown document for a network: its equations, then every derivation."""
    out = [f"# rnnsym derivations: {_text(network.title)}", "",
           f"Network `{network.name}`, {network.steps} steps; options: "
           + ", ".join(f"`{k}={v}`" for k, v in network.options.items()) + ".", "",
           "## The network", ""]
    for node in network.graph.nodes.values():
        if node.expr is not None:
            out += ["$$", f"{name_latex(node.name)} = {expr_latex(node.expr)}", "$$", ""]
    for d in derivations:
        out.append(derivation_markdown(d))
    return "\n".join(out)
