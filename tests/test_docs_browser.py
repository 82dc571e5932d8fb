"""The derivation site in a real browser: headless Chromium opens the pages from disk.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (file descriptors 3
and 4, NUL-separated JSON, the transport Puppeteer uses): no extra package, no TCP port, no
network. The probes measure layout the way the browser computed it; the pages themselves carry no
script. Screenshots are saved under ``build/screenshots/`` (or ``$RNNSYM_SCREENSHOTS``) for people
to look at.

Skipped, saying why, where Chromium is not installed (CI installs Debian's ``chromium``).
"""
from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import rnnsym as rs
from rnnsym.docs import build

CHROMIUM = next((p for p in (os.environ.get("RNNSYM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not found (/usr/bin/chromium; `apt-get install chromium`): "
                             "the real-browser test of the docs site cannot run")

ARTIFACTS = Path(os.environ.get("RNNSYM_SCREENSHOTS", Path(__file__).resolve().parents[1] / "build" / "screenshots"))
TIMEOUT = 60.0


class Chromium:
    """A headless Chromium and one page, spoken to over the DevTools protocol on a pipe."""

    def __init__(self, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="rnnsym-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. Copies above 10 first, so
        # that moving them to 3 and 4 in the child cannot overwrite one with the other.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
        os.close(to_child_r)
        os.close(from_child_w)

        def wire_fds():  # runs in the child, before exec
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire_fds, close_fds=False)
        for fd in high:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe: "
                                   + self.process.stderr.read().decode(errors="replace")[-2000:])
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = self.session
        os.write(self._to_child, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, message in enumerate(self._events):
                if message.get("method") == event:
                    return self._events.pop(i)
            self._events.append(self._read_message(deadline))

    def open(self, path: Path) -> None:
        self._events.clear()
        self.send("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def probe(self, expression: str):
        """Evaluate a measuring expression in the page (the test's probe, not the page's code)."""
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"probe failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> bytes:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.probe("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 8000), "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", session=True, **params)["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - it is going away either way
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_child, self._from_child):
            os.close(fd)
        self.process.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# Measured in the page: every <math> element's box, whether fractions stack (numerator above
# denominator, which only a MathML layout engine does), the picture's box and its drawn parts,
# and whether the local style sheet was applied.
LAYOUT_PROBE = """(() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const maths = [...document.querySelectorAll('math')];
  const fracs = [...document.querySelectorAll('mfrac')].slice(0, 50).map(f => {
    const [num, den] = f.children; if (!num || !den) return null;
    const a = num.getBoundingClientRect(), b = den.getBoundingClientRect();
    return a.bottom <= b.top + 1 && a.height > 0 && b.height > 0; });
  const svgs = [...document.querySelectorAll('svg.rnnsym-picture')].map(s => ({
    size: box(s), nodes: s.querySelectorAll('[data-node]').length,
    lanes: [...s.querySelectorAll('line[data-path]')].filter(l => { const [w, h] = box(l); return w + h > 0; }).length }));
  return { maths: maths.map(box), fracs, svgs,
           font: getComputedStyle(document.body).fontFamily,
           gridColumns: [...document.querySelectorAll('.eq')].slice(0, 1).map(e => getComputedStyle(e).gridTemplateColumns),
           scripts: document.scripts.length };
})()"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build(rs.seed_rnn(steps=4), tmp_path_factory.mktemp("browser") / "site")


@pytest.fixture(scope="module")
def browser():
    chromium = Chromium()
    yield chromium
    chromium.close()


def _coloured_pixels(png: bytes, colour: str) -> int:
    """How many pixels of the screenshot have (nearly) this colour."""
    import numpy as np
    from matplotlib.image import imread

    pixels = (imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(int)
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - rgb).max(axis=-1) <= 12).sum())


@pytest.mark.parametrize("page", ["index.html", "w.html", "w3.html", "b1.html"])
def test_page_lays_out_math_and_draws_the_picture(site, browser, page):
    browser.open(site / page)
    seen = browser.probe(LAYOUT_PROBE)
    assert seen["scripts"] == 0
    assert "DejaVu Sans" in seen["font"] or "system-ui" in seen["font"], "style.css was not applied"
    assert seen["maths"], "no <math> element on the page"
    empty = [i for i, (w, h) in enumerate(seen["maths"]) if not (w > 0 and h > 0)]
    assert not empty, f"math elements {empty} of {len(seen['maths'])} have no size"
    assert seen["fracs"] and all(seen["fracs"]), "fractions are not stacked: MathML was not laid out"
    (svg,) = seen["svgs"]
    assert svg["size"][0] > 500 and svg["size"][1] > 150, svg
    assert svg["nodes"] >= 12  # o0…o5, x1…x4, Y, L and the bias chips
    png = browser.screenshot(ARTIFACTS / f"docs-site-{page.replace('.html', '')}.png")
    from rnnsym.docs.svg import _FILL

    assert _coloured_pixels(png, _FILL["loss"]) > 500, "the picture's loss node was not painted"
    if page != "index.html":
        from rnnsym.docs.svg import path_colour

        paths = len(rs.seed_rnn(steps=4).derive(page.replace(".html", "")).paths)
        assert svg["lanes"] >= paths
        for i in range(paths):  # every path is painted in its own colour
            assert _coloured_pixels(png, path_colour(i)) > 30, f"path {i + 1} not painted"


def test_equation_and_latex_sit_side_by_side(site, browser):
    browser.open(site / "w3.html")
    columns = browser.probe(LAYOUT_PROBE)["gridColumns"][0].split()
    assert len(columns) == 2 and all(float(c.rstrip("px")) > 100 for c in columns), columns


# Every equation box of a page: the maths' top and its LaTeX box's top and height, and whether the
# maths needs more width than its column.
EQUATION_PROBE = """(() => [...document.querySelectorAll('.eq')].map(e => {
  const m = e.querySelector('.eq-math'), t = e.querySelector('.eq-tex');
  const math = m.querySelector('math').getBoundingClientRect(), tex = t.getBoundingClientRect();
  return {mathTop: math.top, texTop: tex.top, texHeight: tex.height, overflow: m.scrollWidth - m.clientWidth};
}))()"""


def test_a_long_derivation_page_aligns_maths_to_the_top_and_fits_every_row(browser, tmp_path):
    # At T = 20 the chain rule's sum has a LaTeX source thousands of pixels tall, and paths have
    # chains of 22 partials: the maths sat in the middle of that height and long rows ran off.
    from importlib.resources import files

    from rnnsym.docs.pages import parameter_page

    net = rs.seed_rnn(steps=20)
    (tmp_path / "style.css").write_bytes(files("rnnsym.docs").joinpath("style.css").read_bytes())
    (tmp_path / "w.html").write_text(parameter_page(net, net.derive("w"), None, "test", (None, None), {}),
                                     encoding="utf-8")
    browser.open(tmp_path / "w.html")
    boxes = browser.probe(EQUATION_PROBE)
    assert len(boxes) > 40
    for i, box in enumerate(boxes):
        assert abs(box["mathTop"] - box["texTop"]) < 8, (i, box)
        assert box["texHeight"] <= 16 * 16 + 2, (i, box)
        assert box["overflow"] <= 1, (i, box)


MATHML_ROWS_PROBE = """(() => ({rows: [...document.querySelectorAll('tr')]
    .filter(r => r.children.length == 2 && r.children[0].querySelector('math') && r.children[1].querySelector('math'))
    .map(r => [r.children[0].querySelector('math').getBoundingClientRect().right,
               r.children[1].querySelector('math').getBoundingClientRect().left]),
  page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth}))()"""


def test_mathml_format_rows_align_in_a_mathml_core_browser(browser, tmp_path):
    # One <math> with an aligned table centred every row in Chromium, and the widest row pushed the
    # right-hand sides off screen.
    page = tmp_path / "w.html"
    page.write_text(f"<!DOCTYPE html><meta charset=utf-8><body>{rs.seed_rnn(steps=6).derive('w').mathml()}</body>",
                    encoding="utf-8")
    browser.open(page)
    seen = browser.probe(MATHML_ROWS_PROBE)
    assert len(seen["rows"]) > 20
    lefts = {round(left) for _, left in seen["rows"]}
    rights = {round(right) for right, _ in seen["rows"]}
    assert len(lefts) == 1 and len(rights) == 1, (lefts, rights)  # every "=" in one column
    assert lefts.pop() < 200
    assert seen["page"] <= seen["view"]  # a wide row scrolls inside the derivation's box
