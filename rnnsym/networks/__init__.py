"""Network constructors: each builds an unrolled Graph and wraps it in a Network."""
from .builtin import elman_rnn, gru, lstm
from .cells import Cell, matvec, unroll
from .seed import seed_rnn

__all__ = ["Cell", "elman_rnn", "gru", "lstm", "matvec", "seed_rnn", "unroll"]
