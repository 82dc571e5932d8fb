"""An HTML fragment (MathML inside) for notebooks; every piece of user text is escaped."""
from __future__ import annotations

from html import escape

from .mathml import equation_mathml
from .text import text_name


def derivation_html(d) -> str:
    parts = [f"<div class='rnnsym-derivation'><h3>dL/d{escape(text_name(d.target))}</h3><ol>"]
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
