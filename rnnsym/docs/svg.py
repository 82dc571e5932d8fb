"""The picture of an unrolled network as SVG, written directly from :mod:`rnnsym.docs.layout`.

Why hand-written SVG rather than matplotlib's SVG backend: the picture is committed in
``docs/site`` and a test fails when it drifts, so it must be byte-for-byte the same on every
machine; matplotlib's SVG output changes with its version and the fonts installed (glyphs become
paths, ids are random unless pinned). Written here, names stay real ``<text>`` (selectable,
searchable, escaped once in one place), paths are plain coloured lines a CSS-free viewer (GitHub,
a notebook, a print) draws the same, and the whole drawer is a page of code over a layout module
that is tested on its own.

Only presentation attributes are used (no ``<style>``, no ids, no scripts), so several pictures can
sit in one HTML page or notebook without clashing.

>>> import rnnsym as rs
>>> svg = picture_svg(rs.seed_rnn(steps=4), highlight="w3")
>>> svg.startswith("<svg") and svg.count('data-path="1"') > 0
True
"""
from __future__ import annotations

import math
from html import escape

from ..derivation import _path_label as path_label
from ..printing.base import prose_names
from ..printing.text import text_name
from .layout import MARGIN, Layout, network_layout

# Each path its own style: the seven Okabe–Ito colours (safe for colour-blind readers; the pale
# yellow is left out) solid, then the same seven dashed, then dotted. Darker variants of the same
# hues (navy beside black) could not be told apart, so a colour comes back only with another dash.
# Paths past these 21 (the farthest, at long sequences) are drawn alike, in one grey, and the
# legend says so.
PATH_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
PATH_DASHES = (None, "7 4", "0.5 5")  # solid, dashed, dotted (round caps turn 0.5-long dashes into dots)
PATH_STYLES = tuple((colour, dash) for dash in PATH_DASHES for colour in PATH_COLOURS)
GROUPED_STYLE = ("#7b8794", "2 3")
LEGEND_ROWS = len(PATH_STYLES)  # one legend row per styled path, then one for the grouped rest

_INK, _EDGE, _MUTED = "#1f2933", "#9aa5b1", "#52606d"
_ATTENTION = "#c2410c"  # the edges through a seq2seq network's attention
_FILL = {"hidden": "#e8f0fb", "output": "#e6f4ea", "loss": "#fdecea", "input": "#ffffff",
         "target": "#ffffff", "constant": "#f5f5f5", "param": "#fff8e1"}
_STROKE = {"hidden": "#35507a", "output": "#2f6b3d", "loss": "#a23b33", "input": "#52606d",
           "target": "#52606d", "constant": "#9aa5b1", "param": "#a07a00"}


def path_style(index: int) -> tuple[str, str | None]:
    """The colour and dash pattern (None: solid) of path ``index`` (0-based), the same in the
    picture, its legend and the page's tables; paths past :data:`PATH_STYLES` share one grey."""
    return PATH_STYLES[index] if index < len(PATH_STYLES) else GROUPED_STYLE


def path_colour(index: int) -> str:
    """The colour of path ``index`` (0-based); see :func:`path_style`."""
    return path_style(index)[0]


def _dash(dash: str | None) -> str:
    return f' stroke-dasharray="{dash}"' if dash else ""


_CSS_DASH = {None: "solid", PATH_DASHES[1]: "dashed", PATH_DASHES[2]: "dotted", GROUPED_STYLE[1]: "dotted"}


def path_swatch(index: int) -> str:
    """A short line in path ``index``'s style (CSS's solid, dashed or dotted), for HTML tables."""
    colour, dash = path_style(index)
    return f'<span class="swatch" style="border-top: 4px {_CSS_DASH[dash]} {colour}"></span>'


def _name(name: str, size: float, **attrs) -> str:
    """A node name as SVG text, subscript written as such: ``o5`` → o₅, ``W_hh`` → W_hh."""
    base, sub = split_subscript(name)
    extra = "".join(f' {k.replace("_", "-")}="{escape(str(v))}"' for k, v in attrs.items())
    text = f'<text{extra} font-size="{size:g}" font-family="Georgia, \'DejaVu Serif\', serif" font-style="italic" ' \
           f'text-anchor="middle" dominant-baseline="central">{escape(base)}'
    if sub:
        text += f'<tspan font-size="{size * 0.72:.3g}" dy="{size * 0.3:.3g}">{escape(sub)}</tspan>'
    return text + "</text>"


def split_subscript(name: str) -> tuple[str, str]:
    """``("o", "5")`` for ``o5``, ``("W", "hh")`` for ``W_hh``, ``(name, "")`` otherwise.

    >>> split_subscript("o12"), split_subscript("W_hh"), split_subscript("<script>")
    (('o', '12'), ('W', 'hh'), ('<script>', ''))
    """
    if "_" in name.strip("_"):
        base, _, sub = name.partition("_")
        return base, sub
    stripped = name.rstrip("0123456789")
    if stripped and stripped != name and stripped.isalpha():
        return stripped, name[len(stripped):]
    return name, ""


