"""A complete LaTeX document of a network's derivations, for ``pdflatex``.

:func:`latex_document` writes a standalone ``.tex`` file that needs only Debian's
``texlive-latex-base`` (article, amsmath, amssymb, geometry): the network's equations, one
``\\section`` per parameter with each step's title as a ``\\subsection*``, and (when given) the
gradient check.

Three things make it compile for any network, not only the ones we tried:

- **Long rows are broken.** Display math does not wrap by itself, and a shared weight's total
  (or the "in inputs and parameters only" expansion, thousands of characters) would run off the
  page. Each equation is laid out in an ``align*`` row by row: a new row at ``=``, and inside an
  expression at the shallowest ``+``/``-``, then ``\\cdot``, then between two factors, judged by
  an estimate of each token's width. A ``\\left(`` left open at the end of a row is closed with
  ``\\right.`` and reopened with ``\\left.`` on the next, so brackets may span rows.
- **Every piece of user text is escaped.** Names (the network's, its title, a cell's symbols,
  parameter roles) reach the document only through SymPy's symbol printer (a name is an
  identifier, so it prints as letters, digits, sub- and superscripts) or :func:`tex_text`, which
  escapes LaTeX's special characters.
- **No raw Unicode.** ``pdflatex`` stops at a character it has no glyph for (``∂``, ``δ``, a
  Greek or CJK symbol name); each is written as a LaTeX command, or as its code point
  (``⟨U+6570⟩``) where LaTeX has none.

The line breaker reads the token stream of LaTeX that rnnsym's own printers produced (SymPy's
printer returns strings, not boxes); user text never reaches it as anything but printed symbols.

>>> import rnnsym as rs
>>> net = rs.seed_rnn(steps=2)
>>> tex = latex_document(net, [net.derive("w")])
>>> tex.startswith("\\\\documentclass"), tex.count("\\\\section{")
(True, 1)
"""
from __future__ import annotations

import re
import unicodedata

import sympy as sp

from ..records import Equation, Total
from .base import step_notes
from .latex import NamedPathsPrinter, _ExprPrinter, name_latex, name_paths

PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[utf8]{inputenc}
\usepackage{amsmath}
\usepackage{amssymb}
\usepackage[a4paper,margin=2cm]{geometry}
% a derivation's steps can be longer than a page: let its rows break across pages
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5\baselineskip}
% only Computer Modern's Type 1 fonts: textcomp's bullet would have METAFONT draw a bitmap font
\renewcommand{\labelitemi}{\ensuremath{\bullet}}
"""

# The page's text width is 17 cm (A4, 2 cm margins), about 48 em at 10 pt; rows are filled to a
# little less, since the width of a row is estimated, not measured.
ROW_EM = 43.0
_INDENT_EM = 1.0  # continuation rows start with \quad


# ---- text: user text and prose, escaped ---------------------------------------------------------
# ``\$`` in text is textcomp's dollar, a font pdflatex would have to make with METAFONT: math's is not.
_TEXT_SPECIALS = {"#": r"\#", "$": r"\ensuremath{\$}", "%": r"\%", "&": r"\&", "_": r"\_", "{": r"\{", "}": r"\}",
                  "\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", '"': "''"}

# Characters rnnsym's prose and names use, as LaTeX (valid in text and math alike).
_GREEK = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
          "finalsigma sigma tau upsilon phi chi psi omega").split()
_UNICODE = {}
for _i, _name in enumerate(_GREEK):
    _lower, _upper = chr(0x3B1 + _i), chr(0x391 + _i)
    _cmd = {"omicron": "o", "finalsigma": r"\varsigma"}.get(_name, "\\" + _name)
    _UNICODE[_lower] = r"\ensuremath{%s}" % _cmd
    if _name != "finalsigma":  # U+03A2 is unassigned
        _up = _name.capitalize()
        _UNICODE[_upper] = (r"\ensuremath{\%s}" % _up if _up in ("Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi",
                                                                  "Sigma", "Upsilon", "Phi", "Psi", "Omega")
                            else r"\ensuremath{\mathrm{%s}}" % {"Eta": "H", "Chi": "X", "Omicron": "O"}.get(
                                _up, _up[0]))
_UNICODE.update({
    "∂": r"\ensuremath{\partial}", "−": r"\ensuremath{-}", "·": r"\ensuremath{\cdot}", "×": r"\ensuremath{\times}",
    "→": r"\ensuremath{\to}", "←": r"\ensuremath{\leftarrow}", "↔": r"\ensuremath{\leftrightarrow}",
    "≈": r"\ensuremath{\approx}", "≤": r"\ensuremath{\le}", "≥": r"\ensuremath{\ge}", "≠": r"\ensuremath{\neq}",
    "∑": r"\ensuremath{\sum}", "∏": r"\ensuremath{\prod}", "⊙": r"\ensuremath{\odot}", "∘": r"\ensuremath{\circ}",
    "∞": r"\ensuremath{\infty}", "∇": r"\ensuremath{\nabla}", "∈": r"\ensuremath{\in}", "√": r"\ensuremath{\surd}",
    "′": r"\ensuremath{'}", "″": r"\ensuremath{''}", "‖": r"\ensuremath{\|}", "±": r"\ensuremath{\pm}",
    "ᵀ": r"\ensuremath{^{T}}", "…": r"\ensuremath{\ldots}", "⋯": r"\ensuremath{\cdots}", "°": r"\ensuremath{^{\circ}}",
    "µ": r"\ensuremath{\mu}", "ℓ": r"\ensuremath{\ell}",
    "—": "---", "–": "--", "‘": "`", "’": "'", "“": "``", "”": "''", "\u00a0": "~", "\u2009": r"\,",
})
_UNICODE.update({chr(0x2080 + d): r"\ensuremath{_{%d}}" % d for d in range(10)})
_UNICODE.update({c: r"\ensuremath{^{%d}}" % d for d, c in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")})
_UNICODE.update({"⁻": r"\ensuremath{^{-}}", "⁺": r"\ensuremath{^{+}}", "₋": r"\ensuremath{_{-}}", "₊": r"\ensuremath{_{+}}"})

# Accents LaTeX's text fonts can put on a letter (é = e + U+0301).
_ACCENTS = {"\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0308": '"', "\u0304": "=",
            "\u0307": ".", "\u030a": "r", "\u030c": "v", "\u0306": "u", "\u0327": "c", "\u030b": "H"}


def _unicode_char(c: str) -> str:
    """One non-ASCII character as LaTeX: a command, an accented ASCII letter, or its code point."""
    if c in _UNICODE:
        return _UNICODE[c]
    base, *marks = unicodedata.normalize("NFD", c)
    if base.isascii() and base.isalpha() and marks and all(m in _ACCENTS for m in marks):
        out = base
        for m in marks:
            accent = _ACCENTS[m]
            out = "\\%s{%s}" % (accent, out)
        return r"\text{%s}" % out
    # No glyph in the fonts pdflatex has by default (a CJK name, say): its code point, so the
    # document still compiles and two different names still look different.
    return r"\ensuremath{\langle\text{U+%04X}\rangle}" % ord(c)


def tex_unicode(tex: str) -> str:
    """``tex`` with every non-ASCII character written as LaTeX (valid in text and in math)."""
    return "".join(c if c.isascii() else _unicode_char(c) for c in tex)


def tex_text(text) -> str:
    """User text or prose for running text: LaTeX's specials escaped, Unicode written as LaTeX.

    >>> tex_text("a_b & 50% {x}")
    'a\\\\_b \\\\& 50\\\\% \\\\{x\\\\}'
    """
    return "".join(_TEXT_SPECIALS.get(c) or (c if c.isascii() else _unicode_char(c)) for c in str(text))


_WORD = re.compile(r"[^\W\d]\w*")


def tex_prose(text, names) -> str:
    """Prose with every word that is a node name in ``names`` set as math (``o5`` → ``$o_{5}$``),
    as the equations write it; everything else escaped by :func:`tex_text`."""
    out, at = [], 0
    for m in _WORD.finditer(str(text)):
        if m.group() in names:
            out += [tex_text(text[at:m.start()]), "$%s$" % tex_math_name(m.group())]
            at = m.end()
    out.append(tex_text(str(text)[at:]))
    return "".join(out)


def tex_math_name(name: str) -> str:
    """A node name as a math symbol (SymPy's printing), safe for pdflatex."""
    return tex_unicode(name_latex(name))


# ---- math: the printers' LaTeX, made breakable -------------------------------------------------
class _DocExprPrinter(_ExprPrinter):
    """SymPy's ``\\tanh{\\left(x \\right)}`` without the braces: the same output, but the argument's
    ``+`` signs are no longer inside a group, so a row can break there."""

    def _print_Function(self, expr, exp=None):
        tex = super()._print_Function(expr, exp)
        args = ", ".join(self._print(a) for a in expr.args)
        braced = r"{\left(%s \right)}" % args
        if tex.endswith(braced):
            tex = tex[: -len(braced)] + r"\left(%s \right)" % args
        return tex


_doc_expr_printer = _DocExprPrinter()


def _doc_expr(expr) -> str:
    return _doc_expr_printer.doprint(sp.sympify(expr)).replace("\\operatorname{", "\\mathrm{")


class _DocPrinter(NamedPathsPrinter):
    """The derivation printer, with expressions printed breakably."""

    def _print_Basic(self, e):
        return _doc_expr(e)

    expr = staticmethod(_doc_expr)


_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}]|\s+|[^\\{}\s]")

