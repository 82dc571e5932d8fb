"""``rnnsym docs``: write the derivation site (or Markdown) for a network into a folder.

The command is built on first access (module ``__getattr__``), because it is made from
``rnnsym.cli``'s shared options while ``rnnsym.cli`` registers it: either module may then be
imported first.
"""
from __future__ import annotations

from functools import lru_cache

import click


@lru_cache(maxsize=None)
def _command() -> click.Command:
    from ..cli import _cell_options, _clear_errors, _make, _network_options

    @click.command("docs")
    @_network_options
    @_cell_options
    @click.option("--out", "-o", type=click.Path(file_okay=False), default="site", show_default=True,
                  help="Output folder; replaced atomically if it holds an rnnsym site.")
    @click.option("--format", "fmt", type=click.Choice(["html", "markdown"]), default="html", show_default=True,
                  help="html: an offline web site; markdown: one .md file with $$…$$ math, pictures beside it.")
    @click.option("--force", is_flag=True, help="Replace the output folder even if it is not an rnnsym site.")
    @click.option("--no-check", is_flag=True, help="Leave out the finite-difference gradient check.")
    @_clear_errors
    def docs(out, fmt, force, no_check, **network_options):
        """Write derivation docs: an index, one page per parameter, pictures of the unrolled network.

        The site needs no script and no network: open OUT/index.html from disk.
        """
        from .site import build

        network = _make(**network_options)
        folder = build(network, out, fmt=fmt, force=force, check=not no_check, progress=None)
        entry = "index.html" if fmt == "html" else f"{network.name}-T{network.steps}.md"
        click.echo(f"wrote {folder / entry}")

    return docs


def __getattr__(name: str):
    if name == "docs":
        return _command()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
