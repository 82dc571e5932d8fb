"""Encoder–decoder (sequence to sequence) networks, with or without attention.

The encoder runs over the source ``x_1 … x_S`` from zero states; the decoder starts from the
encoder's last states (state j from the encoder's state j where the encoder has one of that shape,
else zero) and reads the previous target at each step (teacher forcing): ``Y0`` (zeros, the start)
at step 1, then ``Y_(t-1)``. Every target step has a loss.

Attention is Luong et al. (2015)'s global attention over the encoder states, stacked as the rows of
``H = [h_1; …; h_S]``: at decoder step t, with the decoder's new state ``s_t``,

- scores ``e_t = H·q_t``: ``q_t = s_t`` ("dot"), ``q_t = W_a·s_t`` ("general"), or Bahdanau et al.
  (2015)'s additive score ``e_ti = v_aᵀ·tanh(W_k·h_i + W_q·s_t)`` ("additive");
- weights ``α_t = softmax(e_t)``, context ``ctx_t = Hᵀ·α_t = Σ_i α_ti·h_i``;
- attentional state ``ht_t = tanh(W_cc·ctx_t + W_ch·s_t + b_c)`` (Luong's ``tanh(W_c[c_t; h_t])``
  with ``W_c`` split in two and a bias), which the readout reads instead of ``s_t``.

Node names: encoder nodes as in any unrolled cell (``h3``, ``c3``, ``i3``); decoder nodes and
parameters with ``_dec`` (``h_dec2``, ``W_ih_dec``); attention nodes ``H_enc``, ``q2``, ``k3``,
``u2_3``, ``U2``, ``e2``, ``alpha2``, ``ctx2``, ``ht2``. The decoder's nodes (and the targets)
record the steps after the encoder's, S + t, so that pictures put them after it; column t of y
is the target ``Y_t`` all the same.
"""
from __future__ import annotations

import sympy as sp

from .. import functions
from ..errors import RnnsymError, choose, positive_int
from ..functions import MatVec, Mix, Scores, Stack
from ..graph import Graph, ParamRole
from ..network import Network
from .builtin import BUILTIN_CELLS, builtin_cell
from .cells import Cell, run_cell

ATTENTIONS = (None, "dot", "general", "additive")
# The bases of the attention's nodes (rnnsym.docs draws their edges in their own colour).
ATTENTION_NODES = ("H_enc", "q", "k", "u", "U", "e", "alpha", "ctx", "ht")
DECODER = "_dec"


def seq2seq(encoder="gru", decoder="gru", *, source_steps: int, target_steps: int, input_size: int = 1,
            hidden_size: int = 1, output_size: int = 2, attention: str | None = None,
            loss: str = "cross_entropy", step_reduction: str = "mean", activation: str = "tanh",
            name: str | None = None) -> Network:
    """An encoder–decoder network (see the module's text for its equations).

    ``encoder`` and ``decoder``: a built-in cell's name ("elman", "lstm", "gru") or an
    :class:`rnnsym.Cell` (the encoder's input of size ``input_size``, the decoder's of size
    ``output_size``, both first states of size ``hidden_size``). ``loss``: "cross_entropy" (a
    softmax over ``output_size`` classes; targets are class indices) or "mse" (a linear output).
    ``attention``: None, "dot", "general" or "additive".

    >>> net = seq2seq("gru", "gru", source_steps=3, target_steps=2, input_size=2, hidden_size=4,
    ...               output_size=3, attention="dot")
    >>> net.param_shapes["W_hr_dec"], net.graph["alpha2"].shape
    ((4, 4), (3,))
    """
    S, T = positive_int("source_steps", source_steps), positive_int("target_steps", target_steps)
    I, H, V = (positive_int(n, v) for n, v in (("input_size", input_size), ("hidden_size", hidden_size),
                                                ("output_size", output_size)))
    choose("attention", attention, ATTENTIONS)
    choose("loss", loss, ("cross_entropy", "mse"))
    choose("step_reduction", step_reduction, ("mean", "sum"))
    if loss == "cross_entropy" and V < 2:
        raise RnnsymError(f"cross-entropy needs output_size >= 2 classes, got {V}")
    enc, enc_texts = _cell("encoder", encoder, I, H, activation)
    dec, dec_texts = _cell("decoder", decoder, V, H, activation)
    _check_names(enc, attention)

    graph = Graph()
    xs = {i: graph.add(f"x{i}", "input", step=i, shape=(I,), role=f"source input at step {i}", base="x")
          for i in range(1, S + 1)}
    _params(graph, enc, "", enc_texts, "encoder")
    _params(graph, dec, DECODER, dec_texts, "decoder")
    initial = {s: graph.add(f"{s.name}0", "constant", value=0, step=0, shape=enc.shapes.get(s, ()), base=s.name,
                            role=f"initial {s.name}, zero") for s in enc.state}
    encoded = run_cell(graph, enc, "", range(1, S + 1), xs, initial)
    targets = {t: graph.add(f"Y{t}", "target", step=S + t, shape=(V,), role=f"target at step {t}", base="Y")
               for t in range(1, T + 1)}
    start = graph.add("Y0", "constant", value=0, step=S + 1, shape=(V,), role="the decoder's first input: zeros")
    inputs = {1: start, **{t: targets[t - 1] for t in range(2, T + 1)}}
    decoded = run_cell(graph, dec, DECODER, range(1, T + 1), inputs, _handover(graph, enc, dec, encoded[S]),
                       step_offset=S)
    top = {t: decoded[t][dec.state[0]] for t in range(1, T + 1)}
    if attention is not None:
        top = _attend(graph, attention, [encoded[i][enc.state[0]] for i in range(1, S + 1)], top, S, H)
    _readout_and_loss(graph, top, targets, S, V, loss, step_reduction)

    options = dict(encoder=_label(encoder), decoder=_label(decoder), source_steps=S, target_steps=T,
                   input_size=I, hidden_size=H, output_size=V, attention=attention, loss=loss,
                   output_activation="softmax" if loss == "cross_entropy" else "identity", outputs="all",
                   step_reduction=step_reduction, teacher_forcing=True, bidirectional=False)
    title = f"a {_label(encoder)}–{_label(decoder)} encoder–decoder" + (f" with {attention} attention" if attention else "")
    return Network(graph, name=name or "seq2seq", steps=S, options=options, title=title)


