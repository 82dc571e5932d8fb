"""Worked examples: a derivation with numbers in every factor, at one point, as records.

``d.with_numbers(params, x, y)`` keeps the derivation's steps' kinds of equation (records.py) and
puts numbers into them: the forward pass node by node (formula, numbers put in, value), every local
factor, every path term, their sum, a central-difference check and one gradient-descent update.
The result is a :class:`WorkedExample`, a :class:`~rnnsym.derivation.Derivation` whose steps are
these, so every printer of a derivation prints it (text, LaTeX, MathML, Markdown, JSON, notebook).

Numbers enter the records as :class:`Value` atoms: a node symbol that carries its value. It sorts
where the symbol sorts, so ``tanh(b1 + o0*w0 + w*x1)`` with numbers put in keeps its order,
and it prints as its number to 4 significant digits (exact values are in ``to_dict()["numbers"]``).
This module sits beside derivation.py: it imports no printer.
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from .derivation import Derivation
from .errors import RnnsymError
from .records import Delta, Equation, Partial, Product, Step, Sum, Total, Update

DIGITS = 4  # significant digits shown; to_dict() has the exact values
SMALL = 4  # a vector or matrix with every dimension up to this is shown in full; past it, its norm
ETA = 0.1  # the default learning rate of the update step
FD_STEP = 1e-5  # the central difference's h: its error, O(h²), and rounding, O(ε/h), both near 1e-10
CHECK_TOLERANCE = 1e-6  # the check's verdict, as rnnsym check's default
FD_ENTRIES = 16  # a parameter up to this many entries is checked entry by entry; past it, along the gradient


# ---- numbers as SymPy atoms -------------------------------------------------------------------------
def number_text(v: float) -> str:
    s = f"{float(v):.{DIGITS}g}"
    return "0" if s == "-0" else s


def number_latex(v: float) -> str:
    s = number_text(v)
    if "e" in s:
        mantissa, exponent = s.split("e")
        return r"%s \cdot 10^{%d}" % (mantissa, int(exponent))
    return s


def is_large(value) -> bool:
    return any(n > SMALL for n in np.shape(value))


def _shape_words(shape: tuple) -> str:
    return f"{shape[0]} entries" if len(shape) == 1 else "×".join(map(str, shape)) + " matrix"


class Value(sp.Symbol):
    """A node's value at the point, in place of its symbol: sorts as the symbol ``name`` does and
    prints as the number (a vector or matrix in full up to :data:`SMALL`, past that its size and
    norm). ``bare``: a negative number without brackets (a value standing alone)."""

    def __new__(cls, name: str, value, bare: bool = False):
        obj = sp.Symbol.__xnew__(cls, name)  # uncached: two values of one name are two atoms
        obj.value = np.asarray(value, dtype=float)
        obj.bare = bare
        obj._key = (obj.value.shape, tuple(obj.value.ravel().tolist()), bare)
        return obj

    def __getnewargs_ex__(self):
        return (self.name, self.value, self.bare), {}

    @classmethod
    def class_key(cls):  # sorts as a Symbol of its name: numbers put in keep the formula's order
        return sp.Symbol.class_key()

    def _hashable_content(self):  # the value is part of the atom: SymPy's caches must not mix two
        return super()._hashable_content() + (self._key,)

    def _scalar(self, fmt) -> str:
        s = fmt(float(self.value))
        return s if self.bare or not s.startswith("-") else f"({s})"

    def _sympystr(self, printer) -> str:
        v = self.value
        if v.ndim == 0:
            return self._scalar(number_text)
        if is_large(v):
            return f"[{_shape_words(v.shape)}, norm {number_text(np.linalg.norm(v))}]"
        rows = v if v.ndim == 2 else v[None]
        text = "[" + "; ".join(", ".join(number_text(e) for e in row) for row in rows) + "]"
        return text + ("ᵀ" if v.ndim == 1 else "")  # a column vector, written as a transposed row

    def _latex(self, printer) -> str:
        v = self.value
        if v.ndim == 0:
            return self._scalar(number_latex)
        if is_large(v):
            return r"\left[\text{%s, norm } %s\right]" % (_shape_words(v.shape), number_latex(np.linalg.norm(v)))
        rows = v if v.ndim == 2 else v[:, None]  # vectors are columns
        body = r" \\ ".join(" & ".join(number_latex(e) for e in row) for row in rows)
        return r"\begin{bmatrix} %s \end{bmatrix}" % body


class Named(sp.Symbol):
    """A symbol of the check (h, u) that sorts after every node name: ``L(w + h)``, not ``L(h + w)``."""

    def __new__(cls, shown: str):
        obj = sp.Symbol.__new__(cls, "\uffff" + shown)
        obj.shown = shown
        return obj

    def __getnewargs_ex__(self):
        return (self.shown,), {}

    @classmethod
    def class_key(cls):
        return sp.Symbol.class_key()

    def _sympystr(self, printer) -> str:
        return self.shown

    _latex = _sympystr


class Substituted(sp.Expr):
    """A formula with numbers put in: in LaTeX every product gets a ``\\cdot`` (``0.1 \\cdot 0.95``,
    not ``0.1 0.95``: two numbers side by side would read as one)."""

    def __new__(cls, expr):
        return sp.Expr.__new__(cls, expr)

    def _sympystr(self, printer) -> str:
        return printer._print(self.args[0])

    def _latex(self, printer) -> str:
        dotted = type(printer)({"mul_symbol": "dot"})  # the same printer class, products with \\cdot
        return dotted._print(self.args[0])


def exact(value):
    """A value for JSON: a float, or nested lists of floats."""
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array.tolist()


# ---- the worked example -----------------------------------------------------------------------------
class WorkedExample(Derivation):
    """A derivation worked at one point: its steps hold numbers (see :func:`worked_example`).

    >>> w = rnnsym.seed_rnn(steps=2).derive("w1").with_numbers()
    >>> sorted(w.numbers)[:3]
    ['check', 'eta', 'forward']
    """

    def __init__(self, derivation: Derivation, steps: tuple[Step, ...], numbers: dict):
        self.__dict__.update(derivation.__dict__)
        self.derivation = derivation
        self.steps = steps
        self.numbers = numbers  # exact values, for to_dict() and tests

    def full(self) -> "WorkedExample":
        return self  # nothing in a worked example is left out of print

    @property
    def gradient(self):
        """dL/d(target) at the point (a float, or an array for a vector or matrix)."""
        return self.numbers["gradient"]

    def with_numbers(self, *args, **kwargs) -> "WorkedExample":
        return self.derivation.with_numbers(*args, **kwargs)

    def to_dict(self, full: bool = False) -> dict:
        data = super().to_dict()
        data["numbers"] = self.numbers
        return data

    def __repr__(self) -> str:
        return f"<WorkedExample dL/d{self.target} at a point: {Value('g', self.gradient, bare=True)}>"


def random_point(network, seed: int = 0):
    """A point for one example, drawn at random (``seed``) and rounded to two decimals, so that
    the numbers shown are the numbers used."""
    from .numeric.gradcheck import random_point as drawn

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise RnnsymError(f"seed must be a non-negative integer, got {seed!r}")
    params, x, y = drawn(network, batch=1, seed=int(seed))
    params = {n: np.round(v, 2) for n, v in params.items()}
    y = y if np.issubdtype(np.asarray(y).dtype, np.integer) else np.round(y, 2)
    return params, np.round(x[0], 2), y[0]


def worked_example(d: Derivation, params=None, x=None, y=None, *, eta: float = ETA, seed: int = 0) -> WorkedExample:
    """:meth:`Derivation.with_numbers`: ``d`` at one point, every step with numbers.

    ``params`` (name -> number or array), ``x`` (one example: ``T`` numbers, or ``T`` rows of the
    input size) and ``y`` (its target); any left out is drawn at random with ``seed`` (rounded to
    two decimals; the first step says which). ``eta`` is the update's learning rate.
    """
    from .numeric.compiled import check_params

    network = d.network
    if not (isinstance(eta, (int, float, np.floating)) and not isinstance(eta, bool) and math.isfinite(eta) and eta > 0):
        raise RnnsymError(f"eta (the learning rate) must be a finite number > 0, got {eta!r}")
    drawn = random_point(network, seed)
    given = {"params": params is not None, "x": x is not None, "y": y is not None}
    params = check_params(network, drawn[0] if params is None else params)
    x = _one_example_x(network, drawn[1] if x is None else x)
    y = drawn[2] if y is None else y
    point = _Point(network, params, x, y)
    steps = [_point_step(point, given, seed), _forward_step(point)]
    numbers = {"eta": float(eta), "seed": int(seed), "given": given,
               "point": {**{n: exact(v) for n, v in params.items()}, "x": exact(x), "y": exact(point.y)},
               "forward": {n: exact(v) for n, v in point.values.items() if network.graph[n].expr is not None}}
    if network.is_scalar and d.path_terms is not None:
        steps += _path_steps(point, d, numbers)
    else:
        steps += _recursive_steps(point, d, numbers)
    steps.append(_check_step(point, d, numbers))
    if network.graph[d.target].kind == "param":
        steps.append(_update_step(point, d, eta, numbers))
    return WorkedExample(d, tuple(steps), numbers)


def _one_example_x(network, x) -> np.ndarray:
    from .numeric.compiled import _finite

    x = _finite("x", x)
    T, size = network.steps, network.input_size
    scalar_inputs = network.graph.of_kind("input")[0].shape == ()
    if x.ndim == 2 and x.shape[1] == 1 and size == 1:
        x = x[:, 0]
    expected = (T,) if size == 1 else (T, size)
    if x.shape != expected:
        what = f"{T} numbers, one per step" if size == 1 else f"{T} rows of {size} numbers, one row per step"
        raise RnnsymError(f"x must hold one example: {what}; got shape {x.shape}")
    return x if scalar_inputs or size != 1 else x[:, None]


class _Point:
    """The network at one example: every node's value, the loss, the compiled gradient."""

    def __init__(self, network, params, x, y):
        self.network, self.params = network, params
        self.compiled = network.compile(form="unrolled")  # the trace of node values is the unrolled form's
        self.x = x[None]
        self.y_batch = np.asarray(y)[None]
        self.loss, self.grads = self.compiled.value_and_grad(params, self.x, self.y_batch)
        graph = network.graph
        trace = self.compiled.trace(params, self.x, self.y_batch)
        self.values = {}
        for name, value in trace.items():
            node = graph[name]
            value = np.asarray(value, dtype=float)
            self.values[name] = value[0] if node.kind != "param" and value.ndim == len(node.shape) + 1 else value
        targets = [n.name for n in graph.of_kind("target")]  # as the loss reads it (class indices one-hot)
        self.y = self.values[targets[0]] if len(targets) == 1 else np.stack([self.values[t] for t in targets])
        rest = [n for n in graph.nodes.values() if n.name not in self.values and n.expr is not None]
        for node in rest:  # loss terms and the loss: not traced; from their own expressions, in order
            value = self.evaluate([node.expr])[0]
            self.values[node.name] = np.sum(value) if node.shape == () else value  # a scalar loss term
        self.values[graph.loss.name] = np.asarray(self.loss)  # the loss as the compiled code computes it

    def evaluate(self, exprs: list) -> list[np.ndarray]:
        """Expressions in node symbols at this point (one example each)."""
        from .numeric.emit import expression_function

        if not exprs:
            return []
        graph = self.network.graph
        batched = {n: (v[None] if graph[n].kind != "param" else v) for n, v in self.values.items()}
        out = expression_function(self.compiled.program, graph, exprs)(batched)
        return [np.asarray(v, dtype=float).reshape(np.shape(v)[1:] if np.ndim(v) and np.shape(v)[0] == 1
                                                    and np.ndim(v) > 0 else np.shape(v)) for v in out]

    def value(self, name: str, bare: bool = False) -> Value:
        return Value(name, self.values[name], bare)

    def put_in(self, expr):
        """``expr`` with every node symbol replaced by its value (None when a value is too large to show)."""
        graph = self.network.graph
        symbols = [s for s in expr.free_symbols if s.name in graph and s.name in self.values]
        if any(is_large(self.values[s.name]) for s in symbols):
            return None
        return Substituted(expr.xreplace({s: self.value(s.name) for s in symbols}))

    def forms(self, expr, value, activation: bool = True) -> tuple:
        """Three forms: the formula, the numbers put in, the value (with ``f(argument)`` before it
        when the formula is one activation of a sum and ``activation``)."""
        shown: list = [expr]
        substituted = self.put_in(expr)
        if substituted is not None and substituted.args[0] != expr:
            shown.append(substituted)
        if activation and isinstance(expr, sp.Function) and len(expr.args) == 1 and not expr.args[0].is_Atom:
            argument = self.evaluate([expr.args[0]])[0]
            shown.append(expr.func(Value("a", argument, bare=True)))
        shown.append(Value("v", value, bare=True))
        return tuple(shown)


