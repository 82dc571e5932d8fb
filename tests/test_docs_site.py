"""The derivation site and Markdown docs: structure, MathML, offline-only, escaping, safety.

The committed seed site (docs/site, T = 4) is regenerated and compared: text exactly, numbers
(the only part that may differ in last bits between CPUs) to a tolerance.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.docs import MARKER, build, picture_svg
from rnnsym.docs.layout import network_layout
from rnnsym.errors import RnnsymError
from rnnsym.graph import Graph
from rnnsym.network import Network

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "site"
MATH = re.compile(r"<math\b.*?</math>", re.S)
NUMBER = re.compile(r'<span class="num">([^<]*)</span>')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build(rs.seed_rnn(steps=4), tmp_path_factory.mktemp("docs") / "site")


def pages(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.html"))


def test_site_has_an_index_and_one_page_per_parameter(site):
    names = {p.name for p in pages(site)}
    assert names == {"index.html", "flow.html"} | {f"{n}.html" for n in rs.seed_rnn(steps=4).param_names}
    assert (site / "style.css").is_file() and (site / MARKER).is_file()
    index = (site / "index.html").read_text()
    for name in rs.seed_rnn(steps=4).param_names:
        assert f'href="{name}.html"' in index
    assert 'href="flow.html"' in index
    flow = (site / "flow.html").read_text()
    assert "<svg" in flow and "<polyline" in flow and "sufficient" in flow


@pytest.mark.parametrize("page", ["index.html", "w.html", "w0.html", "b5.html"])
def test_every_math_element_is_xml_without_leaked_latex(site, page):
    html = (site / page).read_text()
    maths = MATH.findall(html)
    assert len(maths) >= 3
    for math in maths:
        root = ET.fromstring(math)
        leaked = [t for el in root.iter() for t in [el.text or "", el.tail or ""] if "\\" in t]
        assert not leaked, leaked


def test_all_pages_parse_math_and_reference_nothing_remote(site):
    for path in pages(site) + [site / "style.css"]:
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text.replace("http://www.w3.org/", "")), path
        assert "<script" not in text.lower() and "@import" not in text and "url(" not in text
        for math in MATH.findall(text):
            ET.fromstring(math)
        # Local links only, and each one exists.
        for target in re.findall(r'(?:href|src)="([^"#]+)"', text):
            assert (site / target).is_file(), (path.name, target)


def test_parameter_page_shows_steps_latex_picture_and_check(site):
    html = (site / "w.html").read_text()
    assert html.count('<li class="step">') == len(rs.seed_rnn(steps=4).derive("w").steps)
    assert html.count('class="eq-tex"') == html.count('class="eq-math"')  # LaTeX beside each row
    assert r"\frac{\partial o_{4}}{\partial w}" in html
    assert html.count('<svg') == 1 and all(f'data-path="{i}"' in html for i in range(1, 5))
    assert "sum of the 4 terms" in html and "Only the sum matches the finite difference" in html


def test_shared_weight_terms_sum_to_the_finite_difference(site):
    html = (site / "w.html").read_text()
    terms_table = html[html.index('<table class="terms">'):]
    values = [float(v) for v in NUMBER.findall(terms_table)]
    *terms, total, numeric, error = values[:7]
    assert len(terms) == 4 and math.isclose(sum(terms), total, rel_tol=1e-8)
    assert math.isclose(total, numeric, rel_tol=1e-6) and error < 1e-6
    assert all(not math.isclose(t, numeric, rel_tol=1e-2) for t in terms)


def test_picture_highlights_one_colour_per_path_and_elides_long_sequences():
    net = rs.seed_rnn(steps=4)
    svg = picture_svg(net, "w")
    ET.fromstring(svg)
    colours = {re.search(r'stroke="(#[0-9A-Fa-f]{6})"', line).group(1)
               for line in svg.splitlines() if "data-path=" in line}
    assert len(colours) == 4
    assert 'data-path="1"' not in picture_svg(net)
    long = rs.seed_rnn(steps=100)
    layout = network_layout(long.graph)
    assert layout.elided == tuple(range(3, 98)) and "o50" not in layout.boxes and "o99" in layout.boxes
    assert layout.width < 1200
    svg = picture_svg(long, "w")
    ET.fromstring(svg)
    assert "steps 3–97" in svg and "paths 22–100: the other 79 paths, all in this grey" in svg


def _lane_styles(svg: str) -> dict[int, tuple]:
    """Each drawn path's (colour, dash pattern) in the picture."""
    styles = {}
    for line in svg.splitlines():
        if "data-path=" in line:
            index = int(re.search(r'data-path="(\d+)"', line).group(1))
            dash = re.search(r'stroke-dasharray="([^"]+)"', line)
            styles.setdefault(index, set()).add((re.search(r'stroke="(#[0-9A-Fa-f]{6})"', line).group(1),
                                                 dash.group(1) if dash else None))
    return {index: style.pop() for index, style in styles.items() if len(style) == 1}