ATTENTION_PARAMS = {"dot": (), "general": ("W_a",), "additive": ("W_k", "W_q", "v_a")}
ATTENTION_BASES = {"dot": ("H_enc", "e", "alpha", "ctx", "ht"), "general": ("H_enc", "q", "e", "alpha", "ctx", "ht"),
                   "additive": ATTENTION_NODES}


def _check_names(enc: Cell, attention) -> None:
    """The encoder's symbols keep their names in the graph (the decoder's take ``_dec``): no state or
    gate may take a base the network gives its own nodes (the source inputs ``x_i``, the attention's
    ``e_t``, …), and no parameter an attention weight's name."""
    nodes = {"x": "the source inputs x_i"}
    params = {}
    if attention is not None:
        nodes.update({base: f"the attention's nodes ({base}…)" for base in ATTENTION_BASES[attention]})
        params = {name: "an attention weight" for name in ("W_cc", "W_ch", "b_c", *ATTENTION_PARAMS[attention])}
    for symbols, taken in (((*enc.state, *enc.gates), nodes), (enc.params, params)):
        for symbol in symbols:
            if symbol.name in taken:
                raise RnnsymError(f"the encoder cell's symbol {symbol.name} has the name of {taken[symbol.name]}; "
                                  "rename it")


def _label(cell) -> str:
    return cell if isinstance(cell, str) else cell.name


def _cell(which: str, cell, input_size: int, H: int, activation: str) -> tuple[Cell, dict]:
    """A built-in cell by name, or a user's :class:`Cell` whose input and first state have the sizes
    the network gives them."""
    if isinstance(cell, str):
        choose(which, cell, tuple(BUILTIN_CELLS))
        return builtin_cell(cell, input_size, H, activation)
    if not isinstance(cell, Cell):
        raise RnnsymError(f"{which} must be one of {', '.join(BUILTIN_CELLS)} or an rnnsym.Cell, got {cell!r}")
    for symbol, size, what in ((cell.input, input_size, "input"), (cell.state[0], H, "first state")):
        if cell.shapes.get(symbol, ()) != (size,):
            raise RnnsymError(f"the {which} cell's {what} {symbol} has shape {cell.shapes.get(symbol, ())}; "
                              f"this network needs ({size},)")
    return cell, {}


def _params(graph: Graph, cell: Cell, suffix: str, texts: dict, where: str) -> None:
    for p in cell.params:
        role = cell.roles.get(p, ParamRole.CELL_PARAMETER)
        graph.add(p.name + suffix, "param", shape=cell.shapes.get(p, ()), param_role=role,
                  role=f"{texts.get(p.name, 'cell parameter')}, {where}")


def _handover(graph: Graph, enc: Cell, dec: Cell, last: dict) -> dict:
    """The decoder's initial states: state j is the encoder's last state j where that has its
    shape (an LSTM's h and c to an LSTM; h alone to a GRU), else zero."""
    initial = {}
    for j, s in enumerate(dec.state):
        shape = dec.shapes.get(s, ())
        if j < len(enc.state) and enc.shapes.get(enc.state[j], ()) == shape:
            initial[s] = last[enc.state[j]]
        else:
            initial[s] = graph.add(f"{s.name}{DECODER}0", "constant", value=0, shape=shape, base=s.name + DECODER,
                                   role=f"initial decoder {s.name}, zero")
    return initial


