"""The ``rnnsym`` command line: ``derive`` and ``check``.

Bad input is reported on one line and exits with status 2, without a traceback.
"""
from __future__ import annotations

import json
import sys

import click

from ..docs.cli import docs
from ..errors import RnnsymError
from ..numeric.gradcheck import gradcheck
from ..printing import FORMATS
from ..learn.cli import exercise_command, verify_command
from ..learn.numbers import numbers_options, pop_point, worked_examples
from ..training.cli import predict_command, train_command
from .common import OneLineGroup, cell_options, clear_errors, emit, network_from_options, network_options, seq2seq_options
from .flow import flow


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnsym")
def main():
    """rnnsym: backpropagation through time, derived step by step, rendered, compiled and checked."""


@main.command()
@click.argument("names", nargs=-1, metavar="[PARAM ...]")
@cell_options
@network_options
@seq2seq_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format.")
@click.option("--check", is_flag=True, help="Follow with the finite-difference gradient check.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write to this file (atomically).")
@click.option("--full", is_flag=True,
              help="Every equation of a long recursive view (past a screenful its middle is left out).")
@numbers_options
@clear_errors
def derive(names, fmt, check, out, full, **options):
    """Derive dL/dPARAM step by step (no PARAM: every parameter).

    PARAM may also be a node (o2) or an input (x2).
    """
    point = pop_point(options)  # --numbers and its point (rnnsym.learn.numbers)
    net = network_from_options(**options)
    derivations = [net.derive(n) for n in (names or net.param_names)]
    derivations = [d.full() for d in derivations] if full else derivations
    derivations = worked_examples(net, derivations, point) if point is not None else derivations
    report = gradcheck(net) if check else None
    if fmt == "json":
        data = {"network": {"name": net.name, "steps": net.steps, **net.options,
                            "params": list(net.param_names)},
                "derivations": [d.to_dict() for d in derivations]}
        if report:
            data["gradcheck"] = _report_dict(report)
        text = json.dumps(data, indent=2, ensure_ascii=False)
    elif fmt == "markdown":
        from ..printing.markdown import network_markdown

        text = network_markdown(net, derivations)
        if report:
            text += "\n## Gradient check\n\n```\n" + report.table() + _shared_weight_terms(derivations, report) + "\n```\n"
    elif fmt == "tex":  # a whole document for pdflatex, the check (if asked for) as a table in it
        from ..printing.document import latex_document

        text = latex_document(net, derivations, report=report)
    else:
        render = {"text": lambda d: d.text(), "latex": lambda d: d.latex(), "mathml": lambda d: d.mathml()}[fmt]
        text = "\n\n".join(render(d) for d in derivations)
        if report:
            text += "\n\nGradient check (central differences, float64)\n" + report.table()
            text += _shared_weight_terms(derivations, report)
    emit(text, out)
    if report and not report.ok:
        sys.exit(1)


@main.command()
@cell_options
@network_options
@seq2seq_options
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Examples in the random batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for the check point.")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=1e-6, show_default=True,
              help="Largest relative error that passes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@clear_errors
def check(batch, seed, tolerance, fmt, **options):
    """Check the compiled gradients against central differences (exit 1 if they disagree)."""
    if seed < 0:  # NumPy refuses a negative seed with a traceback; the same words as train's
        raise RnnsymError(f"seed must be a non-negative integer, got {seed!r}")
    net = network_from_options(**options)
    report = gradcheck(net, batch=batch, seed=seed, tolerance=tolerance)
    if fmt == "json":
        click.echo(json.dumps(_report_dict(report), indent=2))
    else:
        click.echo(f"Gradient check: {net!r}")
        click.echo(report.table())
    if not report.ok:
        sys.exit(1)


def _shared_weight_terms(derivations, report) -> str:
    """For each weight with several paths: each term's value at the check point, and their sum."""
    lines = []
    numeric = {r.name: r.numeric for r in report.rows}
    for d in derivations:
        if d.scalar and d.path_count > 1 and d.target in numeric:
            values = d.evaluate(report.params, report.x, report.y)
            shown = " + ".join(f"({v:.6e})" for v in values)
            lines.append(f"dL/d{d.target}: path terms {shown} = {sum(values):.8e}; "
                         f"finite difference {numeric[d.target]:.8e}")
    if not lines:
        return ""
    return ("\n\nOne path term alone is not the gradient; their sum is (same point as above):\n"
            + "\n".join(lines))


def _report_dict(report) -> dict:
    return {"ok": report.ok, "max_rel_error": report.max_rel_error, "tolerance": report.tolerance,
            "truncate": report.truncate, "truncation_error": report.truncation_error,
            "batch": report.batch, "seed": report.seed, "loss": report.loss,
            "rows": [{"name": r.name, "analytic": r.analytic, "numeric": r.numeric, "rel_error": r.rel_error}
                     for r in report.rows]}


# ---- commands that live beside their subsystem ----------------------------------------------------
main.add_command(train_command)
main.add_command(predict_command)
main.add_command(docs)
main.add_command(flow)
main.add_command(verify_command)
main.add_command(exercise_command)


if __name__ == "__main__":  # pragma: no cover
    main()
