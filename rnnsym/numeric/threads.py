"""BLAS threads: one while other processes keep a core busy, every thread otherwise.

On a quiet machine two BLAS threads make a loop's step products (tens of microseconds each) and
the large products before and after the loop faster. With another process on one core they make a
call several times slower: between two products the step's own work runs while OpenBLAS's second
thread waits for the next one, and the two take turns on the core the other process leaves; a
call of Elman 64 went from 16 to 100 ms (``bench_speed.py --contention``), and a large product on
two threads waits for the one the other process holds (the Elman 64 weight gradient: 3.5 ms quiet
on two threads, 7.6 busy on two, 4.9 busy on one). So each call looks at the machine first
(:func:`call_threads`) and runs on one BLAS thread while it is busy. (Running only the loops'
small products on one thread always cost a quiet machine 23-25 %, and a busy one is covered by
this.)
"""
from __future__ import annotations

import functools
import importlib
import os
import time

WINDOW = 0.1  # seconds over which other processes' CPU use is judged


@functools.cache
def _blas() -> tuple:
    """The BLAS libraries loaded in this process (threadpoolctl's controllers), or none."""
    try:
        importlib.import_module("numpy")  # threadpoolctl finds the libraries that are loaded
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


class _OtherLoad:
    """Whether other processes kept at least half a core busy over the last ``WINDOW`` seconds: the
    machine's busy CPU time (``/proc/stat``, steal included) less this process's own. Where that
    cannot be read (not Linux), never."""

    def __init__(self):
        self.mark: tuple | None = None
        self.busy = False

    def __call__(self) -> bool:
        now = time.perf_counter()
        if self.mark is not None and now - self.mark[0] < WINDOW:
            return self.busy
        machine = _machine_busy_seconds()
        if machine is None:
            return False
        own = time.process_time()
        if self.mark is not None:
            others = (machine - self.mark[1]) - (own - self.mark[2])
            self.busy = others > 0.5 * (now - self.mark[0])
        self.mark = (now, machine, own)
        return self.busy


def _machine_busy_seconds() -> float | None:
    """CPU seconds every core has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


other_load = _OtherLoad()


class blas_threads:
    """``with blas_threads(n):`` BLAS on at most ``n`` threads (restored after, an error included)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.saved = [(lib, lib.num_threads) for lib in _blas() if lib.num_threads > self.n]
        for lib, _ in self.saved:
            lib.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        for lib, threads in self.saved:
            lib.set_num_threads(threads)
        return False


class call_threads(blas_threads):
    """``with call_threads(dtype):`` around a compiled function's call: BLAS on one thread while
    other processes keep a core busy, or in float32 (its products then run on the calling thread,
    whose subnormals rnnsym.numeric.fp_mode flushes; BLAS's own threads would not), restored after,
    an error included; else as it is."""

    def __init__(self, dtype=None):
        super().__init__(1)
        self.single = dtype is not None and str(dtype) == "float32"

    def __enter__(self):
        if self.single or other_load():
            return super().__enter__()
        self.saved = []
        return self


def cores() -> int:
    """The cores a compiled function's own threads (rnnsym.numeric.native.for_each_block) use:
    every core this process may run on, busy or not. Unlike BLAS's threads, which wait for each
    other at every product, they take row blocks as they come free, so a core another process
    holds takes fewer (the scalar Elman with one core busy: 70 ms on both cores, 84 on one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1

