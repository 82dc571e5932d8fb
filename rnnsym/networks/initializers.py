"""Initialisation schemes, one table. Biases start at zero in every scheme.

- ``normal``: every weight drawn from N(0, scale²).
- ``xavier``: Glorot & Bengio (2010), uniform on ±sqrt(6 / (fan_in + fan_out)); a scalar weight
  has fan_in = fan_out = 1.
- ``orthogonal``: recurrent matrices get a random orthogonal matrix (Saxe, McClelland & Ganguli
  2014), so repeated multiplication through time neither shrinks nor blows up a state at the start;
  the other weights are ``xavier``. A scalar recurrent weight (the seed's ``w0 … w(T-1)``) is a
  1 × 1 orthogonal matrix: ±1.

Which parameter is which is read from each parameter's :class:`~rnnsym.graph.ParamRole`, set by the
network's constructor (a user cell declares it in ``Cell(roles=...)``), never guessed from its name:
biases (``bias``, ``readout bias``) start at zero; ``recurrent weight`` is the recurrent rule; every
other parameter, a user's ``beta`` included, is an ordinary weight.

>>> import numpy as np, rnnsym as rs
>>> params = init_params(rs.seed_rnn(steps=2), "orthogonal", rng=np.random.default_rng(0))
>>> sorted(abs(float(params[n])) for n in ("w0", "w1")), float(params["b3"])
([1.0, 1.0], 0.0)
"""
from __future__ import annotations

import numpy as np

from ..errors import RnnsymError, choose
from ..graph import ParamRole


def param_roles(net) -> dict[str, ParamRole]:
    """Each parameter's role, in the network's parameter order."""
    return {name: net.graph[name].param_role for name in net.param_names}


def recurrent_param_names(net) -> tuple[str, ...]:
    """The parameters that carry a state from one step to the next."""
    return tuple(name for name, role in param_roles(net).items() if role is ParamRole.RECURRENT_WEIGHT)


def _fans(shape: tuple) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    return int(np.prod(shape[1:])), shape[0]  # PyTorch's layout: (out, in)


def _normal(shape, rng, scale):
    return rng.normal(0.0, scale, size=shape)


def _xavier(shape, rng, scale):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(shape, rng, scale):
    n = shape[0] if shape else 1
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    q = q * np.sign(np.diag(r))  # makes the draw uniform over orthogonal matrices (Mezzadri 2007)
    return q.reshape(shape)


# scheme -> (rule for ordinary weights, rule for recurrent weights)
# A run's start is drawn from the random stream [seed, INIT_STREAM] (rs.train and rs.to_torch alike).
INIT_STREAM = 0

INITIALIZERS = {
    "normal": (_normal, _normal),
    "xavier": (_xavier, _xavier),
    "orthogonal": (_xavier, _orthogonal),
}


def init_params(net, scheme: str = "xavier", *, scale: float = 0.5, rng=None) -> dict[str, np.ndarray]:
    """Fresh parameters for ``net``: name -> array of the parameter's shape (0-d for a scalar).

    ``scale`` is the standard deviation of the ``normal`` scheme; ``rng`` a NumPy Generator.
    """
    choose("initialisation", scheme, INITIALIZERS)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        raise RnnsymError(f"init scale must be a positive number, got {scale!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    ordinary, recurrent_rule = INITIALIZERS[scheme]
    params = {}
    for name, role in param_roles(net).items():  # a stable order, so a seed always gives the same draw
        shape = tuple(net.param_shapes.get(name, ()))
        if role.is_bias:
            params[name] = np.zeros(shape)
        else:
            rule = recurrent_rule if role is ParamRole.RECURRENT_WEIGHT else ordinary
            params[name] = np.asarray(rule(shape, rng, float(scale)), dtype=float)
    return params
