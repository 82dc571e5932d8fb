"""Derivation docs: an offline web site, a Markdown document, and pictures of the unrolled network.

- :func:`build` writes the site (or Markdown) for a network into a folder, atomically;
- :func:`picture` / :func:`picture_svg` draw the unrolled network with a gradient's chain-rule
  paths highlighted, one colour per path (for notebooks and pages alike).

The pieces: ``layout`` (where nodes go), ``svg`` (drawing), ``pages`` (HTML), ``markdown``,
``site`` (building and replacing the folder), ``cli`` (``rnnsym docs``), ``style.css``.

>>> import rnnsym as rs
>>> picture(rs.seed_rnn(steps=4), "w3")._repr_svg_().startswith("<svg")
True
"""
from .site import FORMATS, MARKER, build
from .svg import Picture, picture_svg


def picture(network, highlight=None, *, max_steps: int | None = None) -> Picture:
    """The unrolled ``network`` as a picture that displays itself in Jupyter; ``highlight``: a
    parameter name (or Derivation) whose paths are drawn in colour."""
    return Picture(network, highlight, max_steps=max_steps)


__all__ = ["FORMATS", "MARKER", "Picture", "build", "picture", "picture_svg"]