def test_every_path_has_its_own_colour_and_dash_and_far_paths_are_grouped():
    svg = picture_svg(rs.seed_rnn(steps=30), "w")
    styles = _lane_styles(svg)
    assert sorted(styles) == list(range(1, 31))
    own = [styles[i] for i in range(1, 22)]
    assert len(set(own)) == 21  # no two of the first 21 paths alike (paths 1 and 15 were the same blue)
    colours = [c for c, _ in own]
    assert len(set(colours)) == 7 and "#003f66" not in colours  # navy beside black is gone
    assert {styles[7], styles[8]} == {("#000000", None), ("#0072B2", "7 4")}
    assert {styles[i] for i in range(22, 31)} == {("#7b8794", "2 3")}
    assert "paths 22–30: the other 9 paths, all in this grey" in svg
    # The legend draws each row in its path's style.
    assert svg.count('stroke-width="4" stroke-linecap="round" stroke-dasharray="7 4"/>') == 7


def test_the_legend_and_labels_write_node_names_as_the_maths_does():
    svg = picture_svg(rs.seed_rnn(steps=4), "w3")
    assert "path 1: L → o₅ → o₄ → w₃" in svg and "o5 →" not in svg


def test_weights_sit_on_the_edges_they_scale():
    layout = network_layout(rs.seed_rnn(steps=4).graph)
    assert layout.edge_between("x2", "o2").label == "w"
    assert layout.edge_between("o1", "o2").label == "w1"
    assert layout.edge_between("o4", "o5").label == "w4"
    assert layout.edge_between("b2@o2", "o2") is not None
    assert layout.boxes["x1"].x < layout.boxes["x4"].x < layout.boxes["o5"].x < layout.boxes["L"].x


def _hostile_network() -> Network:
    """A hand-built network whose parameter and input names are HTML."""
    g = Graph()
    x = g.add("x<b>1", "input", step=1, role="input <i>word</i>")
    w = g.add("<script>alert(1)</script>", "param", role="a <script> weight")
    y = g.add("Y", "target", role="the target")
    h = g.add("o1", "hidden", sp.tanh(w * x), step=1, role="hidden & <hr>")
    out = g.add("o2", "output", h, step=2, role="network output")
    g.add("L", "loss", (out - y) ** 2 / 2, step=2, role="loss")
    return Network(g, name="evil<name>", steps=1, options={"loss": "mse"}, title="a <marquee>title")


def test_names_reaching_html_and_svg_are_escaped(tmp_path):
    site = build(_hostile_network(), tmp_path / "site", check=False)
    for path in pages(site):
        html = path.read_text()
        for raw in ("<script", "<b>", "<i>", "<hr>", "<marquee"):
            assert raw not in html, (path.name, raw)
        assert "&lt;script&gt;" in html or path.name == "index.html"
    svg = picture_svg(_hostile_network(), "<script>alert(1)</script>")
    assert "<script" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)
    assert {p.name for p in pages(site)} == {"index.html", "scriptalert1script.html"}


