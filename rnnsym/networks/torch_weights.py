"""Moving weights between PyTorch's recurrent modules and rnnsym's networks (when torch is installed).

PyTorch stores an LSTM's four input weights as one ``weight_ih_l0`` of shape (4·hidden, input),
in the gate order i, f, g, o (a GRU's in the order r, z, n); rnnsym names each block.
``params_from_torch`` splits the blocks, ``params_to_torch`` stacks them again. Layer k of a
stack (``num_layers > 1``) is PyTorch's ``weight_ih_lk`` and rnnsym's ``W_ii_lk``, ...; a one-layer
network's names have no layer index (``W_ii`` is ``weight_ih_l0``'s first block).
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import RnnsymError, choose, listed

GATES = {"rnn": "", "lstm": "ifgo", "gru": "rzn"}
# PyTorch's name of each stacked tensor and the prefix of rnnsym's blocks in it (W_ii, W_if, ...).
TORCH_NAMES = (("weight_ih", "W_i"), ("weight_hh", "W_h"), ("bias_ih", "b_i"), ("bias_hh", "b_h"))
KIND_NAMES = {"rnn": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}
_LAYER = re.compile(r"_l(\d+)$")  # PyTorch's layer index at the end of a key: weight_ih_l1


def _tag(layer: int, layers: int) -> str:
    """The layer index in rnnsym's names: none for a one-layer network (``W_ih``), else ``_l1``."""
    return "" if layers == 1 else f"_l{layer}"


def params_from_torch(module, readout=None) -> dict[str, np.ndarray]:
    """rnnsym's parameter dict from a ``torch.nn.RNN``, ``LSTM`` or ``GRU`` (or its state dict, with
    the kind and the number of layers inferred from it), plus ``W_hy, b_y`` from ``readout``
    (a ``torch.nn.Linear``, or its state dict ``{"weight": ..., "bias": ...}``) when given.
    A module with ``num_layers=k > 1`` gives the names of ``rs.lstm(..., num_layers=k)``:
    ``weight_ih_l1``'s blocks are ``W_ii_l1, W_if_l1, ...``; one layer gives ``W_ii, ...``.

    A bidirectional module's readout is ``Linear(2·hidden, O)`` over the joined states
    ``[h_fwd, h_bwd]``; its (O, 2·hidden) weight is split into ``W_hy`` (the first ``hidden``
    columns) and ``W_hy_reverse`` (the rest), the two matrices rnnsym's bidirectional networks use.

    >>> import torch  # doctest: +SKIP
    >>> params = params_from_torch(torch.nn.LSTM(2, 3, batch_first=True), torch.nn.Linear(3, 1))  # doctest: +SKIP
    """
    state = module.state_dict() if hasattr(module, "state_dict") else dict(module)
    arrays = {k: _array(v) for k, v in state.items()}
    layers = _torch_layers(arrays)
    hidden = arrays["weight_hh_l0"].shape[1]
    blocks = arrays["weight_hh_l0"].shape[0] // hidden
    kind = {1: "rnn", 4: "lstm", 3: "gru"}.get(blocks)
    if kind is None:
        raise RnnsymError(f"weight_hh_l0 has {blocks} blocks of {hidden} rows; expected 1 (RNN), 3 (GRU) or 4 (LSTM)")
    bidirectional = "weight_ih_l0_reverse" in arrays
    params = {}
    for layer in range(layers):
        for suffix in ("", "_reverse") if bidirectional else ("",):
            for src, dst in TORCH_NAMES:
                value = arrays[f"{src}_l{layer}{suffix}"]
                for k, block in enumerate(_blocks(kind)):
                    params[f"{dst}{block}{_tag(layer, layers)}{suffix}"] = value[k * hidden:(k + 1) * hidden]
    if readout is not None:
        params.update(_readout(readout, hidden, bidirectional=bidirectional))
    return params


def _torch_layers(arrays) -> int:
    """How many layers a recurrent module's state dict holds (``*_l0`` up to ``*_l{k-1}``, every
    layer with its four tensors); anything else is a one-line error."""
    def layer_of(key):
        match = _LAYER.search(key.removesuffix("_reverse"))
        return int(match.group(1)) if match and key.startswith(tuple(src for src, _ in TORCH_NAMES)) else None

    found = {layer_of(key) for key in arrays}
    layers = max(found - {None}, default=-1) + 1
    suffixes = ("", "_reverse") if any(key.endswith("_reverse") for key in arrays) else ("",)
    expected = {f"{src}_l{layer}{suffix}" for layer in range(layers) for src, _ in TORCH_NAMES for suffix in suffixes}
    if None in found or layers == 0 or not expected <= set(arrays):
        raise RnnsymError(f"expected an RNN/LSTM/GRU state dict (weight_ih_l0, weight_hh_l0, bias_ih_l0, "
                          f"bias_hh_l0, and so on for each layer), got keys {listed(sorted(arrays))}")
    return layers


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


