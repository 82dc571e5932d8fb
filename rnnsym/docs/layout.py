"""Where each node of an unrolled network goes in its picture: geometry only, no drawing.

The picture follows the article's figure: time runs left to right, one column per step; hidden
nodes sit on the middle band, each step's inputs below it, bias-like parameters above it, and the
output and the loss at the right end. A weight that multiplies one node's value (``w·x4``,
``w3·o3``) is written *on the edge* it scales, as the article does; any other parameter (a bias)
is a small chip above the node it feeds, one chip per node it feeds. Where a step has several
hidden nodes (an LSTM's gates, cell and state), each chip sits beside its node instead, and an
edge between two nodes of one column that would cross the nodes between them goes round them on
a lane to the right of the column.

Only the generic graph interface is read (``node.kind``, ``node.step``, ``node.expr``,
``graph.parents``), so any cell laid out by the engine gets a picture.

Long sequences stay legible: past ``max_steps`` step columns, the middle steps are elided and
drawn as one "…" column; edges into elided nodes end at it.

>>> import rnnsym as rs
>>> layout = network_layout(rs.seed_rnn(steps=4).graph)
>>> layout.boxes["o4"].column, layout.edge_between("x4", "o4").label
(4, 'w')
>>> network_layout(rs.seed_rnn(steps=100).graph).elided[:2]
(3, 4)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

# Sizes in SVG user units (px). The band of chips above and of inputs below are lower than the
# hidden band, whose boxes stand for whole layers.
COLUMN_WIDTH = 104
GAP_WIDTH = 64
MARGIN = 24
NODE_SIZE = 44
CHIP_HEIGHT = 22
CHIP_ROW = 30
NODE_ROW = 74
AXIS_HEIGHT = 26
LANE_START = 10  # lanes round a column: the first this far right of the nodes' border,
LANE_STEP = 7  # the next ones this much further

# Past this many step columns, the middle steps are elided; this many stay at each end.
MAX_STEPS = 12
KEEP_HEAD = 3
KEEP_TAIL = 3

# Bands from top to bottom.
BANDS = ("chips", "outputs", "hidden", "inputs")


@dataclass(frozen=True)
class Box:
    """One drawn item: a node, or one chip of a parameter (key ``"b@o4"``: ``b`` feeding ``o4``)."""

    key: str
    node: str  # the graph node it shows
    kind: str
    column: int
    x: float  # centre
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Edge:
    """A drawn edge from ``source`` to ``target`` (box keys), with the weight written on it."""

    source: str
    target: str
    label: str | None = None  # a parameter name, for a weight on the edge
    elided: bool = False  # one end is in the elided middle and drawn at the "…"


@dataclass
class Layout:
    """Boxes and edges with positions; :meth:`hop` maps a chain-rule step onto what is drawn."""

    width: float
    height: float
    boxes: dict[str, Box]
    edges: list[Edge]
    column_titles: dict[float, str]  # x -> "t = 3"
    axis_y: float  # where the column titles are written
    elided: tuple[int, ...] = ()  # the steps left out
    gap: tuple[float, float] | None = None  # where the "…" is drawn
    _hops: dict[tuple[str, str], Edge] = field(default_factory=dict, repr=False)
    _hidden_nodes: frozenset[str] = frozenset()
    routes: dict[tuple[str, str], tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """Edges that go round the nodes between their ends: (source, target) -> the points drawn."""

    def edge_between(self, source: str, target: str) -> Edge | None:
        """The drawn edge ``source → target`` (box keys), if there is one."""
        for edge in self.edges:
            if edge.source == source and edge.target == target:
                return edge
        return None

    def hop(self, child: str, parent: str) -> Edge | None:
        """The drawn edge that stands for the chain-rule factor ``∂child/∂parent`` (node names).

        ``∂o4/∂o3`` is the edge ``o3 → o4``; ``∂o4/∂w`` is the edge ``x4 → o4`` that carries
        ``w``; ``∂o4/∂b4`` the edge from the chip ``b4@o4``. None where both ends are elided.
        """
        return self._hops.get((child, parent))

    def point(self, key: str) -> tuple[float, float]:
        """Where an edge end is drawn: the box centre, or the "…" for an elided node."""
        if key in self.boxes:
            box = self.boxes[key]
            return box.x, box.y
        assert self.gap is not None, key
        return self.gap


def _scaled_nodes(expr: sp.Expr, params: set[str], others: set[str]) -> dict[str, str]:
    """``{parameter: node}`` for each product ``parameter·node`` in ``expr`` (w·x4 → {w: x4}).

    Only a product of exactly one parameter and exactly one other node counts, and only if the
    parameter is used nowhere else in ``expr``: then the weight belongs on that one edge.
    """
    found: dict[str, set[str]] = {}
    uses: dict[str, int] = {}
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Symbol) and sub.name in params:
            uses[sub.name] = uses.get(sub.name, 0) + 1
        # A scalar product w·x4, or a matrix-vector product (rnnsym's MatVec(W_ih, x1)).
        if sub.is_Mul or isinstance(sub, sp.MatMul) or type(sub).__name__ == "MatVec":
            names = [a.name for a in sub.args if isinstance(a, (sp.Symbol, sp.MatrixSymbol))]
            ps = [n for n in names if n in params]
            ns = [n for n in names if n in others]
            if len(ps) == 1 and len(ns) == 1 and len(names) == len(sub.args) - (1 if sub.args[0].is_Number else 0):
                found.setdefault(ps[0], set()).add(ns[0])
    return {p: next(iter(ns)) for p, ns in found.items() if len(ns) == 1 and uses.get(p) == 1}


def network_layout(graph, *, max_steps: int = MAX_STEPS) -> Layout:
    """Lay out ``graph`` (an :class:`rnnsym.graph.Graph`) as the article draws an unrolled RNN."""
    nodes = graph.nodes
    params = {n for n, node in nodes.items() if node.kind == "param"}
    computed = [n for n, node in nodes.items() if node.expr is not None]

    # Weights on edges, and the chips for every other parameter use.
    edge_labels: dict[tuple[str, str], str] = {}  # (source node, child) -> weight
    chips: list[tuple[str, str]] = []  # (param, child)
    for child in computed:
        parents = graph.parents(child)
        others = {p for p in parents if p not in params}
        on_edges = _scaled_nodes(nodes[child].expr, params, others)
        for param, source in on_edges.items():
            edge_labels[(source, child)] = param
        chips += [(p, child) for p in parents if p in params and p not in on_edges]

    # Columns: one per step that holds hidden nodes, inputs or constants; the output layer gets
    # its own column after them unless it shares a step with hidden nodes; the loss comes last.
    step_kinds = ("hidden", "input", "constant")
    steps = sorted({node.step for node in nodes.values() if node.kind in step_kinds and node.step is not None})
    elided: tuple[int, ...] = ()
    if len(steps) > max_steps:
        elided = tuple(steps[KEEP_HEAD:len(steps) - KEEP_TAIL])
    shown_steps = [s for s in steps if s not in elided]
    column_of_step: dict[int, int] = {}
    gap_column = None
    column = 0
    for s in shown_steps:
        if elided and gap_column is None and s > elided[0]:
            gap_column = column
            column += 1
        column_of_step[s] = column
        column += 1
    outputs = [n for n, node in nodes.items() if node.kind == "output"]
    own_output_column = column if any(nodes[o].step not in column_of_step for o in outputs) else None
    if own_output_column is not None:
        column += 1
    loss_column = column

    def column_for(name: str) -> int | None:
        node = nodes[name]
        if node.kind == "loss":
            return loss_column
        if node.kind == "output":
            return column_of_step.get(node.step, own_output_column)
        if node.step in elided:
            return None
        if node.step is not None and node.step in column_of_step:
            return column_of_step[node.step]
        children = [c for c in graph.children(name) if column_for(c) is not None]
        return column_for(children[0]) if children else None

    def band_for(name: str) -> str:
        kind = nodes[name].kind
        if kind in ("input", "target"):
            return "inputs"
        if kind == "output" and own_output_column is None:
            return "outputs"
        return "hidden"

    # Place every node and chip: (column, band) cells, stacked in graph order.
    cells: dict[tuple[int, str], list[tuple[str, str, str]]] = {}  # -> [(key, node, kind)]
    hidden_nodes = set()
    for name, node in nodes.items():
        if node.kind == "param":
            continue
        col = column_for(name)
        if col is None:
            hidden_nodes.add(name)
            continue
        cells.setdefault((col, band_for(name)), []).append((name, name, node.kind))
    # Several hidden nodes in a step: a chip sits beside the hidden node it feeds, not above it.
    stacked = any(len(items) > 1 for (c, b), items in cells.items() if b == "hidden")
    side: dict[str, list[tuple[str, str]]] = {}  # hidden node -> [(chip key, param)]
    for param, child in chips:
        col = column_for(child)
        if col is None:
            continue
        if stacked and band_for(child) == "hidden":
            side.setdefault(child, []).append((f"{param}@{child}", param))
        else:
            cells.setdefault((col, "chips"), []).append((f"{param}@{child}", param, "param"))

    def band_height(band: str) -> float:
        rows = max((len(items) for (c, b), items in cells.items() if b == band), default=0)
        return rows * (CHIP_ROW if band == "chips" else NODE_ROW)

    band_top, y = {}, MARGIN
    for band in BANDS:
        band_top[band] = y
        y += band_height(band)
    axis_y = y + AXIS_HEIGHT / 2
    height = y + AXIS_HEIGHT + MARGIN / 2

    skips = _skip_edges(graph, cells) if stacked else {}
    lanes = max((max(lane.values()) + 1 for lane in skips.values()), default=0)
    chip_lane = max((_chip_width(param) for chips_of in side.values() for _, param in chips_of), default=0)
    # Room beside each node: its chips on the left, the lanes round the column on the right.
    half = NODE_SIZE / 2 + max(chip_lane + 16 if chip_lane else 0, LANE_START + LANE_STEP * lanes + 12 if lanes else 0)
    column_width = max(COLUMN_WIDTH, 2 * half)

    def column_x(col: int) -> float:
        x = MARGIN + col * column_width + column_width / 2
        if gap_column is not None and col > gap_column:
            x -= column_width - GAP_WIDTH
        return x

    boxes: dict[str, Box] = {}
    for (col, band), items in cells.items():
        row = CHIP_ROW if band == "chips" else NODE_ROW
        for i, (key, node, kind) in enumerate(items):
            if band == "chips":  # chips stack upwards from the node they feed
                i = len(items) - 1 - i
                w, h = _chip_width(node), CHIP_HEIGHT
            else:
                w = h = NODE_SIZE
            boxes[key] = Box(key, node, kind, col, column_x(col), band_top[band] + i * row + row / 2, w, h)
    for child, chips_of in side.items():  # side chips: left of their node, spread over its row
        node_box = boxes[child]
        spacing = min(CHIP_HEIGHT + 4, (NODE_ROW - 8) / len(chips_of))
        for i, (key, param) in enumerate(chips_of):
            w = _chip_width(param)
            y = node_box.y + (i - (len(chips_of) - 1) / 2) * spacing
            boxes[key] = Box(key, param, "param", node_box.column, node_box.x - NODE_SIZE / 2 - 8 - w / 2, y, w,
                             CHIP_HEIGHT)
    width = column_x(loss_column) + column_width / 2 + MARGIN
    gap = (column_x(gap_column), band_top["hidden"] + NODE_ROW / 2) if gap_column is not None else None

    # Edges: every parent -> child with at least one end drawn; weights on theirs.
    edges: list[Edge] = []
    hops: dict[tuple[str, str], Edge] = {}
    for child in computed:
        for parent in graph.parents(child):
            if parent in params:
                continue
            if parent in hidden_nodes and child in hidden_nodes:
                continue
            edge = Edge(parent, child, edge_labels.get((parent, child)),
                        elided=parent in hidden_nodes or child in hidden_nodes)
            edges.append(edge)
            hops[(child, parent)] = edge
            if edge.label:
                hops[(child, edge.label)] = edge
    for param, child in chips:
        key = f"{param}@{child}"
        if key in boxes:
            edge = Edge(key, child)
            edges.append(edge)
            hops[(child, param)] = edge
        elif child not in hidden_nodes:  # pragma: no cover - a chip is dropped only with its node
            raise AssertionError(key)

    titles = {}
    for s, col in column_of_step.items():
        titles[column_x(col)] = f"t = {s}"
    if own_output_column is not None:
        titles[column_x(own_output_column)] = "output"
    titles[column_x(loss_column)] = "loss"
    if gap is not None:
        titles[gap[0]] = "…"
    routes = {}
    for lanes_of in skips.values():
        for (source, target), lane in lanes_of.items():
            s, t = boxes[source], boxes[target]
            x, d = s.x + NODE_SIZE / 2 + LANE_START + LANE_STEP * lane, 1 if t.y > s.y else -1
            routes[(source, target)] = ((s.x + s.width / 2, s.y), (x, s.y + d * 8), (x, t.y - d * 8),
                                        (t.x + t.width / 2, t.y))
    return Layout(width, height, boxes, edges, titles, axis_y, elided, gap, hops, frozenset(hidden_nodes), routes)


def _chip_width(name: str) -> float:
    return max(30, 9 * len(name) + 10)


def _skip_edges(graph, cells) -> dict:
    """Edges between two nodes of one column with other nodes of that column between them, and the
    lane each goes round on: ``{column: {(source, target): lane}}``, one lane per source."""
    order = {}  # node -> (column, position from the top)
    for band_index, band in enumerate(BANDS):
        for (col, b), items in cells.items():
            if b == band and band != "chips":
                for i, (key, _, _) in enumerate(items):
                    order[key] = (col, band_index * 1000 + i)
    found: dict = {}
    for child in order:
        for parent in graph.parents(child):
            if parent not in order or order[parent][0] != order[child][0]:
                continue
            col, (a, b) = order[child][0], sorted((order[parent][1], order[child][1]))
            if any(c == col and a < position < b for c, position in order.values()):
                found.setdefault(col, {}).setdefault(parent, []).append(child)
    lanes = {}
    for col, by_source in found.items():
        ranked = sorted(by_source, key=lambda n: order[n][1])
        lanes[col] = {(source, target): ranked.index(source) for source in ranked for target in by_source[source]}
    return lanes