def _attend(graph: Graph, attention: str, encoder_states: list, decoder_states: dict, S: int, H: int) -> dict:
    """Add the attention nodes of every decoder step; return each step's attentional state ``ht_t``."""
    weight = lambda name, text, shape=(H, H), role=ParamRole.CELL_PARAMETER: graph.add(  # noqa: E731
        name, "param", shape=shape, param_role=role, role=f"attention: {text}")
    W_cc, W_ch = weight("W_cc", "weight of the context"), weight("W_ch", "weight of the decoder state")
    b_c = weight("b_c", "bias of the attentional state", (H,), ParamRole.BIAS)
    stack = graph.add("H_enc", "hidden", Stack(*encoder_states), step=S, shape=(S, H), base="H_enc",
                      role="the encoder states as the rows of one matrix")
    if attention == "general":
        W_a = weight("W_a", "score weight (general)")
    if attention == "additive":
        W_k, W_q = weight("W_k", "score weight of an encoder state"), weight("W_q", "score weight of the decoder state")
        v_a = weight("v_a", "score vector", (H,))
        keys = [graph.add(f"k{i}", "hidden", MatVec(W_k, h), step=i, shape=(H,), base="k",
                          role=f"the score's projection of encoder state {i}") for i, h in enumerate(encoder_states, 1)]
    out = {}
    for t, s in decoder_states.items():
        at = dict(step=S + t, shape=(S,))
        if attention == "additive":
            query = graph.add(f"q{t}", "hidden", MatVec(W_q, s), step=S + t, shape=(H,), base="q",
                              role=f"the score's projection of decoder state {t}")
            rows = [graph.add(f"u{t}_{i}", "hidden", sp.tanh(k + query), step=S + t, shape=(H,), base="u",
                              role=f"additive score's hidden value, decoder step {t}, encoder step {i}")
                    for i, k in enumerate(keys, 1)]
            U = graph.add(f"U{t}", "hidden", Stack(*rows), step=S + t, shape=(S, H), base="U",
                          role=f"additive score's hidden values at decoder step {t}")
            scores = Scores(U, v_a)
        else:
            query = s if attention == "dot" else graph.add(f"q{t}", "hidden", MatVec(W_a, s), step=S + t,
                                                           shape=(H,), base="q", role=f"query at decoder step {t}")
            scores = Scores(stack, query)
        e = graph.add(f"e{t}", "hidden", scores, base="e", role=f"attention scores at decoder step {t}", **at)
        alpha = graph.add(f"alpha{t}", "hidden", functions.softmax(e), base="alpha",
                          role=f"attention weights at decoder step {t}", **at)
        ctx = graph.add(f"ctx{t}", "hidden", Mix(stack, alpha), step=S + t, shape=(H,), base="ctx",
                        role=f"context at decoder step {t}")
        out[t] = graph.add(f"ht{t}", "hidden", sp.tanh(MatVec(W_cc, ctx) + MatVec(W_ch, s) + b_c), step=S + t,
                           shape=(H,), base="ht", role=f"attentional state at decoder step {t}")
    return out


def _readout_and_loss(graph: Graph, top: dict, targets: dict, S: int, V: int, loss: str, reduction: str) -> None:
    """``y_t = g(W_hy·top_t + b_y)`` and a loss at every target step, averaged (or summed) over them."""
    H = graph[top[1].name].shape[0]
    W = graph.add("W_hy", "param", shape=(V, H), role="readout weight", param_role=ParamRole.READOUT_WEIGHT)
    b = graph.add("b_y", "param", shape=(V,), role="readout bias", param_role=ParamRole.READOUT_BIAS)
    activation = "softmax" if loss == "cross_entropy" else "identity"
    g, loss_fn = functions.output_activation(activation), functions.loss(loss, activation)
    terms = []
    for t, h in top.items():
        y = graph.add(f"y{t}", "output", g(MatVec(W, h) + b), step=S + t, shape=(V,), role=f"output at step {t}")
        terms.append(graph.add(f"L{t}", "loss_term", loss_fn(y, targets[t]), step=S + t,
                               reduce=functions.LOSS_REDUCTION[loss], role=f"loss at step {t}"))
    total = sp.Add(*terms) / (len(terms) if reduction == "mean" else 1)
    graph.add("L", "loss", total, step=S + len(terms),
              role=f"loss ({functions.LOSS_TITLES[loss]}, {reduction} over the {len(terms)} target steps)")