def _point_step(point: _Point, given: dict, seed: int) -> Step:
    graph = point.network.graph
    leaves = [n for n in graph.nodes.values() if n.kind in ("param", "input", "target", "constant")]
    equations = tuple(Equation(n.symbol, (point.value(n.name, bare=True),),
                               label=n.role if n.kind == "constant" else "") for n in leaves if n.name in point.values)
    drawn = [what for what, was_given in (("the parameters", given["params"]), ("x", given["x"]),
                                          ("the target", given["y"])) if not was_given]
    if drawn:
        where = (f"{', '.join(drawn[:-1]) + ' and ' if len(drawn) > 1 else ''}{drawn[-1]} drawn at random "
                 f"(seed {seed}), rounded to two decimals" + ("; the rest as given" if len(drawn) < 3 else ""))
    else:
        where = "every number as given"
    big = any(is_large(v) for v in point.values.values())
    return Step("point", "Worked example: the point (one example)", equations,
                note=f"The point: {where}. Values are shown to {DIGITS} significant digits"
                     + ("; a vector or matrix with more than "
                        f"{SMALL} entries along a side by its size and norm (Euclidean, Frobenius for matrices)"
                        if big else "") + "; to_dict() has the exact values.")


def _forward_step(point: _Point) -> Step:
    graph = point.network.graph
    equations = tuple(Equation(n.symbol, point.forms(n.expr, point.values[n.name]), label=n.role)
                      for n in graph.nodes.values() if n.expr is not None)
    return Step("forward", "Forward pass, node by node", equations,
                note="Each node: its formula, the numbers put in, and its value; the loss is last.")


