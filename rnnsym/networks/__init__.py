"""Network constructors: each builds an unrolled Graph and wraps it in a Network."""
from .builtin import elman_rnn, gru, lstm
from .cells import Cell, matvec, unroll
from .seed import seed_rnn
from .seq2seq import seq2seq
from .torch_weights import params_from_torch, params_to_torch

NETWORKS = {"seed": seed_rnn, "elman": elman_rnn, "lstm": lstm, "gru": gru}

# Options that only some networks take; the rest (steps, activation, output_activation, loss) all do.
_ONLY = {"shared_bias": ("seed",)}
for _option in ("input_size", "hidden_size", "output_size", "truncate", "bidirectional", "num_layers"):
    _ONLY[_option] = ("elman", "lstm", "gru")


def make_network(kind: str, steps: int, **options):
    """A built-in network by name (``seed``, ``elman``, ``lstm``, ``gru``); options left at None are
    the constructor's defaults, and an option the network does not take is a one-line error.

    >>> make_network("elman", 3, hidden_size=2).param_shapes["W_hh"]
    (2, 2)
    """
    from ..errors import RnnsymError, choose

    choose("network", kind, NETWORKS)
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    for option in given:
        if option in _ONLY and kind not in _ONLY[option]:
            raise RnnsymError(f"option {option} applies to the {', '.join(_ONLY[option])} network(s), not to {kind}")
    return NETWORKS[kind](steps=steps, **given)


__all__ = ["NETWORKS", "make_network", "Cell", "elman_rnn", "gru", "lstm", "matvec", "params_from_torch", "params_to_torch", "seed_rnn", "unroll"]
