"""The standard cells with PyTorch's equations and parameter names, so weights move between the two.

Shapes are PyTorch's: ``W_ih`` is (hidden, input), ``W_hh`` (hidden, hidden), biases (hidden,);
the LSTM's ``W_ii, W_if, W_ig, W_io`` are the four row blocks of ``weight_ih_l0`` (and so on for
``W_h*`` and the biases); the GRU's ``W_ir, W_iz, W_in`` likewise. A linear readout
``y = g(W_hy·h + b_y)`` follows the last (or every) hidden state.

``num_layers=k`` stacks k layers as PyTorch does: layer l's input at step t is layer l−1's new
hidden state at step t. The stack is one cell whose states are every layer's states (the top
layer's first, so the readout reads it); each layer's names carry its index, ``W_ih_l0``,
``W_hh_l1``, ``h_l1``, ``i_l0`` (PyTorch's ``weight_ih_l0``, ...). A lower layer's new values are
gates of the step, so the layer above reads them in the same step: ``x_l1`` is layer 0's new
hidden state, layer 1's input (an LSTM's new cell value is ``c_new_l0``); the state ``h_l0``
carries it to the next step. A bidirectional stack is :class:`rnnsym.networks.cells.Layers`, one
cell per layer, each run both ways: layer l reads ``[h_fwd; h_bwd]`` of layer l−1, joined.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .. import functions
from ..errors import positive_int
from ..functions import sigmoid
from ..graph import ParamRole
from .cells import Cell, Layers, _dependency_order, matvec, unroll


def _sizes(input_size, hidden_size, output_size):
    return (positive_int("input_size", input_size), positive_int("hidden_size", hidden_size),
            positive_int("output_size", output_size))


def _weights(prefix_in: str, prefix_h: str, gates: str, I: int, H: int, tag: str = ""):
    """Symbols and shapes for W_i?, W_h?, b_i?, b_h? of each gate letter (``tag`` is a layer's
    ``_l1``), keyed by the untagged name."""
    syms, shapes = {}, {}
    for gate in gates:
        for kind, shape in ((f"W_{prefix_in}{gate}", (H, I)), (f"W_{prefix_h}{gate}", (H, H)),
                            (f"b_{prefix_in}{gate}", (H,)), (f"b_{prefix_h}{gate}", (H,))):
            syms[kind] = sp.Symbol(kind + tag)
            shapes[syms[kind]] = shape
    return syms, shapes


def _param_roles(params: dict) -> dict:
    """What each PyTorch-named parameter does: ``W_i?`` input weights, ``W_h?`` recurrent, ``b_*`` biases."""
    kinds = {"W_i": ParamRole.INPUT_WEIGHT, "W_h": ParamRole.RECURRENT_WEIGHT, "b_i": ParamRole.BIAS, "b_h": ParamRole.BIAS}
    return {symbol: kinds[name[:3]] for name, symbol in params.items()}


def _gate(p, letter, x, h):
    return (matvec(p[f"W_i{letter}"], x) + p[f"b_i{letter}"] + matvec(p[f"W_h{letter}"], h) + p[f"b_h{letter}"])


GATE_NAMES = {"i": "input gate", "f": "forget gate", "g": "cell candidate", "o": "output gate",
              "r": "reset gate", "z": "update gate", "n": "new gate"}


def _roles(gates: str) -> dict:
    roles = {}
    for g in gates:
        roles.update({f"W_i{g}": f"input-to-hidden weight, {GATE_NAMES[g]}",
                      f"W_h{g}": f"hidden-to-hidden (recurrent) weight, {GATE_NAMES[g]}",
                      f"b_i{g}": f"input-to-hidden bias, {GATE_NAMES[g]}",
                      f"b_h{g}": f"hidden-to-hidden bias, {GATE_NAMES[g]}"})
    return roles


ELMAN_ROLES = {"W_ih": "input-to-hidden weight", "W_hh": "hidden-to-hidden (recurrent) weight",
               "b_ih": "input-to-hidden bias", "b_hh": "hidden-to-hidden bias"}


def _order(gates: str) -> list[str]:
    # PyTorch's order: all input weights, all hidden weights, then the biases.
    return [f"{kind}{g}" for kind in ("W_i", "W_h", "b_i", "b_h") for g in gates]


@dataclass
class _Layer:
    """One layer of a cell: what :class:`Cell` takes, its parameters keyed by untagged name."""

    states: list
    updates: list
    params: dict  # untagged name -> symbol, in PyTorch's order
    gates: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)


def _elman_layer(f, x, I: int, H: int, tag: str) -> _Layer:
    h = sp.Symbol("h" + tag)
    p = {name: sp.Symbol(name + tag) for name in ("W_ih", "W_hh", "b_ih", "b_hh")}
    return _Layer([h], [f(matvec(p["W_ih"], x) + p["b_ih"] + matvec(p["W_hh"], h) + p["b_hh"])], p,
                  shapes={h: H, p["W_ih"]: (H, I), p["W_hh"]: (H, H), p["b_ih"]: H, p["b_hh"]: H})


def _lstm_layer(act, x, I: int, H: int, tag: str) -> _Layer:
    h, c = sp.Symbol("h" + tag), sp.Symbol("c" + tag)
    p, shapes = _weights("i", "h", "ifgo", I, H, tag)
    i_, f_, g_, o_ = (sp.Symbol(letter + tag) for letter in "ifgo")
    gates = {i_: sigmoid(_gate(p, "i", x, h)), f_: sigmoid(_gate(p, "f", x, h)),
             g_: act(_gate(p, "g", x, h)), o_: sigmoid(_gate(p, "o", x, h))}
    c_next = f_ * c + i_ * g_
    params = {name: p[name] for name in _order("ifgo")}
    return _Layer([h, c], [o_ * act(c_next), c_next], params, gates,
                  {**shapes, h: H, c: H, i_: H, f_: H, g_: H, o_: H})


def _gru_layer(act, x, I: int, H: int, tag: str) -> _Layer:
    h = sp.Symbol("h" + tag)
    p, shapes = _weights("i", "h", "rzn", I, H, tag)
    r_, z_, n_ = (sp.Symbol(letter + tag) for letter in "rzn")
    gates = {r_: sigmoid(_gate(p, "r", x, h)), z_: sigmoid(_gate(p, "z", x, h)),
             n_: act(matvec(p["W_in"], x) + p["b_in"] + r_ * (matvec(p["W_hn"], h) + p["b_hn"]))}
    params = {name: p[name] for name in _order("rzn")}
    return _Layer([h], [(1 - z_) * n_ + z_ * h], params, gates, {**shapes, h: H, r_: H, z_: H, n_: H})


def _check_layers(num_layers, bidirectional) -> int:
    return positive_int("num_layers", num_layers)


def _lower(layer: _Layer, l: int) -> tuple[dict, list]:
    """A lower layer's new values as gates of the step (the layer above reads them at once):
    ``x_l{l+1}`` for the hidden state, ``c_new_l{l}`` for an LSTM's cell value; and its states'
    updates, which carry those gates to the next step."""
    tag, new, gates = f"_l{l}", {}, {}
    for state, expr in _dependency_order(layer.states, layer.updates):
        base = state.name[:-len(tag)]
        symbol = sp.Symbol(f"x_l{l + 1}" if state == layer.states[0] else f"{base}_new{tag}")
        gates[symbol] = expr.xreplace({u: new[s] for s, u in zip(layer.states, layer.updates) if s in new})
        new[state] = symbol
    return gates, [new[s] for s in layer.states]


def _bidirectional_layers(make_layer, f, I: int, H: int, num_layers: int, name: str, role_texts: dict):
    """A stack run in both directions, as PyTorch's: one cell per layer (layer l ≥ 1 reads the
    2·H values of both directions of layer l−1, so its ``W_i*_l{l}`` are (H, 2·H)), and the words
    for each parameter by name."""
    cells, texts = [], {}
    for l in range(num_layers):
        x = sp.Symbol("x" if l == 0 else f"x_l{l}")
        layer = make_layer(f, x, I if l == 0 else 2 * H, H, f"_l{l}")
        cells.append(Cell(state=tuple(layer.states), input=x, update=tuple(layer.updates),
                          params=list(layer.params.values()), gates=layer.gates,
                          shapes={**layer.shapes, x: I if l == 0 else 2 * H}, name=name,
                          roles=_param_roles(layer.params)))
        texts.update({symbol.name: f"{role_texts[key]}, layer {l}" for key, symbol in layer.params.items()})
    return Layers(tuple(cells), name), texts


def _cell(make_layer, f, I: int, H: int, num_layers: int, name: str, role_texts: dict, bidirectional: bool = False):
    """The cell of ``num_layers`` stacked layers (today's one-layer cell when 1), and the words
    for each parameter by name (what ``unroll`` takes as ``param_roles``). A bidirectional stack
    is :class:`Layers`, one cell per layer."""
    if num_layers > 1 and bidirectional:
        return _bidirectional_layers(make_layer, f, I, H, num_layers, name, role_texts)
    x = sp.Symbol("x")
    if num_layers == 1:
        layer = make_layer(f, x, I, H, "")
        return (Cell(state=tuple(layer.states), input=x, update=tuple(layer.updates),
                     params=list(layer.params.values()), gates=layer.gates, shapes={**layer.shapes, x: I},
                     name=name, roles=_param_roles(layer.params)), dict(role_texts))
    states, updates, gates, shapes, params, roles, texts = [], [], {}, {x: I}, [], {}, {}
    below = x
    for l in range(num_layers):
        layer = make_layer(f, below, I if l == 0 else H, H, f"_l{l}")
        gates.update(layer.gates)
        shapes.update(layer.shapes)
        params.extend(layer.params.values())
        roles.update(_param_roles(layer.params))
        texts.update({symbol.name: f"{role_texts[key]}, layer {l}" for key, symbol in layer.params.items()})
        if l == num_layers - 1:  # the top layer's states first: the readout reads the first state
            states, updates = layer.states + states, layer.updates + updates
        else:
            new_values, carried = _lower(layer, l)
            gates.update(new_values)
            shapes.update({symbol: H for symbol in new_values})
            states, updates = states + layer.states, updates + carried
            below = carried[0]
    return (Cell(state=tuple(states), input=x, update=tuple(updates), params=params, gates=gates,
                 shapes=shapes, name=name, roles=roles), texts)


def _options(activation: str, H: int, num_layers: int) -> dict:
    # num_layers is recorded only for a stack, so one-layer networks describe themselves as before.
    return dict(activation=activation, hidden_size=H, **({"num_layers": num_layers} if num_layers > 1 else {}))


def elman_rnn(steps: int, input_size: int = 1, hidden_size: int = 1, output_size: int = 1, *,
              activation: str = "tanh", output_activation: str = "sigmoid", loss: str = "bce",
              outputs: str = "last", truncate: int | None = None, bidirectional: bool = False,
              num_layers: int = 1, **kwargs):
    """``torch.nn.RNN``: ``h_t = f(W_ih·x_t + b_ih + W_hh·h_(t-1) + b_hh)``, then the readout.

    ``activation`` is f: ``tanh`` and ``relu`` are PyTorch's two choices; ``sigmoid`` and
    ``identity`` are allowed too (for comparisons such as gradient flow). ``num_layers``: layers
    stacked as in PyTorch, each named with its index (``W_ih_l0``, ``W_hh_l1``, ...).

    >>> elman_rnn(steps=3, input_size=2, hidden_size=4).param_shapes["W_hh"]
    (4, 4)
    >>> elman_rnn(steps=3, input_size=2, hidden_size=4, num_layers=2).param_shapes["W_ih_l1"]
    (4, 4)
    """
    I, H, O = _sizes(input_size, hidden_size, output_size)
    k = _check_layers(num_layers, bidirectional)
    f = functions.activation(activation)  # torch.nn.RNN offers tanh and relu; any activation works here
    cell, texts = _cell(_elman_layer, f, I, H, k, "elman", ELMAN_ROLES, bidirectional)
    return unroll(cell, steps, output_size=O, output_activation=output_activation, loss=loss, outputs=outputs,
                  truncate=truncate, bidirectional=bidirectional, title=_title("an Elman RNN (torch.nn.RNN)", k),
                  options=_options(activation, H, k), param_roles=texts, **kwargs)


def lstm(steps: int, input_size: int = 1, hidden_size: int = 1, output_size: int = 1, *,
         activation: str = "tanh", output_activation: str = "sigmoid", loss: str = "bce",
         outputs: str = "last", truncate: int | None = None, bidirectional: bool = False,
         num_layers: int = 1, **kwargs):
    """``torch.nn.LSTM``: gates i, f, g, o; ``c_t = f⊙c_(t-1) + i⊙g``; ``h_t = o⊙tanh(c_t)``.

    ``activation`` replaces the cell's tanh (g and the output squashing); PyTorch always uses tanh.
    ``num_layers``: layers stacked as in PyTorch (``W_ii_l0``, ..., ``W_ho_l1``).
    """
    I, H, O = _sizes(input_size, hidden_size, output_size)
    k = _check_layers(num_layers, bidirectional)
    act = functions.activation(activation)
    cell, texts = _cell(_lstm_layer, act, I, H, k, "lstm", _roles("ifgo"), bidirectional)
    return unroll(cell, steps, output_size=O, output_activation=output_activation, loss=loss, outputs=outputs,
                  truncate=truncate, bidirectional=bidirectional, title=_title("an LSTM (torch.nn.LSTM)", k),
                  options=_options(activation, H, k), param_roles=texts, **kwargs)


def gru(steps: int, input_size: int = 1, hidden_size: int = 1, output_size: int = 1, *,
        activation: str = "tanh", output_activation: str = "sigmoid", loss: str = "bce",
        outputs: str = "last", truncate: int | None = None, bidirectional: bool = False,
        num_layers: int = 1, **kwargs):
    """``torch.nn.GRU``: ``r, z = σ(…)``; ``n = tanh(W_in·x + b_in + r⊙(W_hn·h + b_hn))``;
    ``h_t = (1 − z)⊙n + z⊙h_(t-1)``. ``num_layers``: layers stacked as in PyTorch (``W_ir_l0``, ...)."""
    I, H, O = _sizes(input_size, hidden_size, output_size)
    k = _check_layers(num_layers, bidirectional)
    act = functions.activation(activation)
    cell, texts = _cell(_gru_layer, act, I, H, k, "gru", _roles("rzn"), bidirectional)
    return unroll(cell, steps, output_size=O, output_activation=output_activation, loss=loss, outputs=outputs,
                  truncate=truncate, bidirectional=bidirectional, title=_title("a GRU (torch.nn.GRU)", k),
                  options=_options(activation, H, k), param_roles=texts, **kwargs)


def _title(title: str, num_layers: int) -> str:
    return title if num_layers == 1 else f"{title[:-1]}, {num_layers} layers)"


BUILTIN_CELLS = {"elman": (_elman_layer, ELMAN_ROLES), "lstm": (_lstm_layer, _roles("ifgo")),
                 "gru": (_gru_layer, _roles("rzn"))}


def builtin_cell(kind: str, input_size: int, hidden_size: int, activation: str = "tanh") -> tuple[Cell, dict]:
    """The one-layer cell ``kind`` ("elman", "lstm", "gru") with PyTorch's equations and names, and
    the words for each parameter by name."""
    from ..errors import choose

    choose("cell", kind, tuple(BUILTIN_CELLS))
    make_layer, texts = BUILTIN_CELLS[kind]
    return _cell(make_layer, functions.activation(activation), input_size, hidden_size, 1, kind, texts)
