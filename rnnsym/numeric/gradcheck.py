"""The gradient checker: compiled gradients against central differences, in float64.

The numeric derivative is the five-point central stencil
``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h``: its error is O(h**4), so a step of 1e-3
keeps both truncation and rounding near 1e-12 and even small gradients are checked to 1e-6.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import RnnsymError
from ..progress import progress


@dataclass(frozen=True)
class GradcheckRow:
    """One parameter: the largest relative error over its entries, and the entry where it occurs."""

    name: str
    analytic: float
    numeric: float
    rel_error: float


@dataclass(frozen=True)
class GradcheckReport:
    """The result of :func:`gradcheck`: ``ok`` when every relative error is within ``tolerance``."""

    rows: list[GradcheckRow]
    tolerance: float
    loss: float
    batch: int
    seed: int
    eps: float
    params: dict = field(repr=False, default_factory=dict)  # the point checked
    x: object = field(repr=False, default=None)
    y: object = field(repr=False, default=None)
    truncate: int | None = None
    truncation_error: dict = field(default_factory=dict)  # name -> max |truncated - full| gradient
    checked: int | None = None  # entries checked one by one when a sample was drawn (None: all of them)

    @property
    def max_rel_error(self) -> float:
        return max((r.rel_error for r in self.rows), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.tolerance

    def table(self) -> str:
        """A plain-text table, one row per parameter."""
        head = f"{'parameter':<12}{'analytic':>16}{'numeric':>16}{'rel. error':>12}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.name:<12}{r.analytic:>16.8e}{r.numeric:>16.8e}{r.rel_error:>12.1e}")
        if self.truncate is not None:
            lines.append(f"truncated BPTT (k = {self.truncate}) against the full gradient, max |difference|:")
            lines += [f"  {name:<10}{diff:>16.8e}" for name, diff in self.truncation_error.items()]
        if self.checked is not None:
            lines.append(f"{self.checked} entries drawn at random were checked one by one, and the whole gradient "
                         "along one random direction")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: max relative error {self.max_rel_error:.1e} (tolerance {self.tolerance:.0e}), "
                     f"batch {self.batch}, seed {self.seed}, step {self.eps:g}")
        return "\n".join(lines)


# A finite difference of a float64 loss is only good to about 1e-13 absolute (rounding in the loss
# divided by the step), so gradients smaller than this are compared on this absolute scale.
GRADIENT_FLOOR = 1e-6


def relative_error(a: float, b: float) -> float:
    """``|a - b| / max(|a|, |b|, GRADIENT_FLOOR)``: relative, except for vanishingly small gradients."""
    return abs(a - b) / max(abs(a), abs(b), GRADIENT_FLOOR)


def random_point(network, batch: int = 4, seed: int = 0):
    """Parameters, inputs and targets drawn at random, valid for the network's loss."""
    rng = np.random.default_rng(seed)
    params = {name: (rng.normal(0.0, 0.8) if shape == () else rng.normal(0.0, 0.6, size=shape))
              for name, shape in network.param_shapes.items()}
    graph = network.graph
    inputs = graph.of_kind("input")
    x = rng.normal(size=(batch, network.steps) + inputs[0].shape)
    targets = graph.of_kind("target")
    target = targets[0]
    lead = (batch, len(targets)) if target.step is not None else (batch,)  # a decoder's steps are its own
    loss = network.options.get("loss")
    if loss == "cross_entropy":
        y = rng.integers(0, target.shape[0], size=lead)
    elif loss == "bce":
        y = rng.integers(0, 2, size=lead + target.shape).astype(float)
    else:
        y = rng.normal(size=lead + target.shape)
    return params, x, y


def _positive_finite(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and value > 0)


# Past this many parameter entries, a random sample of them is checked one by one (and the whole
# gradient in one random direction, so no parameter goes unchecked): each entry costs four passes
# over the sequence, so checking all 40002 of a seed network at T = 20000 would take hours.
MAX_ENTRIES = 400


