"""The train loop: the compiled ``value_and_grad``, an optimizer, and the care around them.

>>> import rnnsym as rs
>>> result = rs.train(rs.seed_rnn(steps=4), "sentiment", optimizer="adam", lr=0.05, epochs=5, size=200)
>>> result.epoch, sorted(result.history)[:3]
(5, ['epoch', 'train_accuracy', 'train_loss'])
"""
from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..errors import RnnsymError, choose, positive_int
from ..numeric.compiled import check_params
from . import optimizers
from .backend import DTYPES, check_backend, gradients_on
from .checkpoint import load_checkpoint, load_model_file, save_checkpoint
from .data import Dataset, as_dataset, check_for_network, load_data
from .decode import greedy_decode, sequence_accuracy
from ..networks.initializers import INIT_STREAM
from .initializers import init_params
from .tasks import DEFAULT_SIZE, TASKS, make_task

# Independent random streams of one run, all drawn from its seed: ``[seed, purpose, ...]``.
_INIT, _SPLIT, _SHUFFLE = INIT_STREAM, 1, 2

# A run whose training loss ends an epoch this many times above its loss at the initial parameters
# has diverged, although the loss is still finite: with too large a learning rate the loss can climb
# to 1e77 and stay finite for 60 epochs, or jump about near 1e5 for ever (BCE with saturated
# outputs). An honest run's loss can rise for a while, but not a thousandfold above an untrained
# network's.
DIVERGENCE_FACTOR = 1000.0


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``params``: name -> array in the run's ``config["dtype"]`` (the best epoch's when early stopping
    is on, else the last good epoch's); ``history``: column -> list, one entry per epoch from 0 (the initial parameters):
    ``epoch, train_loss, val_loss`` and, for a classifier (BCE or cross-entropy), ``train_accuracy, val_accuracy``
    (``None`` where there is no validation set); ``stop_reason`` says why the run ended; ``backend``
    and ``device`` where the gradients were computed.
    """

    params: dict
    history: dict
    epoch: int
    best_epoch: int
    stop_reason: str
    diverged: bool
    network: dict
    config: dict
    data: dict
    elapsed: float
    checkpoint: str | None = None
    backend: str = "numpy"
    device: str | None = None
    _state: dict = field(default=None, repr=False)

    @property
    def final(self) -> dict:
        """The history row of the epoch whose parameters are in ``params``."""
        row = self.history["epoch"].index(self.best_epoch if self.config["patience"] else self.epoch)
        return {column: values[row] for column, values in self.history.items()}

    @property
    def stopped_at(self) -> int:
        """The epoch the run stopped at: the one that diverged, else the last one completed."""
        return self.epoch + 1 if self.diverged else self.epoch

    def table(self) -> str:
        """A short plain-text summary: losses (and accuracies) on the train and validation sets,
        then the epoch shown, of the epochs asked, and why the run stopped."""
        final = self.final
        lines = [f"{'':<12}{'train':>14}{'validation':>14}"]
        for metric in ("loss", "accuracy"):
            if f"train_{metric}" not in final:
                continue
            cells = []
            for part in ("train", "val"):
                value = final[f"{part}_{metric}"]
                cells.append("-" if value is None else (f"{value:.2%}" if metric == "accuracy" else format_loss(value)))
            lines.append(f"{metric:<12}{cells[0]:>14}{cells[1]:>14}")
        shown = f"epoch {final['epoch']} of {self.config['epochs']}"
        if self.stopped_at != final["epoch"]:
            shown += f" (stopped at epoch {self.stopped_at})"
        lines.append(f"{shown}; {self.stop_reason}; {self.elapsed:.1f} s; seed {self.config['seed']}")
        return "\n".join(lines)


def format_loss(value: float) -> str:
    """A loss in at most 12 characters, so tables stay aligned: 0.693147, 246775, 2.65681e+295, inf, nan."""
    return f"{float(value):.6g}"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`: ``result`` holds the last completed epoch, already checkpointed."""

    def __init__(self, result: TrainResult):
        super().__init__(f"interrupted after epoch {result.epoch}")
        self.result = result


# ---- networks as data (for checkpoints and saved models) ----------------------------------------
def describe_network(net) -> dict:
    """The network's name, steps, options and parameter shapes, as plain JSON data."""
    return json.loads(json.dumps({
        "name": net.name, "steps": net.steps, "options": dict(net.options),
        "param_shapes": {n: list(s) for n, s in net.param_shapes.items()},
    }))


