"""Compile a network's graph into NumPy source: a forward pass and a reverse (adjoint) pass.

The generated code is straight-line NumPy over a batch on the leading axis. Forward values are
kept and reused by the backward pass (``tanh' = 1 - o**2`` reads ``o``); subexpressions shared
by a node's local factors are computed once; matrix products go to BLAS (``v @ W.T`` forward,
``δ @ W`` and ``δᵀ @ v`` backward); and each output is fused with its loss where their factors
cancel (sigmoid with BCE, softmax with cross-entropy give ``o - Y``), so gradients stay finite for
any logit. Every symbol is printed under a generated identifier: no user-chosen name reaches the
source.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import sympy as sp

from ..engine.local import Jacobian, local_jacobian
from ..engine.truncation import windows
from ..functions import FUSED_OUTPUT_GRADIENTS
from ..progress import progress
from .compiled import CompiledNetwork
from .printer import RUNTIME, CodePrinter, stable

_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")


def generated_names(graph) -> dict[sp.Symbol, str]:
    """``o5`` → ``n_o5``; a name that is not plain letters and digits gets ``n_<index>``.

    The two namespaces of generated source: every identifier made from a node's name starts with
    ``n_`` (and the map is one-to-one: ``n_<letter>…`` from a name, ``n_<digits>`` from an index),
    and nothing else the compiler writes does. So no user name can ever stand for a generated value.
    """
    return {
        node.symbol: f"n_{node.name}" if _SAFE.fullmatch(node.name) else f"n_{i}"
        for i, node in enumerate(graph.nodes.values())
    }


class _Emitter:
    """Prints SymPy expressions as lines of NumPy under generated names, sharing subexpressions.

    The compiler's own values (temporaries, adjoints, buffers) are ``sp.Dummy`` symbols: a Dummy
    equals no other symbol, so a user's parameter named ``_t0`` or ``g_n_h1`` is never mistaken for
    the compiler's value of that name, in substitutions, in ``cse`` or in the name table."""

    def __init__(self, graph):
        self.graph = graph
        self.names = generated_names(graph)
        # Every value but a parameter's and a scalar constant's (a float) carries the batch axis.
        self.printer = CodePrinter(self.names, {n.symbol: n.shape for n in graph.nodes.values()},
                                   batched={n.symbol for n in graph.nodes.values()
                                            if n.kind != "param" and (n.kind, n.shape) != ("constant", ())})
        self._symbols: dict[str, sp.Dummy] = {}
        self._temps = (self.symbol(f"_t{i}") for i in itertools.count())

    def symbol(self, name: str, like: sp.Expr | tuple | None = None) -> sp.Dummy:
        """The compiler's value printed as ``name`` (the same Dummy each time it is asked for);
        ``like``: an expression of the same shape, batched or not, or that as ``(batched, shape)``
        (the printer needs to know)."""
        assert not name.startswith("n_"), name  # that namespace belongs to the nodes
        if name not in self._symbols:
            self._symbols[name] = sp.Dummy(name)
            self.names[self._symbols[name]] = name
            if like is not None:
                self.printer.declare(self._symbols[name], like if isinstance(like, tuple) else self.printer.info(like))
        return self._symbols[name]

    def code(self, expr: sp.Expr) -> str:
        return self.printer.doprint(expr)

    def lines(self, targets: list[tuple[str, sp.Expr, str]], indent: str = "    ") -> list[str]:
        """``target = wrap(expr)`` for each (target, expr, wrap); ``wrap`` holds ``{}`` for the code."""
        replacements, reduced = sp.cse([e for _, e, _ in targets], symbols=self._temps, order="none")
        out = []
        for temp, value in replacements:
            self.printer.declare(temp, self.printer.info(value))
            out.append(f"{indent}{self.names[temp]} = {self.code(value)}")
        for (target, _, wrap), value in zip(targets, reduced):
            out.append(f"{indent}{target} = {wrap.format(self.code(value))}")
        return out


