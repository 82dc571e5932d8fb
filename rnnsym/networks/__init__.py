"""Network constructors: each builds an unrolled Graph and wraps it in a Network."""
from .seed import seed_rnn

__all__ = ["seed_rnn"]
