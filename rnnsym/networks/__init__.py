"""Network constructors: each builds an unrolled Graph and wraps it in a Network."""
from .builtin import elman_rnn, gru, lstm
from .cells import Cell, matvec, unroll
from .seed import seed_rnn
from .seq2seq import seq2seq
from .torch_weights import params_from_torch, params_to_torch


def _seq2seq_network(steps: int, *, target_steps: int | None = None, encoder: str = "gru", decoder: str = "gru",
                     input_size: int = 1, hidden_size: int = 1, output_size: int = 2, attention: str | None = None,
                     loss: str = "cross_entropy", step_reduction: str = "mean", activation: str = "tanh",
                     output_activation: str | None = None, outputs: str | None = None):
    """``seq2seq`` by the common constructor's arguments: ``steps`` are the source's, and the
    target has as many unless ``target_steps`` says otherwise. Its output activation follows its
    loss and it has an output at every target step: other values of those are refused."""
    from ..errors import RnnsymError

    follows = {"cross_entropy": "softmax", "mse": "identity"}.get(loss)
    if output_activation is not None and follows is not None and output_activation != follows:
        raise RnnsymError(f"a seq2seq network with loss {loss!r} has output activation {follows!r}, "
                          f"not {output_activation!r}")
    if outputs not in (None, "all"):
        raise RnnsymError(f"a seq2seq network has an output at every target step (outputs 'all'), not {outputs!r}")
    return seq2seq(encoder, decoder, source_steps=steps, target_steps=target_steps or steps, input_size=input_size,
                   hidden_size=hidden_size, output_size=output_size, attention=attention, loss=loss,
                   step_reduction=step_reduction, activation=activation)


NETWORKS = {"seed": seed_rnn, "elman": elman_rnn, "lstm": lstm, "gru": gru, "seq2seq": _seq2seq_network}

# Options that only some networks take; the rest (steps, activation, output_activation, loss) all do.
_ONLY = {"shared_bias": ("seed",)}
for _option in ("input_size", "hidden_size", "output_size", "truncate", "bidirectional", "num_layers"):
    _ONLY[_option] = ("elman", "lstm", "gru")
for _option in ("input_size", "hidden_size", "output_size"):
    _ONLY[_option] += ("seq2seq",)
for _option in ("encoder", "decoder", "attention", "target_steps"):
    _ONLY[_option] = ("seq2seq",)


def make_network(kind: str, steps: int, **options):
    """A built-in network by name (``seed``, ``elman``, ``lstm``, ``gru``, ``seq2seq``); options left at None are
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


__all__ = ["NETWORKS", "make_network", "Cell", "elman_rnn", "gru", "lstm", "matvec", "params_from_torch", "params_to_torch", "seed_rnn", "seq2seq", "unroll"]