def compile_network(network, truncate: int | None = None) -> CompiledNetwork:
    graph = network.graph
    em = _Emitter(graph)
    names = em.names
    params = [n.name for n in graph.of_kind("param")]
    args = ", ".join(names[graph[p].symbol] for p in params)
    loss = graph.loss
    loss_terms = graph.of_kind("loss_term") or [loss]

    # ---- forward ------------------------------------------------------------------------------
    forward = []
    for node in graph.of_kind("input"):
        column = "" if node.shape == () else ", :"
        forward.append(f"    {names[node.symbol]} = x[:, {node.step - 1}{column}]")
    for node in graph.of_kind("constant"):
        value = float(node.value)
        forward.append(f"    {names[node.symbol]} = "
                       + (repr(value) if node.shape == () else f"numpy.full({_batch_shape(node.shape)}, {value!r})"))
    targets = []
    for node in graph.of_kind("target"):
        column = "" if node.step is None else (f"[:, {node.step - 1}]" if node.shape == () else f"[:, {node.step - 1}, :]")
        targets.append(f"    {names[node.symbol]} = y{column}")

    logits: dict[str, sp.Expr] = {}  # output name -> its expression with the pre-activation named
    for node in graph.nodes.values():
        if node.kind == "hidden":
            forward.append(f"    {names[node.symbol]} = {_stored(em, node.expr, node.shape)}")
        elif node.kind == "output":
            if node.expr.is_Function and len(node.expr.args) == 1:
                # Name the pre-activation once; the loss reads it again (log(sigmoid(z)) = -softplus(-z)).
                z = em.symbol(f"_z_{names[node.symbol]}", like=node.expr.args[0])
                forward.append(f"    {z.name} = {em.code(node.expr.args[0])}")
                logits[node.name] = node.expr.func(z)
            else:
                logits[node.name] = node.expr
            forward.append(f"    {names[node.symbol]} = {_stored(em, logits[node.name], node.shape)}")

    # ---- the loss: each term in the output's pre-image, stable, reduced over components --------
    loss_lines = list(targets)
    for term in loss_terms:
        (out_name,) = [p for p in graph.parents(term.name) if graph[p].kind == "output"]
        out = graph[out_name]
        expr = sp.factor_terms(stable(term.expr.xreplace({out.symbol: logits[out_name]})))
        if out.shape == ():
            wrap = "{}"
        else:
            wrap = "numpy.mean({}, axis=-1)" if term.reduce == "mean" else "numpy.sum({}, axis=-1)"
        loss_lines += em.lines([(f"_loss_{names[term.symbol]}", expr, wrap)])
    if loss not in loss_terms:
        total = loss.expr.xreplace({t.symbol: em.symbol(f"_loss_{names[t.symbol]}") for t in loss_terms})
        loss_lines.append(f"    _per_example = {sum_code([em.code(t) for t in sp.Add.make_args(total)])}")
    else:
        loss_lines.append(f"    _per_example = _loss_{names[loss.symbol]}")

    # ---- backward: adjoints, accumulated child by child ---------------------------------------
    # One walk from all loss terms, or with truncated BPTT one walk per loss term inside its own
    # window (rnnsym.engine.truncation): the adjoints of different windows are different values.
    needs = _nodes_needing_adjoints(graph)
    inv_b = em.symbol("_inv_batch")
    backward = [f"    {inv_b.name} = 1.0 / x.shape[0]"]
    param_parts: dict[str, list[str]] = {}  # parameter -> its shares, over every walk
    adjoint_parts: dict[str, list[str]] = {}  # hidden node -> its adjoint in each walk
    share_child: dict[str, str] = {}  # contribution variable -> the node it flows out of
    counter = itertools.count()

    def share(child: str, parent: str, jacobian: Jacobian, scale, into: dict) -> list[tuple[str, sp.Expr, str]]:
        """Targets for the parent's share of the child's adjoint, one per Jacobian term."""
        out, p = [], graph[parent]
        for term in jacobian.terms:
            factor = scale(term)
            if factor == 0:  # a step's derivative (Heaviside, sign): nothing flows back
                continue
            name = f"_c{next(counter)}"
            if term.outer is not None:  # the parent is W in W·v: (δ ⊙ f)ᵀ v
                wrap = "({}).T @ " + names[term.outer]
            elif term.matrix is not None:  # the parent is v in W·v: (δ ⊙ f) W
                wrap = em.printer.backward_product("{}", term.matrix)
            elif p.kind == "param":
                wrap = "numpy.sum({})" if p.shape == () else "numpy.sum({}, axis=0)"
            elif p.shape == () and graph[child].shape != ():
                wrap = "numpy.sum({}, axis=-1)"
            else:
                wrap = "{}"
            out.append((name, factor, wrap))
            (param_parts if p.kind == "param" else into).setdefault(parent, []).append(name)
            share_child[name] = child
        return out

    def walk(terms, cuts, tag: str) -> None:
        """The adjoints of ``terms``' loss, from the outputs back, not following the ``cuts``."""
        contributions: dict[str, list[str]] = {}
        seed_targets = []  # each output's parents, through the fused loss-output factor
        for term in terms:
            (out_name,) = [p for p in graph.parents(term.name) if graph[p].kind == "output"]
            for parent in graph.parents(out_name):
                if parent in needs:
                    factors = dict(output_seeds(network, term.name, out_name, parent, inv_b))
                    seed_targets += share(out_name, parent, local_jacobian(graph, out_name, parent),
                                          lambda t, factors=factors: factors[t], contributions)
        backward.extend(em.lines(seed_targets))
        for name in progress(list(reversed(graph.nodes)), "compiling", "node"):
            node = graph[name]
            if node.kind != "hidden" or name not in needs or name not in contributions:
                continue
            g = em.symbol(f"g_{names[node.symbol]}{tag}", like=node.symbol)  # an adjoint has its node's shape
            adjoint_parts.setdefault(name, []).append(g.name)
            backward.append(f"    {g.name} = {sum_code(contributions.pop(name))}")
            node_targets = []
            for parent in graph.parents(name):
                if parent in needs and (name, parent) not in cuts:
                    node_targets += share(name, parent, network.jacobian(name, parent), lambda t: g * t.factor,
                                          contributions)
            backward.extend(em.lines(node_targets))

    windowed = windows(network, truncate)
    if windowed is None:
        walk(loss_terms, frozenset(), "")
    else:
        for w in windowed:
            terms = [graph[w.source]] if len(windowed) > 1 else loss_terms
            walk(terms, w.cuts, f"_from_{names[graph[w.source].symbol]}" if len(windowed) > 1 else "")
    with_adjoint = list(adjoint_parts)
    totals = [f"    _adjoint_{i} = {sum_code(parts)}" for i, parts in enumerate(adjoint_parts.values())]
    contributions = param_parts

    grads = []
    for p in params:
        parts = contributions.get(p)
        shape = graph[p].shape
        grads.append(sum_code(parts) if parts else (f"numpy.zeros({shape})" if shape else "0.0"))

    source = "\n".join([
        "# Generated by rnnsym from the symbolic graph; every name below is generated.",
        f"def forward(x, {args}):",
        *forward,
        f"    return ({', '.join(names[n.symbol] for n in graph.of_kind('output'))},)",
        "",
        f"def loss(x, y, {args}):",
        *forward, *loss_lines,
        "    return numpy.mean(_per_example)",
        "",
        f"def value_and_grad(x, y, {args}):",
        *forward, *loss_lines, *backward,
        f"    return numpy.mean(_per_example), ({', '.join(grads)},)",
        "",
        f"def adjoints(x, y, {args}):",
        *forward, *loss_lines, *backward, *totals,
        f"    return ({''.join(f'_adjoint_{i}, ' for i in range(len(with_adjoint)))}), ({', '.join('(' + ', '.join(contributions.get(p, [])) + (',)' if contributions.get(p) else ')') for p in params)},)",
        "",
        f"def trace(x, y, {args}):",
        *forward, *targets,
        f"    return ({', '.join(names[n.symbol] for n in graph.nodes.values() if n.kind not in ('loss', 'loss_term'))},)",
        "",
    ])
    compiled = CompiledNetwork(network, source, RUNTIME, truncate=truncate)
    compiled.adjoint_nodes = tuple(with_adjoint)
    compiled.share_nodes = {p: tuple(share_child[c] for c in contributions.get(p, [])) for p in params}
    return compiled