def _path_steps(point: _Point, d: Derivation, numbers: dict) -> list[Step]:
    loss, target = point.network.loss_name, d.target
    factors: dict[Partial, sp.Expr] = {}
    for term in d.path_terms:
        for (a, b), factor in zip(zip(term.path, term.path[1:]), term.factors):
            factors.setdefault(Partial(a, b), factor)
    values = dict(zip(factors, point.evaluate(list(factors.values()))))
    local = Step("local_factors", "Local factors at this point",
                 tuple(Equation(p, point.forms(f, values[p], activation=False)) for p, f in factors.items()),
                 note="Each local partial (∂, the node's other inputs held fixed) with the numbers put in.")
    term_values = []
    equations = []
    single = len(d.path_terms) == 1
    for term in d.path_terms:
        shown = tuple(Value("f", values[Partial(a, b)], bare=True) for a, b in zip(term.path, term.path[1:]))
        value = float(np.prod([values[Partial(a, b)] for a, b in zip(term.path, term.path[1:])]))
        term_values.append(value)
        lhs = Total(loss, target) if single else _chain(term.path)
        rhs = ((Product(shown),) if len(shown) > 1 else ()) + (Value("v", value, bare=True),)
        equations.append(Equation(lhs, rhs, label="" if single else _label(d, term.path)))
    steps = [local, Step("path_terms", "The path's term: the product of its factors" if single
                         else "Each path's term: the product of its factors", tuple(equations))]
    total = float(sum(term_values))
    if not single:
        steps.append(Step("total", "The gradient: the sum of the path terms", (
            Equation(Total(loss, target), (Sum(tuple(Value("t", v) for v in term_values)), Value("v", total, bare=True))),),
            note="Each term alone is one path's share; only their sum is the gradient."))
    numbers.update({"local_factors": [{"factor": f"∂{p.of}/∂{p.wrt}", "of": p.of, "wrt": p.wrt,
                                       "value": exact(values[p])} for p in factors],
                    "path_terms": [{"path": list(t.path), "value": v} for t, v in zip(d.path_terms, term_values)],
                    "gradient": total})
    return steps


