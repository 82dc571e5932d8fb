"""An HTML fragment (MathML inside) for notebooks; every piece of user text is escaped."""
from __future__ import annotations

from html import escape

from .base import prose_names, step_notes
from .mathml import equation_mathml
from .text import text_name


def derivation_html(d, picture: bool = True) -> str:
    """The derivation as HTML: the unrolled network with this gradient's paths in colour (where
    the graph has paths to draw), then every step in MathML."""
    names = getattr(getattr(d, "network", None), "graph", None)
    names = names.nodes if names is not None else ()

    def prose(text: str) -> str:  # node names as the math shows them: o₅, not o5
        return escape(prose_names(text, names, text_name))

    parts = [f"<div class='rnnsym-derivation'><h3>dL/d{escape(text_name(d.target))}</h3>"]
    if picture and d.path_terms:
        from ..docs.svg import picture_svg  # the picture is drawn by the docs package

        parts.append(f"<figure>{picture_svg(d.network, d)}</figure>")
    parts.append("<ol>")
    for step, note in zip(d.steps, step_notes(d.steps)):
        parts.append(f"<li><strong>{prose(step.title)}</strong>")
        for eq in step.equations:
            label = f" <em>({prose(eq.label)})</em>" if eq.label else ""
            parts.append(f"<div>{equation_mathml(eq)}{label}</div>")
        if note:
            parts.append(f"<p>{prose(note)}</p>")
        parts.append("</li>")
    parts.append("</ol></div>")
    return "".join(parts)