# Widths in em at 10 pt, roughly (Computer Modern): enough to decide where a row is full.
_FUNCTIONS = {"\\tanh", "\\log", "\\exp", "\\sin", "\\cos", "\\tan", "\\sinh", "\\cosh", "\\max", "\\min",
              "\\ln", "\\arctan", "\\sqrt", "\\operatorname"}
_OPERATORS = {"\\sum", "\\prod", "\\cdot", "\\times", "\\left", "\\right", "\\quad", "\\qquad", "\\;", "\\,",
              "\\leftarrow", "\\to", "\\in", "\\le", "\\ge", "\\neq", "\\approx", "\\pm"} | _FUNCTIONS
_WIDTH = {"+": 1.2, "-": 1.2, "=": 1.4, "\\leftarrow": 1.6, "\\cdot": 0.75, "\\times": 1.2, ",": 0.45,
          "(": 0.4, ")": 0.4, "[": 0.3, "]": 0.3, "\\quad": 1.0, "\\qquad": 2.0, "\\;": 0.28, "\\,": 0.17,
          "\\ldots": 1.2, "\\dots": 1.2, "\\cdots": 1.2, "\\sum": 1.5, "\\prod": 1.5, "\\partial": 0.6,
          "'": 0.3, "&": 0.0, "\\\\": 0.0}
_ONE_ARG = {"\\text", "\\mathrm", "\\mathbf", "\\mathit", "\\operatorname", "\\ensuremath", "\\hat", "\\bar",
            "\\dot", "\\ddot", "\\vec", "\\tilde", "\\check", "\\breve", "\\acute", "\\grave", "\\mathring",
            "\\boldsymbol", "\\overline", "\\underline", "\\widehat", "\\widetilde", "\\sqrt"}


def _parse(tex: str) -> list:
    """LaTeX tokens, with each ``{…}`` group as a nested list."""
    stack = [[]]
    for tok in _TOKEN.findall(tex):
        if tok == "{":
            stack.append([])
        elif tok == "}" and len(stack) > 1:
            group = stack.pop()
            stack[-1].append(group)
        else:
            stack[-1].append(tok)
    while len(stack) > 1:  # unbalanced input: close what is open (the printers never produce it)
        group = stack.pop()
        stack[-1].append(group)
    return stack[0]


def _unparse(items) -> str:
    return "".join("{" + _unparse(i) + "}" if isinstance(i, list) else i for i in items)


def _widths(items: list) -> list[float]:
    """The width of each item of a token list; a command's arguments carry its width (so a
    ``\\frac`` counts its wider part once), ``^``/``_`` scripts count at 70 %."""
    out = [0.0] * len(items)
    i = 0
    while i < len(items):
        tok = items[i]
        if isinstance(tok, list):
            out[i] = sum(_widths(tok))
        elif tok in ("^", "_") and i + 1 < len(items):
            out[i + 1] = 0.7 * _width_of(items[i + 1])
            i += 2
            continue
        elif tok in ("\\frac", "\\dfrac", "\\tfrac") and i + 2 < len(items):
            out[i] = max(_width_of(items[i + 1]), _width_of(items[i + 2])) + 0.3
            i += 3
            continue
        elif tok in ("\\text", "\\mathrm", "\\operatorname") and i + 1 < len(items):
            out[i] = 0.5 * max(len(_unparse([items[i + 1]]).replace("\\", "")) - 2, 1)  # less its braces
            i += 2
            continue
        elif tok in _ONE_ARG and i + 1 < len(items):
            out[i] = _width_of(items[i + 1])
            i += 2
            continue
        elif tok in ("\\left", "\\right") and i + 1 < len(items):
            out[i] = 0.0 if items[i + 1] == "." else 0.45
            i += 2
            continue
        elif tok in _WIDTH:
            out[i] = _WIDTH[tok]
        elif tok in _FUNCTIONS:
            out[i] = 0.5 * (len(tok) - 1)
        elif tok.isspace():
            out[i] = 0.0
        elif tok.startswith("\\"):
            out[i] = 0.6
        else:
            out[i] = 0.5
        i += 1
    return out


