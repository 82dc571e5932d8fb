"""Network constructors: each builds an unrolled Graph and wraps it in a Network."""
from .builtin import elman_rnn, gru, lstm
from .cells import Cell, matvec, unroll
from .seed import seed_rnn
from .torch_weights import params_from_torch

__all__ = ["Cell", "elman_rnn", "gru", "lstm", "matvec", "params_from_torch", "seed_rnn", "unroll"]