# The constructor for each network name; looked up on the rnnsym package when needed, so a
# network type added later is found without a change here.
CONSTRUCTORS = {"seed": "seed_rnn", "elman": "elman_rnn", "elman_rnn": "elman_rnn", "lstm": "lstm", "gru": "gru"}


def build_network(description: Mapping):
    """The network a description from :func:`describe_network` was made from."""
    import rnnsym

    from ..networks import NETWORKS

    name = description.get("name")
    constructor = NETWORKS.get(name) or getattr(rnnsym, CONSTRUCTORS.get(name, ""), None)
    if constructor is None:
        known = sorted({*NETWORKS, *(k for k, v in CONSTRUCTORS.items() if hasattr(rnnsym, v))})
        raise RnnsymError(f"unknown network {name!r}; this rnnsym builds: {', '.join(known)}")
    options = dict(description.get("options", {}))
    accepted = inspect.signature(constructor).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        options = {k: v for k, v in options.items() if k in accepted}
    net = constructor(steps=description["steps"], **options)
    shapes = description.get("param_shapes")
    if shapes is not None and describe_network(net)["param_shapes"] != shapes:
        raise RnnsymError(f"the saved {name} network's parameters do not match the one rebuilt from its options")
    return net


# ---- settings ---------------------------------------------------------------------------------
def _number(name: str, value, *, minimum: float = 0.0, allow_zero: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer)) \
        and np.isfinite(value) and (value > minimum or (allow_zero and value == minimum))
    if not ok:
        bound = f">= {minimum:g}" if allow_zero else f"> {minimum:g}"
        raise RnnsymError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _settings(optimizer, lr, epochs, batch_size, clip, init, init_scale, seed, val_split, patience,
              optimizer_options, dtype="float64") -> dict:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RnnsymError(f"seed must be a non-negative integer, got {seed!r}")
    val_split = _number("val_split", val_split, allow_zero=True)
    choose("dtype", dtype, DTYPES)
    if val_split >= 1:
        raise RnnsymError(f"val_split must lie in [0, 1), got {val_split!r}")
    return {
        "optimizer": optimizer, "optimizer_options": optimizers.options_for(optimizer, optimizer_options),
        "lr": _number("learning rate lr", lr), "epochs": positive_int("epochs", epochs),
        "batch_size": positive_int("batch_size", batch_size),
        "clip": None if clip is None else _number("clip (the gradient-norm threshold)", clip),
        "init": init, "init_scale": _number("init_scale", init_scale),
        "seed": int(seed), "val_split": val_split,
        "patience": None if patience is None else positive_int("patience", patience),
        "dtype": str(dtype),  # a NumPy dtype equal to a name is kept as the name (the config is JSON)
    }


def _resolve_data(net, data, size, seed) -> tuple[Dataset, dict]:
    """The data as a Dataset checked against ``net``, and how to find it again on resume."""
    if size is not None and not (isinstance(data, str) and data in TASKS):
        raise RnnsymError("size applies to a built-in task only; allowed tasks: " + ", ".join(TASKS))
    if isinstance(data, str) and data in TASKS:
        size = DEFAULT_SIZE if size is None else size
        dataset, source = make_task(data, net.steps, size, seed), {"task": data, "size": size}
    elif isinstance(data, (str, os.PathLike)):
        if Path(data).suffix.lower() not in (".csv", ".npz"):
            raise RnnsymError(f"unknown task {str(data)!r}; allowed: {', '.join(TASKS)}, or a .csv or .npz file")
        dataset, source = load_data(data), {"file": str(Path(data).resolve())}
    elif isinstance(data, Dataset):
        dataset, source = as_dataset(data.x, data.y, data.name), {"arrays": data.name}
    elif isinstance(data, tuple) and len(data) == 2:
        dataset, source = as_dataset(*data), {"arrays": "data"}
    else:
        raise RnnsymError(f"data must be a task name ({', '.join(TASKS)}), a .csv/.npz path, or a tuple (x, y); "
                          f"got {type(data).__name__}")
    dataset = check_for_network(dataset, net)
    return dataset, dict(source, name=dataset.name, fingerprint=dataset.fingerprint(), size=len(dataset))


