"""The one hook from the core to the presentation side, as SymPy's ``Printable`` is.

:class:`Network` and :class:`Derivation` inherit :class:`Displayable`. Its methods, and
:func:`render`, import a printer or the docs only when called, so importing the graph, the
engine, a derivation, a network or the numeric code never loads printing, docs or training (a
test checks this in a fresh interpreter). Which function renders which class in which format is
one table, looked up along the class's MRO, like SymPy's ``_print_<Class>`` methods.

>>> import rnnsym as rs
>>> render(rs.seed_rnn(steps=2).derive("w1"), "text").splitlines()[0]
'dL/dw₁: recurrent weight carrying o₁ into layer 2'
"""
from __future__ import annotations

from importlib import import_module

from .errors import RnnsymError

# (class name, format) -> (module, function). Modules are named, not imported, here: importing
# one is what this hook delays until a rendering is asked for.
RENDERERS = {
    ("Derivation", "text"): ("rnnsym.printing.text", "derivation_text"),
    ("Derivation", "latex"): ("rnnsym.printing.latex", "derivation_latex"),
    ("Derivation", "mathml"): ("rnnsym.printing.mathml", "derivation_mathml"),
    ("Derivation", "markdown"): ("rnnsym.printing.markdown", "derivation_markdown"),
    ("Derivation", "data"): ("rnnsym.printing.data", "derivation_dict"),
    ("Derivation", "html"): ("rnnsym.printing.html", "derivation_html"),
    ("Network", "html"): ("rnnsym.docs.pages", "network_fragment"),
    ("Network", "svg"): ("rnnsym.docs.svg", "picture_svg"),
}


def renderer(cls: type, fmt: str):
    """The function that renders instances of ``cls`` in ``fmt``, or None if there is none."""
    for klass in cls.__mro__:
        entry = RENDERERS.get((klass.__name__, fmt))
        if entry is not None:
            module, name = entry
            return getattr(import_module(module), name)
    return None


def render(obj, fmt: str):
    """``obj`` in format ``fmt`` (``text``, ``latex``, ``mathml``, ``markdown``, ``data``,
    ``html``, ``svg``); a format the object has no printer for is a one-line error."""
    function = renderer(type(obj), fmt)
    if function is None:
        formats = sorted(f for (name, f) in RENDERERS if any(k.__name__ == name for k in type(obj).__mro__))
        raise RnnsymError(f"no {fmt!r} rendering for a {type(obj).__name__}; it has: {', '.join(formats) or 'none'}")
    return function(obj)


class Displayable:
    """Notebook display (``_repr_html_``, ``_repr_svg_``, ``_repr_latex_``) through :func:`render`.
    A format a class has no printer for returns None, which IPython takes as "not offered"."""

    def _display(self, fmt: str):
        function = renderer(type(self), fmt)
        return None if function is None else function(self)

    def _repr_html_(self) -> str | None:
        return self._display("html")

    def _repr_svg_(self) -> str | None:
        return self._display("svg")

    def _repr_latex_(self) -> str | None:
        latex = self._display("latex")
        return None if latex is None else "$\\displaystyle " + latex + "$"
