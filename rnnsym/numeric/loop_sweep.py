"""A backward loop run as sweeps sums its parameter shares in its kernel.

A loop whose step is one fused kernel (a cell with no matrix product in its step) runs as sweeps:
row blocks, each through every step in one C call (rnnsym.numeric.lines.time_loop). Its parameter
shares would be stored per step and reduced after the loop, one pass over (T, batch) arrays per
parameter; in a sweep nothing else reads them, so the kernel adds them up where it computes them
(``Kernel.sums``, in double precision, per row block, the blocks summed in order) and the sweep
returns the sums (``_SUMS``). For the scalar Elman of T = 1000 and batch 10 000 that is 80 MB not
written and 400 MB not read again.
"""
from __future__ import annotations

import math

# How a sum becomes the gradient the reduction after the loop gave: a bias's ``_total`` (per
# column), a full sum (``_total`` to a scalar, ``_dot``), a 1×1 ``_outer``.
FORMS = {"total": "_SUMS[{}]", "all": "_SUMS[{}].sum()", "outer": "_SUMS[{}].reshape(1, 1)"}


def summed_in_sweep(back, loop: list[str]) -> list[str]:
    """``loop`` (rnnsym.numeric.loop_backward.LoopBackward ``back``'s), with the shares its kernel
    can sum returned by its sweep; ``back.summed`` and ``back.grads`` say which and how."""
    if back.fusion is None or not loop[0].startswith("    _kbwd.sweep("):
        return loop
    in_groups = {v for _, columns in back.groups for v in columns}  # one product for a stack's family
    summed = reduce_in_kernel(back.fusion, [e for e in back.stored if e.value not in in_groups])
    for e, (i, form) in summed.items():
        back.grads[e.param].append(FORMS[form].format(i))
    back.summed = set(summed)
    return [loop[0].replace("_kbwd.sweep(", "_SUMS = _kbwd.sweep(", 1)] if summed else loop


def reduce_in_kernel(fusion, entries: list) -> dict:
    """Each of ``entries`` (rnnsym.numeric.loop_backward.Stored) that the backward kernel of
    ``fusion`` (rnnsym.numeric.loop_fusion.BackwardFusion) can sum itself, as ``{entry: (its index
    among the sweep's sums, a FORMS key)}``. A share summed for every parameter that reads it is
    no longer stored per step; the kernel and its bind line are rebuilt."""
    k, summed = fusion.k, {}
    for e in entries:
        share = fusion.share_symbols.get(e.value)
        if share is None:
            continue
        if e.kind == "total":
            summed[e] = (k.sum(share), "total" if e.ndim == 1 else "all")
            continue
        leaf = _leaf(fusion, e)
        if leaf is not None and (e.kind == "dot" or k.width == 1):  # an outer product of vectors is a product
            summed[e] = (k.sum(share * leaf), "outer" if e.kind == "outer" else "all")
    shares = {e.value for e in summed} - {e.value for e in entries if e not in summed}
    unstored = {fusion.share_symbols[v] for v in shares}
    k.stores = [(i, symbol) for i, symbol in k.stores if symbol not in unstored or not k.operands[i].stepped]
    kernels = fusion.w.kernels
    kernels[kernels.index(fusion.kernel)] = fusion.kernel = k.kernel()
    bind = next(i for i, line in enumerate(fusion.before) if line.startswith("    _kbwd = "))
    fusion.before[bind] = k.bind_line("_kbwd")  # the leaves summed with may be new operands
    return summed


def _leaf(fusion, e):
    """The kernel's element of ``e.leaf`` (x_t, h_(t−1), …) that an outer or dot share is
    multiplied by, or None where it is not one value per row or per column of the kernel's width."""
    node = fusion.graph.nodes.get(e.leaf)
    if node is None or not (math.prod(node.shape) == 1 or fusion._vector(node.shape)):
        return None
    return fusion._node_load(node.symbol, (fusion.w.x1, *fusion.w.prev, *fusion.w.step))
