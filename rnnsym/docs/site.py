"""Build a derivation site (HTML) or a Markdown document for a network, atomically.

The output folder is written whole into a temporary folder beside it and then moved into place,
so an interrupted or failed build leaves the previous site as it was. A folder is only replaced
if it is empty or holds an rnnsym site (it has the marker file :data:`MARKER`), unless ``force``.
The marker lists the files rnnsym wrote; anything else in a site (your own notes, a ``.git``
folder) is carried over into the new site, and a build that would overwrite one of them is
refused unless ``force``.

File names never come from a network's name as it is: they are made with
:func:`rnnsym.files.safe_name`, and every file is checked to land inside the folder.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from importlib.resources import files as package_files
from pathlib import Path
from typing import Callable

from ..errors import RnnsymError, choose
from ..files import inside, safe_name, writing

MARKER = ".rnnsym-site"
FORMATS = ("html", "markdown", "tex")
TEX_FILE = "derivations.tex"


def build(network, out, *, fmt: str = "html", force: bool = False, check: bool = True,
          progress: bool | None = False) -> Path:
    """Write the derivation docs of ``network`` into the folder ``out``; returns its path.

    ``fmt="html"``: ``index.html``, one page per parameter and ``style.css``. ``fmt="markdown"``:
    one ``<name>-T<steps>.md`` with ``$$…$$`` math, and its pictures as SVG files beside it.
    ``fmt="tex"``: one ``derivations.tex``, a LaTeX document for ``pdflatex``.
    ``check``: run :func:`rnnsym.gradcheck` and show its results. ``progress``: a progress bar on
    stderr (None: only on a terminal).

    >>> import rnnsym as rs, tempfile, pathlib
    >>> site = build(rs.seed_rnn(steps=2), pathlib.Path(tempfile.mkdtemp()) / "site")
    >>> sorted(p.name for p in site.iterdir())[:4]
    ['.rnnsym-site', 'b1.html', 'b2.html', 'b3.html']
    """
    choose("docs format", fmt, FORMATS)
    from .. import __version__

    writer = {"html": _write_html, "markdown": _write_markdown, "tex": _write_tex}[fmt]
    marker = {"generator": "rnnsym", "version": __version__, "format": fmt,
              "network": network.name, "steps": network.steps, "options": network.options}
    return write_marked_folder(
        out, lambda folder: writer(network, folder, check=check, version=__version__, progress=progress), marker, force)


def write_marked_folder(out, fill: Callable[["Folder"], object], marker: dict, force: bool | None = False) -> Path:
    """The folder ``out`` written by ``fill(folder)`` (a :class:`Folder` of safe names), staged beside
    it and moved into place with ``marker`` (plus the files written) in its MARKER file: an existing
    folder only if it is empty or rnnsym wrote it, the user's own files in it kept. ``force``:
    replace any folder (but never one holding the working directory, the home folder or the root);
    None for a command that has no force, whose refusals do not offer one."""
    out = Path(out).resolve()
    keep = _entries_to_keep(out, force)
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with writing(out):  # an error names the folder asked for, not the temporary one
            folder = Folder(staging)
            fill(folder)
            _carry_over(out, staging, keep, folder.names, force)
            (staging / MARKER).write_text(json.dumps({**marker, "files": sorted(folder.names)}, indent=1, sort_keys=True)
                                          + "\n", encoding="utf-8")
            os.chmod(staging, 0o755)  # mkdtemp makes it private; a site is meant to be read
            _replace(out, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def markdown_stem(network) -> str:
    """The stem of the Markdown file and its pictures: a safe form of the network's name, and T.

    >>> import rnnsym as rs
    >>> markdown_stem(rs.seed_rnn(steps=2))
    'seed-T2'
    """
    return f"{safe_name(network.name)}-T{network.steps}"


_PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\.[a-z]+")


class Folder:
    """The staging folder, writing only safe names inside it and remembering what it wrote."""

    def __init__(self, path: Path):
        self.path, self.names = path, set()

    def write(self, name: str, text: str) -> None:
        if not _PLAIN_FILE_NAME.fullmatch(name):
            raise RnnsymError(f"refusing to write {name!r}: not a plain file name")
        inside(self.path, name).write_text(text, encoding="utf-8")
        self.names.add(name)


# What sites written before the marker listed its files held: everything else in them is the user's.
_LEGACY_SUFFIXES = (".html", ".md", ".svg")


def _entries_to_keep(out: Path, force: bool) -> list[str]:
    """Check that ``out`` may be replaced; return the names in it that rnnsym did not write."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise RnnsymError(f"output {str(out)!r} is a file; give a folder for the site")
    # Never, even with force: a folder holding the working directory, the home folder, or the root.
    if out == Path(out.anchor) or out == Path.home().resolve() or Path.cwd().resolve().is_relative_to(out):
        raise RnnsymError(f"refusing to replace {str(out)!r}: it holds the working directory, the home "
                          "folder or the file-system root; give a folder of its own, such as ./site")
    with writing(out):
        entries = sorted(entry.name for entry in out.iterdir())
    if (out / MARKER).is_file():
        ours = _marker_files(out / MARKER)
        if ours is None:
            return [n for n in entries if n != MARKER and n != "style.css" and not n.endswith(_LEGACY_SUFFIXES)]
        return [n for n in entries if n != MARKER and n not in ours]
    if not entries or force:
        return []
    if force is None:  # a command without --force
        raise RnnsymError(f"output folder {str(out)!r} exists and was not written by rnnsym (no {MARKER} file); "
                          "give a new or empty folder")
    raise RnnsymError(f"output folder {str(out)!r} exists and is not an rnnsym site (no {MARKER} file); "
                      "choose another folder, or use --force (force=True) to replace it")


