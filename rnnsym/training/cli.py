"""``rnnsym train`` and ``rnnsym predict``.

Bad input (a non-positive learning rate, NaN in a data file, a missing column, labels outside
{0, 1} for BCE) is reported on one line with exit status 2 before training starts. A run whose
loss diverges stops with a one-line reason and exit status 2, keeping the last good parameters;
Ctrl-C saves a checkpoint and exits with status 130; ``--resume DIR`` continues it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
from click.core import ParameterSource

from ..errors import RnnsymError
from ..cli.common import cell_options, clear_errors, network_options, seq2seq_options
from ..files import check_writable
from .backend import BACKENDS, DTYPES
from .checkpoint import MAX_STEPS, load_checkpoint
from .data import load_data
from .initializers import INITIALIZERS
from .loop import TrainingInterrupted, build_network, held_out_example, load_model, predict, train
from .optimizers import OPTIMIZERS
from .outputs import checkpoint_path, find_checkpoint, write_run
from .tasks import TASKS, make_task

# Settings a resumed run takes from its checkpoint; giving one of them with --resume is an error.
_RUN_SETTINGS = ("net_name", "input_size", "hidden_size", "output_size", "outputs", "truncate", "bidirectional",
                 "steps", "activation", "output_activation", "loss", "shared_bias",
                 "task", "data", "size", "optimizer", "lr", "momentum", "batch_size", "clip", "init", "init_scale",
                 "seed", "val_split", "patience")


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def _build_network(ctx, net_name, steps, activation, output_activation, loss, shared_bias, cell, suggested: dict,
                   input_size: int):
    """The network from the options; options left unset take the task's suggestion (loss, output...)."""
    from ..networks import make_network

    options = {"activation": activation, "output_activation": output_activation, "loss": loss,
               "shared_bias": shared_bias, **cell}
    for key in ("output_activation", "loss"):
        if not _given(ctx, key) and key in suggested:
            options[key] = suggested[key]
    if net_name != "seed":  # the seed network takes one input and has one output; the data check says so
        options["input_size"] = options["input_size"] or input_size
        options["outputs"] = options["outputs"] or suggested.get("outputs")
        options["output_size"] = options["output_size"] or suggested.get("output_size")
    return make_network(net_name, steps, **options)