def _batch_shape(shape: tuple, batch: str = "x.shape[0]") -> str:
    """The source of ``(batch, *shape)``."""
    return f"({batch}, {', '.join(map(str, shape))})" if shape else batch


def _stored(em: _Emitter, expr: sp.Expr, shape: tuple, batch: str = "x.shape[0]") -> str:
    """The code of a node's value ``expr`` as the node keeps it, (batch, *shape): a value that
    does not depend on the example (h' = c with c₀ = 0, a parameter-only state) is filled in for
    every example, a per-example scalar given to a vector node for every component."""
    batched, got = em.printer.info(expr)
    if batched is None or (batched and got == shape):
        return em.code(expr)
    return f"numpy.full({_batch_shape(shape, batch)}, {em.printer.operand(expr, shape)}, dtype=float)"


def sum_code(parts: list[str]) -> str:
    """``a + b + c``; past a few dozen terms ``sum((a, b, …))``: a chain of thousands of ``+``
    (a shared weight's share from every step of a long sequence) is too deep for Python's compiler."""
    return " + ".join(parts) if len(parts) <= 32 else f"sum(({', '.join(parts)},))"


def output_seeds(network, term: str, out: str, parent: str, inv_batch: sp.Symbol):
    """``[(jacobian_term, factor)]``: how the gradient of the batch-mean loss enters ``parent``
    through the output ``out`` and its loss term ``term``, one factor per Jacobian term of
    ``∂out/∂parent``. The loss and output factors are fused: cancelled where they cancel
    (sigmoid with BCE gives ``o − Y``), or taken from the table where there is no elementwise
    derivative (softmax with cross-entropy)."""
    graph = network.graph
    loss = graph.loss
    d_total = sp.S.One if term == loss.name else loss.expr.diff(graph[term].symbol)  # 1/T for a mean over steps
    (dl,) = local_jacobian(graph, term, out).terms  # a mean over output components is already in it
    fused = FUSED_OUTPUT_GRADIENTS.get((network.options.get("loss"), network.options.get("output_activation")))
    seeds = []
    for t in local_jacobian(graph, out, parent).terms:
        if fused is not None:
            factor = fused(graph[out].symbol, graph[_target_of(graph, term)].symbol) * t.factor
        else:
            factor = sp.factor(sp.cancel(dl.factor * t.factor))
        seeds.append((t, inv_batch * d_total * factor))
    return seeds


def _target_of(graph, loss_term: str) -> str:
    (target,) = [p for p in graph.parents(loss_term) if graph[p].kind == "target"]
    return target


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