def _marker_files(marker: Path) -> set[str] | None:
    """The files an rnnsym site's marker says rnnsym wrote; None for a marker that does not say."""
    try:
        files = json.loads(marker.read_text(encoding="utf-8")).get("files")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files)


def _carry_over(out: Path, staging: Path, keep: list[str], written: set[str], force: bool) -> None:
    """Copy the user's own files from the old site into the new one (copies: the old site stays
    whole until the new one is in place)."""
    clashes = [name for name in keep if name in written or name == MARKER]
    if clashes and not force:
        more = f" and {len(clashes) - 1} more" if len(clashes) > 1 else ""
        raise RnnsymError(f"output folder {str(out)!r} holds {clashes[0]!r}{more}, not written by rnnsym, which the "
                          "new files would overwrite; move it" + (", or use --force (force=True) to overwrite it"
                                                                  if force is not None else ""))
    for name in keep:
        if name in clashes:
            continue
        source, target = out / name, staging / name
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        elif source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)


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


def _write_html(network, folder: Folder, *, check: bool, version: str, progress) -> Folder:
    from .pages import flow_page, index_page, parameter_page, slug

    derivations = _derivations(network, progress)
    report = _report(network, check)
    taken = {"index", "style", "flow"}
    files = {d.target: slug(d.target, taken) + ".html" for d in derivations}
    names = [d.target for d in derivations]
    for i, d in enumerate(derivations):
        neighbours = (names[i - 1] if i else None, names[i + 1] if i + 1 < len(names) else None)
        folder.write(files[d.target], parameter_page(network, d, report, version, neighbours, files))
    folder.write("index.html", index_page(network, derivations, files, report, version))
    if network.steps > 1:
        folder.write("flow.html", flow_page(network, version))
    folder.write("style.css", package_files("rnnsym.docs").joinpath("style.css").read_text(encoding="utf-8"))
    return folder


def _write_markdown(network, folder: Folder, *, check: bool, version: str, progress) -> Folder:
    from .markdown import network_document

    derivations = _derivations(network, progress)
    report = _report(network, check)
    stem = markdown_stem(network)
    text, pictures = network_document(network, derivations, report, stem)
    for name, svg in pictures.items():
        folder.write(name, svg + "\n")
    folder.write(f"{stem}.md", text)
    return folder


def _write_tex(network, folder: Folder, *, check: bool, version: str, progress) -> Folder:
    from ..printing.document import latex_document

    derivations = _derivations(network, progress)
    folder.write(TEX_FILE, latex_document(network, derivations, report=_report(network, check)))
    return folder
