"""Where a lowered program's large arrays live: a buffer whose values are dead takes the memory of
another of the same shape, as a register allocator reuses a register.

The loop form holds (T, batch, ...) arrays: the input products computed before the forward loop,
the states and gates every step writes, and the parameter shares every backward step stores. The
input products are dead once the forward loop has read them, and the shares are not born before
the backward loop, so a share can take an input product's memory: a long sequence holds one array
less per such pair. Lifetimes are counted in the phases of the loop form below; the pass sees only
names, shapes and lifetimes, never code.
"""
from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class Phase(IntEnum):
    """The parts of a loop form, in the order they run."""

    BEFORE_LOOP = 0  # the work hoisted out of the forward loop (the input products)
    FORWARD_LOOP = 1
    READOUT = 2  # the readout, the loss and the seeds of the backward pass
    BACKWARD_LOOP = 3
    REDUCTIONS = 4  # the stored shares reduced into the gradients


class Buffer(NamedTuple):
    """An array the lowering asks for: its name, its shape, and the first and last phase in which
    it holds a value that is read later."""

    name: str
    shape: tuple
    first: Phase
    last: Phase


def share_memory(buffers: list[Buffer]) -> dict[str, str]:
    """Each buffer's memory: the name of an earlier buffer of the same shape whose last phase ends
    before this one's first (its values are dead by then), else its own name.

    Buffers are placed in the order of their first phase (then as given); each takes the memory
    that has been free longest, so that a chain of lifetimes can share one array.
    """
    memory: dict[str, str] = {}
    free_after: dict[str, tuple[tuple, Phase]] = {}  # a memory's shape and the last phase its latest tenant uses it
    for buffer in sorted(buffers, key=lambda b: b.first):  # a stable sort: ties keep their order
        if buffer.first > buffer.last:
            raise ValueError(f"buffer {buffer.name!r} ends ({buffer.last.name}) before it starts ({buffer.first.name})")
        free = [m for m, (shape, last) in free_after.items() if shape == buffer.shape and last < buffer.first]
        home = min(free, key=lambda m: free_after[m][1]) if free else buffer.name
        memory[buffer.name] = home
        free_after[home] = (buffer.shape, buffer.last)
    return memory
