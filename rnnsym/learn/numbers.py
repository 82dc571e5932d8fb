"""``rnnsym derive PARAM --numbers``: the point of a worked example, read from the command line.

``--params FILE.json`` (name -> number or nested list), ``--x 0.5,-0.1,…`` (one number per step,
for a network with scalar inputs; otherwise ``--x FILE.json`` with one row per step), ``--y 1``
(or ``--y FILE.json``); anything not given is drawn at random with ``--seed`` and the output says so.
Every bad value is one line (RnnsymError), exit status 2.
"""
from __future__ import annotations

import json
import math
import os

import click

from ..errors import RnnsymError

MAX_FILE_BYTES = 1 << 20  # a point of a small network; a larger file is refused before it is read


def numbers_options(command):
    """The options of a worked example, for ``rnnsym derive``."""
    options = [
        click.option("--numbers", is_flag=True,
                     help="A worked example: every step with numbers at one point (--params, --x, --y, --seed)."),
        click.option("--params", "numbers_params", metavar="FILE.json",
                     help="With --numbers: the parameters, a JSON object name -> number or nested list."),
        click.option("--x", "numbers_x", metavar="X",
                     help="With --numbers: the input, one number per step (0.5,-0.1,…), or a JSON file of rows."),
        click.option("--y", "numbers_y", metavar="Y", help="With --numbers: the target (1, or a JSON file)."),
        click.option("--seed", "numbers_seed", type=int, default=None,
                     help="With --numbers: the random seed of what is not given [default: 0]."),
        click.option("--eta", "numbers_eta", type=float, default=None,
                     help="With --numbers: the learning rate of the update step [default: 0.1]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def pop_point(options: dict) -> dict | None:
    """Take the worked example's options out of ``options`` (the rest build the network): None
    without ``--numbers``; an option of it given without ``--numbers`` is an error."""
    numbers = options.pop("numbers", False)
    given = {k: options.pop(k, None) for k in ("numbers_params", "numbers_x", "numbers_y", "numbers_seed", "numbers_eta")}
    if not numbers:
        used = [k.replace("numbers_", "--") for k, v in given.items() if v is not None]
        if used:
            raise RnnsymError(f"{', '.join(used)} go{'es' if len(used) == 1 else ''} with --numbers "
                              "(a worked example at a point); add --numbers")
        return None
    return given


def worked_examples(network, derivations, point: dict) -> list:
    """Each derivation worked at the point the options give."""
    seed = 0 if point["numbers_seed"] is None else point["numbers_seed"]
    if seed < 0:
        raise RnnsymError(f"--seed must be a non-negative integer, got {seed}")
    eta = 0.1 if point["numbers_eta"] is None else point["numbers_eta"]
    params = _params(network, point["numbers_params"]) if point["numbers_params"] else None
    x = _x(network, point["numbers_x"]) if point["numbers_x"] is not None else None
    y = _y(point["numbers_y"]) if point["numbers_y"] is not None else None
    return [d.with_numbers(params, x, y, eta=eta, seed=seed) for d in derivations]


def read_json(path: str, what: str):
    """A JSON file's value; NaN and infinities, a missing file and bad JSON are one-line errors."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise RnnsymError(f"{what} file {path!r} holds {size} bytes; at most {MAX_FILE_BYTES} are read")
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise RnnsymError(f"cannot read the {what} file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RnnsymError(f"{what} file {path!r} is not UTF-8 text") from None

    def refuse(constant):
        raise RnnsymError(f"{what} file {path!r} holds {constant}; only finite numbers are allowed")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise RnnsymError(f"{what} file {path!r} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise RnnsymError(f"{what} file {path!r} is nested too deeply") from None


def _numeric(value, where: str):
    """``value`` if it is a number or a nested list of numbers (no booleans, no strings), else an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        raise RnnsymError(f"{where} must be a number or a nested list of numbers, got {json.dumps(value)[:60]}")
    if isinstance(value, list):
        for item in value:
            _numeric(item, where)
    elif not math.isfinite(value):
        raise RnnsymError(f"{where} holds {value}; only finite numbers are allowed")
    return value


def _params(network, path: str) -> dict:
    data = read_json(path, "--params")
    if not isinstance(data, dict):
        raise RnnsymError(f"--params file {path!r} must hold a JSON object of name -> number or nested list, "
                          f"got a {type(data).__name__}")
    return {name: _numeric(value, f"parameter {name!r} in {path!r}") for name, value in data.items()}


def _x(network, text: str):
    if text.endswith(".json") or os.path.sep in text:
        return _numeric(read_json(text, "--x"), f"x in {text!r}")
    if network.input_size != 1:
        raise RnnsymError(f"--x {text!r}: this network's inputs have {network.input_size} entries each; give "
                          f"--x FILE.json holding {network.steps} rows of {network.input_size} numbers")
    return _numbers(text, "--x")


def _y(text: str):
    if text.endswith(".json") or os.path.sep in text:
        return _numeric(read_json(text, "--y"), f"y in {text!r}")
    values = _numbers(text, "--y")
    return values[0] if len(values) == 1 else values


def _numbers(text: str, option: str) -> list[float]:
    numbers = []
    for part in text.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise RnnsymError(f"{option} {text!r}: {part.strip()!r} is not a number; give numbers separated by "
                              "commas, e.g. 0.5,-0.1") from None
        if not math.isfinite(value):
            raise RnnsymError(f"{option} {text!r} holds {part.strip()}; only finite numbers are allowed")
        numbers.append(value)
    return numbers


__all__ = ["numbers_options", "pop_point", "worked_examples"]
