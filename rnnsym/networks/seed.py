"""The seed network: the article's scalar RNN, with the article's names.

For ``steps = T``: inputs ``x1..xT``; ``o0 = 0``; hidden outputs
``ot = f(w*xt + w(t-1)*o(t-1) + bt)``; the output ``o(T+1) = g(wT*oT + b(T+1))``; the loss
``L(o(T+1), Y)``.
"""
from __future__ import annotations

import sympy as sp
from sympy.core.basic import _args_sortkey

from .. import functions
from ..errors import RnnsymError, choose, positive_int
from ..graph import Graph, ParamRole, gc_paused
from ..network import Network
from ..progress import progress


@gc_paused()  # tens of thousands of SymPy objects at large T: see gc_paused
def seed_rnn(
    steps: int = 4,
    activation: str = "tanh",
    output_activation: str = "sigmoid",
    loss: str = "bce",
    shared_bias: bool = False,
    outputs: str = "last",
) -> Network:
    """The article's network unrolled over ``steps`` words.

    ``shared_bias=True`` uses one hidden bias ``b`` for every step (plus the output bias
    ``b(T+1)``) instead of one bias per layer. The article's network has one output layer, so
    ``outputs`` is ``"last"``; a loss at every step is for the general cells (``rs.elman_rnn``).

    >>> net = seed_rnn(steps=4)
    >>> net.param_names
    ('w', 'w0', 'w1', 'w2', 'w3', 'w4', 'b1', 'b2', 'b3', 'b4', 'b5')
    """
    T = positive_int("steps", steps)
    f = functions.activation(activation)
    g = _output_activation(output_activation)
    loss_fn = functions.loss(loss, output_activation)
    choose("outputs", outputs, ("last",))
    if not isinstance(shared_bias, bool):
        raise RnnsymError(f"shared_bias must be True or False, got {shared_bias!r}")

    graph = Graph()
    xs = [graph.add(f"x{t}", "input", step=t, role=f"input word {t}") for t in range(1, T + 1)]
    w = graph.add("w", "param", role="input weight, shared by every step", param_role=ParamRole.INPUT_WEIGHT)
    ws = [
        graph.add(f"w{t}", "param", step=t + 1, role=f"recurrent weight carrying o{t} into layer {t + 1}",
                  param_role=ParamRole.RECURRENT_WEIGHT)
        for t in range(T)
    ]
    w_out = graph.add(f"w{T}", "param", step=T + 1, role="output-layer weight", param_role=ParamRole.READOUT_WEIGHT)
    if shared_bias:
        b = graph.add("b", "param", role="hidden bias, shared by every step", param_role=ParamRole.BIAS)
        bs = [b] * T
    else:
        bs = [graph.add(f"b{t}", "param", step=t, role=f"bias of layer {t}", param_role=ParamRole.BIAS)
              for t in range(1, T + 1)]
    b_out = graph.add(f"b{T + 1}", "param", step=T + 1, role="output-layer bias", param_role=ParamRole.READOUT_BIAS)
    target = graph.add("Y", "target", role="the target")

    previous = graph.add("o0", "constant", value=0, step=0, role="default previous output, always 0")
    layer = _layer_builder(f)
    for t in progress(range(1, T + 1), "building the network", "step", after=5000):
        previous = graph.add(
            f"o{t}", "hidden", layer(w, xs[t - 1], ws[t - 1], previous, bs[t - 1]),
            step=t, role=f"hidden output of layer {t}",
        )
    out = graph.add(f"o{T + 1}", "output", g(w_out * previous + b_out), step=T + 1, role="network output")
    graph.add("L", "loss", loss_fn(out, target), step=T + 1, role=f"loss ({functions.LOSS_TITLES[loss]})")

    options = dict(activation=activation, output_activation=output_activation, loss=loss, shared_bias=shared_bias)
    return Network(graph, name="seed", steps=T, options=options, title="the article's simple RNN")


def _output_activation(name: str):
    """g of the one scalar output. softmax (which the general cells take) is refused with the reason:
    over one value it is always 1, so it needs a vector output of two or more classes."""
    if name == "softmax":
        raise RnnsymError(
            "output activation 'softmax' (--output-activation) does not apply to the seed network: its one "
            "scalar output would always be 1; softmax needs a vector network with output_size >= 2 (--net "
            f"elman, lstm or gru with --output-size 2 or more); for the seed network choose {', '.join(functions.ACTIVATIONS)}")
    choose("output activation", name, functions.ACTIVATIONS)
    return functions.ACTIVATIONS[name]


def _layer_builder(f):
    """``(w, x, w_prev, o_prev, b) -> f(w·x + w_prev·o_prev + b)``, built without SymPy's evaluation
    where evaluation would change nothing: at T = 20000 evaluating each layer (tanh's ``eval`` asks
    assumption questions of its argument) was most of the time spent building the network.

    The shortcut writes the arguments in SymPy's canonical order, so the expressions are identical
    to evaluated ones; it is taken only when layer 1 shows that evaluation changes nothing for this
    ``f`` (every layer has the same form: distinct symbols, no numbers, no like terms).
    """
    def evaluated(w, x, w_prev, o_prev, b):
        return f(w * x + w_prev * o_prev + b)

    def fast(w, x, w_prev, o_prev, b):
        terms = [_product(w, x), _product(w_prev, o_prev), b]
        terms.sort(key=_args_sortkey)
        return f(sp.Add(*terms, evaluate=False), evaluate=False)

    checked = {}

    def layer(w, x, w_prev, o_prev, b):
        if "fast" not in checked:
            expected = evaluated(w, x, w_prev, o_prev, b)
            ok = isinstance(f, type) and issubclass(f, sp.Function) and len({w, x, w_prev, o_prev, b}) == 5
            checked["fast"] = ok and fast(w, x, w_prev, o_prev, b) == expected
            return expected
        return (fast if checked["fast"] else evaluated)(w, x, w_prev, o_prev, b)

    return layer


def _product(a: sp.Symbol, b: sp.Symbol) -> sp.Expr:
    return sp.Mul(*sorted((a, b), key=_args_sortkey), evaluate=False)
