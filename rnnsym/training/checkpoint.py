"""Checkpoints and saved models: JSON or ``.npz`` files, written atomically, read without pickle.

A **checkpoint** is the whole state of a run at the end of an epoch: the parameters, the
optimizer's state, the best parameters so far, the early-stopping counter, the history, and the
settings and data fingerprint it must be resumed with. Shuffling is drawn afresh from
``(seed, epoch)`` every epoch, so no random-generator state needs saving: a resumed run repeats
the uninterrupted one exactly.

A **model** (``params.json``) is the parameters with the metadata needed to use them: the network
(name, steps, options), the epoch and the seed.

JSON keeps every float exactly (Python writes the shortest repr that reads back to the same
double). A float32 run's numbers are written as float64 too (exactly: every float32 is a double);
its ``config["dtype"]`` says to hold them in float32 again on resume. In ``.npz`` files the arrays are stored as arrays and the rest as one JSON string.

Every field is checked on load, type and range, before any work: a damaged or hand-edited file is
one :class:`~rnnsym.errors.RnnsymError` naming the file and the field, never a traceback later.
A network rebuilt from a file has at most :data:`MAX_STEPS` steps (rebuilding costs about a
millisecond a step, so a file that says ``steps: 100000`` is refused at once, not after minutes).

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "model.json")
>>> save_model(path, {"name": "seed", "steps": 1, "options": {}}, {"w": np.array(0.1)}, epoch=3, seed=0)
>>> load_model_file(path)["params"]["w"]
array(0.1)
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import RnnsymError, listed
from ..files import atomic_write_bytes, atomic_write_text

# The most steps of a network rebuilt from a checkpoint or model file (and trained from the
# command line, so that every file it writes can be read back). Building the network takes about
# 1 ms a step, and its parameters' names grow with it for the seed network.
MAX_STEPS = 10_000

CHECKPOINT_FORMAT = "rnnsym-checkpoint"
MODEL_FORMAT = "rnnsym-model"
VERSION = 1


# ---- arrays <-> JSON -------------------------------------------------------------------------
def _to_json(params: dict) -> dict:
    return {name: np.asarray(value, dtype=float).tolist() for name, value in params.items()}


def _from_json(params, where: str) -> dict[str, np.ndarray]:
    if not isinstance(params, dict):
        raise RnnsymError(f"{where}: parameters must be an object of name -> number or nested list")
    out = {}
    for name, value in params.items():
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise RnnsymError(f"{where}: parameter {name!r} is not a number or a regular nested list") from None
        if not np.isfinite(array).all():
            raise RnnsymError(f"{where}: parameter {name!r} holds NaN or infinite values")
        out[name] = array
    return out


def _dumps(document: dict) -> str:
    return json.dumps(document, indent=1, allow_nan=False) + "\n"


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnsymError(f"{str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RnnsymError(f"{path.name}: not a readable JSON file ({exc})") from None
    if not isinstance(document, dict):
        raise RnnsymError(f"{path.name}: expected a JSON object")
    return document


# ---- checkpoints -----------------------------------------------------------------------------
def save_checkpoint(path, state: dict) -> None:
    """Write a run's state (see :func:`rnnsym.training.loop.train`) as ``.json`` or ``.npz``."""
    path = Path(path)
    meta = {key: value for key, value in state.items() if key not in ("params", "best_params", "optimizer_state")}
    meta.update(format=CHECKPOINT_FORMAT, version=VERSION, optimizer_step=state["optimizer_state"]["step"])
    slots = state["optimizer_state"]["slots"]
    if path.suffix.lower() == ".npz":
        arrays = {f"params/{n}": v for n, v in state["params"].items()}
        arrays.update({f"best/{n}": v for n, v in state["best_params"].items()})
        arrays.update({f"slot/{s}/{n}": v for s, values in slots.items() for n, v in values.items()})
        arrays["meta"] = np.array(json.dumps(meta, allow_nan=False))
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v, dtype=float) if k != "meta" else v for k, v in arrays.items()})
        atomic_write_bytes(path, buffer.getvalue())
    elif path.suffix.lower() == ".json":
        document = dict(meta, params=_to_json(state["params"]), best_params=_to_json(state["best_params"]),
                        optimizer_slots={s: _to_json(values) for s, values in slots.items()})
        atomic_write_text(path, _dumps(document))
    else:
        raise RnnsymError(f"checkpoint {path.name!r}: unknown format {path.suffix or '(none)'!r}; allowed: .json, .npz")


