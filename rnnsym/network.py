"""A Network: an unrolled graph plus the names people ask about, and the three ways in."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy as sp

from .display import Displayable
from .engine import local_partial
from .errors import RnnsymError, listed
from .graph import Graph


def step_name(base: str, t: int) -> str:
    """The node of cell symbol ``base`` at step ``t``: ``h3``, or ``h1_3`` where ``base`` ends in a digit."""
    return f"{base}_{t}" if base[-1].isdigit() else f"{base}{t}"


@dataclass(frozen=True)
class Recurrence:
    """How an unrolled cell names its nodes step by step. Every step is an instance of step 1, so
    code generation and derivations work on that one step (derive once per cell)."""

    states: tuple[str, ...]  # base names: ("h", "c")
    gates: tuple[str, ...]  # ("i", "f", "g", "o")
    input: str  # "x"
    params: tuple[str, ...]  # the cell's own parameters (the readout's are W_hy, b_y)
    bidirectional: bool = False

    def name(self, base: str, t: int) -> str:
        """The node of ``base`` at step ``t``: ``name("h", 3) == "h3"``."""
        return step_name(base, t)


class Network(Displayable):
    """An unrolled recurrent network, ready for symbolic queries, derivations and compiling.

    Built by a constructor such as :func:`rnnsym.seed_rnn`; not usually made directly.
    ``recurrence`` says how a network unrolled from one shared cell names its steps; it is None
    for the seed network, whose recurrent weights differ per step. In a notebook a network shows
    its unrolled picture and equations (rnnsym.display).
    """

    def __init__(self, graph: Graph, *, name: str, steps: int, options: dict[str, Any], title: str,
                 recurrence: Recurrence | None = None):
        self.graph = graph
        self.name = name
        self.steps = steps
        self.options = dict(options)
        self.title = title
        self.recurrence = recurrence
        self._locals: dict[tuple[str, str], sp.Expr] = {}
        self._derivations: dict[str, Any] = {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"<rnnsym {self.name} network, steps={self.steps}, {opts}>"

    # ---- names --------------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.graph.of_kind("param"))

    @property
    def params(self) -> tuple[sp.Symbol, ...]:
        return tuple(n.symbol for n in self.graph.of_kind("param"))

    @cached_property
    def is_scalar(self) -> bool:
        """Every node a scalar and no matrix product: path terms are plain SymPy products."""
        from .functions import MatVec

        return all(n.shape == () and (n.expr is None or not n.expr.has(MatVec)) for n in self.graph.nodes.values())

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's array shape (``()`` for a scalar), PyTorch's layout for matrices."""
        return {n.name: n.shape for n in self.graph.of_kind("param")}

    @property
    def input_size(self) -> int:
        return int(self.options.get("input_size", 1))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.graph.of_kind("input"))

    @property
    def inputs(self) -> tuple[sp.Symbol, ...]:
        return tuple(n.symbol for n in self.graph.of_kind("input"))

    @property
    def target(self) -> sp.Symbol:
        """The target ``Y`` (the last step's, when there is a loss at every step)."""
        return self.graph.of_kind("target")[-1].symbol

    @property
    def output_name(self) -> str:
        """The output node (the last one, when there is a loss at every step)."""
        return self.graph.of_kind("output")[-1].name

    @property
    def loss_name(self) -> str:
        return self.graph.loss.name

    def resolve(self, name, what: str = "name") -> str:
        """The node name for ``name`` (a string or a Symbol); an unknown one is a clear error."""
        key = name.name if isinstance(name, sp.Symbol) else name
        if isinstance(key, str) and key in self.graph:
            return key
        groups = {"parameters": ("param",), "inputs": ("input",), "target": ("target",),
                  "nodes": ("constant", "hidden", "output", "loss")}
        listing = "; ".join(
            f"{label}: {listed(n.name for n in self.graph.of_kind(*kinds))}"
            for label, kinds in groups.items() if self.graph.of_kind(*kinds)
        )
        raise RnnsymError(f"unknown {what} {name!r}; {listing}")

    # ---- symbolic queries -------------------------------------------------------------------------
    def node(self, name) -> sp.Expr:
        """A node's own expression in its parents' symbols (a leaf gives its symbol or value).

        >>> seed_rnn(steps=4).node("o4")
        tanh(b4 + o3*w3 + w*x4)
        """
        node = self.graph[self.resolve(name, "node")]
        if node.expr is not None:
            return node.expr
        return sp.sympify(node.value) if node.kind == "constant" else node.symbol

    def local(self, child, parent) -> sp.Expr:
        """One local partial ``∂child/∂parent``, the other inputs of ``child`` held fixed.

        >>> seed_rnn(steps=4).local("o4", "o3")
        w3*(1 - o4**2)
        """
        key = (self.resolve(child, "node"), self.resolve(parent, "node"))
        if key not in self._locals:
            self._locals[key] = local_partial(self.graph, *key)
        return self._locals[key]

    def jacobian(self, child: str, parent: str):
        """``∂child/∂parent`` as Jacobian terms (see rnnsym.engine.local), derived once per cell:
        a step of a shared cell is the template (step 1) with its symbols renamed."""
        from .engine.local import local_jacobian

        cache = self.__dict__.setdefault("_jacobians", {})
        if (child, parent) in cache:
            return cache[(child, parent)]
        template = self._template_of(child, parent)
        if template is not None:
            (t_child, t_parent), rename = template
            base = self.jacobian(t_child, t_parent)
            result = type(base)(child, parent, tuple(term.renamed(rename) for term in base.terms))
        else:
            result = self._same_shape_jacobian(child, parent) or local_jacobian(self.graph, child, parent)
        cache[(child, parent)] = result
        return result

    def _same_shape_jacobian(self, child: str, parent: str):
        """``∂child/∂parent`` renamed from an edge already differentiated whose child has the same
        expression up to a renaming of its symbols (the seed network's layers: ``o_t = tanh(b_t +
        w_(t−1)·o_(t−1) + w·x_t)``, whose weights differ per step so no cell template applies).
        Differentiation commutes with a one-to-one renaming, so this is exact; None when no such edge
        is known yet (the edge is then differentiated and remembered)."""
        from .engine.local import local_jacobian

        key, symbols = _structure(self.graph, child, parent)
        seen = self.__dict__.setdefault("_structures", {})
        if key in seen:
            first, first_symbols = seen[key]
            rename = dict(zip(first_symbols, symbols))
            return type(first)(child, parent, tuple(term.renamed(rename) for term in first.terms))
        seen[key] = (local_jacobian(self.graph, child, parent), symbols)
        return seen[key][0]

    def _template_of(self, child: str, parent: str):
        """The step-1 edge that (child, parent) instantiates, and the renaming from step 1 to its step."""
        rec = self.recurrence
        node, other = self.graph[child], self.graph[parent]
        if rec is None or node.base is None or node.step in (None, 1) or node.base.endswith("_reverse"):
            return None
        t = node.step
        offset = 0 if other.base is None or other.step is None else t - other.step
        if offset not in (0, 1) or (other.base or "").endswith("_reverse"):
            return None
        bases = (*rec.states, *rec.gates, rec.input)
        rename = {}
        for b in bases:
            for s in (0, 1):
                here, there = rec.name(b, 1 - s), rec.name(b, t - s)
                if here in self.graph and there in self.graph:
                    rename[self.graph[here].symbol] = self.graph[there].symbol
        t_parent = parent if other.base is None else rec.name(other.base, 1 - offset)
        if t_parent not in self.graph:
            return None
        return (rec.name(node.base, 1), t_parent), rename

    def _local(self, graph: Graph, child: str, parent: str) -> sp.Expr:
        return self.local(child, parent)

    def derive(self, wrt, *, of=None, order: int = 1, path_limit: int | None = None):
        """The derivation of ``dL/d(wrt)`` for a parameter, a node or an input, step by step.

        ``of``: another node than the loss, for the total derivative ``d(of)/d(wrt)`` between two
        nodes (``of`` a descendant of ``wrt``; for a vector ``of``, the Jacobian as a sum of path
        products). ``order=2``: the second derivative ``d²L/d(wrt)²`` of a scalar network (see
        rnnsym.queries).

        >>> d = seed_rnn(steps=4).derive("w3")
        >>> d.paths
        [('L', 'o5', 'o4', 'w3')]
        >>> seed_rnn(steps=4).derive(of="o4", wrt="o2").expr
        w2*w3*(1 - o3**2)*(1 - o4**2)
        """
        from .derivation import derive
        from .queries import check_order, derive_between, second_derivative

        check_order(order)
        name = self.resolve(wrt, "parameter, node or input")
        of = None if of is None else self.resolve(of, "node")
        if of == self.loss_name:
            of = None
        limit = {} if path_limit is None else {"path_limit": path_limit}
        if order == 2:
            return second_derivative(self, name, of, **limit)
        if of is not None:
            return derive_between(self, of, name, **limit)
        if path_limit is not None:
            return derive(self, name, path_limit=path_limit)
        if name not in self._derivations:
            self._derivations[name] = derive(self, name)
        return self._derivations[name]

    def ancestors(self, node) -> tuple[str, ...]:
        """The nodes ``node`` depends on, leaves first (without ``node`` itself).

        >>> seed_rnn(steps=2).ancestors("o1")
        ('x1', 'w', 'w0', 'b1', 'o0')
        """
        from .queries import ancestors

        return ancestors(self, node)

    def descendants(self, node) -> tuple[str, ...]:
        """The nodes that depend on ``node``, the loss last (without ``node`` itself).

        >>> seed_rnn(steps=2).descendants("o1")
        ('o2', 'o3', 'L')
        """
        from .queries import descendants

        return descendants(self, node)

    def verify(self, text: str, wrt=None):
        """Check a hand-derived formula for ``dL/d(wrt)``: right or wrong, and why (rnnsym.learn).

        >>> seed_rnn(steps=4).verify("dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3").ok
        True
        """
        from .learn import verify

        return verify(self, text, wrt)

    @cached_property
    def expansions(self) -> dict[sp.Symbol, sp.Expr]:
        """Each node's value in inputs, target and parameters only (constants put in)."""
        values: dict[sp.Symbol, sp.Expr] = {}
        for node in self.graph.nodes.values():
            if node.kind == "constant":
                values[node.symbol] = sp.sympify(node.value)
            elif node.expr is not None:
                values[node.symbol] = node.expr.xreplace(values)
        return values

    # ---- numbers ----------------------------------------------------------------------------------
    def compile(self, truncate: int | None = None, form: str = "auto", backend: str = "numpy",
                dtype: str | None = None):
        """Functions ``forward``, ``loss`` and ``value_and_grad`` over a batch (see CompiledNetwork).

        ``truncate=k``: truncated BPTT, the backward recursion stops after ``k`` steps.
        ``form``: ``"loop"`` runs one differentiated step of a shared cell in a loop over time (the
        default for cells); ``"unrolled"`` writes every step out (the seed network, whose
        recurrent weights differ per step, and bidirectional networks).
        ``backend``: ``"numpy"``, or ``"jax"`` / ``"torch"`` for the same program over JAX arrays
        (pure functions, the loop a ``lax.scan``) or torch tensors on any device
        (rnnsym.backends; the extras ``rnnsym[jax]`` and ``rnnsym[torch]`` install them).
        ``dtype``: ``"float32"`` or ``"float64"`` for every call; by default each call computes in
        x's precision (float32 data in float32, anything else in float64).
        """
        from .backends import BACKENDS, compile_backend
        from .engine.truncation import check_truncation
        from .errors import choose
        from .numeric.emit import compile_network
        from .numeric.loop import compile_loop, loop_supported

        choose("form", form, ("auto", "loop", "unrolled"))
        choose("backend", backend, BACKENDS)
        if dtype is not None:
            choose("dtype", dtype, ("float32", "float64"))
        truncate = self.options.get("truncate") if truncate is None else truncate
        check_truncation(truncate, bool(self.options.get("bidirectional")))
        cache = self.__dict__.setdefault("_compiled", {})
        if backend != "numpy":
            if (truncate, form, backend) not in cache:
                cache[(truncate, form, backend)] = compile_backend(self, backend, truncate, form)
            compiled = cache[(truncate, form, backend)]
            return compiled if dtype is None else compiled.with_dtype(dtype)
        if form == "auto":
            form = "loop" if loop_supported(self) else "unrolled"
        elif form == "loop" and not loop_supported(self):
            raise RnnsymError("form 'loop' needs a network unrolled from one shared cell in one direction; "
                              "use form 'unrolled'")
        if (truncate, form) not in cache:
            build = compile_loop if form == "loop" else compile_network
            cache[(truncate, form)] = build(self, truncate)
        return cache[(truncate, form)] if dtype is None else cache[(truncate, form)].with_dtype(dtype)


def _structure(graph: Graph, child: str, parent: str):
    """A key that equal for two edges exactly when their child expressions, kinds and shapes agree
    up to a one-to-one renaming of symbols (the child's own symbol and the parent's included), and the
    symbols in the order the key numbers them."""
    node = graph[child]
    order = [node.symbol, graph[parent].symbol]
    for s in sp.preorder_traversal(node.expr):
        if isinstance(s, sp.Symbol) and s not in order:
            order.append(s)
    placeholders = {s: sp.Symbol(f"_{i}") for i, s in enumerate(order)}
    shapes = tuple(graph[s.name].shape if s.name in graph.nodes else None for s in order)
    key = (node.kind, node.reduce, shapes, sp.srepr(node.expr.xreplace(placeholders)))
    return key, order