def _trim(x1, y1, x2, y2, w1, h1, w2, h2):
    """The segment between two box centres, cut back to the boxes' borders."""
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy)
    if length == 0:
        return x1, y1, x2, y2

    def cut(w, h):  # fraction of the segment inside a w×h box around an end
        return min(w / 2 / abs(dx) if dx else math.inf, h / 2 / abs(dy) if dy else math.inf)

    a, b = cut(w1, h1), cut(w2, h2)
    return x1 + dx * a, y1 + dy * a, x2 - dx * b, y2 - dy * b


def _points(layout: Layout, edge) -> list[tuple[float, float]]:
    """Where an edge is drawn: its route round other nodes, or the straight segment between its
    ends cut back to the boxes' borders."""
    route = layout.routes.get((edge.source, edge.target))
    if route:
        return list(route)
    (x1, y1), (x2, y2) = layout.point(edge.source), layout.point(edge.target)
    s, t = layout.boxes.get(edge.source), layout.boxes.get(edge.target)
    x1, y1, x2, y2 = _trim(x1, y1, x2, y2, s.width if s else 20, s.height if s else 20,
                           t.width if t else 20, t.height if t else 20)
    return [(x1, y1), (x2, y2)]


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def picture_svg(network, highlight=None, *, max_steps: int | None = None, title: str | None = None) -> str:
    """The unrolled ``network`` as an SVG string; ``highlight``: a parameter (or node) name, or a
    Derivation, whose chain-rule paths are drawn over the edges, each in its own colour and dash
    pattern (:func:`path_style`).

    ``max_steps`` (default: :data:`rnnsym.docs.layout.MAX_STEPS`) is the number of step columns
    drawn before the middle ones are elided.
    """
    from .layout import MAX_STEPS

    layout = network_layout(network.graph, max_steps=MAX_STEPS if max_steps is None else max_steps)
    derivation = None
    if highlight is not None:
        derivation = highlight if hasattr(highlight, "path_terms") else network.derive(highlight)
    # Past the path view's limit there are too many paths to draw: the picture says how many.
    too_many = derivation is not None and derivation.path_terms is None
    paths = derivation.paths if derivation is not None and not too_many else []
    target = derivation.target if derivation is not None else None

    attention = _attention_nodes(network, layout)
    legend_rows = min(len(paths), LEGEND_ROWS) + (1 if len(paths) > LEGEND_ROWS or too_many else 0) + bool(attention)
    legend_height = 22 * legend_rows + (10 if legend_rows else 0)
    width, height = layout.width, layout.height + legend_height
    label = f"The unrolled network {network.name}, {network.steps} steps"
    if target is not None:
        count = derivation.path_count
        label += f", with the {count} chain-rule path{'s' if count != 1 else ''} of dL/d{target}"
    title = title or label
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="rnnsym-picture" role="img" '
           f'aria-label="{escape(title)}" width="{_f(width)}" height="{_f(height)}" '
           f'viewBox="0 0 {_f(width)} {_f(height)}">',
           f"<title>{escape(title)}</title>",
           f'<rect width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>']

    # Base edges, each with an arrowhead at its child; dashed into the elided middle.
    drawn = {edge: _points(layout, edge) for edge in layout.edges}
    for edge in layout.edges:
        points = drawn[edge]
        dash = ' stroke-dasharray="4 4"' if edge.elided else ""
        colour = _ATTENTION if edge.target in attention else _EDGE
        if len(points) == 2:
            (x1, y1), (x2, y2) = points
            out.append(f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{colour}" '
                       f'stroke-width="1.5"{dash}/>')
        else:
            out.append(f'<polyline points="{" ".join(f"{_f(x)},{_f(y)}" for x, y in points)}" fill="none" '
                       f'stroke="{colour}" stroke-width="1.5"{dash}/>')
        if edge.target in layout.boxes:
            out.append(_arrowhead(*points[-2], *points[-1], colour))

    # The chain-rule paths: one lane per path, side by side where they share an edge.
    # Lanes spread over at most 16 px, so that they stay clear of the weights written beside edges.
    spacing = min(5.0, 16.0 / max(len(paths) - 1, 1))
    lane_width = min(3.0, max(spacing, 0.8))
    target_edges: dict = {}  # the edge (or chip) where each path's last factor sits -> path index
    for index, path in enumerate(paths):
        offset = (index - (len(paths) - 1) / 2) * spacing
        colour, dash = path_style(index)
        for child, parent in zip(path, path[1:]):
            edge = layout.hop(child, parent)
            if edge is None:
                continue
            points = drawn[edge]
            for (x1, y1), (x2, y2) in zip(points, points[1:]):
                length = math.hypot(x2 - x1, y2 - y1)
                if length < 1:
                    continue
                nx, ny = -(y2 - y1) / length * offset, (x2 - x1) / length * offset
                out.append(f'<line data-path="{index + 1}" x1="{_f(x1 + nx)}" y1="{_f(y1 + ny)}" '
                           f'x2="{_f(x2 + nx)}" y2="{_f(y2 + ny)}" stroke="{colour}" stroke-width="{lane_width:g}" '
                           f'stroke-linecap="round"{_dash(dash)} opacity="0.9"/>')
        last = layout.hop(path[-2], path[-1]) if len(path) > 1 else None
        if last is not None:
            target_edges[last] = index

    # Weights written on their edges; the highlighted parameter in its path's colour.
    for edge in layout.edges:
        if not edge.label:
            continue
        (x1, y1), (x2, y2) = drawn[edge][-2:]  # a routed edge: beside its last segment
        length = math.hypot(x2 - x1, y2 - y1) or 1
        # Beside the edge, on its left-hand side: above a rightward edge, left of an upward one.
        mx, my = (x1 + x2) / 2 + (y2 - y1) / length * 15, (y1 + y2) / 2 - (x2 - x1) / length * 15
        if edge.label == target and edge in target_edges:
            colour = path_colour(target_edges[edge])
            half = max(14, 4.5 * len(edge.label) + 6)
            out.append(f'<rect x="{_f(mx - half)}" y="{_f(my - 10)}" width="{_f(2 * half)}" height="20" rx="4" '
                       f'fill="{colour}"/>')
            out.append(_name(edge.label, 14, x=_f(mx), y=_f(my), fill="#ffffff", font_weight="bold"))
        else:
            out.append(_name(edge.label, 14, x=_f(mx), y=_f(my), fill=_MUTED))

    # Nodes and chips on top.
    for box in layout.boxes.values():
        fill, stroke = _FILL.get(box.kind, "#ffffff"), _STROKE.get(box.kind, _INK)
        text_fill = _INK
        for edge, index in target_edges.items():
            if box.kind == "param" and edge.source == box.key:
                fill = stroke = path_colour(index)
                text_fill = "#ffffff"
        x, y, w, h = box.x - box.width / 2, box.y - box.height / 2, box.width, box.height
        node = network.graph[box.node]
        tip = f"<title>{escape(box.node)}: {escape(node.role or node.kind)}</title>"
        if box.kind in ("input", "target", "constant"):
            dash = ' stroke-dasharray="3 3"' if box.kind == "constant" else ""
            out.append(f'<g data-node="{escape(box.key)}">{tip}<circle cx="{_f(box.x)}" cy="{_f(box.y)}" '
                       f'r="{_f(w / 2)}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>')
        else:
            radius = 4 if box.kind == "param" else 7
            out.append(f'<g data-node="{escape(box.key)}">{tip}<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" '
                       f'height="{_f(h)}" rx="{radius}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>')
        out.append(_name(box.node, 13 if box.kind == "param" else 17, x=_f(box.x), y=_f(box.y - 1),
                         fill=text_fill) + "</g>")

    if layout.gap is not None:
        gx, gy = layout.gap
        out.append(f'<text x="{_f(gx)}" y="{_f(gy)}" font-size="22" fill="{_MUTED}" text-anchor="middle" '
                   f'dominant-baseline="central" font-family="sans-serif">…</text>')
        steps = layout.elided
        out.append(f'<text x="{_f(gx)}" y="{_f(gy + 24)}" font-size="10" fill="{_MUTED}" text-anchor="middle" '
                   f'font-family="sans-serif">steps {steps[0]}–{steps[-1]}</text>')
    for x, text in layout.column_titles.items():
        out.append(f'<text x="{_f(x)}" y="{_f(layout.axis_y)}" font-size="12" fill="{_MUTED}" '
                   f'text-anchor="middle" font-family="sans-serif">{escape(text)}</text>')

    # The legend: which colour is which path.
    y = layout.height + 6
    def legend_line(index):
        colour, dash = path_style(index)
        return (f'<line x1="{MARGIN}" y1="{_f(y + 8)}" x2="{MARGIN + 26}" y2="{_f(y + 8)}" '
                f'stroke="{colour}" stroke-width="4" stroke-linecap="round"{_dash(dash)}/>')

    names = network.graph.nodes
    for index, path in enumerate(paths[:LEGEND_ROWS]):
        label = path_label(network.graph, path)
        words = f"path {index + 1}: " + " → ".join(map(text_name, path)) + (
            f"  ({prose_names(label, names, text_name)})" if label else "")
        out.append(legend_line(index))
        out.append(f'<text x="{MARGIN + 36}" y="{_f(y + 12)}" font-size="13" fill="{_INK}" '
                   f'font-family="sans-serif">{escape(words)}</text>')
        y += 22
    if len(paths) > LEGEND_ROWS:
        out.append(legend_line(LEGEND_ROWS))
        out.append(f'<text x="{MARGIN + 36}" y="{_f(y + 12)}" font-size="13" fill="{_MUTED}" '
                   f'font-family="sans-serif">paths {LEGEND_ROWS + 1}–{len(paths)}: the other '
                   f'{len(paths) - LEGEND_ROWS} paths, all in this grey</text>')
    if too_many:
        out.append(f'<text x="{MARGIN}" y="{_f(y + 12)}" font-size="13" fill="{_MUTED}" font-family="sans-serif">'
                   f'{derivation.path_count} chain-rule paths: too many to draw (the recursive view gives the '
                   f'gradient)</text>')
        y += 22
    if attention:
        out.append(f'<line x1="{MARGIN}" y1="{_f(y + 8)}" x2="{MARGIN + 26}" y2="{_f(y + 8)}" stroke="{_ATTENTION}" '
                   f'stroke-width="2"/>')
        out.append(f'<text x="{MARGIN + 36}" y="{_f(y + 12)}" font-size="13" fill="{_INK}" font-family="sans-serif">'
                   f'attention: the encoder states stacked in H_enc, the scores e, the weights alpha, the context '
                   f'ctx and the attentional state ht (the gradient\'s shortcut to every encoder step)</text>')
    out.append("</svg>")
    return "\n".join(out)