def load_checkpoint(path) -> dict:
    """A run's state from a checkpoint file written by :func:`save_checkpoint`, checked."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            raise RnnsymError(f"checkpoint {str(path)!r} does not exist") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise RnnsymError(f"{path.name}: not a readable .npz checkpoint ({exc})") from None
        if "meta" not in arrays:
            raise RnnsymError(f"{path.name}: not an rnnsym checkpoint (no 'meta' entry)")
        try:
            document = json.loads(str(arrays.pop("meta")))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RnnsymError(f"{path.name}: damaged checkpoint metadata ({exc})") from None
        if not isinstance(document, dict):
            raise RnnsymError(f"{path.name}: damaged checkpoint metadata (not a JSON object)")
        document["params"] = {k[7:]: v for k, v in arrays.items() if k.startswith("params/")}
        document["best_params"] = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")}
        slots: dict = {}
        for key, value in arrays.items():
            if key.startswith("slot/"):
                if key.count("/") < 2:
                    raise RnnsymError(f"{path.name}: damaged checkpoint, array {_shown(key)} names no parameter")
                _, slot, name = key.split("/", 2)
                slots.setdefault(slot, {})[name] = value
        document["optimizer_slots"] = slots
    elif path.suffix.lower() == ".json":
        document = _read_json(path)
    else:
        raise RnnsymError(f"checkpoint {path.name!r}: unknown format {path.suffix or '(none)'!r}; allowed: .json, .npz")
    if document.get("format") != CHECKPOINT_FORMAT:
        raise RnnsymError(f"{path.name}: not an rnnsym checkpoint")
    if document.get("version") != VERSION:
        raise RnnsymError(f"{path.name}: checkpoint version {_shown(document.get('version'))}; "
                          f"this rnnsym reads {VERSION}")
    required = ("network", "config", "data", "epoch", "history", "params", "best_params", "optimizer_slots",
                "best_epoch", "best_loss", "bad_epochs", "stop_reason", "elapsed")
    missing = [k for k in required if k not in document]
    if missing:
        raise RnnsymError(f"{path.name}: damaged checkpoint, missing {', '.join(missing)}")
    return _checked_checkpoint(document, f"checkpoint {path.name}")


def _checked_checkpoint(document: dict, where: str) -> dict:
    """The run's state from a loaded checkpoint document, every field checked."""
    check = _Fields(where)
    network = check_network(document["network"], where)
    config = check_config(document["config"], where)
    shapes = network.get("param_shapes")
    state = {
        "network": network, "config": config, "data": _check_data(document["data"], check),
        "epoch": check.integer("epoch", document["epoch"]),
        "params": _checked_params(document["params"], shapes, f"{where}: params"),
        "best_params": _checked_params(document["best_params"], shapes, f"{where}: best_params"),
        "best_loss": check.number("best_loss", document["best_loss"], optional=True),
        "bad_epochs": check.integer("bad_epochs", document["bad_epochs"]),
        "stop_reason": check.text("stop_reason", document["stop_reason"], optional=True),
        "diverged": check.flag("diverged", document.get("diverged"), optional=True),
        "elapsed": check.number("elapsed", document["elapsed"], minimum=0),
    }
    state["best_epoch"] = check.integer("best_epoch", document["best_epoch"], maximum=state["epoch"])
    state["history"] = _check_history(document["history"], state["epoch"], check)
    slots = check.mapping("optimizer_slots", document["optimizer_slots"])
    from .optimizers import get

    expected = sorted(get(config["optimizer"]).slots)
    if sorted(slots) != expected:
        raise RnnsymError(f"{where}: 'optimizer_slots' must be {expected} for optimizer {config['optimizer']!r}, "
                          f"got {_shown(sorted(slots))}")
    state["optimizer_state"] = {
        "step": check.integer("optimizer_step", document.get("optimizer_step", 0)),
        "slots": {slot: _checked_params(values, shapes, f"{where}: optimizer slot {slot!r}")
                  for slot, values in slots.items()},
    }
    return state


