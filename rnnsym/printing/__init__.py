"""Printers: records in, text out. Each format is its own module; the math never imports them.

- ``text``: Unicode (∂, subscripts) for terminals
- ``latex``: LaTeX with the chain-rule factor order kept
- ``mathml``: MathML via latex2mathml, checked so that no unknown LaTeX command leaks through
- ``markdown``: ``$$…$$`` blocks for GitHub and static-site tools
- ``data``: plain dicts for JSON
- ``html``: a fragment for notebooks
- ``document``: a complete LaTeX document (``tex``) for pdflatex, long rows broken
"""
FORMATS = ("text", "latex", "mathml", "markdown", "json", "tex")
