"""Compile a network's graph into NumPy source: a forward pass and a reverse (adjoint) pass.

The generated code is straight-line NumPy over a batch on the leading axis. Forward values are
kept and reused by the backward pass (``tanh' = 1 - o**2`` reads ``o``), subexpressions shared
within a node's local factors are computed once, and the loss-output pair is fused where its
factors cancel (sigmoid with BCE gives ``o - Y``), so the gradient stays finite for any logit.
Every symbol is printed under a generated identifier, so no user-chosen name reaches the source.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import sympy as sp

from ..engine.paths import path_term
from .compiled import CompiledNetwork
from .printer import RUNTIME, CodePrinter, stable

_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,30}")


def generated_names(graph) -> dict[sp.Symbol, str]:
    """``o5`` → ``n_o5``; a name that is not plain letters and digits gets ``n_<index>``."""
    return {
        node.symbol: f"n_{node.name}" if _SAFE.fullmatch(node.name) else f"n_{i}"
        for i, node in enumerate(graph.nodes.values())
    }


def compile_network(network) -> CompiledNetwork:
    graph = network.graph
    names = generated_names(graph)
    temps = iter(sp.Symbol(f"_t{i}") for i in itertools.count())
    printer = CodePrinter(names)

    def emit_cse(targets: list[tuple[str, sp.Expr]], out: list[str], summed: frozenset = frozenset()) -> None:
        """Emit ``name = expr`` lines, computing shared subexpressions once; the targets named in
        ``summed`` are reduced over the batch at once (a parameter's share needs no per-example copy)."""
        replacements, reduced = sp.cse([e for _, e in targets], symbols=temps, order="none")
        for temp, value in replacements:
            names[temp] = temp.name
            out.append(f"    {temp.name} = {printer.doprint(value)}")
        for (target, _), value in zip(targets, reduced):
            code = printer.doprint(value)
            out.append(f"    {target} = numpy.sum({code})" if target in summed else f"    {target} = {code}")

    params = [n.name for n in graph.of_kind("param")]
    args = ", ".join(names[graph[p].symbol] for p in params)
    output, loss = network.output_name, graph.loss

    # ---- forward ------------------------------------------------------------------------------
    forward = []
    for index, node in enumerate(graph.of_kind("input")):
        forward.append(f"    {names[node.symbol]} = x[:, {index}]")
    for node in graph.of_kind("constant"):
        forward.append(f"    {names[node.symbol]} = {float(node.value)!r}")
    out_node = graph[output]
    logit = out_node.expr  # what the loss sees of the output: the output's own expression
    for node in graph.nodes.values():
        if node is out_node and out_node.expr.is_Function and len(out_node.expr.args) == 1:
            # Name the output's pre-activation once; the loss reads it again (log(sigmoid(z))).
            z = sp.Symbol("_z_out")
            names[z] = z.name
            forward.append(f"    {z.name} = {printer.doprint(out_node.expr.args[0])}")
            forward.append(f"    {names[node.symbol]} = {printer.doprint(out_node.expr.func(z))}")
            logit = out_node.expr.func(z)
        elif node.kind in ("hidden", "output"):
            forward.append(f"    {names[node.symbol]} = {printer.doprint(node.expr)}")

    # The loss is written in the output's pre-image so that log(sigmoid(z)) becomes a softplus.
    target_name = names[network.target]
    loss_expr = sp.factor_terms(stable(loss.expr.xreplace({out_node.symbol: logit})))
    loss_lines = [f"    {target_name} = y"]
    emit_cse([("_per_example", loss_expr)], loss_lines)

    # ---- backward: adjoints, accumulated child by child ---------------------------------------
    inv_b = sp.Symbol("_inv_batch")
    names[inv_b] = inv_b.name
    backward = [f"    {inv_b.name} = 1.0 / x.shape[0]"]
    needs = _nodes_needing_adjoints(graph)
    # Fused first step: dL/d(parent of output) = (1/B) * cancel(dL/do * do/dparent).
    contributions: dict[str, list[str]] = {}
    # (node, its factors) in reverse order; None means "the node's adjoint is complete: use it".
    steps = [(output, {p: inv_b * path_term(graph, (loss.name, output, p), local=network._local).simplified
                       for p in graph.parents(output) if p in needs})]
    for node in reversed(list(graph.nodes)):
        if graph[node].kind == "hidden" and node in needs:
            steps.append((node, None))
    for node, factors in steps:
        if factors is None:
            # Every child has been processed: this node's adjoint is complete.
            g = sp.Symbol(f"g_{names[graph[node].symbol]}")
            names[g] = g.name
            backward.append(f"    {g.name} = {' + '.join(contributions.pop(node))}")
            factors = {p: g * network.local(node, p) for p in graph.parents(node) if p in needs}
        targets, summed = [], set()
        for parent, expr in factors.items():
            temp = f"_c_{names[graph[parent].symbol]}_{len(contributions.get(parent, []))}"
            targets.append((temp, expr))
            contributions.setdefault(parent, []).append(temp)
            if graph[parent].kind == "param":
                summed.add(temp)
        emit_cse(targets, backward, frozenset(summed))

    grads = []
    for p in params:
        parts = contributions.get(p)
        grads.append(" + ".join(parts) if parts else "0.0")

    source = "\n".join([
        "# Generated by rnnsym from the symbolic graph; every name below is generated.",
        f"def forward(x, {args}):",
        *forward,
        f"    return {names[graph[output].symbol]}",
        "",
        f"def loss(x, y, {args}):",
        *forward, *loss_lines,
        "    return numpy.mean(_per_example)",
        "",
        f"def value_and_grad(x, y, {args}):",
        *forward, *loss_lines, *backward,
        f"    return numpy.mean(_per_example), ({', '.join(grads)},)",
        "",
        f"def trace(x, y, {args}):",
        *forward, f"    {target_name} = y",
        f"    return ({', '.join(names[n.symbol] for n in graph.nodes.values() if n.kind != 'loss')},)",
        "",
    ])
    return CompiledNetwork(network, source, RUNTIME)


def expression_function(graph, exprs: list[sp.Expr]):
    """A NumPy function of the graph's node values (a dict name -> array) for ``exprs``.

    Printed with the same generated names as the compiled network, never with raw node names.
    """
    names = generated_names(graph)
    printer = CodePrinter(names)
    lines = [f"    {names[n.symbol]} = values[{i}]" for i, n in enumerate(graph.nodes.values())]
    source = "\n".join(["def evaluate(values):", *lines,
                        f"    return [{', '.join(printer.doprint(e) for e in exprs)}]", ""])
    namespace = {"numpy": np, **RUNTIME}
    exec(compile(source, "<rnnsym expression>", "exec"), namespace)  # generated from SymPy, no user text
    order = list(graph.nodes)
    return lambda values: namespace["evaluate"]([values.get(n) for n in order])


def _nodes_needing_adjoints(graph) -> set[str]:
    """Parameters and every node between a parameter and the loss."""
    needed = set()
    for node in graph.nodes.values():
        if node.kind == "param":
            needed.add(node.name)
        elif node.kind in ("hidden", "output") and any(p in needed for p in graph.parents(node.name)):
            needed.add(node.name)
    return needed