def _width_of(item) -> float:
    return sum(_widths(item if isinstance(item, list) else [item]))


def tex_width(tex: str) -> float:
    """The estimated width in em of a piece of math."""
    return sum(_widths(_parse(tex)))


def _is_space(tok) -> bool:
    return isinstance(tok, str) and tok.isspace()


def _is_operand_end(items, j) -> bool:
    """Whether item ``j`` ends an operand: a letter, digit, group or closing delimiter."""
    tok, before = items[j], items[j - 1] if j else None
    if before == "\\left":
        return False
    if before == "\\right":
        return True
    if isinstance(tok, list):
        return before not in ("\\mathrm", "\\text")  # \mathrm{diag} is a function's name
    if tok.startswith("\\"):
        return tok not in _OPERATORS and tok != "\\frac"
    return tok.isalnum() or tok in (")", "]", "'")


def _is_operand_start(tok) -> bool:
    if isinstance(tok, list) or tok in ("\\left", "\\sum", "\\prod") or tok in _FUNCTIONS:
        return True
    if tok.startswith("\\"):
        return tok not in _OPERATORS
    return tok.isalnum() or tok == "("


def _break_points(items) -> list[tuple[int, int, int]]:
    """``(index, kind, depth)`` where a row may break before ``items[index]``: kind 1 before a
    binary ``+``/``-``, 2 before ``\\cdot``, 3 at the space between two factors; ``depth``: how
    many ``\\left`` delimiters are open there (shallower is better)."""
    points, depth, last = [], 0, None  # last: index of the last item that is not a space
    for i, tok in enumerate(items):
        if last is not None and _is_operand_end(items, last):
            if tok in ("+", "-"):
                points.append((i, 1, depth))
            elif tok in ("\\cdot", "\\times"):
                points.append((i, 2, depth))
            elif _is_space(items[i - 1]) and _is_operand_start(tok):
                points.append((i, 3, depth))
        depth += (tok == "\\left") - (tok == "\\right")
        if not _is_space(tok):
            last = i
    return points


def break_math(tex: str, first: float, rest: float) -> list[tuple[str, int]]:
    """``tex`` cut into rows, the first at most ``first`` em wide and the others ``rest``:
    ``[(row, kind)]``, kind saying what the row starts with (0 the first row, then as in
    :func:`_break_points`). Brackets left open at a row's end are closed with ``\\right.`` and
    reopened on the next row with ``\\left.``."""
    items = _parse(tex)
    widths = _widths(items)
    points = _break_points(items)
    at = {i: (kind, depth) for i, kind, depth in points}
    prefix = [0.0]
    for w in widths:
        prefix.append(prefix[-1] + w)
    cuts, start, limit, i = [], 0, first, 0
    while i < len(items):
        if prefix[i + 1] - prefix[start] <= limit:
            i += 1
            continue
        # the row from ``start`` overflows at item i: cut at the best point inside it, the
        # shallowest and strongest (+ before · before a space) in its later part
        inside = [(p, *at[p]) for p in sorted(at) if start < p <= i]
        if inside:
            later_part = [c for c in inside if prefix[c[0]] - prefix[start] >= 0.4 * limit] or inside
            choice = min(later_part, key=lambda c: (c[2], c[1], -c[0]))[0]
        else:  # nothing to cut at before the edge: the first point after it (an overfull row)
            choice = next((p for p in sorted(at) if p > i), None)
            if choice is None:
                break
        cuts.append(choice)
        start, limit, i = choice, rest - _INDENT_EM, max(i, choice)
    return _rows(items, cuts, at)


