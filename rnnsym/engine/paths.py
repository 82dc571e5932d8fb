"""The path view: one chain-rule product per path from the loss down to a node (the article's form).

Paths are bounded: their number can grow exponentially (an LSTM), so they are counted first and
refused past a limit, pointing at the recursive view, which is always linear.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from ..errors import RnnsymError
from ..graph import Graph
from .local import local_partial
from .truncation import truncation_cuts  # noqa: F401 (re-exported; truncation is decided there)

DEFAULT_PATH_LIMIT = 2000
# Past 10000 factors in all (the shared w's T paths at T = 140, or one path through 10000 layers)
# the path view is refused and the recursive view, elided past a screenful, takes over.
DEFAULT_FACTOR_LIMIT = 10000


class PathLimitError(RnnsymError):
    """More chain-rule paths than the limit allows; the recursive view handles any number."""


def descendants(graph: Graph, start: str) -> set[str]:
    """``start`` and every node whose value depends on it."""
    return _closure(start, graph.children)


def ancestors(graph: Graph, start: str) -> set[str]:
    """``start`` and every node its value depends on (only these can carry its gradient)."""
    return _closure(start, graph.parents)


def _closure(start: str, neighbours) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for n in neighbours(todo.pop()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def path_totals(graph: Graph, target: str) -> tuple[int, int]:
    """How many chain-rule paths lead from the loss to ``target``, and how many factors they hold
    in all (dynamic programming: nothing is listed)."""
    relevant = descendants(graph, target)
    count, factors = {target: 1}, {target: 0}
    for name in graph.nodes:  # topological order: parents are counted before children
        if name in relevant and name != target:
            parents = [p for p in graph.parents(name) if p in relevant]
            count[name] = sum(count[p] for p in parents)
            factors[name] = sum(factors[p] + count[p] for p in parents)
    loss = graph.loss.name
    return count.get(loss, 0), factors.get(loss, 0)


def count_paths(graph: Graph, target: str) -> int:
    """How many chain-rule paths lead from the loss to ``target``."""
    return path_totals(graph, target)[0]


def enumerate_paths(graph: Graph, target: str, limit: int = DEFAULT_PATH_LIMIT,
                    factor_limit: int = DEFAULT_FACTOR_LIMIT) -> list[tuple[str, ...]]:
    """Every path ``(loss, ..., target)``, shortest first: the article's order (layer T, then T-1, ...).

    Refused up front, before anything is listed, when there are more than ``limit`` paths or
    more than ``factor_limit`` factors in all (a shared weight of a long sequence has T paths of
    up to T factors each).
    """
    n, factors = path_totals(graph, target)
    if n > limit or factors > factor_limit:
        raise PathLimitError(
            f"{n} chain-rule paths with {factors} factors in all lead to {target!r}, more than the limit of "
            f"{limit} paths or {factor_limit} factors; use the recursive view (Derivation.recursive) "
            "or truncate the sequence")
    relevant = descendants(graph, target)
    found: list[tuple[str, ...]] = []
    stack = [(graph.loss.name,)]
    while stack:  # depth-first without recursion: paths can be thousands of nodes long
        path = stack.pop()
        if path[-1] == target:
            found.append(path)
            continue
        # Later parents first, so that ties are listed from the last layer back, as in the article.
        stack.extend(path + (p,) for p in graph.parents(path[-1]) if p in relevant)
    return sorted(found, key=len)


@dataclass(frozen=True)
class PathTerm:
    """One path's contribution: its local factors in chain order, their product, and its value."""

    path: tuple[str, ...]
    factors: tuple[sp.Expr, ...]  # factors[i] = ∂path[i]/∂path[i+1]
    simplified: sp.Expr  # the product, with fractions cancelled where they cancel
    value: sp.Expr  # the simplified product with constants (o0 = 0) put in
    zero_because: tuple[str, ...] = ()  # constants whose value 0 makes the term vanish


def path_term(graph: Graph, path: tuple[str, ...], local=local_partial, prefixes: dict | None = None) -> PathTerm:
    """Multiply the local factors along ``path``.

    Only a product that still has a denominator is cancelled (``∂L/∂o5 · ∂o5/∂o4`` for BCE and a
    sigmoid gives ``(o5 - Y)*w4``); polynomial factors are multiplied as they stand, so
    ``(1 - o4**2)`` stays factored instead of being expanded. Paths share their beginnings
    (every path of the shared ``w`` starts L → o5 → o4), so products of prefixes are kept in
    ``prefixes`` and each is formed once: linear work for a whole derivation, not quadratic.

    Factors without a denominator are collected and multiplied once, at the end or when a
    cancellation needs the product: multiplying them one at a time re-sorts the growing product at
    every factor, which was quadratic in a path's length (a 1000-factor path took half a minute).
    """
    prefixes = {} if prefixes is None else prefixes
    factors = tuple(local(graph, a, b) for a, b in zip(path, path[1:]))
    # `prefixes` is a trie: (id of the prefix path[:k], path[k]) -> (id of path[:k+1], its state).
    # Keys of fixed size, not the prefix tuples themselves (those made memory quadratic in length).
    # A state is (items, n, fractional): the prefix's product is Mul(*items[:n]); the list is shared
    # with the path that made it and copied (O(length), like the term itself) by a path that goes on.
    key, state, start = 0, ([sp.S.One], 1, False), 1
    for k in range(1, len(path)):
        found = prefixes.get((key, path[k]))
        if found is None:
            break
        key, state = found
        start = k + 1
    items, n, fractional = state
    pending = items[:n]
    for k in range(start, len(path)):
        factor = factors[k - 1]
        if fractional or _has_denominator(factor):
            candidate = sp.Mul(*pending) * factor
            cancelled = sp.factor(sp.cancel(candidate))
            if sp.count_ops(cancelled) <= sp.count_ops(candidate):
                candidate = cancelled
            fractional = _has_denominator(candidate)
            pending = [candidate]
        elif len(pending) == 1 and (pending[0].is_Number or pending[0].is_Add or factor.is_Number):
            # Multiplied at once, as one at a time would: SymPy distributes a number over a sum
            # only in a product of two (2·(a + b) = 2a + 2b), so a deferred product could differ.
            pending = [pending[0] * factor]
        else:
            pending.append(factor)
        new_key = len(prefixes) + 1
        prefixes[(key, path[k])] = (new_key, (pending, len(pending), fractional))
        key = new_key
    product = sp.Mul(*pending)
    constants = graph.constants()
    value = product.xreplace(constants) if constants else product
    zero_because = ()
    if value == 0 and product != 0:
        zero_because = tuple(
            s.name for s in sorted(product.free_symbols & set(constants), key=str) if constants[s] == 0
        )
    return PathTerm(path, factors, product, value, zero_because)


@functools.lru_cache(maxsize=4096)  # the same local factors come back in path after path
def _has_denominator(expr: sp.Expr) -> bool:
    return sp.denom(sp.together(expr)) != 1

