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


@click.command("flow")
@click.option("--net", "kind", type=click.Choice(["seed", "elman", "lstm", "gru"]), default="elman", show_default=True)
@click.option("--steps", "-T", type=click.IntRange(min=2), default=50, show_default=True)
@click.option("--scale", default="0.5,1,2", show_default=True,
              help="Largest singular values of the recurrent matrix to try, comma-separated.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--activation", "activations", default="tanh,sigmoid,relu", show_default=True,
              help="Hidden activations to compare, comma-separated.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write the picture here (PNG).")
@clear_errors
def flow(kind, steps, scale, hidden_size, activations, out):
    """Gradient flow: ‖∂L/∂h_t‖ for every step, the factor product and the vanishing condition."""
    from ..flow import DERIVATIVE_BOUNDS, flow_sweep, plot_flow

    if out:
        check_writable(Path(out).parent, named=out)  # before the sweep, not after it
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
