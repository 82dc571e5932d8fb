"""What every rnnsym command shares: the options that choose a network, and clear errors.

Bad input is reported on one line and exits with status 2, without a traceback.
"""
from __future__ import annotations

import contextlib
import sys
from functools import wraps

import click

from .. import functions
from ..errors import RnnsymError
from ..files import atomic_write_text
from ..networks import NETWORKS, make_network


def network_options(command):
    """The options that choose and shape the network, shared by every subcommand."""
    options = [
        click.option("--steps", "-T", type=click.IntRange(min=1), default=4, show_default=True,
                     help="Number of time steps (words) T."),
        click.option("--activation", type=click.Choice(list(functions.ACTIVATIONS)), default="tanh",
                     show_default=True, help="Hidden activation f."),
        click.option("--output-activation", type=click.Choice(list(functions.OUTPUT_ACTIVATIONS)), default="sigmoid",
                     show_default=True, help="Output activation g (softmax: with --loss cross_entropy, "
                                             "--net elman|lstm|gru and --output-size >= 2)."),
        click.option("--loss", type=click.Choice(list(functions.LOSSES)), default="bce", show_default=True,
                     help="Loss L(o(T+1), Y)."),
        click.option("--shared-bias", is_flag=True, help="One hidden bias b for every step."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def cell_options(command):
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


def seq2seq_options(command):
    """The options of an encoder–decoder network (``--net seq2seq``): its cells, its attention and
    its target length (``--steps`` is the source's)."""
    cells = click.Choice(["elman", "lstm", "gru"])
    options = [
        click.option("--encoder", type=cells, default=None, help="The encoder's cell (--net seq2seq) [gru]."),
        click.option("--decoder", type=cells, default=None, help="The decoder's cell (--net seq2seq) [gru]."),
        click.option("--attention", type=click.Choice(["dot", "general", "additive"]), default=None,
                     help="Luong's global attention with this score (--net seq2seq) [none]."),
        click.option("--target-steps", type=click.IntRange(min=1), default=None,
                     help="Decoder steps (--net seq2seq) [the task's, else --steps]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


SEQ2SEQ_OPTIONS = ("encoder", "decoder", "attention", "target_steps")


def network_from_options(net_name, steps, activation, output_activation, loss, shared_bias, input_size, hidden_size,
                         output_size, outputs, truncate, bidirectional, cell_ref=None, **seq2seq):
    """The network that :func:`network_options` and :func:`cell_options` describe (and
    :func:`seq2seq_options`, for the commands that have them)."""
    if cell_ref:
        from ..networks import unroll

        _refuse_with_cell(net_name=net_name, activation=activation, shared_bias=shared_bias,
                          input_size=input_size, hidden_size=hidden_size)
        for name, value in seq2seq.items():
            if value is not None:
                raise RnnsymError(f"--{name.replace('_', '-')} applies to --net seq2seq, not to --cell")
        given = {k: v for k, v in dict(output_size=output_size, outputs=outputs, truncate=truncate,
                                        bidirectional=bidirectional).items() if v}
        return unroll(load_cell(cell_ref), steps, output_activation=output_activation, loss=loss, **given)
    if net_name == "seq2seq":  # its own defaults (a softmax over classes) where the command line's are left
        output_activation, loss = (None if not _given_option(name) else value
                                   for name, value in (("output_activation", output_activation), ("loss", loss)))
    return make_network(net_name, steps, activation=activation, output_activation=output_activation, loss=loss,
                        shared_bias=shared_bias, input_size=input_size, hidden_size=hidden_size,
                        output_size=output_size, outputs=outputs, truncate=truncate, bidirectional=bidirectional,
                        **seq2seq)


def _given_option(name: str) -> bool:
    """Whether the running command's option ``name`` was given (True outside a command)."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None or name not in ctx.params:
        return True
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


# Options that shape a built-in network; a --cell brings its own (its update, sizes and biases).
_NOT_FOR_CELLS = {"net_name": "--net", "activation": "--activation", "shared_bias": "--shared-bias",
                  "input_size": "--input-size", "hidden_size": "--hidden-size"}


def _refuse_with_cell(**values) -> None:
    """With ``--cell``, an option that only shapes a built-in network is an error, not ignored."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    for name, value in values.items():
        if ctx is not None and name in ctx.params:
            given = ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
        else:  # called from Python: anything but the default counts as given
            given = value not in (None, False, "seed", "tanh")
        if given:
            raise RnnsymError(f"{_NOT_FOR_CELLS[name]} does not apply to --cell: the cell defines its own update, "
                              "sizes and biases; drop it (--steps, --output-size, --outputs, --output-activation, "
                              "--loss, --truncate and --bidirectional do apply)")


def load_cell(ref: str):
    """The Cell named NAME in FILE.py, for ``--cell FILE.py:NAME`` (the file is the user's own code)."""
    import importlib.util
    from pathlib import Path

    from ..networks import Cell

    path, _, name = ref.rpartition(":")
    if not path or not name.isidentifier():
        raise RnnsymError(f"--cell must look like FILE.py:NAME, got {ref!r}")
    if not Path(path).is_file():
        raise RnnsymError(f"--cell file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location("rnnsym_user_cell", path)
    if spec is None:
        raise RnnsymError(f"--cell file {path!r} is not a Python file (FILE.py:NAME)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except RnnsymError as exc:  # the file builds a cell rnnsym refuses: that message, and where
        raise RnnsymError(f"--cell {path}: {exc}") from None
    except Exception as exc:  # the user's own code failed: say so in one line (no traceback of ours)
        raise RnnsymError(f"--cell {path}: running the file raised {type(exc).__name__}: {exc}") from None
    cell = getattr(module, name, None)
    if not isinstance(cell, Cell):
        raise RnnsymError(f"{name!r} in {path} is not an rnnsym.Cell (got {type(cell).__name__})")
    return cell


# The longest error line the command line prints; longer messages are cut (a bug to fix at its source).
MAX_MESSAGE = 400


def one_line(message: str) -> str:
    """``message`` as one line of at most :data:`MAX_MESSAGE` characters (after ``rnnsym: error:``)."""
    line = " ".join(str(message).split())
    if len(line) > MAX_MESSAGE:
        line = line[:MAX_MESSAGE - 40].rstrip() + f" … (message cut; {len(line)} characters)"
    return line


def fail(message: str, status: int = 2):
    """Print ``rnnsym: error: MESSAGE`` as one line on stderr and exit with ``status``."""
    click.echo(f"rnnsym: error: {one_line(message)}", err=True)
    sys.exit(status)


def clear_errors(command):
    """Turn RnnsymError into one line on stderr and exit status 2.

    An OSError that no lower layer turned into an RnnsymError (a file that cannot be read or
    written) is reported the same way, naming its file, rather than as a traceback.
    """
    @wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RnnsymError as exc:
            fail(str(exc))
        except BrokenPipeError:
            raise  # stdout closed early (``rnnsym derive | head``): click ends quietly
        except OSError as exc:
            where = f"{str(exc.filename)!r}: " if exc.filename is not None else ""
            fail(f"{where}{exc.strerror or exc}")
    return run


_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _OneLineError(click.ClickException):
    """A usage error of click's (a bad option value, an unknown option) shown as one line."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"rnnsym: error: {one_line(self.message)}", err=True)


@contextlib.contextmanager
def _one_line_usage_errors():
    try:
        yield
    except (_OneLineError, _NoArgsIsHelp):
        raise  # plain ``rnnsym``: the help text, as click shows it
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        raise _OneLineError(exc.format_message() + hint, exc.exit_code) from None


class OneLineGroup(click.Group):
    """The ``rnnsym`` group: click's usage errors, in the group and in every subcommand, are one
    line ``rnnsym: error: …`` (exit status 2) like every other error, not usage text plus an error."""

    def make_context(self, *args, **kwargs):
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage_errors():
            return super().invoke(ctx)


def emit(text: str, out: str | None) -> None:
    text = text.rstrip("\n") + "\n"
    if out:
        atomic_write_text(out, text)
    else:
        click.echo(text, nl=False)