def _attention_nodes(network, layout) -> set:
    """The drawn boxes of a seq2seq network's attention (rnnsym.networks.seq2seq.ATTENTION_NODES)."""
    from ..networks.seq2seq import ATTENTION_NODES

    if not network.options.get("attention"):
        return set()
    graph = network.graph
    return {key for key, box in layout.boxes.items() if box.node in graph.nodes and graph[box.node].base in ATTENTION_NODES}


def _arrowhead(x1, y1, x2, y2, colour) -> str:
    length = math.hypot(x2 - x1, y2 - y1) or 1
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    size = 7
    bx, by = x2 - ux * size, y2 - uy * size
    points = [(x2, y2), (bx - uy * size / 2, by + ux * size / 2), (bx + uy * size / 2, by - ux * size / 2)]
    return f'<polygon points="{" ".join(f"{_f(px)},{_f(py)}" for px, py in points)}" fill="{colour}"/>'


class Picture:
    """A picture for notebooks: displays itself as SVG (``_repr_svg_``).

    >>> import rnnsym as rs
    >>> Picture(rs.seed_rnn(steps=4), "w")._repr_svg_().count('data-path="4"') > 0
    True
    """

    def __init__(self, network, highlight=None, *, max_steps: int | None = None):
        self.network, self.highlight, self.max_steps = network, highlight, max_steps

    def _repr_svg_(self) -> str:
        return picture_svg(self.network, self.highlight, max_steps=self.max_steps)

    def __str__(self) -> str:
        return self._repr_svg_()


