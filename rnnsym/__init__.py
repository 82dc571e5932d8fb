"""rnnsym: backpropagation through time, derived step by step, rendered, compiled and checked.

>>> import rnnsym as rs
>>> net = rs.seed_rnn(steps=4)
>>> net.derive("w3").paths
[('L', 'o5', 'o4', 'w3')]
"""
from .derivation import Derivation
from .errors import RnnsymError
from .network import Network
from .backends.torch_module import to_torch
from .networks import (Cell, elman_rnn, gru, lstm, matvec, params_from_torch, params_to_torch, seed_rnn, seq2seq,
                       unroll)
from .flow import GradientFlow, gradient_flow
from .numeric.gradcheck import GradcheckReport, gradcheck
from .training import TrainResult, load_model, make_task, predict, train

__version__ = "0.1.0"
__all__ = ["Cell", "Derivation", "GradcheckReport", "GradientFlow", "gradient_flow", "Network", "RnnsymError", "elman_rnn", "gradcheck", "gru", "lstm",
           "matvec", "params_from_torch", "params_to_torch", "seed_rnn", "seq2seq", "to_torch", "unroll", "__version__",
           "TrainResult", "load_model", "make_task", "predict", "train"]