# ---- checking loaded fields ------------------------------------------------------------------
def _shown(value, limit: int = 60) -> str:
    """``repr(value)``, cut short: an error message quotes a damaged value, not a whole list."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + " …" + text[-3:]


class _Fields:
    """Type and range checks of a loaded document's fields; each error names the file and field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, expected: str, value):
        raise RnnsymError(f"{self.where}: {field!r} must be {expected}, got {_shown(value)}")

    def integer(self, field, value, minimum: int = 0, maximum: int | None = None, optional: bool = False):
        if optional and value is None:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum \
            and (maximum is None or value <= maximum)
        if not ok:
            bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            self.fail(field, f"an integer {bound}" + (" or null" if optional else ""), value)
        return value

    def number(self, field, value, minimum: float | None = None, optional: bool = False, above: bool = False):
        if optional and value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) \
            and (minimum is None or (value > minimum if above else value >= minimum))
        if not ok:
            bound = "" if minimum is None else f" {'>' if above else '>='} {minimum:g}"
            self.fail(field, f"a finite number{bound}" + (" or null" if optional else ""), value)
        return value

    def text(self, field, value, optional: bool = False, limit: int = 1000):
        if optional and value is None:
            return None
        if not isinstance(value, str) or len(value) > limit:
            self.fail(field, f"a string of at most {limit} characters" + (" or null" if optional else ""), value)
        return value

    def flag(self, field, value, optional: bool = False):
        if optional and value is None:
            return None
        if not isinstance(value, bool):
            self.fail(field, "true or false" + (" or null" if optional else ""), value)
        return value

    def mapping(self, field, value) -> dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            self.fail(field, "an object", value)
        return value


def check_network(network, where: str) -> dict:
    """A saved network description (name, steps, options, param_shapes), checked before it is built."""
    check = _Fields(where)
    network = check.mapping("network", network)
    check.text("network.name", network.get("name"), limit=100)
    check.integer("network.steps", network.get("steps"), minimum=1, maximum=MAX_STEPS)
    options = check.mapping("network.options", network.get("options", {}))
    for key, value in options.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            check.fail(f"network.options.{key}", "a string, number, true, false or null", value)
    shapes = network.get("param_shapes")
    if shapes is not None:
        check.mapping("network.param_shapes", shapes)
        for name, shape in shapes.items():
            if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                      for n in shape):
                check.fail(f"network.param_shapes.{name}", "a list of sizes (integers >= 0)", shape)
    return network


# What a run's settings hold (rnnsym.training.loop's settings); a file with other keys is damaged.
_CONFIG_KEYS = ("optimizer", "optimizer_options", "lr", "epochs", "batch_size", "clip", "init", "init_scale",
                "seed", "val_split", "patience", "dtype")
# Settings added after the first files were written, with the value those runs had: a file without
# one still reads, as the run it was.
_CONFIG_DEFAULTS = {"dtype": "float64"}


def check_config(config, where: str) -> dict:
    """A run's saved settings, checked: the keys :func:`rnnsym.train` takes, each of its type and range."""
    from .backend import DTYPES
    from .initializers import INITIALIZERS
    from .optimizers import OPTIMIZERS, options_for

    check = _Fields(where)
    config = {**_CONFIG_DEFAULTS, **check.mapping("config", config)}
    if sorted(config) != sorted(_CONFIG_KEYS):
        unknown = [k for k in config if k not in _CONFIG_KEYS]
        missing = [k for k in _CONFIG_KEYS if k not in config]
        problem = f"unknown key {listed(unknown)}" if unknown else f"missing key {listed(missing)}"
        raise RnnsymError(f"{where}: 'config' is damaged: {problem}")
    if config["optimizer"] not in OPTIMIZERS:
        check.fail("config.optimizer", f"one of {', '.join(OPTIMIZERS)}", config["optimizer"])
    if config["init"] not in (*INITIALIZERS, "given"):
        check.fail("config.init", f"one of {', '.join(INITIALIZERS)}, given", config["init"])
    try:
        options_for(config["optimizer"], check.mapping("config.optimizer_options", config["optimizer_options"]))
    except RnnsymError as exc:
        raise RnnsymError(f"{where}: {exc}") from None
    check.number("config.lr", config["lr"], minimum=0, above=True)
    check.integer("config.epochs", config["epochs"], minimum=1)
    check.integer("config.batch_size", config["batch_size"], minimum=1)
    check.number("config.clip", config["clip"], minimum=0, above=True, optional=True)
    check.number("config.init_scale", config["init_scale"], minimum=0, above=True)
    check.integer("config.seed", config["seed"])
    if check.number("config.val_split", config["val_split"], minimum=0) >= 1:
        check.fail("config.val_split", "a number in [0, 1)", config["val_split"])
    check.integer("config.patience", config["patience"], minimum=1, optional=True)
    if config["dtype"] not in DTYPES:
        check.fail("config.dtype", f"one of {', '.join(DTYPES)}", config["dtype"])
    return config