def _blocks(kind: str) -> str:
    """The letters after ``W_i``/``W_h``/``b_i``/``b_h`` in rnnsym's names, in PyTorch's stacking
    order; the Elman RNN has one block, named like PyTorch's tensor (``W_ih``, ``W_hh``, ...)."""
    return GATES[kind] or "h"


def params_to_torch(params, module=None, readout=None, *, kind: str | None = None):
    """PyTorch state dicts from rnnsym's parameters of a built-in Elman RNN, LSTM or GRU
    (``rs.elman_rnn``, ``rs.lstm``, ``rs.gru``): the exact inverse of ``params_from_torch``.

    Returns ``(state, readout_state)``: ``state`` has the recurrent module's keys
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, and ``*_reverse`` for a
    bidirectional network; ``weight_ih_lk``, ... for each layer k of a stack, whose rnnsym names
    end in ``_lk``, the number of layers read from them), the gate blocks stacked in PyTorch's order (i, f, g, o for an LSTM,
    r, z, n for a GRU); ``readout_state`` is a ``torch.nn.Linear``'s ``{"weight", "bias"}`` from
    ``W_hy, b_y`` (a bidirectional network's ``[W_hy | W_hy_reverse]``, the ``Linear(2·hidden, O)``
    over the joined states), or None when ``params`` has no readout. The values are float64 torch
    tensors (NumPy arrays when torch is not installed), copies that share no memory with ``params``.

    ``kind`` (``"rnn"``, ``"lstm"`` or ``"gru"``) is inferred from the parameter names when not
    given. ``module`` (a ``torch.nn.RNN``, ``LSTM`` or ``GRU``) and ``readout`` (a
    ``torch.nn.Linear``), when given, are loaded with the state dicts after a check that they fit;
    a readout without bias takes a zero ``b_y``.

    >>> import torch  # doctest: +SKIP
    >>> state, readout_state = params_to_torch(params)  # doctest: +SKIP
    >>> torch.nn.LSTM(2, 3, batch_first=True).double().load_state_dict(state)  # doctest: +SKIP
    """
    arrays = {name: _parameter(name, value) for name, value in dict(params).items()}
    if kind is None:
        kind = _infer_kind(arrays)
    choose("kind", kind, GATES)
    suffixes = ("", "_reverse") if any(name.endswith("_reverse") for name in arrays) else ("",)
    layers = _layers(arrays, kind)
    has_readout = any(name in arrays for name in ("W_hy", "W_hy_reverse", "b_y"))
    _check_names(arrays, kind, suffixes, has_readout, layers)
    _check_shapes(arrays, kind, suffixes, has_readout, layers)
    state = {f"{src}_l{layer}{suffix}": np.concatenate([arrays[f"{dst}{block}{_tag(layer, layers)}{suffix}"]
                                                        for block in _blocks(kind)])
             for layer in range(layers) for suffix in suffixes for src, dst in TORCH_NAMES}
    readout_state = None
    if has_readout:
        # PyTorch joins the states as [h_fwd, h_bwd] (forward first), so the columns join in that order.
        readout_state = {"weight": np.concatenate([arrays["W_hy" + suffix] for suffix in suffixes], axis=1),
                         "bias": arrays["b_y"].copy()}
    state = _tensors(state)
    readout_state = None if readout_state is None else _tensors(readout_state)
    # Both checked before either is loaded, so a refusal leaves both modules as they were.
    loads = [(module, state)] if module is not None else []
    if readout is not None:
        if readout_state is None:
            raise RnnsymError("the parameters have no readout (W_hy, b_y) to load into the readout")
        loads.append((readout, _without_zero_bias(readout, readout_state)))
    for target, target_state in loads:
        _check_fits(target, target_state)
    for target, target_state in loads:
        target.load_state_dict(target_state)
    return state, readout_state


def _parameter(name: str, value) -> np.ndarray:
    try:
        return _array(value)
    except (TypeError, ValueError):
        raise RnnsymError(f"parameter {name} must be an array of numbers, got {type(value).__name__}") from None


def _cell_names(kind: str, suffixes, layers: int = 1) -> list[str]:
    return [f"{dst}{block}{_tag(layer, layers)}{suffix}" for layer in range(layers) for suffix in suffixes
            for _, dst in TORCH_NAMES for block in _blocks(kind)]


def _untagged(name: str) -> str:
    """``name`` without a layer index: ``W_ii_l1`` -> ``W_ii``."""
    return _LAYER.sub("", name)