def _train(ctx, net_name, input_size, hidden_size, output_size, outputs, truncate, bidirectional, cell_ref, steps, activation,
           output_activation, loss, shared_bias, task, data, size, optimizer, lr, momentum, epochs, batch_size, clip,
           init, init_scale, seed, val_split, patience, out, resume, checkpoint_every, checkpoint_format, quiet,
           backend, device, dtype, encoder, decoder, attention, target_steps):
    """Train a network with its compiled gradients, on a built-in task or your data.

    \b
    rnnsym train --net seed --task sentiment --optimizer sgd --lr 0.5 --epochs 200 --out runs/first
    rnnsym train --resume runs/first --epochs 400
    rnnsym train --net lstm --task sentiment --backend torch --device cuda
    rnnsym train --net lstm --task adding --dtype float32
    rnnsym train --task reverse --attention dot --hidden-size 32 --steps 8 --optimizer adam --lr 0.01 --out runs/rev
    """
    if device is not None and backend != "torch":
        raise RnnsymError(f"--device applies to --backend torch, not {backend}")
    if cell_ref:
        raise RnnsymError("train takes a built-in --net; a --cell from a Python file cannot be rebuilt "
                          "from a checkpoint (use rnnsym.train in Python for your own cell)")
    if out is not None or resume is not None:
        check_writable(out or resume)  # before the epochs, not after them
    if resume is not None:
        given = [name for name in _RUN_SETTINGS if _given(ctx, name)]
        if given:
            raise RnnsymError(f"--resume takes the run's settings from its checkpoint; drop "
                              f"--{given[0].replace('_', '-')} (only --epochs, --out and checkpoint options may change)")
        found = find_checkpoint(resume)
        if found is None:
            raise RnnsymError(f"--resume {resume}: no checkpoint.json or checkpoint.npz in that directory")
        state = load_checkpoint(found)
        # A resumed run keeps its precision; --dtype may be given, but only as the run's own.
        if _given(ctx, "dtype") and dtype != state["config"]["dtype"]:
            raise RnnsymError(f"--dtype {dtype} does not match the resumed run's dtype {state['config']['dtype']}; "
                              f"drop --dtype to continue in {state['config']['dtype']}")
        net = build_network(state["network"])
        source, config = state["data"], dict(state["config"])
        dataset = _saved_data(source)
        if "task" in source:
            config["size"] = source["size"]
        settings = {k: v for k, v in config.items() if k != "optimizer_options"}
        settings.update(optimizer_options=config["optimizer_options"],
                        epochs=epochs if _given(ctx, "epochs") else config["epochs"])
        out = out or resume
        same_place = Path(out).resolve() == Path(resume).resolve() and not _given(ctx, "checkpoint_format")
        ckpt = found if same_place else checkpoint_path(out, checkpoint_format)
        start_epoch = state["epoch"]
        resume_from = state
    else:
        if task and data:
            raise RnnsymError("give either --task or --data, not both")
        if data:
            dataset = load_data(data)
            if not _given(ctx, "steps"):
                steps = dataset.steps
        else:
            task = task or "sentiment"
            dataset = make_task(task, steps, 1, seed)  # only its suggested options; the data comes in train()
        if not _given(ctx, "net_name") and "net" in dataset.suggested:  # reverse and copy are seq2seq tasks
            net_name = dataset.suggested["net"]
        cell = dict(input_size=input_size, hidden_size=hidden_size, output_size=output_size, outputs=outputs,
                    truncate=truncate, bidirectional=bidirectional)
        cell.update(_seq2seq_settings(ctx, net_name, dataset.suggested, encoder=encoder, decoder=decoder,
                                      attention=attention, target_steps=target_steps))
        if steps > MAX_STEPS:  # a run's files must read back (rnnsym.training.checkpoint.MAX_STEPS)
            raise RnnsymError(f"steps must be at most {MAX_STEPS} for training from the command line, got {steps}")
        net = _build_network(ctx, net_name, steps, activation, output_activation, loss, shared_bias, cell,
                             dataset.suggested, dataset.input_size)
        dataset = dataset if data else task
        opt_options = {} if momentum is None else {"momentum": momentum}
        if momentum is not None and optimizer != "momentum":
            raise RnnsymError(f"--momentum applies to --optimizer momentum, not {optimizer}")
        settings = dict(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, clip=clip, init=init,
                        init_scale=init_scale, seed=seed, val_split=val_split, patience=patience,
                        optimizer_options=opt_options, dtype=dtype)
        if data is None:
            settings["size"] = size
        elif size is not None:
            raise RnnsymError("--size applies to a built-in --task, not to --data")
        ckpt = checkpoint_path(out, checkpoint_format) if out else None
        start_epoch, resume_from = 0, None

    from tqdm import tqdm

    # Only on a terminal: a log file or a pipe would collect every redraw of the bar.
    bar = tqdm(total=settings["epochs"], initial=start_epoch, unit="epoch", disable=quiet or not sys.stderr.isatty(),
               file=sys.stderr,
               dynamic_ncols=True, leave=False)

    def on_epoch(row):
        bar.update(1)
        shown = {"loss": f"{row['train_loss']:.4g}"}
        if row.get("val_loss") is not None:
            shown["val_loss"] = f"{row['val_loss']:.4g}"
        if row.get("val_accuracy") is not None:
            shown["val_acc"] = f"{row['val_accuracy']:.1%}"
        bar.set_postfix(shown, refresh=False)

    try:
        result = train(net, dataset, checkpoint=ckpt, checkpoint_every=_positive("--checkpoint-every", checkpoint_every),
                       resume=resume_from, on_epoch=on_epoch, backend=backend, device=device, **settings)
    except TrainingInterrupted as stop:
        bar.close()
        if out:
            write_run(out, stop.result)
            click.echo(f"rnnsym: interrupted after epoch {stop.result.epoch}; checkpoint saved in {ckpt}; "
                       f"continue with: rnnsym train --resume {out}", err=True)
        else:
            click.echo(f"rnnsym: interrupted after epoch {stop.result.epoch}; nothing saved (no --out)", err=True)
        sys.exit(130)
    bar.close()
    where = "" if result.backend == "numpy" else f", backend {result.backend}" + (
        f" on {result.device}" if result.device else "")
    if result.config["dtype"] != "float64":  # float64 is the default and goes unsaid
        where += f", {result.config['dtype']}"
    click.echo(f"{net.name} network (T = {net.steps}), {result.data.get('name')}, "
               f"{result.config['optimizer']} lr={result.config['lr']:g}{where}")
    click.echo(result.table())
    if out:
        written = write_run(out, result, attention=_attention_figure(net, result, dataset))
        click.echo("wrote " + ", ".join(str(p) for p in [*written, ckpt]))
    if result.diverged:
        click.echo(f"rnnsym: training stopped: {result.stop_reason}", err=True)
        sys.exit(2)


