"""An HTML fragment (MathML inside) for notebooks; every piece of user text is escaped."""
from __future__ import annotations

from html import escape

from .mathml import equation_mathml
from .text import text_name


def derivation_html(d, picture: bool = True) -> str:
    """The derivation as HTML: the unrolled network with this gradient's paths in colour (where
    the graph has paths to draw), then every step in MathML."""
    parts = [f"<div class='rnnsym-derivation'><h3>dL/d{escape(text_name(d.target))}</h3>"]
    if picture and d.path_terms:
        from ..docs.svg import picture_svg  # the picture is drawn by the docs package

        parts.append(f"<figure>{picture_svg(d.network, d)}</figure>")
    parts.append("<ol>")
    for step in d.steps:
        parts.append(f"<li><strong>{escape(step.title)}</strong>")
        for eq in step.equations:
            label = f" <em>({escape(eq.label)})</em>" if eq.label else ""
            parts.append(f"<div>{equation_mathml(eq)}{label}</div>")
        if step.note:
            parts.append(f"<p>{escape(step.note)}</p>")
        parts.append("</li>")
    parts.append("</ol></div>")
    return "".join(parts)