def _infer_kind(arrays) -> str:
    names = {_untagged(name) for name in arrays}
    found = [kind for kind in GATES if set(_cell_names(kind, ("",))) & names]
    if len(found) != 1:
        examples = "; ".join(f"{KIND_NAMES[kind]} {', '.join(_cell_names(kind, ('',)))}" for kind in GATES)
        raise RnnsymError(f"cannot tell the network from the parameter names {listed(sorted(arrays))}; "
                          f"expected a built-in network's ({examples}; with _l0, _l1, … for stacked layers), "
                          "or give kind='rnn', 'lstm' or 'gru'")
    return found[0]


def _layers(arrays, kind: str) -> int:
    """The number of layers the names speak of: 1 for untagged names (``W_ii``), else one more
    than the highest index (``W_ii_l2``: 3); names missing for some layer are caught afterwards."""
    cell = set(_cell_names(kind, ("",)))
    found = [int(match.group(1)) for name in arrays
             if (match := _LAYER.search(name)) is not None and _untagged(name) in cell]
    return max(found) + 1 if found else 1


def _readout_names(suffixes) -> list[str]:
    return [f"W_hy{suffix}" for suffix in suffixes] + ["b_y"]


def _check_names(arrays, kind: str, suffixes, has_readout: bool, layers: int = 1) -> None:
    expected = _cell_names(kind, suffixes, layers) + (_readout_names(suffixes) if has_readout else [])
    missing = [name for name in expected if name not in arrays]
    unexpected = sorted(set(arrays) - set(expected))
    if missing or unexpected:
        what = ("bidirectional " if len(suffixes) == 2 else "") + KIND_NAMES[kind] + (
            f" ({layers} layers)" if layers > 1 else "")
        problems = ([f"missing {listed(missing)}"] if missing else []) + (
            [f"unexpected {listed(unexpected)}"] if unexpected else [])
        raise RnnsymError(f"{what} parameters do not fit: {'; '.join(problems)}; expected {listed(expected)}")


def _check_shapes(arrays, kind: str, suffixes, has_readout: bool, layers: int = 1) -> None:
    """Every block (hidden, input), (hidden, hidden) or (hidden,), the readout (outputs, hidden),
    with the sizes read from the first input weight (and W_hy), so that stacking cannot fail;
    a layer above the first reads the hidden state below, so its input weights are (hidden, hidden),
    or (hidden, 2·hidden) for both directions of a bidirectional stack."""
    first = arrays[f"W_i{_blocks(kind)[0]}{_tag(0, layers)}"]
    H, I = (first.shape + (1, 1))[:2]
    expected = {}
    for layer in range(layers):
        inputs = I if layer == 0 else H * len(suffixes)
        for suffix in suffixes:
            for _, dst in TORCH_NAMES:
                for block in _blocks(kind):
                    name = f"{dst}{block}{_tag(layer, layers)}{suffix}"
                    expected[name] = {"W_i": (H, inputs), "W_h": (H, H)}.get(dst, (H,))
    if has_readout:
        O = arrays["W_hy"].shape[0] if arrays["W_hy"].ndim else 1
        expected.update({name: (O, H) for name in _readout_names(suffixes)[:-1]}, b_y=(O,))
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            sizes = f"input size {I}, hidden size {H}" + (f", output size {O}" if has_readout else "")
            raise RnnsymError(f"{name} has shape {arrays[name].shape}; expected {shape} ({sizes})")


def _tensors(state: dict) -> dict:
    try:
        import torch
    except ImportError:  # still useful without torch: the arrays can be saved and loaded elsewhere
        return state
    return {key: torch.tensor(value, dtype=torch.float64) for key, value in state.items()}


def _without_zero_bias(readout, readout_state: dict) -> dict:
    # torch.nn.Linear(bias=False) has no bias to load; only a zero b_y means the same readout.
    if "bias" in readout.state_dict():
        return readout_state
    if np.any(np.asarray(readout_state["bias"]) != 0):
        raise RnnsymError("the readout has no bias but b_y is not zero; use torch.nn.Linear(..., bias=True)")
    return {"weight": readout_state["weight"]}


def _check_fits(target, state: dict) -> None:
    """The check ``target.load_state_dict(state)`` makes, as a one-line error instead of PyTorch's
    multi-line one."""
    theirs = target.state_dict()
    name = type(target).__name__
    missing, unexpected = sorted(set(theirs) - set(state)), sorted(set(state) - set(theirs))
    if missing or unexpected:
        problems = ([f"it has no {listed(unexpected)}"] if unexpected else []) + (
            [f"they give no {listed(missing)}"] if missing else [])
        raise RnnsymError(f"the parameters do not fit this {name}: {'; '.join(problems)}")
    for key, value in state.items():
        if tuple(theirs[key].shape) != tuple(value.shape):
            raise RnnsymError(f"{key} from the parameters has shape {tuple(value.shape)}; "
                              f"this {name} has {tuple(theirs[key].shape)}")