def _seq2seq_settings(ctx, net_name: str, suggested: dict, **given) -> dict:
    """The seq2seq options for ``--net seq2seq`` (the target length the task's when not given);
    refused for any other network, with the option named."""
    if net_name != "seq2seq":
        for name, value in given.items():
            if value is not None:
                raise RnnsymError(f"--{name.replace('_', '-')} applies to --net seq2seq, not {net_name}")
        return {}
    if given["target_steps"] is None:
        given["target_steps"] = suggested.get("target_steps")
    return given


def _attention_figure(net, result, data) -> bytes | None:
    """``attention.png``'s bytes for a seq2seq network with attention: a held-out example."""
    if not net.options.get("attention"):
        return None
    from .decode import attention_map
    from .outputs import attention_png

    x = held_out_example(net, data, result)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in result.params.items()}
    outputs, weights = attention_map(net, params, x)
    source = np.argmax(x[0], axis=-1).tolist() if x.ndim == 3 else np.round(x[0], 3).tolist()
    title = f"{net.options['attention']} attention, {result.data.get('name')}: a held-out example"
    return attention_png(weights[0], source, np.argmax(outputs[0], axis=-1).tolist(), title)


def _positive(flag: str, value: int) -> int:
    if value < 1:
        raise RnnsymError(f"{flag} must be a positive integer, got {value}")
    return value


def _saved_data(source: dict):
    if "task" in source:
        return source["task"]
    if "file" in source:
        return load_data(source["file"])
    raise RnnsymError("--resume: this run was trained on arrays given in Python; resume it with rnnsym.train(...)")


def _predict(model, data, out):
    """Apply a saved MODEL (a run's directory or its params.json) to a .csv or .npz DATA file.

    Prints one CSV row per sequence: the output (``prediction``, or ``p1 … pT`` for a network with
    an output at every step) and, for a classifier, the ``label`` (output > 0.5, or the most probable
    class for cross-entropy). When the file has
    targets, a summary line (loss, accuracy) goes to stderr.
    """
    from ..files import atomic_write_text

    loaded = load_model(model)
    dataset = load_data(data, targets=False)
    outputs = np.asarray(predict(loaded.net, loaded.params, dataset.x))
    columns = outputs.reshape(len(outputs), -1)
    loss_name = loaded.net.options.get("loss")
    classes = loss_name == "cross_entropy" and loaded.net.options.get("outputs", "last") == "last"
    names = ["prediction"] if columns.shape[1] == 1 else [f"p{t}" for t in range(1, columns.shape[1] + 1)]
    classifier = loss_name == "bce"
    labelled = classes or (classifier and columns.shape[1] == 1)
    lines = [",".join(names + (["label"] if labelled else []))]
    for row in columns:
        cells = [repr(float(v)) for v in row]
        if labelled:  # the class with the largest probability, or output > 0.5
            cells.append(str(int(np.argmax(row))) if classes else str(int(row[0] > 0.5)))
        lines.append(",".join(cells))
    text = "\n".join(lines) + "\n"
    if out:
        atomic_write_text(out, text)
    else:
        click.echo(text, nl=False)
    if dataset.y.size:
        from .data import check_for_network

        checked = check_for_network(dataset, loaded.net)
        loss = loaded.net.compile().loss(loaded.params, checked.x, checked.y)
        summary = f"{len(dataset)} sequences: loss {loss:.6f}"
        if classifier or loss_name == "cross_entropy":
            from .loop import accuracy

            summary += f", accuracy {accuracy(outputs, checked.y, loss_name):.2%}"
        click.echo(summary, err=True)