def _check_data(data, check: _Fields) -> dict:
    data = check.mapping("data", data)
    if not any(k in data for k in ("task", "file", "arrays")):
        check.fail("data", "an object with 'task', 'file' or 'arrays'", data)
    for key in ("task", "file", "arrays", "name", "fingerprint"):
        if key in data:
            check.text(f"data.{key}", data[key], limit=4096)
    if "size" in data:
        check.integer("data.size", data["size"], minimum=1)
    if "task" in data and "size" not in data:
        check.fail("data", "an object with the task's 'size'", data)
    return data


_HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")


def _check_history(history, epoch: int, check: _Fields) -> dict:
    """One row per epoch from 0 to ``epoch``: epoch numbers in order, each value a number or null."""
    history = check.mapping("history", history)
    unknown = [k for k in history if k not in _HISTORY_COLUMNS]
    if unknown or not {"epoch", "train_loss", "val_loss"} <= set(history):
        check.fail("history", f"an object of the columns {', '.join(_HISTORY_COLUMNS[:3])} "
                              f"(and {', '.join(_HISTORY_COLUMNS[3:])})", sorted(history))
    for column, values in history.items():
        if not isinstance(values, list) or len(values) != epoch + 1:
            check.fail(f"history.{column}", f"a list of {epoch + 1} values (epochs 0 to {epoch})", values)
        for value in values:
            if column == "epoch":
                continue
            check.number(f"history.{column}", value, optional=True)
    if history["epoch"] != list(range(epoch + 1)):
        check.fail("history.epoch", f"the epochs 0 to {epoch} in order", history["epoch"])
    return history


def _checked_params(params, shapes, where: str) -> dict[str, np.ndarray]:
    """Parameters from a file as arrays; with the network's ``shapes``, exactly its names and shapes."""
    arrays = _from_json(params, where)
    if shapes is None:
        return arrays
    missing = [n for n in shapes if n not in arrays]
    unknown = [n for n in arrays if n not in shapes]
    if missing or unknown:
        problem = f"missing {listed(missing)}" if missing else f"unknown {listed(unknown)}"
        raise RnnsymError(f"{where}: {problem} (the network has {len(shapes)} parameters)")
    for name, shape in shapes.items():
        if arrays[name].shape != tuple(shape) and not (shape == [] and arrays[name].shape == (1,)):
            raise RnnsymError(f"{where}: parameter {name!r} has shape {arrays[name].shape}; "
                              f"the network's is {tuple(shape)}")
    return arrays


# ---- models ----------------------------------------------------------------------------------
def save_model(path, network: dict, params: dict, **metadata) -> None:
    """Write ``params.json``: the parameters and the network that uses them, plus ``metadata``."""
    document = {"format": MODEL_FORMAT, "version": VERSION, "network": network, **metadata,
                "params": _to_json(params)}
    atomic_write_text(path, _dumps(document))


def load_model_file(path) -> dict:
    """The document written by :func:`save_model`, with ``params`` as arrays."""
    path = Path(path)
    document = _read_json(path)
    if document.get("format") != MODEL_FORMAT:
        raise RnnsymError(f"{path.name}: not an rnnsym model file (written by 'rnnsym train --out')")
    if document.get("version", VERSION) != VERSION:
        raise RnnsymError(f"{path.name}: model version {_shown(document.get('version'))}; this rnnsym reads {VERSION}")
    if not isinstance(document.get("network"), dict) or "name" not in document["network"] \
            or "steps" not in document["network"]:
        raise RnnsymError(f"{path.name}: the model's network description is missing or damaged")
    network = check_network(document["network"], path.name)
    check = _Fields(path.name)
    for field in ("epoch", "epochs_run", "seed"):
        if field in document:
            check.integer(field, document[field])
    if "stop_reason" in document:
        check.text("stop_reason", document["stop_reason"], optional=True)
    for field in ("backend", "device"):  # where the gradients were computed; informative only
        if field in document:
            check.text(field, document[field], optional=True)
    if "config" in document:
        check_config(document["config"], path.name)
    if "data" in document:
        _check_data(document["data"], check)
    for key, value in check.mapping("metrics", document.get("metrics", {})).items():
        check.number(f"metrics.{key}", value, optional=True)
    document["params"] = _checked_params(document.get("params"), network.get("param_shapes"), path.name)
    return document
