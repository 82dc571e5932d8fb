"""Arrays a compiled function keeps between calls, so that it does not allocate them again.

The loop form stores every step's states and gates in (T, batch, ...) arrays. Allocating them fresh
on every call costs more than filling them: large allocations come straight from the operating
system, and every page is faulted in again on first touch (for an LSTM of hidden size 32 over 50
steps, that was about a third of ``value_and_grad``). So the generated code asks a workspace for
its large arrays by name and gets the same memory back on the next call, as PyTorch's caching
allocator and cuDNN's workspaces do.

Workspaces are per thread (two threads calling one compiled network never share a buffer) and
for the latest batch size only: training's many batches of one size reuse it, and an evaluation
on a larger set replaces it rather than adding to it. A workspace over ``MAX_KEPT_BYTES`` is freed
when the call ends. Nothing a compiled function returns lies in a workspace.
"""
from __future__ import annotations

import threading

import numpy as np

MAX_KEPT_BYTES = 1 << 30


class Workspace:
    """Named arrays of one precision, allocated on first use and handed out again while the shape fits."""

    def __init__(self, dtype=np.float64):
        self._arrays: dict[str, np.ndarray] = {}
        self.dtype = np.dtype(dtype)

    def empty(self, name: str, shape: tuple) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.shape != shape:
            array = self._arrays[name] = _aligned(shape, self.dtype)
        return array

    def zeros(self, name: str, shape: tuple) -> np.ndarray:
        array = self.empty(name, shape)
        array.fill(0.0)
        return array

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())


def _aligned(shape: tuple, dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on a cache line: a row of 8 doubles is one line, which
    the kernels can write whole (rnnsym.numeric.time_major's streaming stores need it)."""
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


class Workspaces:
    """One compiled network's workspaces: one per thread, for its latest batch size and precision."""

    def __init__(self):
        self._local = threading.local()

    def __call__(self, batch: int, dtype=np.float64) -> Workspace:
        if getattr(self._local, "batch", None) != (batch, np.dtype(dtype)):
            self._local.batch, self._local.workspace = (batch, np.dtype(dtype)), Workspace(dtype)
        return self._local.workspace

    def trim(self) -> None:
        """Called when a call ends: a workspace too large to keep is freed."""
        if self.nbytes > MAX_KEPT_BYTES:
            self.clear()

    def clear(self) -> None:
        """Free this thread's buffers (they are allocated again by the next call)."""
        self._local.batch = self._local.workspace = None

    @property
    def nbytes(self) -> int:
        """Bytes this thread's workspace holds."""
        workspace = getattr(self._local, "workspace", None)
        return workspace.nbytes if workspace is not None else 0
