"""Checkpoints and saved models: JSON or ``.npz`` files, written atomically, read without pickle.

A **checkpoint** is the whole state of a run at the end of an epoch: the parameters, the
optimizer's state, the best parameters so far, the early-stopping counter, the history, and the
settings and data fingerprint it must be resumed with. Shuffling is drawn afresh from
``(seed, epoch)`` every epoch, so no random-generator state needs saving: a resumed run repeats
the uninterrupted one exactly.

A **model** (``params.json``) is the parameters with the metadata needed to use them: the network
(name, steps, options), the epoch and the seed.

JSON keeps every float exactly (Python writes the shortest repr that reads back to the same
double). In ``.npz`` files the arrays are stored as arrays and the rest as one JSON string.

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

from ..errors import RnnsymError
from ..files import atomic_write_bytes, atomic_write_text

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
        except json.JSONDecodeError as exc:
            raise RnnsymError(f"{path.name}: damaged checkpoint metadata ({exc})") from None
        document["params"] = {k[7:]: v for k, v in arrays.items() if k.startswith("params/")}
        document["best_params"] = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")}
        slots: dict = {}
        for key, value in arrays.items():
            if key.startswith("slot/"):
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
        raise RnnsymError(f"{path.name}: checkpoint version {document.get('version')!r}; this rnnsym reads {VERSION}")
    required = ("network", "config", "data", "epoch", "history", "params", "best_params", "optimizer_slots")
    missing = [k for k in required if k not in document]
    if missing:
        raise RnnsymError(f"{path.name}: damaged checkpoint, missing {', '.join(missing)}")
    where = f"checkpoint {path.name}"
    state = {k: v for k, v in document.items() if k not in ("format", "version", "optimizer_step", "optimizer_slots")}
    state["params"] = _from_json(document["params"], where)
    state["best_params"] = _from_json(document["best_params"], where)
    state["optimizer_state"] = {
        "step": int(document.get("optimizer_step", 0)),
        "slots": {slot: _from_json(values, where) for slot, values in document["optimizer_slots"].items()},
    }
    return state


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
    network = document.get("network")
    if not isinstance(network, dict) or not isinstance(network.get("name"), str) or "steps" not in network:
        raise RnnsymError(f"{path.name}: the model's network description is missing or damaged")
    document["params"] = _from_json(document.get("params"), path.name)
    return document
