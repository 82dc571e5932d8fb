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
    (a ``torch.nn.Linear``, or its state dict ``{"weight": ..., "bias": ...}``) when given.

    A bidirectional module's readout is ``Linear(2·hidden, O)`` over the joined states
    ``[h_fwd, h_bwd]``; its (O, 2·hidden) weight is split into ``W_hy`` (the first ``hidden``
    columns) and ``W_hy_reverse`` (the rest), the two matrices rnnsym's bidirectional networks use.

    >>> import torch  # doctest: +SKIP
    >>> params = params_from_torch(torch.nn.LSTM(2, 3, batch_first=True), torch.nn.Linear(3, 1))  # doctest: +SKIP
    """
    state = module.state_dict() if hasattr(module, "state_dict") else dict(module)
    arrays = {k: _array(v) for k, v in state.items()}
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
        params.update(_readout(readout, hidden, bidirectional="weight_ih_l0_reverse" in arrays))
    return params


def _array(value) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=float)


def _readout(readout, hidden: int, bidirectional: bool) -> dict[str, np.ndarray]:
    """``W_hy`` and ``b_y`` (and ``W_hy_reverse`` for two directions) from a ``Linear`` readout."""
    state = readout.state_dict() if hasattr(readout, "state_dict") else dict(readout)
    if "weight" not in state:
        raise RnnsymError(f"expected a torch.nn.Linear readout (or its state dict with 'weight'), "
                          f"got keys {sorted(state)}")
    weight = _array(state["weight"])
    width = hidden * (2 if bidirectional else 1)
    if weight.ndim != 2 or weight.shape[1] != width:
        states = "the joined forward and reverse states" if bidirectional else "the hidden state"
        raise RnnsymError(f"readout weight has shape {weight.shape}; expected (outputs, {width}) "
                          f"to read {states} of size {width}")
    # torch.nn.Linear(bias=False) has no bias; rnnsym's readout always has one, here zero.
    bias = _array(state["bias"]) if state.get("bias") is not None else np.zeros(weight.shape[0])
    if not bidirectional:
        return {"W_hy": weight, "b_y": bias}
    # PyTorch joins the states as [h_fwd, h_bwd] (forward first), so the columns split in that order.
    return {"W_hy": weight[:, :hidden].copy(), "W_hy_reverse": weight[:, hidden:].copy(), "b_y": bias}


def _rnn_name(dst: str) -> str:
    return {"W_i": "W_ih", "W_h": "W_hh", "b_i": "b_ih", "b_h": "b_hh"}[dst]