def flow_svg(grad_norms, width: int = 560, height: int = 240) -> str:
    """‖∂L/∂h_t‖ against the step t on a log scale, as a small line chart (same reasons as above:
    deterministic, plain SVG)."""
    values = [max(float(v), 1e-300) for v in grad_norms]
    logs = [math.log10(v) for v in values]
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    high = high if high > low else low + 1
    left, right, top, bottom = 64, 16, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(i: int) -> float:
        return left + plot_w * (i / max(len(values) - 1, 1))

    def py(v: float) -> float:
        return top + plot_h * (high - v) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="gradient size against step">']
    step = max(1, (high - low) // 6)
    for e in range(low, high + 1, step):
        y = py(e)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y:.1f}" font-size="11" text-anchor="end" '
                     f'dominant-baseline="central" fill="{_MUTED}">1e{e}</text>')
    for i in sorted({0, len(values) - 1, (len(values) - 1) // 2}):
        parts.append(f'<text x="{px(i):.1f}" y="{height - 12}" font-size="11" text-anchor="middle" '
                     f'fill="{_MUTED}">{i + 1}</text>')
    points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(logs))
    parts.append(f'<polyline points="{points}" fill="none" stroke="{PATH_COLOURS[0]}" stroke-width="2"/>')
    parts += [f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="2.5" fill="{PATH_COLOURS[0]}"/>' for i, v in enumerate(logs)]
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 1}" font-size="11" text-anchor="middle" '
                 f'fill="{_INK}">step t</text>')
    parts.append("</svg>")
    return "".join(parts)
