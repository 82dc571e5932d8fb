"""float32 work with subnormal numbers flushed to zero, on the threads that compute it.

float32 gradients that vanish over many steps reach subnormal numbers (below 1.2e-38), and each
operation on one costs the CPU a microcode assist: an Elman of hidden size 64 over 100 steps took
72 ms in float32 against 20 in float64 (PyTorch's float32 nn.RNN: 86 against 41). ``with
flush_denormals(dtype):`` around float32 work turns flush-to-zero and denormals-are-zero on for the
calling thread (x86-64's MXCSR, through the optional C extension) and gives the thread its own mode
back after, an error included: nothing outside the call sees a changed mode. XLA flushes them on
the CPU by default; a flushed value is below float32's smallest normal number, far under the
precision any float32 gradient carries. float64 is left as it is.
"""
from __future__ import annotations

import numpy as np

from .printer import _kernels


class flush_denormals:
    """``with flush_denormals(dtype):`` subnormals flushed to zero on this thread where ``dtype`` is
    float32 (and the C extension is built on x86-64); otherwise nothing changes."""

    def __init__(self, dtype):
        self.on = _kernels is not None and np.dtype(dtype) == np.float32

    def __enter__(self):
        self.mode = _kernels.flush_denormals() if self.on else -1
        return self

    def __exit__(self, *exc):
        if self.mode != -1:
            _kernels.restore_fp_mode(self.mode)
        return False
