"""Optimizers, one table: each is a short update rule for one parameter, plus the state it keeps.

``sgd`` is the article's rule, ``W_t = W_(t-1) - η·dL/dW_(t-1)``, and nothing else. ``momentum``
and ``adam`` keep per-parameter slots (arrays shaped like the parameter, zero at the start) that
travel with a checkpoint, so a resumed run continues exactly where it stopped.

>>> import numpy as np
>>> params, state = step("sgd", {"w": np.array(0.5)}, {"w": np.array(2.0)}, new_state("sgd", ["w"]), lr=0.1)
>>> float(params["w"])                   # 0.5 - 0.1 * 2.0
0.3
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..errors import RnnsymError, choose


@dataclass(frozen=True)
class Optimizer:
    """An update rule: ``update(w, g, slots, lr, t, options) -> (new_w, new_slots)``.

    ``t`` counts updates from 1; ``slots`` maps each slot name to this parameter's array.
    """

    name: str
    slots: tuple[str, ...]
    defaults: dict
    update: Callable
    rule: str  # the update in one line, for help texts and the README


def _sgd(w, g, slots, lr, t, options):
    return w - lr * g, {}


def _momentum(w, g, slots, lr, t, options):
    velocity = options["momentum"] * slots["velocity"] + g
    return w - lr * velocity, {"velocity": velocity}


def _adam(w, g, slots, lr, t, options):
    b1, b2 = options["beta1"], options["beta2"]
    m = b1 * slots["m"] + (1 - b1) * g
    v = b2 * slots["v"] + (1 - b2) * g * g
    # Kingma & Ba's bias correction: m and v start at zero, so early averages are scaled up.
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + options["eps"]), {"m": m, "v": v}


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer("sgd", (), {}, _sgd, "w <- w - lr*g  (the article's rule)"),
    "momentum": Optimizer("momentum", ("velocity",), {"momentum": 0.9}, _momentum,
                          "v <- momentum*v + g;  w <- w - lr*v"),
    "adam": Optimizer("adam", ("m", "v"), {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, _adam,
                      "m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*g^2;  w <- w - lr*m^/(sqrt(v^) + eps)"),
}


def get(name: str) -> Optimizer:
    """The optimizer called ``name``; an unknown name is a clear error listing the known ones."""
    choose("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name]


def options_for(name: str, options: Mapping | None = None) -> dict:
    """The optimizer's defaults updated with ``options``; unknown keys and bad values are refused."""
    opt = get(name)
    merged = dict(opt.defaults)
    for key, value in (options or {}).items():
        if key not in opt.defaults:
            allowed = ", ".join(opt.defaults) or "none"
            raise RnnsymError(f"unknown option {key!r} for optimizer {name!r}; allowed: {allowed}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise RnnsymError(f"optimizer option {key} must be a finite number, got {value!r}")
        merged[key] = float(value)
    for key in ("momentum", "beta1", "beta2"):
        if key in merged and not 0 <= merged[key] < 1:
            raise RnnsymError(f"optimizer option {key} must lie in [0, 1), got {merged[key]!r}")
    if "eps" in merged and merged["eps"] <= 0:
        raise RnnsymError(f"optimizer option eps must be positive, got {merged['eps']!r}")
    return merged


def new_state(name: str, shapes, dtype="float64") -> dict:
    """The state before the first update: ``{"step": 0, "slots": {slot: {param: zeros}}}``.

    ``shapes`` maps each parameter to its shape, or is a list of names of scalar parameters;
    ``dtype`` is the slots' precision, the parameters' (a float32 run keeps its moments in float32).
    """
    if not isinstance(shapes, Mapping):
        shapes = {n: () for n in shapes}
    return {"step": 0, "slots": {slot: {n: np.zeros(s, dtype=dtype) for n, s in shapes.items()}
                                 for slot in get(name).slots}}


def step(name: str, params: Mapping, grads: Mapping, state: dict, lr: float,
         options: Mapping | None = None) -> tuple[dict, dict]:
    """One update of every parameter; returns new ``(params, state)`` and leaves the inputs alone.

    Each parameter and its slots keep the parameter's precision: a float32 parameter stays float32
    (a 0-d float32 array times a Python float would otherwise come back float64 on NumPy 1.x).

    >>> import numpy as np
    >>> p, s = step("momentum", {"w": np.array(1.0)}, {"w": np.array(1.0)}, new_state("momentum", ["w"]), lr=0.5)
    >>> p, s = step("momentum", p, {"w": np.array(1.0)}, s, lr=0.5)
    >>> round(float(p["w"]), 12), float(s["slots"]["velocity"]["w"])     # v: 1, then 0.9*1 + 1
    (-0.45, 1.9)
    """
    opt = get(name)
    options = options_for(name, options)
    t = state["step"] + 1
    new_params, new_slots = {}, {slot: {} for slot in opt.slots}
    for pname, w in params.items():
        slots = {slot: state["slots"][slot][pname] for slot in opt.slots}
        new_w, updated = opt.update(w, grads[pname], slots, lr, t, options)
        dtype = np.result_type(w)
        new_params[pname] = np.asarray(new_w, dtype=dtype)
        for slot in opt.slots:
            new_slots[slot][pname] = np.asarray(updated[slot], dtype=dtype)
    return new_params, {"step": t, "slots": new_slots}


def clip_grad_norm(grads: Mapping, max_norm: float | None) -> tuple[dict, float]:
    """Rescale the gradient to norm ``max_norm`` when its norm exceeds it; return it and the norm.

    The norm is taken over all parameters together (Pascanu, Mikolov & Bengio 2013, Algorithm 1:
    ``if ||g|| > threshold: g <- threshold/||g|| * g``), so the direction is kept and only the
    step length is bounded. ``max_norm=None`` leaves the gradient unchanged.

    >>> import numpy as np
    >>> g, norm = clip_grad_norm({"a": np.array(3.0), "b": np.array(4.0)}, 1.0)
    >>> norm, round(float(g["a"]), 12), round(float(g["b"]), 12)
    (5.0, 0.6, 0.8)
    """
    norm = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())))
    if max_norm is None or norm <= max_norm:
        return dict(grads), norm
    scale = max_norm / norm
    return {name: np.asarray(g * scale, dtype=np.result_type(g)) for name, g in grads.items()}, norm
