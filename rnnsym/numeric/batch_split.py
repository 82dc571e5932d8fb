"""``value_and_grad`` over parts of the batch, one part a core, at once.

The examples of a batch are independent sequences, and the loss is their mean: the batch's loss
and gradients are the parts' weighted by their sizes. A loop form's step is small products and
elementwise work on (batch, H) arrays, where two BLAS threads on one product gain little (an
Elman step of hidden size 64: 46 µs on one thread, 35 on two) and the elementwise kernels run on
one core; a part a core runs both on every core, each part's products on one BLAS thread. The
parts depend on the batch size and the cores alone (never on the load), so a call gives the same
numbers every time on one machine, busy or quiet. A loop that already runs as sweeps (row blocks over the cores,
rnnsym.numeric.native) is not split.
"""
from __future__ import annotations

from .fp_mode import flush_denormals
from .native import serial_blocks, thread_pool
from .threads import blas_threads, cores, other_load

MIN_ROWS = 32  # a part's examples at least: fewer make each product too small to gain
MIN_STEPS_ROWS = 6_400  # steps × examples of the whole call at least: below it, a thread costs more


def parts(batch: int, steps: int) -> list[tuple[int, int]]:
    """``[(a, b), …]``: the rows of each part (one part: no split)."""
    count = min(cores(), batch // MIN_ROWS) if batch * steps >= MIN_STEPS_ROWS else 1
    if count <= 1:
        return [(0, batch)]
    bounds = [batch * i // count for i in range(count + 1)]
    return list(zip(bounds, bounds[1:]))


# While another process holds a core, parts whose step is small (parameters' elements × a part's
# rows × 2 below this many FLOPs) run one after the other on this thread: their Python lines hold
# the GIL often, and a part's thread descheduled on the held core holding it stalls the other (an
# Elman of hidden size 64 with a core busy: 29 ms so, 42 at once). Larger steps, mostly BLAS
# without the GIL, still gain from the core's share left (Elman of hidden size 256: 137 at once,
# 153 one after the other).
SMALL_STEP_FLOPS = 2_500_000


def value_and_grad(function, spans: list, x, y, params: list, trim) -> tuple:
    """``function(x, y, *params)`` (a generated value_and_grad) on each span of rows, on its own
    thread, BLAS on one thread each; the loss and gradients of the whole batch. ``trim`` is called
    on each part's thread when it is done (its workspace). The same parts give the same numbers,
    whichever way they run."""
    def part(span):
        a, b = span
        with serial_blocks(), flush_denormals(x.dtype):
            out = function(x[a:b], y[a:b], *params)
        trim()
        return out

    step_flops = 2 * sum(p.size for p in params) * max(b - a for a, b in spans)
    with blas_threads(1):
        if step_flops < SMALL_STEP_FLOPS and other_load():
            results = [part(span) for span in spans]
        else:
            results = list(thread_pool("part").map(part, spans))
    weights = [(b - a) / x.shape[0] for a, b in spans]
    value = sum(w * float(v) for w, (v, _) in zip(weights, results))
    first = results[0][1]
    keys = first.keys() if isinstance(first, dict) else range(len(first))
    grads = {k: sum(w * g[k] for w, (_, g) in zip(weights, results)) for k in keys}
    return value, grads if isinstance(first, dict) else [grads[k] for k in keys]

