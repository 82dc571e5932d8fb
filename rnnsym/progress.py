"""Progress of long work: a bar on stderr, only when stderr is a terminal and the work is long.

Building a seed network of thousands of steps, compiling it, working out a long recursive view and
checking hundreds of gradient entries each take long enough that a silent terminal looks hung;
a pipe or a file gets nothing.
"""
from __future__ import annotations


def progress(items, what: str, unit: str, after: int = 2000):
    """``items``, shown as a progress bar while they are worked through when there are ``after`` or more."""
    items = items if hasattr(items, "__len__") else list(items)
    if len(items) < after:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, unit=unit, disable=None, leave=False)  # disable=None: a terminal only