def test_existing_folder_is_not_overwritten_without_force(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(RnnsymError, match="not an rnnsym site.*--force"):
        build(rs.seed_rnn(steps=2), precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    build(rs.seed_rnn(steps=2), precious, force=True)
    assert not (precious / "notes.txt").exists() and (precious / "index.html").exists()
    with pytest.raises(RnnsymError, match="working directory"):
        build(rs.seed_rnn(steps=2), Path.cwd(), force=True)


def test_rebuild_replaces_a_site_and_a_failed_build_leaves_it_intact(tmp_path, monkeypatch):
    out = build(rs.seed_rnn(steps=2), tmp_path / "site")
    build(rs.seed_rnn(steps=3), out)  # a site may be rebuilt in place
    assert "w3.html" in {p.name for p in pages(out)}
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    from rnnsym.docs import pages as page_module

    def broken(*args, **kwargs):
        raise RuntimeError("renderer failed half-way")

    monkeypatch.setattr(page_module, "index_page", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        build(rs.seed_rnn(steps=2), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no staging folder left behind


def test_markdown_has_display_math_and_local_pictures(tmp_path):
    out = build(rs.seed_rnn(steps=4), tmp_path / "md", fmt="markdown")
    text = (out / "seed-T4.md").read_text()
    assert text.count("$$") % 2 == 0 and text.count("$$") > 40
    for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        ET.fromstring((out / picture).read_text())
    assert "## Gradient check" in text and "| `w` |" in text
    # Headings, labels and picture captions write node names as the maths does.
    assert "## dL/dw₃: recurrent weight carrying o₃ into layer 4\n\n![The path of dL/dw₃](seed-T4-w3.svg)" in text
    assert "*through layer 4 (o₄)*" in text and "o4)" not in text


def test_cli_writes_a_site_and_refuses_bad_input_in_one_line(tmp_path):
    run = [sys.executable, "-m", "rnnsym", "docs"]
    ok = subprocess.run(run + ["--net", "seed", "--steps", "2", "--out", str(tmp_path / "s")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "s" / "index.html").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("x")
    for args, named in ((["--out", str(tmp_path / "other")], "other"), (["--steps", "0"], "0"),
                        (["--net", "nope"], "nope"), (["--format", "pdf"], "pdf")):
        bad = subprocess.run(run + args, capture_output=True, text=True)
        assert bad.returncode == 2, args
        assert "Traceback" not in bad.stderr
        errors = [line for line in bad.stderr.splitlines() if line.lower().startswith(("error:", "rnnsym: error:"))]
        assert len(errors) == 1 and named in errors[0], bad.stderr


def test_network_displays_in_notebooks():
    net = rs.seed_rnn(steps=3)
    assert net._repr_svg_().startswith("<svg")
    html = net._repr_html_()
    assert "<svg" in html and html.count("<math") == 5  # o1..o3, o4, L


def _masked(text: str) -> tuple[str, list[float]]:
    return NUMBER.sub('<span class="num">#</span>', text), [float(v) for v in NUMBER.findall(text)]


def test_committed_seed_site_is_up_to_date(site):
    """docs/site is `rnnsym docs --net seed --steps 4 --out docs/site`, as the code makes it now."""
    regenerate = "regenerate it with `rnnsym docs --net seed --steps 4 --out docs/site`"
    assert COMMITTED.is_dir(), f"docs/site is missing: {regenerate}"
    fresh = sorted(p.name for p in site.iterdir())
    assert sorted(p.name for p in COMMITTED.iterdir()) == fresh, f"docs/site has other files: {regenerate}"
    for name in fresh:
        if name == MARKER:
            continue
        old, old_numbers = _masked((COMMITTED / name).read_text(encoding="utf-8"))
        new, new_numbers = _masked((site / name).read_text(encoding="utf-8"))
        assert old == new, f"docs/site/{name} is stale: {regenerate}"
        for a, b in zip(old_numbers, new_numbers):
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"docs/site/{name}: {a} vs {b}: {regenerate}"


def _crosses(points, box, samples: int = 60) -> bool:
    """Whether the polyline runs through the inside of the box (1 px margin)."""
    left, right = box.x - box.width / 2 + 1, box.x + box.width / 2 - 1
    top, bottom = box.y - box.height / 2 + 1, box.y + box.height / 2 - 1
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        for i in range(samples + 1):
            x, y = x1 + (x2 - x1) * i / samples, y1 + (y2 - y1) * i / samples
            if left < x < right and top < y < bottom:
                return True
    return False


@pytest.mark.parametrize("build", [lambda: rs.lstm(steps=3, hidden_size=2), lambda: rs.gru(steps=3, hidden_size=2)])
def test_gated_cells_draw_chips_beside_their_gates_and_no_edge_through_a_node(build):
    from rnnsym.docs.svg import _points

    layout = network_layout(build().graph)
    for key, box in layout.boxes.items():
        if "@" in key and box.node != "b_y":  # a gate's bias: in its node's row, on its left
            node = layout.boxes[key.split("@")[1]]
            assert abs(box.y - node.y) < 37 and box.x < node.x - node.width / 2
    for edge in layout.edges:
        points = _points(layout, edge)
        others = [b for k, b in layout.boxes.items() if k not in (edge.source, edge.target)]
        assert not any(_crosses(points, b) for b in others if b.kind != "param"), (edge.source, edge.target)
    assert layout.routes  # the input and the gates reach their column's far nodes round the others


def test_a_site_past_the_path_limit_draws_no_paths_and_says_how_many(tmp_path):
    net = rs.lstm(steps=20, hidden_size=2)
    build(net, tmp_path / "site")
    page = (tmp_path / "site" / "W_ii.html").read_text()
    assert "It reaches the loss along 11209883884350 paths." in page
    assert "11209883884350 chain-rule paths: too many to draw" in page and 'data-path="' not in page
    assert "Recursive view" in page