def _chain(path):
    from .records import Chain

    return Chain(tuple(Partial(a, b) for a, b in zip(path, path[1:])))


def _label(d: Derivation, path) -> str:
    from .derivation import _path_label

    return _path_label(d.network.graph, path)


def _recursive_steps(point: _Point, d: Derivation, numbers: dict) -> list[Step]:
    """Vector networks (and paths past the listing limit): the recursive view with numbers — each
    adjoint δ at this point, then the gradient as the sum of its shares."""
    graph, loss, target = point.network.graph, point.network.loss_name, d.target
    try:
        adjoints, shares = point.compiled.adjoints(point.params, point.x, point.y_batch)
    except RnnsymError:
        adjoints, shares = {}, {}
    deltas = {n: np.asarray(v, dtype=float)[0] for n, v in adjoints.items()}
    equations = []
    for eq in d.recursive:
        if isinstance(eq.lhs, Delta):
            node = eq.lhs.node
            if node not in deltas:
                share = getattr(eq.rhs[0], "share", None)
                if isinstance(share, sp.Expr) and not share.has(sp.Function("TransposeTimes")):
                    try:
                        deltas[node] = point.evaluate([share])[0]
                    except Exception:  # a share of the rule table's operations: no plain value
                        pass
            rhs = eq.rhs + ((Value("v", deltas[node], bare=True),) if node in deltas else ())
            equations.append(Equation(eq.lhs, rhs))
    kind = graph[target].kind
    if kind == "param":
        gradient = point.grads[target]
        parts = [np.asarray(s, dtype=float) for _, s in shares.get(target, [])]
        parts = [p[0] if p.ndim == len(graph[target].shape) + 1 else p for p in parts]
    elif target in deltas:
        gradient, parts = deltas[target], []
    else:
        raise RnnsymError(f"a worked example of a vector network gives dL/d(parameter) or dL/d(hidden node); "
                          f"{target!r} is {kind}")
    total_rhs = d.recursive[-1].rhs
    if len(parts) > 1:
        total_rhs += (Sum(tuple(Value("s", p) for p in parts)),)
    equations.append(Equation(Total(loss, target), total_rhs + (Value("v", gradient, bare=True),)))
    numbers.update({"adjoints": {n: exact(v) for n, v in deltas.items()},
                    "shares": [exact(p) for p in parts], "gradient": exact(gradient)})
    return [Step("recursive", "Backward pass: each adjoint at this point, then the gradient", tuple(equations),
                 note="δn = ∂L/∂n at this example, carried back from the loss node by node (the recursive "
                      "view, what the compiled code runs)"
                      + (f"; dL/d{target} adds the shares of the {len(parts)} nodes that use it." if len(parts) > 1
                         else "."))]


