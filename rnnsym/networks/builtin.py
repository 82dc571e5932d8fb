"""The standard cells with PyTorch's equations and parameter names, so weights move between the two.

Shapes are PyTorch's: ``W_ih`` is (hidden, input), ``W_hh`` (hidden, hidden), biases (hidden,);
the LSTM's ``W_ii, W_if, W_ig, W_io`` are the four row blocks of ``weight_ih_l0`` (and so on for
``W_h*`` and the biases); the GRU's ``W_ir, W_iz, W_in`` likewise. A linear readout
``y = g(W_hy·h + b_y)`` follows the last (or every) hidden state.
"""
from __future__ import annotations

import sympy as sp

from .. import functions
from ..errors import positive_int
from ..functions import sigmoid
from ..graph import ParamRole
from .cells import Cell, matvec, unroll


def _sizes(input_size, hidden_size, output_size):
    return (positive_int("input_size", input_size), positive_int("hidden_size", hidden_size),
            positive_int("output_size", output_size))


def _weights(prefix_in: str, prefix_h: str, gates: str, I: int, H: int):
    """Symbols and shapes for W_i?, W_h?, b_i?, b_h? of each gate letter."""
    syms, shapes = {}, {}
    for gate in gates:
        for kind, shape in ((f"W_{prefix_in}{gate}", (H, I)), (f"W_{prefix_h}{gate}", (H, H)),
                            (f"b_{prefix_in}{gate}", (H,)), (f"b_{prefix_h}{gate}", (H,))):
            syms[kind] = sp.Symbol(kind)
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


def _order(params: dict, gates: str) -> list:
    # PyTorch's order: all input weights, all hidden weights, then the biases.
    return ([params[f"W_i{g}"] for g in gates] + [params[f"W_h{g}"] for g in gates]
            + [params[f"b_i{g}"] for g in gates] + [params[f"b_h{g}"] for g in gates])


def elman_rnn(steps: int, input_size: int = 1, hidden_size: int = 1, output_size: int = 1, *,
              activation: str = "tanh", output_activation: str = "sigmoid", loss: str = "bce",
              outputs: str = "last", truncate: int | None = None, bidirectional: bool = False, **kwargs):
    """``torch.nn.RNN``: ``h_t = f(W_ih·x_t + b_ih + W_hh·h_(t-1) + b_hh)``, then the readout.

    ``activation`` is f: ``tanh`` and ``relu`` are PyTorch's two choices; ``sigmoid`` and
    ``identity`` are allowed too (for comparisons such as gradient flow).

    >>> elman_rnn(steps=3, input_size=2, hidden_size=4).param_shapes["W_hh"]
    (4, 4)
    """
    I, H, O = _sizes(input_size, hidden_size, output_size)
    f = functions.activation(activation)  # torch.nn.RNN offers tanh and relu; any activation works here
    h, x = sp.Symbol("h"), sp.Symbol("x")
    W_ih, W_hh, b_ih, b_hh = sp.symbols("W_ih W_hh b_ih b_hh")
    cell = Cell(state=h, input=x, update=f(matvec(W_ih, x) + b_ih + matvec(W_hh, h) + b_hh),
                params=[W_ih, W_hh, b_ih, b_hh], name="elman",
                roles=_param_roles({"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh}),
                shapes={h: H, x: I, W_ih: (H, I), W_hh: (H, H), b_ih: H, b_hh: H})
    return unroll(cell, steps, output_size=O, output_activation=output_activation, loss=loss, outputs=outputs,
                  truncate=truncate, bidirectional=bidirectional, title="an Elman RNN (torch.nn.RNN)",
                  options=dict(activation=activation, hidden_size=H), **kwargs,
                  param_roles={"W_ih": "input-to-hidden weight", "W_hh": "hidden-to-hidden (recurrent) weight",
                               "b_ih": "input-to-hidden bias", "b_hh": "hidden-to-hidden bias"})


def lstm(steps: int, input_size: int = 1, hidden_size: int = 1, output_size: int = 1, *,
         activation: str = "tanh", output_activation: str = "sigmoid", loss: str = "bce",
         outputs: str = "last", truncate: int | None = None, bidirectional: bool = False, **kwargs):
    """``torch.nn.LSTM``: gates i, f, g, o; ``c_t = f⊙c_(t-1) + i⊙g``; ``h_t = o⊙tanh(c_t)``.

    ``activation`` replaces the cell's tanh (g and the output squashing); PyTorch always uses tanh.
    """
    I, H, O = _sizes(input_size, hidden_size, output_size)
    act = functions.activation(activation)
    h, c, x = sp.symbols("h c x")
    p, shapes = _weights("i", "h", "ifgo", I, H)
    i_, f_, g_, o_ = sp.symbols("i f g o")
    gates = {i_: sigmoid(_gate(p, "i", x, h)), f_: sigmoid(_gate(p, "f", x, h)),
             g_: act(_gate(p, "g", x, h)), o_: sigmoid(_gate(p, "o", x, h))}
    c_next = f_ * c + i_ * g_
    cell = Cell(state=(h, c), input=x, update=(o_ * act(c_next), c_next), params=_order(p, "ifgo"),
                gates=gates, shapes={**shapes, h: H, c: H, x: I, i_: H, f_: H, g_: H, o_: H}, name="lstm",
                roles=_param_roles(p))
    return unroll(cell, steps, output_size=O, output_activation=output_activation, loss=loss, outputs=outputs,
                  truncate=truncate, bidirectional=bidirectional, title="an LSTM (torch.nn.LSTM)",
                  options=dict(activation=activation, hidden_size=H), param_roles=_roles("ifgo"), **kwargs)


def gru(steps: int, input_size: int = 1, hidden_size: int = 1, output_size: int = 1, *,
        activation: str = "tanh", output_activation: str = "sigmoid", loss: str = "bce",
        outputs: str = "last", truncate: int | None = None, bidirectional: bool = False, **kwargs):
    """``torch.nn.GRU``: ``r, z = σ(…)``; ``n = tanh(W_in·x + b_in + r⊙(W_hn·h + b_hn))``;
    ``h_t = (1 − z)⊙n + z⊙h_(t-1)``."""
    I, H, O = _sizes(input_size, hidden_size, output_size)
    act = functions.activation(activation)
    h, x = sp.symbols("h x")
    p, shapes = _weights("i", "h", "rzn", I, H)
    r_, z_, n_ = sp.symbols("r z n")
    gates = {r_: sigmoid(_gate(p, "r", x, h)), z_: sigmoid(_gate(p, "z", x, h)),
             n_: act(matvec(p["W_in"], x) + p["b_in"] + r_ * (matvec(p["W_hn"], h) + p["b_hn"]))}
    cell = Cell(state=h, input=x, update=(1 - z_) * n_ + z_ * h, params=_order(p, "rzn"), gates=gates,
                shapes={**shapes, h: H, x: I, r_: H, z_: H, n_: H}, name="gru", roles=_param_roles(p))
    return unroll(cell, steps, output_size=O, output_activation=output_activation, loss=loss, outputs=outputs,
                  truncate=truncate, bidirectional=bidirectional, title="a GRU (torch.nn.GRU)",
                  options=dict(activation=activation, hidden_size=H), param_roles=_roles("rzn"), **kwargs)
