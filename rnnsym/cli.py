"""The ``rnnsym`` command line: ``derive`` and ``check``.

Bad input is reported on one line and exits with status 2, without a traceback.
"""
from __future__ import annotations

import json
import sys
from functools import wraps

import click

from . import functions
from .errors import RnnsymError
from .files import atomic_write_text
from .networks import NETWORKS, make_network, seed_rnn
from .numeric.gradcheck import gradcheck
from .printing import FORMATS


def _network_options(command):
    """The options that choose and shape the network, shared by every subcommand."""
    options = [
        click.option("--steps", "-T", type=click.IntRange(min=1), default=4, show_default=True,
                     help="Number of time steps (words) T."),
        click.option("--activation", type=click.Choice(list(functions.ACTIVATIONS)), default="tanh",
                     show_default=True, help="Hidden activation f."),
        click.option("--output-activation", type=click.Choice(list(functions.OUTPUT_ACTIVATIONS)), default="sigmoid",
                     show_default=True, help="Output activation g."),
        click.option("--loss", type=click.Choice(list(functions.LOSSES)), default="bce", show_default=True,
                     help="Loss L(o(T+1), Y)."),
        click.option("--shared-bias", is_flag=True, help="One hidden bias b for every step."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _cell_options(command):
    """Which network, and the options of the general cells (issue: any recurrent cell)."""
    options = [
        click.option("--net", "net_name", type=click.Choice(list(NETWORKS)), default="seed", show_default=True,
                     help="seed: the article's scalar RNN; elman, lstm, gru: PyTorch's cells."),
        click.option("--input-size", type=click.IntRange(min=1), help="Input features per step (elman, lstm, gru)."),
        click.option("--hidden-size", type=click.IntRange(min=1), help="Hidden units (elman, lstm, gru)."),
        click.option("--output-size", type=click.IntRange(min=1), help="Outputs, or classes for softmax (elman, lstm, gru)."),
        click.option("--outputs", type=click.Choice(["last", "all"]), help="A loss on the last step or at every step."),
        click.option("--truncate", type=click.IntRange(min=1), metavar="K", help="Truncated BPTT: stop after K steps."),
        click.option("--bidirectional", is_flag=True, help="Also run the cell over the reversed sequence."),
        click.option("--cell", "cell_ref", metavar="FILE.py:NAME",
                     help="Your own rnnsym.Cell, defined as NAME in the Python file FILE.py (used instead of --net)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _make(net_name, steps, activation, output_activation, loss, shared_bias, input_size, hidden_size,
          output_size, outputs, truncate, bidirectional, cell_ref=None):
    if cell_ref:
        from .networks import unroll

        given = {k: v for k, v in dict(output_size=output_size, outputs=outputs, truncate=truncate,
                                        bidirectional=bidirectional).items() if v}
        return unroll(load_cell(cell_ref), steps, output_activation=output_activation, loss=loss, **given)
    return make_network(net_name, steps, activation=activation, output_activation=output_activation, loss=loss,
                        shared_bias=shared_bias, input_size=input_size, hidden_size=hidden_size,
                        output_size=output_size, outputs=outputs, truncate=truncate, bidirectional=bidirectional)


def load_cell(ref: str):
    """The Cell named NAME in FILE.py, for ``--cell FILE.py:NAME`` (the file is the user's own code)."""
    import importlib.util
    from pathlib import Path

    from .networks import Cell

    path, _, name = ref.rpartition(":")
    if not path or not name.isidentifier():
        raise RnnsymError(f"--cell must look like FILE.py:NAME, got {ref!r}")
    if not Path(path).is_file():
        raise RnnsymError(f"--cell file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location("rnnsym_user_cell", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cell = getattr(module, name, None)
    if not isinstance(cell, Cell):
        raise RnnsymError(f"{name!r} in {path} is not an rnnsym.Cell (got {type(cell).__name__})")
    return cell


def _build(steps, activation, output_activation, loss, shared_bias):
    return seed_rnn(steps=steps, activation=activation, output_activation=output_activation,
                    loss=loss, shared_bias=shared_bias)


def _clear_errors(command):
    """Turn RnnsymError into one line on stderr and exit status 2."""
    @wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RnnsymError as exc:
            click.echo(f"rnnsym: error: {exc}", err=True)
            sys.exit(2)
    return run


def _emit(text: str, out: str | None) -> None:
    text = text.rstrip("\n") + "\n"
    if out:
        atomic_write_text(out, text)
    else:
        click.echo(text, nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnsym")
def main():
    """rnnsym: backpropagation through time, derived step by step, rendered, compiled and checked."""


@main.command()
@click.argument("names", nargs=-1, metavar="[PARAM ...]")
@_cell_options
@_network_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format.")
@click.option("--check", is_flag=True, help="Follow with the finite-difference gradient check.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write to this file (atomically).")
@_clear_errors
def derive(names, net_name, input_size, hidden_size, output_size, outputs, truncate, bidirectional, cell_ref,
           steps, activation, output_activation, loss, shared_bias, fmt, check, out):
    """Derive dL/dPARAM step by step (no PARAM: every parameter).

    PARAM may also be a node (o2) or an input (x2).
    """
    net = _make(net_name, steps, activation, output_activation, loss, shared_bias, input_size, hidden_size,
                output_size, outputs, truncate, bidirectional, cell_ref)
    derivations = [net.derive(n) for n in (names or net.param_names)]
    report = gradcheck(net) if check else None
    if fmt == "json":
        data = {"network": {"name": net.name, "steps": net.steps, **net.options,
                            "params": list(net.param_names)},
                "derivations": [d.to_dict() for d in derivations]}
        if report:
            data["gradcheck"] = _report_dict(report)
        text = json.dumps(data, indent=2, ensure_ascii=False)
    elif fmt == "markdown":
        from .printing.markdown import network_markdown

        text = network_markdown(net, derivations)
        if report:
            text += "\n## Gradient check\n\n```\n" + report.table() + _shared_weight_terms(derivations, report) + "\n```\n"
    else:
        render = {"text": lambda d: d.text(), "latex": lambda d: d.latex(), "mathml": lambda d: d.mathml()}[fmt]
        text = "\n\n".join(render(d) for d in derivations)
        if report:
            text += "\n\nGradient check (central differences, float64)\n" + report.table()
            text += _shared_weight_terms(derivations, report)
    _emit(text, out)
    if report and not report.ok:
        sys.exit(1)


@main.command()
@_cell_options
@_network_options
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Examples in the random batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for the check point.")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=1e-6, show_default=True,
              help="Largest relative error that passes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_clear_errors
def check(net_name, input_size, hidden_size, output_size, outputs, truncate, bidirectional, cell_ref,
          steps, activation, output_activation, loss, shared_bias, batch, seed, tolerance, fmt):
    """Check the compiled gradients against central differences (exit 1 if they disagree)."""
    net = _make(net_name, steps, activation, output_activation, loss, shared_bias, input_size, hidden_size,
                output_size, outputs, truncate, bidirectional, cell_ref)
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


# ---- commands that live beside their subsystem (imported lazily inside, to keep start-up fast) ----
# main.add_command(...) lines go here, one per subsystem.
main.add_command(__import__("rnnsym.training.cli", fromlist=["cli"]).train_command)
main.add_command(__import__("rnnsym.training.cli", fromlist=["cli"]).predict_command)
main.add_command(__import__("rnnsym.docs.cli", fromlist=["cli"]).docs)


if __name__ == "__main__":  # pragma: no cover
    main()