def _stack(function, decorators):
    """``decorators`` applied as if written above ``function`` in this order (the last one innermost)."""
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


# ---- the click commands --------------------------------------------------------------------------
train_command = _stack(_train, [
    click.command("train"),
    cell_options,
    network_options,
    seq2seq_options,
    click.option("--task", type=click.Choice(list(TASKS)), default=None, help="A built-in task (default: sentiment)."),
    click.option("--data", type=click.Path(dir_okay=False), default=None, help="Your own .csv or .npz data file."),
    click.option("--size", type=int, default=None, help="Sequences to generate for a built-in task [1000]."),
    click.option("--optimizer", type=click.Choice(list(OPTIMIZERS)), default="sgd", show_default=True),
    click.option("--lr", type=float, default=0.1, show_default=True, help="Learning rate η."),
    click.option("--momentum", type=float, default=None, help="Momentum coefficient (optimizer momentum) [0.9]."),
    click.option("--epochs", type=int, default=100, show_default=True),
    click.option("--batch-size", type=int, default=32, show_default=True),
    click.option("--clip", type=float, default=None, help="Rescale gradients whose norm exceeds this."),
    click.option("--init", type=click.Choice(list(INITIALIZERS)), default="xavier", show_default=True),
    click.option("--init-scale", type=float, default=0.5, show_default=True, help="Standard deviation for --init normal."),
    click.option("--seed", type=int, default=0, show_default=True, help="Makes the run exactly reproducible."),
    click.option("--val-split", type=float, default=0.2, show_default=True, help="Fraction held out for validation."),
    click.option("--patience", type=int, default=None, help="Stop after this many epochs without improvement."),
    click.option("--out", type=click.Path(file_okay=False), default=None,
                 help="Directory for params.json, history.csv, loss.png (attention.png) and the checkpoint."),
    click.option("--resume", type=click.Path(file_okay=False), default=None,
                 help="Continue the run saved in this directory (its settings; --epochs may change)."),
    click.option("--checkpoint-every", type=int, default=10, show_default=True, help="Epochs between checkpoints."),
    click.option("--checkpoint-format", type=click.Choice(["json", "npz"]), default="json", show_default=True),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    click.option("--backend", type=click.Choice(list(BACKENDS)), default="numpy", show_default=True,
                 help="Where the gradients are computed (jax and torch need rnnsym[jax] / rnnsym[torch])."),
    click.option("--device", default=None, help="The torch device for --backend torch: cpu, cuda, cuda:1 … [cpu]."),
    click.option("--dtype", type=click.Choice(list(DTYPES)), default="float64", show_default=True,
                 help="The precision of data, parameters, gradients and optimizer state (a resumed run keeps its own)."),
    click.pass_context,
    clear_errors,
])
predict_command = _stack(_predict, [
    click.command("predict"),
    click.argument("model", type=click.Path()),
    click.argument("data", type=click.Path(dir_okay=False)),
    click.option("--out", "-o", type=click.Path(dir_okay=False), default=None, help="Write the CSV here (atomically)."),
    clear_errors,
])