def gradcheck(network, params=None, x=None, y=None, *, batch: int = 4, seed: int = 0,
              eps: float = 1e-3, tolerance: float = 1e-6, truncate: int | None = None,
              max_entries: int = MAX_ENTRIES) -> GradcheckReport:
    """Compare ``network.compile().value_and_grad`` with central differences of the batch loss.

    Unless given, parameters, inputs and targets are drawn at random (``seed``). With ``truncate=k``
    (or a network built with ``truncate``) the full gradient is still what is checked, and the
    report adds how far the truncated gradient is from it. Each entry of
    each parameter is moved by ``±eps`` and ``±2·eps``; the row keeps the entry with the largest relative error.
    A network with more than ``max_entries`` entries in all has a seeded random sample of that many
    checked, plus the directional derivative of the whole gradient in one random direction (the row
    ``(all, one direction)``); the report says how many entries it checked.

    >>> report = rnnsym.gradcheck(rnnsym.seed_rnn(steps=4))
    >>> report.ok
    True
    """
    # One message per setting, each naming its own value (``rnnsym check --tolerance nan`` must not
    # hear about eps); NaN fails every comparison and infinity would pass any gradient, so both are refused.
    if not _positive_finite(tolerance):
        raise RnnsymError(f"tolerance (--tolerance: the largest relative error that passes) must be a finite "
                          f"number > 0, got {tolerance!r}")
    if not _positive_finite(eps):
        raise RnnsymError(f"eps (the finite-difference step) must be a finite number > 0, got {eps!r}")
    drawn = random_point(network, batch, seed)
    params = drawn[0] if params is None else params
    x = drawn[1] if x is None else x
    y = drawn[2] if y is None else y
    truncate = network.options.get("truncate") if truncate is None else truncate
    f = network.compile(truncate=network.steps) if truncate is not None else network.compile()
    loss, grads = f.value_and_grad(params, x, y)
    truncation_error = {}
    if truncate is not None:
        _, cut = network.compile(truncate=truncate).value_and_grad(params, x, y)
        truncation_error = {n: float(np.max(np.abs(cut[n] - grads[n]))) for n in f.param_names}
    entries = [(name, index) for name in f.param_names for index in np.ndindex(np.shape(params[name]))]
    sampled = len(entries) > max_entries
    if sampled:
        rng = np.random.default_rng(seed)
        entries = [entries[i] for i in sorted(rng.choice(len(entries), size=max_entries, replace=False))]
    worst: dict[str, GradcheckRow] = {}
    for name, index in progress(entries, "gradient check", "entry", after=50):
        numeric = _stencil(lambda k: f.loss({**params, name: _moved(params[name], index, k * eps)}, x, y), eps)
        err = relative_error(float(np.asarray(grads[name])[index]), numeric)
        if name not in worst or err >= worst[name].rel_error:
            worst[name] = GradcheckRow(name, float(np.asarray(grads[name])[index]), numeric, err)
    rows = [worst[n] for n in f.param_names if n in worst]
    if sampled:
        rows.append(_direction_row(f, params, grads, x, y, eps, seed))
    return GradcheckReport(rows, tolerance, loss, np.shape(x)[0], seed, eps, dict(params), x, y,
                           truncate, truncation_error, checked=len(entries) if sampled else None)


def _moved(value, index, step: float) -> np.ndarray:
    moved = np.array(value, dtype=float)
    moved[index] += step
    return moved


def _stencil(loss_at, eps: float) -> float:
    """The five-point central difference of ``loss_at(k)`` (the loss moved by ``k·eps``)."""
    values = {k: loss_at(k) for k in (2, 1, -1, -2)}
    # Differences first: a loss that does not move gives exactly 0, not rounding noise.
    return (8 * (values[1] - values[-1]) - (values[2] - values[-2])) / (12 * eps)


def _direction_row(f, params, grads, x, y, eps: float, seed: int) -> GradcheckRow:
    """The gradient against the derivative of the loss along one random unit direction of every parameter."""
    rng = np.random.default_rng(seed + 1)
    direction = {n: rng.normal(size=np.shape(params[n])) for n in f.param_names}
    norm = np.sqrt(sum(float(np.sum(d * d)) for d in direction.values()))
    direction = {n: d / norm for n, d in direction.items()}
    analytic = sum(float(np.sum(np.asarray(grads[n]) * direction[n])) for n in f.param_names)
    numeric = _stencil(lambda k: f.loss({n: np.asarray(params[n], dtype=float) + k * eps * direction[n]
                                         for n in f.param_names}, x, y), eps)
    return GradcheckRow("(all, one direction)", analytic, numeric, relative_error(analytic, numeric))
