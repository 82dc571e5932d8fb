"""``rnnsym docs``: write the derivation site (or Markdown, or a LaTeX document) for a network into a folder."""
from __future__ import annotations

import click

from ..cli.common import cell_options, clear_errors, network_from_options, network_options, seq2seq_options
from .site import FORMATS


@click.command("docs")
@network_options
@cell_options
@seq2seq_options
@click.option("--out", "-o", type=click.Path(file_okay=False), default="site", show_default=True,
              help="Output folder; replaced atomically if it holds an rnnsym site (files you added are kept).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: an offline web site; markdown: one .md file with $$…$$ math, pictures beside it; "
                   "tex: one derivations.tex for pdflatex.")
@click.option("--force", is_flag=True, help="Replace the output folder even if it is not an rnnsym site, and overwrite your own files in a site.")
@click.option("--no-check", is_flag=True, help="Leave out the finite-difference gradient check.")
@clear_errors
def docs(out, fmt, force, no_check, **options):
    """Write derivation docs: an index, one page per parameter, pictures of the unrolled network.

    The site needs no script and no network: open OUT/index.html from disk.
    """
    from .site import TEX_FILE, build, markdown_stem

    network = network_from_options(**options)
    folder = build(network, out, fmt=fmt, force=force, check=not no_check, progress=None)
    entry = {"html": "index.html", "markdown": f"{markdown_stem(network)}.md", "tex": TEX_FILE}[fmt]
    click.echo(f"wrote {folder / entry}")