def _rows(items, cuts, at) -> list[tuple[str, int]]:
    rows, bounds = [], [0, *cuts, len(items)]
    for a, b in zip(bounds, bounds[1:]):
        kind, depth_in = at[a] if a in at and a else (0, 0)
        part = items[a:b]
        while part and isinstance(part[0], str) and part[0].isspace():
            part = part[1:]
        body = _unparse(part).rstrip()
        opened = depth_in + sum(1 for t in part if t == "\\left") - sum(1 for t in part if t == "\\right")
        lead = "\\left. " * depth_in
        if kind in (1, 2):
            lead += "{}"
        elif kind == 3:
            lead += "{}\\cdot "
        rows.append((lead + body + " \\right." * opened, kind))
    return rows


def _aligned_rows(lhs: str, parts: list[tuple[str, str]], width: float, tag: str = "") -> list[str]:
    """One equation as ``align*`` rows: ``lhs &= …``, a new row at each ``=`` that does not fit,
    long right-hand sides broken by :func:`break_math`. ``width``: the em available right of the
    alignment point; ``tag``: a label for the first row (``\\tag*``)."""
    rows: list[str] = []
    lead = f"{lhs} &" if lhs else "&"
    room = width - (0.5 * len(tag) + 2.0 if tag else 0.0)
    line, used = "", 0.0
    for rel, rhs in parts:
        piece_w = tex_width(rel) + tex_width(rhs)
        if line and used + piece_w > room:
            rows.append(line)
            line, used, room = "", 0.0, width
        broken = break_math(rhs, room - used - tex_width(rel), width)
        first, *more = broken
        line += ("" if not line else " ") + f"{rel} {first[0]}"
        used += tex_width(rel) + tex_width(first[0])
        for text, _ in more:
            rows.append(line)
            line, used, room = f"\\quad {text}", _INDENT_EM + tex_width(text), width
    rows.append(line)
    out = [(lead if k == 0 else "&") + r for k, r in enumerate(rows)]
    if tag:
        out[0] += r" \tag*{%s}" % tag
    return out


def _equation_rows(printer, eq: Equation, lhs_width: float, tag: str = "") -> list[str]:
    lhs = tex_unicode(printer.doprint(eq.lhs))
    rel = r"\leftarrow" if eq.relation == "←" else "="
    parts = [(rel, tex_unicode(printer.doprint(r))) for r in eq.rhs]
    if tex_width(lhs) > lhs_width:  # a long left side on rows of its own, in the right column
        head = [r for r, _ in break_math(lhs, ROW_EM - lhs_width, ROW_EM - lhs_width)]
        rows = ["&" + r if k == 0 else "&\\quad " + r for k, r in enumerate(head)]
        if tag:
            rows[0] += r" \tag*{%s}" % tag
        return rows + (_aligned_rows("", parts, ROW_EM - lhs_width) if parts else [])
    if not parts:
        return [f"{lhs} &" + (r" \tag*{%s}" % tag if tag else "")]
    return _aligned_rows(lhs, parts, ROW_EM - lhs_width, tag)


def _align(rows: list[str]) -> str:
    return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}\n"


def _lhs_column(printer, equations) -> float:
    """The width of the alignment's left column: the widest left side, up to a third of a row
    (a wider one goes on rows of its own)."""
    widths = [tex_width(tex_unicode(printer.doprint(eq.lhs))) for eq in equations if eq.rhs]
    fitting = [w for w in widths if w <= ROW_EM / 3]
    return max(fitting, default=0.0) if fitting else ROW_EM / 3


# ---- the document ------------------------------------------------------------------------------
def _derivation_section(d, names) -> str:
    printer = _DocPrinter()
    graph = d.network.graph
    role = graph[d.target].role
    heading = r"$dL/d%s$" % tex_math_name(d.target) + (": " + tex_prose(role, names) if role else "")
    out = [r"\section{%s}" % heading, ""]
    for i, (step, equations, note) in enumerate(zip(d.steps, name_paths(d.steps), step_notes(d.steps)), 1):
        out += [r"\subsection*{%d.~%s}" % (i, tex_prose(step.title, names)), ""]
        if equations:
            column = _lhs_column(printer, equations)
            rows = []
            for eq in equations:
                tag = r"\footnotesize %s" % tex_prose(eq.label, names) if eq.label else ""
                rows += _equation_rows(printer, eq, column, tag)
            out.append(_align(rows))
        if note:
            out += [tex_prose(note, names), ""]
    result = Equation(Total(d.network.loss_name, d.target), (d.shown_result,))
    column = _lhs_column(printer, [result])
    out += [r"\paragraph{Result, in node symbols.}", _align(_equation_rows(printer, result, column))]
    return "\n".join(out)


