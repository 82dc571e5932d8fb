"""The files a run writes into its ``--out`` directory, each atomically.

- ``params.json``: the parameters, with the network (name, steps, options), epoch and seed, and
  the backend (and torch device) that computed the gradients;
- ``history.csv``: ``epoch,train_loss,val_loss`` (plus ``train_accuracy,val_accuracy`` for a
  classifier), one row per epoch from 0; an empty cell where there is no validation set;
- ``loss.png``: the loss curves (matplotlib, Agg backend, imported only here);
- ``attention.png`` (a seq2seq network with attention): the attention weights of a held-out
  example, decoded greedily: one row per target step, one column per source step;
- ``checkpoint.json`` or ``checkpoint.npz``: the whole state, for ``--resume``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import atomic_write_bytes, atomic_write_text
from .checkpoint import save_model

CHECKPOINT_NAMES = ("checkpoint.json", "checkpoint.npz")


def checkpoint_path(directory, fmt: str = "json") -> Path:
    return Path(directory) / f"checkpoint.{fmt}"


def find_checkpoint(directory) -> Path | None:
    """The checkpoint in a run's directory, if there is one."""
    for name in CHECKPOINT_NAMES:
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


def history_csv(history: dict) -> str:
    columns = [c for c in ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy") if c in history]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*(history[c] for c in columns)):
        writer.writerow(["" if v is None else (str(v) if isinstance(v, int) else repr(float(v))) for v in row])
    return out.getvalue()


def loss_png(history: dict, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is opened
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(history["epoch"], history["train_loss"], label="train")
    val = [(e, v) for e, v in zip(history["epoch"], history["val_loss"]) if v is not None]
    if val:
        ax.plot(*zip(*val), label="validation")
    if min(history["train_loss"]) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def attention_png(weights, source: list, decoded: list, title: str) -> bytes:
    """A heat map of attention weights ``(T, S)``: the decoded symbol of each target step (rows)
    against the symbol of each source step (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T, S = weights.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * S, 1.2 + 0.45 * T), dpi=100)
    image = ax.imshow(weights, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(S), [f"{i + 1}: {s}" for i, s in enumerate(source)], rotation=90)
    ax.set_yticks(range(T), [f"{t + 1}: {s}" for t, s in enumerate(decoded)])
    ax.set_xlabel("source step: symbol")
    ax.set_ylabel("target step: decoded symbol")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight α")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_run(directory, result, *, plot: bool = True, attention: bytes | None = None) -> list[Path]:
    """Write ``params.json``, ``history.csv`` and ``loss.png`` for ``result`` (and ``attention.png``,
    the bytes of :func:`attention_png`, when given); return their paths."""
    directory = Path(directory)
    final = result.final
    written = [directory / "params.json", directory / "history.csv"]
    save_model(written[0], result.network, result.params, epoch=final["epoch"], epochs_run=result.epoch,
               seed=result.config["seed"], stop_reason=result.stop_reason, data=result.data, config=result.config,
               metrics={k: v for k, v in final.items() if k != "epoch"},
               backend=result.backend, device=result.device)
    atomic_write_text(written[1], history_csv(result.history))
    if plot:
        written.append(directory / "loss.png")
        title = f"{result.network['name']} network (T = {result.network['steps']}) on {result.data.get('name')}"
        atomic_write_bytes(written[2], loss_png(result.history, title))
    if attention is not None:
        written.append(directory / "attention.png")
        atomic_write_bytes(written[-1], attention)
    return written