def _split(n: int, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, _SPLIT]).permutation(n)
    n_val = int(round(val_split * n))
    if val_split > 0:
        n_val = max(n_val, 1)
    if n - n_val < 1:
        raise RnnsymError(f"val_split={val_split} leaves no training data out of {n} sequences")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _given_params(net, params: Mapping) -> dict:
    """Starting or saved parameters, checked as the compiled functions check them, as copies the
    optimizer may update in place."""
    return check_params(net, params, copy=True)


# ---- the loop ---------------------------------------------------------------------------------
def train(net, data, *, optimizer: str = "sgd", lr: float = 0.1, epochs: int = 100, batch_size: int = 32,
          clip: float | None = None, init: str = "xavier", init_scale: float = 0.5, seed: int = 0,
          val_split: float = 0.2, patience: int | None = None, optimizer_options: Mapping | None = None,
          size: int | None = None, params: Mapping | None = None, checkpoint=None, checkpoint_every: int = 10,
          resume=None, on_epoch: Callable[[dict], None] | None = None, backend: str = "numpy",
          device: str | None = None, dtype: str = "float64") -> TrainResult:
    """Train ``net`` on ``data`` with its compiled gradients; return a :class:`TrainResult`.

    ``data``: a built-in task's name (``"sentiment"``, ``"adding"``, ``"sine"``; ``size``
    sequences, generated from ``seed``), a ``.csv``/``.npz`` path, a Dataset, or a tuple ``(x, y)``.
    Every setting is checked before the first epoch, and so is the data against the network.

    - ``optimizer``: ``"sgd"`` (the article's ``W_t = W_(t-1) − η·dL/dW_(t-1)``), ``"momentum"``
      or ``"adam"``; ``optimizer_options`` overrides their defaults (``momentum``; ``beta1``,
      ``beta2``, ``eps``). ``lr`` is η.
    - ``clip``: rescale the gradient to this norm when its norm is larger (Pascanu et al. 2013).
    - ``init``: ``"normal"`` (standard deviation ``init_scale``), ``"xavier"`` or
      ``"orthogonal"``; or pass starting ``params`` yourself.
    - ``seed``: initialisation, validation split, shuffling and task data all follow from it, so
      the same call gives the same result, bit for bit.
    - ``val_split``: the fraction held out for validation; ``patience``: stop when the validation
      loss (the training loss if there is no validation set) has not improved for that many
      epochs, and return the best epoch's parameters.
    - A NaN or infinite loss, gradient or parameter stops the run, and so does a training loss
      that ends an epoch more than :data:`DIVERGENCE_FACTOR` (1000) times above its value at the
      initial parameters: ``diverged`` is True, ``stop_reason`` names the epoch (and batch), and
      ``params`` are the last good epoch's, as is the checkpoint.
    - ``checkpoint``: a ``.json`` or ``.npz`` path, written every ``checkpoint_every`` epochs, at
      the end, and on Ctrl-C (which then raises :class:`TrainingInterrupted`, a
      KeyboardInterrupt carrying the result so far). ``resume``: a checkpoint to continue from; the
      other settings must be the checkpoint's, except ``epochs``, and the result is the one an
      uninterrupted run would have given.
    - ``backend``: where the gradients are computed: ``"numpy"``, ``"jax"`` (jit-compiled, float64
      kept: it turns ``jax_enable_x64`` on) or ``"torch"`` on ``device`` (``"cpu"``, ``"cuda"``,
      ``"cuda:1"`` …). The optimizers, checkpoints and history are the same NumPy code on every
      backend, so the same seed gives the same run (to rounding, about 1e-9 in float64) and a
      checkpoint resumes on any backend. See rnnsym.training.backend.
    - ``dtype``: ``"float64"`` or ``"float32"``, the precision of the whole run: the data is
      converted to it once, the parameters are drawn (in float64, the same draw) and then held in
      it, and the gradients and the optimizer's state are in it; the network is compiled with it.
      Losses and metrics are Python floats, and checkpoints store float64 numbers (a float32 value
      is exact in them), so a resumed float32 run goes on in float32, exactly. A resumed run keeps
      its dtype, like its other settings.
    - ``on_epoch(row)`` is called after every epoch run (1, 2, …, not for the initial parameters'
      row 0) with that epoch's history row.

    >>> import rnnsym as rs
    >>> r = rs.train(rs.seed_rnn(steps=4), "sentiment", lr=0.5, epochs=3, size=100, seed=1)
    >>> r.history["epoch"], r.diverged
    ([0, 1, 2, 3], False)
    """
    config = _settings(optimizer, lr, epochs, batch_size, clip, init, init_scale, seed, val_split, patience,
                       optimizer_options, dtype)
    check_backend(backend, device)
    if params is not None:
        config["init"] = "given"
    every = positive_int("checkpoint_every", checkpoint_every)
    dataset, source = _resolve_data(net, data, size, config["seed"])
    network = describe_network(net)
    classifier = net.options.get("loss") in ("bce", "cross_entropy")
    f = gradients_on(net, backend, device, config["dtype"])

    train_idx, val_idx = _split(len(dataset), config["val_split"], config["seed"])
    # Converted to the run's precision and moved to the backend's device once; the batches are taken there.
    x, y = (np.asarray(a, dtype=config["dtype"]) for a in (dataset.x, dataset.y))
    x_train, y_train = f.data(x[train_idx]), f.data(y[train_idx])
    x_val, y_val = f.data(x[val_idx]), f.data(y[val_idx])
    labels_train, labels_val = dataset.y[train_idx], dataset.y[val_idx]  # NumPy, for the accuracies

    if resume is not None:
        state = _held_in(_resumed_state(resume, network, config, source), config["dtype"])
    else:
        # Drawn in float64 whatever the dtype, so a seed starts float32 and float64 runs alike.
        start = _given_params(net, params) if params is not None else \
            init_params(net, config["init"], scale=config["init_scale"],
                        rng=np.random.default_rng([config["seed"], _INIT]))
        start = _cast(start, config["dtype"])
        state = {"network": network, "config": config, "data": source, "epoch": 0, "params": start,
                 "best_params": start, "best_epoch": 0, "best_loss": None, "bad_epochs": 0,
                 "optimizer_state": optimizers.new_state(optimizer, net.param_shapes, config["dtype"]),
                 "history": {}, "stop_reason": None, "elapsed": 0.0}

    decoded = net.options.get("teacher_forcing")  # accuracy of whole sequences, decoded greedily

    def score(p, x_part, labels) -> float:
        if decoded:
            outputs = greedy_decode(f.forward, p, x_part, labels.shape[1], labels.shape[2], as_input=f.data)
            return sequence_accuracy(outputs, labels)
        return accuracy(f.forward(p, x_part), labels, net.options["loss"])

    def evaluate(p) -> dict:
        row = {"train_loss": f.loss(p, x_train, y_train), "val_loss": f.loss(p, x_val, y_val) if len(val_idx) else None}
        if classifier:
            row["train_accuracy"] = score(p, x_train, labels_train)
            row["val_accuracy"] = score(p, x_val, labels_val) if len(val_idx) else None
        return row

    def record(row: dict) -> None:
        # New lists, not appends: the snapshot of the previous epoch must not see this row.
        state["history"] = {column: [*state["history"].get(column, []), value] for column, value in row.items()}
        monitored = row["val_loss"] if row["val_loss"] is not None else row["train_loss"]
        if state["best_loss"] is None or monitored < state["best_loss"]:
            state.update(best_loss=monitored, best_epoch=row["epoch"], best_params=state["params"], bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        # Row 0 is the starting point, not an epoch run: a progress count of epochs must not see it.
        if on_epoch is not None and row["epoch"] > 0:
            on_epoch(row)

    started = time.perf_counter() - state["elapsed"]
    if state["epoch"] == 0 and not state["history"]:
        with np.errstate(all="ignore"):
            first = evaluate(state["params"])  # the data has been checked; this also runs one forward pass
        if not np.isfinite(first["train_loss"]):
            raise RnnsymError("the loss at the initial parameters is not finite; try a smaller init_scale")
        record({"epoch": 0, **first})

    good = dict(state)  # the state at the end of the last completed epoch
    try:
        while state["stop_reason"] is None and state["epoch"] < config["epochs"]:
            epoch = state["epoch"] + 1
            if config["patience"] and state["bad_epochs"] >= config["patience"]:
                state["stop_reason"] = (f"early stopping: no improvement for {config['patience']} epochs "
                                        f"(best epoch {state['best_epoch']})")
                break
            failure = _run_epoch(f, state, config, x_train, y_train, epoch)
            row = None
            if failure is None:
                with np.errstate(all="ignore"):
                    row = {"epoch": epoch, **evaluate(state["params"])}
                failure = _diverged(row, state["history"]["train_loss"][0])
            if failure is not None:
                # With patience the result is the best epoch's parameters, else the last good epoch's.
                kept = (f"the best epoch {good['best_epoch']}" if config["patience"] else f"epoch {good['epoch']}")
                state = dict(good, stop_reason=f"{failure}; kept the parameters of {kept}", diverged=True)
                break
            state["epoch"] = epoch
            state["elapsed"] = time.perf_counter() - started
            record(row)
            good = dict(state)
            if checkpoint is not None and epoch % every == 0:
                save_checkpoint(checkpoint, _snapshot(good))
        else:
            if state["stop_reason"] is None:
                state["stop_reason"] = f"finished {state['epoch']} epochs"
    except KeyboardInterrupt:
        good = dict(good, elapsed=time.perf_counter() - started)
        if checkpoint is not None:
            save_checkpoint(checkpoint, _snapshot(good))
        raise TrainingInterrupted(_result(dict(good, stop_reason=f"interrupted after epoch {good['epoch']}"),
                                          checkpoint, f)) from None
    finally:
        f.release()  # the compiled network outlives the run: its buffers need not

    state["elapsed"] = time.perf_counter() - started
    if checkpoint is not None:
        save_checkpoint(checkpoint, _snapshot(state))
    return _result(state, checkpoint, f)


def _run_epoch(f, state: dict, config: dict, x, y, epoch: int) -> str | None:
    """One pass over the shuffled training data; updates ``state``; returns a failure or None."""
    order = np.random.default_rng([config["seed"], _SHUFFLE, epoch]).permutation(len(x))
    size = config["batch_size"]
    for batch, begin in enumerate(range(0, len(x), size), start=1):
        index = order[begin:begin + size]
        with np.errstate(all="ignore"):  # overflow is caught below, as a stop with a reason
            loss, grads = f.value_and_grad(state["params"], f.rows(x, index), f.rows(y, index))
            where = f"at epoch {epoch}, batch {batch}"
            if not np.isfinite(loss):
                return f"loss became {format_loss(loss)} {where}"
            if not all(np.isfinite(g).all() for g in grads.values()):
                return f"the gradient became NaN or infinite {where}"
            grads, _ = optimizers.clip_grad_norm(grads, config["clip"])
            params, opt_state = optimizers.step(config["optimizer"], state["params"], grads,
                                                state["optimizer_state"], config["lr"], config["optimizer_options"])
        if not all(np.isfinite(v).all() for v in params.values()):
            return f"a parameter became NaN or infinite {where}"
        state["params"], state["optimizer_state"] = params, opt_state
    return None


def _diverged(row: dict, start: float) -> str | None:
    """Why the epoch's losses show a diverged run (not finite, or far above the start), or None."""
    epoch, losses = row["epoch"], [row["train_loss"], row["val_loss"]]
    bad = [v for v in losses if v is not None and not np.isfinite(v)]
    if bad:
        return f"loss became {format_loss(bad[0])} at epoch {epoch}"
    if start > 0 and row["train_loss"] > DIVERGENCE_FACTOR * start:
        return (f"the training loss grew from {format_loss(start)} to {format_loss(row['train_loss'])} "
                f"(over {DIVERGENCE_FACTOR:g} times its start) at epoch {epoch}; the learning rate may be too large")
    return None


def accuracy(outputs, y, loss: str = "bce") -> float:
    """The share of right answers: output > 0.5 against a 0/1 label (BCE), or the most probable
    class against the one-hot target's class (cross-entropy)."""
    if loss == "cross_entropy":
        return float(np.mean(np.argmax(outputs, axis=-1) == np.argmax(y, axis=-1)))
    return float(np.mean((np.reshape(outputs, np.shape(y)) > 0.5) == (y > 0.5)))


def _snapshot(state: dict) -> dict:
    keys = ("network", "config", "data", "epoch", "params", "best_params", "best_epoch", "best_loss",
            "bad_epochs", "optimizer_state", "history", "stop_reason", "diverged", "elapsed")
    return {k: state.get(k) for k in keys}


def _result(state: dict, checkpoint, f) -> TrainResult:
    patience = state["config"]["patience"]
    return TrainResult(
        params=dict(state["best_params"] if patience else state["params"]),
        history={k: list(v) for k, v in state["history"].items()},
        epoch=state["epoch"], best_epoch=state["best_epoch"], stop_reason=state["stop_reason"],
        diverged=bool(state.get("diverged", False)), network=state["network"], config=dict(state["config"]),
        data=dict(state["data"]), elapsed=state["elapsed"],
        checkpoint=None if checkpoint is None else str(checkpoint), backend=f.backend, device=f.device,
        _state=_snapshot(state),
    )


def _cast(arrays: Mapping, dtype: str) -> dict:
    """``arrays`` in ``dtype`` (the same arrays where they are in it already)."""
    return {name: np.asarray(value, dtype=dtype) for name, value in arrays.items()}


def _held_in(state: dict, dtype: str) -> dict:
    """A resumed state's parameters and optimizer slots in the run's precision: a checkpoint stores
    float64 numbers, and a float32 run's are exact in them, so it goes on exactly where it stopped."""
    slots = state["optimizer_state"]["slots"]
    return dict(state, params=_cast(state["params"], dtype), best_params=_cast(state["best_params"], dtype),
                optimizer_state=dict(state["optimizer_state"],
                                     slots={slot: _cast(values, dtype) for slot, values in slots.items()}))


def _resumed_state(resume, network: dict, config: dict, source: dict) -> dict:
    state = load_checkpoint(resume) if not isinstance(resume, Mapping) else dict(resume)
    if state["network"] != network:
        raise RnnsymError(f"resume: the checkpoint is for the network {state['network']['name']} "
                          f"(steps={state['network']['steps']}, {state['network']['options']}), not this one")
    saved = {"dtype": "float64", **state["config"]}  # a run from before dtype was a setting ran in float64
    for key, value in config.items():
        if key != "epochs" and saved.get(key) != value:
            raise RnnsymError(f"resume: {key} is {value!r} here but {saved.get(key)!r} in the checkpoint; "
                              f"a resumed run keeps its settings (only epochs may change)")
    if state["data"].get("fingerprint") != source["fingerprint"]:
        raise RnnsymError("resume: the data differs from the data the checkpoint was trained on")
    done = state["epoch"]
    if config["epochs"] <= done:  # nothing would run: say so rather than "finish" at once
        raise RnnsymError(f"resume: the checkpoint has run {done} epochs already; epochs must be more than "
                          f"{done} to go on, got {config['epochs']}")
    state["config"] = dict(saved, epochs=config["epochs"])
    # A run that finished (or was interrupted) may go on; one that stopped early or diverged stays stopped.
    if (state.get("stop_reason") or "").startswith(("finished", "interrupted")):
        state["stop_reason"] = None
    return state


def held_out_example(net, data, result: TrainResult) -> np.ndarray:
    """The first held-out sequence of a finished run (the first training one when nothing was held
    out), ``(1, T, ...)``: the data resolved and split again as the run did it."""
    size = result.data.get("size") if result.data.get("task") else None
    dataset, _ = _resolve_data(net, data, size, result.config["seed"])
    train_idx, val_idx = _split(len(dataset), result.config["val_split"], result.config["seed"])
    first = val_idx[0] if len(val_idx) else train_idx[0]
    return dataset.x[first:first + 1]


# ---- using a trained model --------------------------------------------------------------------
def predict(net, params: Mapping, x) -> np.ndarray:
    """The network's outputs for the sequences ``x`` (checked like training inputs). A seq2seq
    network's decoder reads its own previous output (greedy decoding): ``(N, T, classes)``.

    >>> import numpy as np, rnnsym as rs
    >>> net = rs.seed_rnn(steps=2)
    >>> predict(net, {n: 0.0 for n in net.param_names}, np.zeros((3, 2))).tolist()
    [0.5, 0.5, 0.5]
    """
    x = as_dataset(x, np.zeros(np.shape(x)[:1]), "x").x
    if x.shape[1] != net.steps:
        raise RnnsymError(f"x: sequences have {x.shape[1]} steps; the network has steps={net.steps}")
    compiled, params = net.compile(), _given_params(net, params)
    if net.options.get("teacher_forcing"):
        return greedy_decode(compiled.forward, params, x, net.options["target_steps"], net.options["output_size"])
    return np.asarray(compiled.forward(params, x))


@dataclass
class Model:
    """A saved model: the rebuilt network, its parameters and the file's metadata."""

    net: object
    params: dict
    metadata: dict

    def predict(self, x) -> np.ndarray:
        return predict(self.net, self.params, x)


def load_model(path) -> Model:
    """A model saved by ``rnnsym train --out DIR`` (give DIR or its ``params.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "params.json"
    document = load_model_file(path)
    net = build_network(document["network"])
    return Model(net, _given_params(net, document["params"]), {k: v for k, v in document.items() if k != "params"})
