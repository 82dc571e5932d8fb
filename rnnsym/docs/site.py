"""Build a derivation site (HTML) or a Markdown document for a network, atomically.

The output folder is written whole into a temporary folder beside it and then moved into place,
so an interrupted or failed build leaves the previous site as it was. A folder is only replaced
if it is empty or holds an rnnsym site (it has the marker file :data:`MARKER`), unless ``force``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.resources import files as package_files
from pathlib import Path

from ..errors import RnnsymError, choose

MARKER = ".rnnsym-site"
FORMATS = ("html", "markdown")


def build(network, out, *, fmt: str = "html", force: bool = False, check: bool = True,
          progress: bool | None = False) -> Path:
    """Write the derivation docs of ``network`` into the folder ``out``; returns its path.

    ``fmt="html"``: ``index.html``, one page per parameter and ``style.css``. ``fmt="markdown"``:
    one ``<name>-T<steps>.md`` with ``$$…$$`` math, and its pictures as SVG files beside it.
    ``check``: run :func:`rnnsym.gradcheck` and show its results. ``progress``: a progress bar on
    stderr (None: only on a terminal).

    >>> import rnnsym as rs, tempfile, pathlib
    >>> site = build(rs.seed_rnn(steps=2), pathlib.Path(tempfile.mkdtemp()) / "site")
    >>> sorted(p.name for p in site.iterdir())[:4]
    ['.rnnsym-site', 'b1.html', 'b2.html', 'b3.html']
    """
    choose("docs format", fmt, FORMATS)
    out = Path(out).resolve()
    _check_replaceable(out, force)
    from .. import __version__

    writer = _write_html if fmt == "html" else _write_markdown
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        writer(network, staging, check=check, version=__version__, progress=progress)
        marker = {"generator": "rnnsym", "version": __version__, "format": fmt,
                  "network": network.name, "steps": network.steps, "options": network.options}
        (staging / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a site is meant to be read
        _replace(out, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _check_replaceable(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise RnnsymError(f"output {str(out)!r} is a file; give a folder for the site")
    # Never, even with force: a folder holding the working directory, the home folder, or the root.
    if out == Path(out.anchor) or out == Path.home().resolve() or Path.cwd().resolve().is_relative_to(out):
        raise RnnsymError(f"refusing to replace {str(out)!r}: it holds the working directory, the home "
                          "folder or the file-system root; give a folder of its own, such as ./site")
    if (out / MARKER).is_file() or not any(out.iterdir()) or force:
        return
    raise RnnsymError(f"output folder {str(out)!r} exists and is not an rnnsym site (no {MARKER} file); "
                      "choose another folder, or use --force (force=True) to replace it")


def _replace(out: Path, staging: Path) -> None:
    """Move ``staging`` to ``out``; the old ``out`` is kept aside until the move has succeeded."""
    if not out.exists():
        os.rename(staging, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, aside / "site")
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(aside / "site", out)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _derivations(network, progress):
    from tqdm import tqdm

    # tqdm's disable=None means "only on a terminal".
    disable = None if progress is None else not progress
    names = tqdm(network.param_names, desc="deriving", unit="parameter", disable=disable, leave=False)
    return [network.derive(name) for name in names]


def _report(network, check: bool):
    if not check:
        return None
    from ..numeric.gradcheck import gradcheck

    return gradcheck(network)


def _write_html(network, folder: Path, *, check: bool, version: str, progress) -> None:
    from .pages import flow_page, index_page, parameter_page, slug

    derivations = _derivations(network, progress)
    report = _report(network, check)
    taken = {"index", "style", "flow"}
    files = {d.target: slug(d.target, taken) + ".html" for d in derivations}
    names = [d.target for d in derivations]
    for i, d in enumerate(derivations):
        neighbours = (names[i - 1] if i else None, names[i + 1] if i + 1 < len(names) else None)
        html = parameter_page(network, d, report, version, neighbours, files)
        (folder / files[d.target]).write_text(html, encoding="utf-8")
    (folder / "index.html").write_text(index_page(network, derivations, files, report, version), encoding="utf-8")
    if network.steps > 1:
        (folder / "flow.html").write_text(flow_page(network, version), encoding="utf-8")
    css = package_files("rnnsym.docs").joinpath("style.css").read_text(encoding="utf-8")
    (folder / "style.css").write_text(css, encoding="utf-8")


def _write_markdown(network, folder: Path, *, check: bool, version: str, progress) -> None:
    from .markdown import network_document

    derivations = _derivations(network, progress)
    report = _report(network, check)
    stem = f"{network.name}-T{network.steps}"
    text, pictures = network_document(network, derivations, report, stem)
    for name, svg in pictures.items():
        (folder / name).write_text(svg + "\n", encoding="utf-8")
    (folder / f"{stem}.md").write_text(text, encoding="utf-8")