def _check_step(point: _Point, d: Derivation, numbers: dict) -> Step:
    """dL/dθ against the central difference (L(θ + h) − L(θ − h))/(2h) of the compiled loss."""
    network, target = point.network, d.target
    loss, kind = network.loss_name, network.graph[target].kind
    gradient = np.asarray(numbers["gradient"], dtype=float)
    L, h, theta = sp.Function(loss), Named("h"), network.graph[target].symbol
    symbolic = (L(theta + h) - L(theta - h)) / (2 * h)
    if kind not in ("param", "input"):
        numbers["check"] = None
        return Step("check", "Finite-difference check", (),
                    note=f"{target} is computed from other nodes, not set freely, so the loss cannot be moved "
                         "through it alone; the check is made for parameters and inputs.")

    def loss_at(move):
        params, x = dict(point.params), np.array(point.x)
        if kind == "param":
            params[target] = params[target] + move
        else:
            step = network.graph[target].step - 1
            x[0, step] = x[0, step] + move
        return point.compiled.loss(params, x, point.y_batch)

    compiled = point.grads[target] if kind == "param" else None
    shape = gradient.shape
    if gradient.size <= FD_ENTRIES:
        numeric = np.zeros(shape)
        for index in np.ndindex(shape):
            unit = np.zeros(shape)
            unit[index] = FD_STEP
            numeric[index] = (loss_at(unit) - loss_at(-unit)) / (2 * FD_STEP)
        error = _relative(gradient, numeric)
        difference = None if shape else loss_at(FD_STEP) - loss_at(-FD_STEP)
        equations = [Equation(Total(loss, target), (symbolic,) + (
            (Value("d", difference) / (2 * Value("h", FD_STEP)),) if difference is not None else ())
            + (Value("v", numeric, bare=True),),
            label=f"h = {number_text(FD_STEP)}" + (", each entry moved in turn" if shape else ""))]
        how = "entry by entry" if shape else ""
    else:  # along the gradient's direction u: (L(θ + h·u) − L(θ − h·u))/(2h) against g·u = ‖g‖
        norm = float(np.linalg.norm(gradient))
        u = gradient / norm if norm else np.ones(shape) / math.sqrt(gradient.size)
        numeric = (loss_at(FD_STEP * u) - loss_at(-FD_STEP * u)) / (2 * FD_STEP)
        error = _relative(np.sum(gradient * u), numeric)
        u_symbol = Named("u")
        equations = [Equation(Total(loss, target), (
            (L(theta + h * u_symbol) - L(theta - h * u_symbol)) / (2 * h), Value("v", numeric, bare=True)),
            label=f"along u = g/‖g‖, h = {number_text(FD_STEP)}; g·u = ‖g‖ = {number_text(norm)}")]
        how = "along the gradient's direction"
    equations.append(Equation(Total(loss, target), (Value("v", gradient, bare=True),),
                              label="the derivation's value above"))
    # The note states the tolerance, not the rounding error itself (which differs between machines,
    # and pages that carry the note are compared between them); to_dict() has the exact error.
    verdict = (f"{'agree' if compiled is not None else 'agrees'} with it to a relative {CHECK_TOLERANCE:g} or better"
               if error <= CHECK_TOLERANCE else f"DISAGREES with it: relative difference {error:.1e}")
    compiled_words = ""
    if compiled is not None:
        compiled_words = " and the compiled gradient (value_and_grad)"
        if _relative(gradient, compiled) > CHECK_TOLERANCE:
            compiled_words += f", which differ from each other by a relative {_relative(gradient, compiled):.1e},"
    numbers["check"] = {"h": FD_STEP, "finite_difference": exact(numeric), "rel_error": error,
                        "compiled_gradient": None if compiled is None else exact(compiled), "how": how or "scalar"}
    return Step("check", "Finite-difference check", tuple(equations),
                note=f"Central difference of the network's loss at this point{' ' + how if how else ''}: the "
                     f"derivation's value{compiled_words} {verdict}.")


