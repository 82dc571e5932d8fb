"""BLAS threads for a loop's small products: one, where the products are too small to share.

A loop step's product (an LSTM's 256×41 by 41×128) takes tens of microseconds. Split over two
BLAS threads it is faster on a quiet machine, but between two products the step's own work runs
while OpenBLAS's second thread waits for the next one; when another process wants a core, that
waiting thread and the step's work take turns on it, and a call of Elman 64 went from 16 to 100 ms
(``bench_speed.py --contention``). So the loops run their products on one thread when a step's
products are small (``SMALL`` floating-point operations for the whole batch); the large products
before and after the loops (the input products, the weight gradients) keep every thread.
"""
from __future__ import annotations

import functools

SMALL = 1 << 24  # a step's products below this many operations: one thread (about 0.3 ms on one core)


@functools.cache
def _blas() -> tuple:
    """The BLAS libraries loaded in this process (threadpoolctl's controllers), or none."""
    try:
        import numpy  # noqa: F401  (threadpoolctl finds the libraries that are loaded)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


class step_threads:
    """``with step_threads(flops):`` around a loop whose every step makes products of ``flops``
    operations in all: BLAS on one thread inside if they are small, as before outside."""

    def __init__(self, flops: int):
        self.small = flops < SMALL

    def __enter__(self):
        self.saved = [(lib, lib.num_threads) for lib in _blas()] if self.small else []
        for lib, threads in self.saved:
            if threads > 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, threads in self.saved:
            if threads > 1:
                lib.set_num_threads(threads)
        return False
