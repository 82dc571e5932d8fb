"""``rnnsym verify FORMULA``: is a hand-derived gradient right, and if not, why.

Exit status 0 when the formula is right, 1 when it is wrong (the diagnosis is printed), 2 when it
cannot be read (one line, as every rnnsym error).
"""
from __future__ import annotations

import json
import sys

import click

from ..cli.common import cell_options, clear_errors, network_from_options, network_options
from ..errors import RnnsymError
from ..networks import NETWORKS
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


@click.group("exercise", invoke_without_command=True)
@click.option("--net", "net_name", type=click.Choice(list(NETWORKS)), default="seed", show_default=True,
              help="The network: seed, the article's scalar RNN (the one whose local factors have names).")
@network_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed of the worksheet's numbers: the same seed gives the same worksheet.")
@click.option("--eta", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Learning rate of the update question.")
@click.option("--out", "-o", type=click.Path(file_okay=False), help="The folder to write (required to write one).")
@click.pass_context
@clear_errors
def exercise_command(ctx, net_name, steps, seed, eta, out, **options):
    """A BPTT worksheet with round numbers and its answer key; `exercise check` grades answers.

    Writes worksheet.html/.md (print them), answer-key.html/.md, key.json and
    answers-template.json into --out: a new or empty folder, or one rnnsym wrote (your own
    files in it are kept).
    """
    if ctx.invoked_subcommand is not None:
        if out is not None:
            raise RnnsymError("--out writes a worksheet; `rnnsym exercise check FOLDER ANSWERS` reads one, give it "
                              "without --out")
        return
    if out is None:
        raise RnnsymError("rnnsym exercise needs --out FOLDER (where to write the worksheet), or "
                          "`rnnsym exercise check FOLDER ANSWERS` to grade answers")
    from .exercise import exercise_network, write_exercise

    net = exercise_network(net_name, steps, **options)
    folder = write_exercise(net, out, seed=seed, eta=eta)
    click.echo(f"Wrote the worksheet (worksheet.html, worksheet.md), the answer key (answer-key.html, "
               f"answer-key.md, key.json) and answers-template.json to {folder}")


@exercise_command.command("check")
@click.argument("folder", type=click.Path())
@click.argument("answers", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@clear_errors
def exercise_check_command(folder, answers, fmt):
    """Grade ANSWERS (JSON: question id -> number) against FOLDER's key.json: exit 0 when all are
    right, 1 when any is wrong (the first wrong step is named, with a hint), 2 when unreadable."""
    from .exercise import check_answers

    grade = check_answers(folder, answers)
    if fmt == "json":
        click.echo(json.dumps(grade.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(grade.text())
    if not grade.ok:
        sys.exit(1)


__all__ = ["exercise_command", "verify_command"]
