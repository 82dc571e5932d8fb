"""Truncated BPTT, decided in one place for the derivation, every compiled form and the gradient check.

Each loss term carries its gradient back at most ``k`` steps. The loss of a many-to-one network sits
at the last step ``T``; with a loss ``L_s`` at every step, ``L_s`` reaches steps ``s, s−1, …, s−k+1``
and the state of step ``s−k`` is a constant *for L_s* (PyTorch: ``h.detach()`` at the window's
edge). So the local factors from step ``s−k`` into step ``s−k+1`` are dropped for ``L_s``, and only
for it: another loss term ``L_(s+1)`` may still carry its gradient through them.

A bidirectional network is refused: its reverse direction carries the gradient forward in time,
so "k steps back" has no single meaning for it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import RnnsymError, positive_int


@dataclass(frozen=True)
class Window:
    """The part of the graph one loss term's gradient reaches: ``source`` (a loss term, or the
    loss itself for a many-to-one network) and the edges (child, parent) it does not follow."""

    source: str
    step: int
    cuts: frozenset


def check_truncation(truncate, bidirectional: bool) -> int | None:
    """``truncate`` if it is allowed (None, or k >= 1 on a network of one direction), else a one-line error."""
    if truncate is None:
        return None
    positive_int("truncate", truncate)
    if bidirectional:
        raise RnnsymError("truncate is not supported with bidirectional=True: the reverse direction carries the "
                          "gradient forward in time, so 'k steps back' has no single meaning there")
    return truncate


def windows(network, truncate: int | None) -> tuple[Window, ...] | None:
    """One window per loss term when ``truncate`` cuts anything, else None (the full gradient)."""
    check_truncation(truncate, bool(network.options.get("bidirectional")))
    if truncate is None:
        return None
    graph = network.graph
    sources = [(t.name, t.step) for t in graph.of_kind("loss_term")] or [(graph.loss.name, network.steps)]
    out = tuple(Window(name, step, frozenset(_edges_into(graph, step - truncate + 1))) for name, step in sources)
    return out if any(w.cuts for w in out) else None


def truncation_cuts(network, truncate: int | None) -> set[tuple[str, str]]:
    """Every edge any loss term's window cuts (for a single loss: the edges from step T − k into
    step T − k + 1)."""
    return set().union(*(w.cuts for w in windows(network, truncate) or ()))


def path_is_cut(path: tuple[str, ...], windows_: tuple[Window, ...] | None) -> bool:
    """Whether a chain-rule path (loss first) crosses the window edge of its own loss term
    (``windows_``: what :func:`windows` gives, worked out once for all the paths)."""
    for window in windows_ or ():
        if window.source in path[:2] and any((a, b) in window.cuts for a, b in zip(path, path[1:])):
            return True
    return False


def dropped_by_source(network, truncate: int | None) -> dict[str, list[tuple[str, str]]]:
    """For each loss term, the local factors its window drops (child, parent), in graph order."""
    return {w.source: sorted(w.cuts, key=lambda e: (list(network.graph.nodes).index(e[0]), e[1]))
            for w in windows(network, truncate) or () if w.cuts}


def _edges_into(graph, first: int) -> set[tuple[str, str]]:
    """Edges from a node of step ``first − 1`` into a node of step ``first`` (none when first <= 1)."""
    if first <= 1:
        return set()
    return {
        (child, parent)
        for child, node in graph.nodes.items() if node.kind == "hidden" and node.step == first
        for parent in graph.parents(child)
        if graph[parent].kind in ("hidden", "constant") and graph[parent].step == first - 1
    }