def _network_section(network, names) -> str:
    printer = _DocPrinter()
    equations = [Equation(sp.Symbol(node.name), (node.expr,)) for node in network.graph.nodes.values()
                 if node.expr is not None]
    column = _lhs_column(printer, equations)
    rows = [r for eq in equations for r in _equation_rows(printer, eq, column)]
    options = ", ".join(r"\texttt{%s=%s}" % (tex_text(k), tex_text(v)) for k, v in network.options.items())
    out = [r"\section*{The network}", "",
           # ragged: option names in \texttt do not hyphenate
           r"{\raggedright Network \texttt{%s}, %d steps%s.\par}" % (
               tex_text(network.name), network.steps, "; options: " + options if options else ""), ""]
    if rows:
        out.append(_align(rows))
    return "\n".join(out)


def _check_section(derivations, report) -> str:
    rows = [r"\section*{Gradient check}", "",
            "Compiled gradients against central differences (float64, step %s) at a random point: "
            "seed %d, batch of %d." % (tex_text(f"{report.eps:g}"), report.seed, report.batch), "",
            r"\begin{center}", r"\begin{tabular}{lrrr}",
            r"parameter & analytic & finite difference & relative error \\ \hline"]
    rows += [r"$%s$ & %s & %s & %s \\" % (tex_math_name(r.name), tex_text(f"{r.analytic:.10g}"),
                                          tex_text(f"{r.numeric:.10g}"), tex_text(f"{r.rel_error:.1e}"))
             for r in report.rows]
    verdict = "agrees" if report.ok else "DISAGREES"
    rows += [r"\end{tabular}", r"\end{center}", "",
             "Largest relative error %s (tolerance %s): %s." % (
                 tex_text(f"{report.max_rel_error:.1e}"), tex_text(f"{report.tolerance:g}"), verdict), ""]
    numeric = {r.name: r.numeric for r in report.rows}
    shared = [d for d in derivations if _has_path_values(d) and d.target in numeric]
    if shared:
        rows += ["A weight with several paths: each path's term at the same point, and their sum.", "",
                 r"\begin{itemize}"]
        for d in shared:
            values = d.evaluate(report.params, report.x, report.y)
            terms = " + ".join(f"({v:.6e})" for v in values)
            rows.append(r"\item $dL/d%s$: %s = %s; finite difference %s" % (
                tex_math_name(d.target), tex_text(terms), tex_text(f"{sum(values):.10g}"),
                tex_text(f"{numeric[d.target]:.10g}")))
        rows += [r"\end{itemize}", ""]
    return "\n".join(rows)


def _has_path_values(d) -> bool:
    """Several paths, each a plain expression with one number (a scalar weight's)."""
    scalar = d.network.param_shapes.get(d.target, ()) == ()
    return d.path_terms is not None and d.path_count > 1 and scalar and all(isinstance(t, sp.Basic) for t in d.terms)


def latex_document(network, derivations, *, title: str | None = None, report=None) -> str:
    """A standalone LaTeX document (``pdflatex``) of ``network`` and its ``derivations``.

    One ``\\section`` per derivation, each step's title a ``\\subsection*``, long rows broken to
    the page's width; ``title`` (default: the network's title) and every name escaped;
    ``report``: a :class:`~rnnsym.numeric.gradcheck.GradcheckReport` to add as a table.
    """
    from .. import __version__

    names = set(network.graph.nodes)
    heading = title if title is not None else f"rnnsym derivations: {network.title}"
    out = [PREAMBLE,
           r"\title{%s}" % tex_text(heading),
           r"\author{}",
           r"\date{Written by rnnsym %s}" % tex_text(__version__),
           r"\begin{document}",
           r"\maketitle", "",
           _network_section(network, names)]
    out += [_derivation_section(d, names) for d in derivations]
    if report is not None:
        out.append(_check_section(derivations, report))
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"
