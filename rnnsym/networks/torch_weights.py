"""Moving weights between PyTorch's recurrent modules and rnnsym's networks (when torch is installed).

PyTorch stores an LSTM's four input weights as one ``weight_ih_l0`` of shape (4·hidden, input),
in the gate order i, f, g, o (a GRU's in the order r, z, n); rnnsym names each block.
"""
from __future__ import annotations

import numpy as np

from ..errors import RnnsymError

GATES = {"rnn": "", "lstm": "ifgo", "gru": "rzn"}


def params_from_torch(module, readout=None) -> dict[str, np.ndarray]:
    """rnnsym's parameter dict from a one-layer ``torch.nn.RNN``, ``LSTM`` or ``GRU`` (or its state
    dict, with the kind inferred from the shapes), plus ``W_hy, b_y`` from ``readout``
    (a ``torch.nn.Linear``) when given.

    >>> import torch  # doctest: +SKIP
    >>> params = params_from_torch(torch.nn.LSTM(2, 3, batch_first=True), torch.nn.Linear(3, 1))  # doctest: +SKIP
    """
    state = module.state_dict() if hasattr(module, "state_dict") else dict(module)
    arrays = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=float)
              for k, v in state.items()}
    extra = sorted(k for k in arrays if not k.endswith(("_l0", "_l0_reverse")))
    if extra or "weight_hh_l0" not in arrays:
        raise RnnsymError(f"expected a one-layer RNN/LSTM/GRU state dict (weight_ih_l0, ...), got keys {sorted(arrays)}")
    hidden = arrays["weight_hh_l0"].shape[1]
    blocks = arrays["weight_hh_l0"].shape[0] // hidden
    kind = {1: "rnn", 4: "lstm", 3: "gru"}.get(blocks)
    if kind is None:
        raise RnnsymError(f"weight_hh_l0 has {blocks} blocks of {hidden} rows; expected 1 (RNN), 3 (GRU) or 4 (LSTM)")
    params = {}
    for suffix in ("", "_reverse"):
        if f"weight_ih_l0{suffix}" not in arrays:
            continue
        for src, dst in (("weight_ih", "W_i"), ("weight_hh", "W_h"), ("bias_ih", "b_i"), ("bias_hh", "b_h")):
            value = arrays[f"{src}_l0{suffix}"]
            if kind == "rnn":
                params[_rnn_name(dst) + suffix] = value
            else:
                for k, gate in enumerate(GATES[kind]):
                    params[f"{dst}{gate}{suffix}"] = value[k * hidden:(k + 1) * hidden]
    if readout is not None:
        params["W_hy"] = readout.weight.detach().cpu().numpy().astype(float)
        params["b_y"] = readout.bias.detach().cpu().numpy().astype(float)
    return params


def _rnn_name(dst: str) -> str:
    return {"W_i": "W_ih", "W_h": "W_hh", "b_i": "b_ih", "b_h": "b_hh"}[dst]
