"""Arrays a compiled function keeps between calls, so that it does not allocate them again.

The loop form stores every step's states and gates in (T, batch, ...) arrays. Allocating them fresh
on every call costs more than filling them: large allocations come straight from the operating
system, and every page is faulted in again on first touch (for an LSTM of hidden size 32 over 50
steps, that was about a third of ``value_and_grad``). So the generated code asks a workspace for
its large arrays by name and gets the same memory back on the next call, as PyTorch's caching
allocator and cuDNN's workspaces do.

Workspaces are per thread (two threads calling one compiled network never share a buffer) and
per batch size, the two most recent kept: training alternates between its batch size, a smaller
last batch and the validation set. Nothing a compiled function returns lies in a workspace.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

KEPT_BATCH_SIZES = 2


class Workspace:
    """Named float64 arrays, allocated on first use and handed out again while the shape fits."""

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def empty(self, name: str, shape: tuple) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.shape != shape:
            array = self._arrays[name] = np.empty(shape)
        return array

    def zeros(self, name: str, shape: tuple) -> np.ndarray:
        array = self.empty(name, shape)
        array.fill(0.0)
        return array

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())


class Workspaces:
    """One compiled network's workspaces: per thread, for its most recent batch sizes."""

    def __init__(self):
        self._local = threading.local()

    def __call__(self, batch: int) -> Workspace:
        kept = self._kept()
        if batch in kept:
            kept.move_to_end(batch)
        else:
            kept[batch] = Workspace()
            while len(kept) > KEPT_BATCH_SIZES:
                kept.popitem(last=False)
        return kept[batch]

    def _kept(self) -> OrderedDict:
        if not hasattr(self._local, "kept"):
            self._local.kept = OrderedDict()
        return self._local.kept

    def clear(self) -> None:
        """Free this thread's buffers (they are allocated again by the next call)."""
        self._kept().clear()

    @property
    def nbytes(self) -> int:
        """Bytes this thread's workspaces hold."""
        return sum(w.nbytes for w in self._kept().values())