def _relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-6))


def _update_step(point: _Point, d: Derivation, eta: float, numbers: dict) -> Step:
    network, target, loss = point.network, d.target, point.network.loss_name
    old = np.asarray(point.params[target], dtype=float)
    gradient = np.asarray(numbers["gradient"], dtype=float)
    new = old - eta * gradient
    after = point.compiled.loss({**point.params, target: new}, point.x, point.y_batch)
    symbol = network.graph[target].symbol
    if is_large(old):
        substituted = ()
    else:
        substituted = (Substituted(Value(target, old) - Value("eta", eta) * Value("g", gradient)),)
    equations = (Equation(symbol, (Update(target, loss),), relation="←"),
                 Equation(Update(target, loss), (*substituted, Value("v", new, bare=True))))
    numbers["update"] = {"old": exact(old), "new": exact(new), "loss_before": float(point.loss),
                         "loss_after": float(after)}
    return Step("update", f"One gradient-descent step (η = {number_text(eta)})", equations,
                note=f"With this {target} the loss at this example goes from {_apart(point.loss, after)}.")


def _apart(before: float, after: float) -> str:
    """``before to after`` with enough digits to tell them apart (up to 10)."""
    for digits in range(DIGITS, 11):
        a, b = f"{before:.{digits}g}", f"{after:.{digits}g}"
        if a != b:
            break
    return f"{a} to {b}"
