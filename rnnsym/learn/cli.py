"""``rnnsym verify FORMULA``: is a hand-derived gradient right, and if not, why.

Exit status 0 when the formula is right, 1 when it is wrong (the diagnosis is printed), 2 when it
cannot be read (one line, as every rnnsym error).
"""
from __future__ import annotations

import json
import sys

import click

from ..cli.common import cell_options, clear_errors, network_from_options, network_options
from .verify import verify


@click.command("verify")
@click.argument("formula")
@click.option("--wrt", metavar="NAME", help="The parameter, node or input, when FORMULA has no left side dL/dNAME.")
@cell_options
@network_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed for the points of the numeric check.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@clear_errors
def verify_command(formula, wrt, seed, fmt, **options):
    """Check your own derivation of dL/dPARAM: right (exit 0) or wrong and why (exit 1).

    FORMULA is plain text, e.g. "dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3", or LaTeX,
    e.g. "\\frac{\\partial L}{\\partial w_3} = (o_5 - Y) w_4 (1 - o_4^2) o_3", written in the
    network's names; "-" reads it from standard input.
    """
    if formula == "-":
        formula = sys.stdin.read()
    net = network_from_options(**options)
    verdict = verify(net, formula, wrt, seed=seed)
    if fmt == "json":
        click.echo(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(verdict.text())
    if not verdict.ok:
        sys.exit(1)


__all__ = ["verify_command"]
