"""``rnnsym flow``: gradient size against time step, for a sweep of recurrent-weight scales."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import RnnsymError
from ..files import check_writable
from .common import clear_errors


def _scales(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RnnsymError(f"--scale must be numbers separated by commas, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise RnnsymError(f"--scale values must be positive, got {text!r}")
    return values


# The options that shape only one kind of run: given for the other, they are an error, not ignored.
_SEQ2SEQ_ONLY = {"source_steps": "--source-steps", "target_steps": "--target-steps", "attention": "--attention",
                 "encoder": "--encoder", "decoder": "--decoder", "input_size": "--input-size",
                 "output_size": "--output-size", "batch": "--batch", "seed": "--seed"}
_SWEEP_ONLY = {"steps": "--steps", "scale": "--scale", "activations": "--activation"}
ATTENTIONS = {"none": None, "dot": "dot", "general": "general", "additive": "additive"}


def _given(names: dict) -> list[str]:
    """The options among ``names`` that the command line set (not left at their defaults)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return [flag for name, flag in names.items()
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)]


def _attentions(text: str) -> list:
    """``--attention`` as a list, the network without attention first (the baseline every kind is
    measured against is always there)."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in names if a not in ATTENTIONS]
    if unknown or not names:
        raise RnnsymError(f"unknown attention {unknown[0] if unknown else text!r}; allowed: {', '.join(ATTENTIONS)} "
                          "(comma-separated)")
    return [None] + [ATTENTIONS[a] for a in dict.fromkeys(names) if a != "none"]


@click.command("flow")
@click.option("--net", "--network", "kind", type=click.Choice(["seed", "elman", "lstm", "gru", "seq2seq"]),
              default="elman", show_default=True,
              help="seq2seq: an encoder–decoder, measured over its encoder steps with and without attention.")
@click.option("--steps", "-T", type=click.IntRange(min=2), default=50, show_default=True)
@click.option("--scale", default="0.5,1,2", show_default=True,
              help="Largest singular values of the recurrent matrix to try, comma-separated.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--activation", "activations", default="tanh,sigmoid,relu", show_default=True,
              help="Hidden activations to compare, comma-separated.")
@click.option("--source-steps", type=click.IntRange(min=2), default=50, show_default=True,
              help="seq2seq: source length S.")
@click.option("--target-steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="seq2seq: target length.")
@click.option("--attention", default="none,dot,general,additive", show_default=True,
              help="seq2seq: attentions to compare, comma-separated; the network without attention is "
                   "always measured too.")
@click.option("--encoder", type=click.Choice(["elman", "lstm", "gru"]), default="gru", show_default=True,
              help="seq2seq: the encoder's cell.")
@click.option("--decoder", type=click.Choice(["elman", "lstm", "gru"]), default="gru", show_default=True,
              help="seq2seq: the decoder's cell.")
@click.option("--input-size", type=click.IntRange(min=1), default=2, show_default=True,
              help="seq2seq: source features.")
@click.option("--output-size", type=click.IntRange(min=2), default=4, show_default=True,
              help="seq2seq: target classes.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True,
              help="seq2seq: examples the norms are taken over.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="seq2seq: the random point (PyTorch's default initialisation) and batch.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write the picture here (PNG).")
@clear_errors
def flow(kind, steps, scale, hidden_size, activations, source_steps, target_steps, attention, encoder, decoder,
         input_size, output_size, batch, seed, out):
    """Gradient flow: ‖∂L/∂h_t‖ for every step, the factor product and the vanishing condition.

    With --net seq2seq: ‖∂L/∂h_i‖ for every encoder step i, with and without attention."""
    wrong = _given(_SWEEP_ONLY if kind == "seq2seq" else _SEQ2SEQ_ONLY)
    if wrong:
        raise RnnsymError(f"{wrong[0]} does not apply to --net {kind}"
                          + ("; seq2seq takes --source-steps, --target-steps, --attention, --encoder, --decoder, "
                             "--hidden-size, --input-size, --output-size, --batch, --seed" if kind == "seq2seq"
                             else "; it is an option of --net seq2seq"))
    if out:
        check_writable(Path(out).parent, named=out)  # before the measurement, not after it
    if kind == "seq2seq":
        _seq2seq(encoder, decoder, source_steps, target_steps, _attentions(attention), input_size, hidden_size,
                 output_size, batch, seed, out)
        return
    from ..flow import DERIVATIVE_BOUNDS, flow_sweep, plot_flow

    names = [a.strip() for a in activations.split(",") if a.strip()]
    unknown = [a for a in names if a not in DERIVATIVE_BOUNDS]
    if unknown or not names:
        raise RnnsymError(f"unknown activation {unknown[0] if unknown else activations!r}; "
                          f"allowed: {', '.join(DERIVATIVE_BOUNDS)}")
    results = flow_sweep(kind, steps, _scales(scale), activations=names, hidden_size=hidden_size)
    if not results:
        raise RnnsymError(f"none of the activations {', '.join(names)} applies to {kind}")
    first = next(iter(results.values()))
    click.echo(f"Factor product between steps: {first.product}")
    click.echo(f"{'activation':<11}{'scale':>7}{'γ·σ_max':>9}  {'‖∂L/∂h_1‖':>11}  {'‖∂L/∂h_T‖':>11}  {'ratio':>10}  case")
    for (activation, s), result in results.items():
        g = result.grad_norms
        gs = "" if result.gamma is None else f"{result.gamma * result.sigma_max:.3g}"
        click.echo(f"{activation:<11}{s:>7g}{gs:>9}  {g[0]:>11.3e}  {g[-1]:>11.3e}  {g[0] / g[-1]:>10.3e}  {result.case}")
    click.echo(first.statement if first.gamma is None else "σ < 1/γ is sufficient for vanishing; σ ≥ 1/γ is necessary (not sufficient) for exploding.")
    if out:
        plot_flow(results, out, title=f"{kind}, T = {steps}")
        click.echo(f"wrote {out}")


def _seq2seq(encoder, decoder, source_steps, target_steps, attentions, input_size, hidden_size, output_size, batch,
             seed, out) -> None:
    """The table (and picture) of ``rnnsym flow --net seq2seq``."""
    from ..flow import plot_seq2seq_flow, seq2seq_flow

    results = seq2seq_flow(encoder, decoder, source_steps=source_steps, target_steps=target_steps,
                           attentions=attentions, input_size=input_size, hidden_size=hidden_size,
                           output_size=output_size, batch=batch, seed=seed)
    S = source_steps
    click.echo(f"{encoder}–{decoder} encoder–decoder, S = {S}, target steps {target_steps}, hidden {hidden_size}, "
               f"batch {batch}, PyTorch's default initialisation (seed {seed})")
    first = next(iter(results.values()))
    click.echo(f"Factor product between encoder steps: {first.product}")
    click.echo(f"{'attention':<10}  {'‖∂L/∂h_1‖':>11}  {'‖∂L/∂h_S‖':>11}  {'h_1 / h_S':>10}  "
               f"{'via attention':>13}  {'h_1 vs none':>11}")
    base = results[None].grad_norms[0]
    for attention, result in results.items():
        g, direct = result.grad_norms, result.attention_norms
        via = "" if direct is None else f"{direct[0]:.3e}"
        gain = "" if attention is None else (f"{g[0] / base:.3g}×" if base else "inf")
        click.echo(f"{attention or 'none':<10}  {g[0]:>11.3e}  {g[-1]:>11.3e}  {g[0] / g[-1]:>10.3e}  {via:>13}  "
                   f"{gain:>11}")
    click.echo("via attention: ‖the part of ∂L/∂h_1 that arrives in one hop, through H_enc's row 1 (and the "
               "additive score's key k_1)‖.")
    if out:
        plot_seq2seq_flow(results, out, title=f"{encoder}–{decoder}, S = {S}")
        click.echo(f"wrote {out}")
