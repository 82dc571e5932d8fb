"""Random user cells and an independent oracle for their gradients.

Shared by the property-based test (tests/test_random_cells.py, driven by Hypothesis) and the long
run (benchmarks/fuzz_cells.py, driven by a seeded ``random.Random``): both draw through a
*chooser*, an object with ``integer(lo, hi)``, ``choice(options)`` and ``chance(p)``, so the same
generator serves both, and Hypothesis can shrink a failing cell to a small one.

The oracle never runs rnnsym's compiled code or its trace. It lambdifies the cell's own SymPy
expressions, runs them step by step from zero states, applies the readout ``y = g(W_hy·h + b_y)``
(plus ``W_hy_reverse·h'`` for a bidirectional network), the loss (BCE or MSE, averaged over output
components, then over the batch; for ``outputs="all"`` the mean or sum over steps) and takes central
differences of that loss. Functions with kinks (relu, Max, Min, Abs, sign, Heaviside, Piecewise) record
which side of the kink they were on, so that a difference stencil that crosses a kink is noticed
and retried with a smaller step instead of being trusted.
"""
from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.str import StrPrinter

import rnnsym as rs
from rnnsym.functions import MatVec, relu, sigmoid

# Functions that rnnsym must either support or refuse when the cell is built (issue 11, defect E).
EXTENDED = ("Max", "Min", "Abs", "sign", "erf", "Heaviside", "Piecewise")
RTOL, ATOL = 1e-6, 1e-8  # gradients: |analytic - numeric| <= RTOL·|numeric| + ATOL·max(1, |L|, max |numeric|)
VALUE_RTOL = 1e-9  # the loss value and the outputs against the oracle's forward pass


# ---- choosers: where the random decisions come from ------------------------------------------------
class Chooser:
    """Every decision is an integer: a subclass says where integers come from. Small integers mean
    simple choices (the first option, no), so that Hypothesis shrinks towards simple cells."""

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]

    def chance(self, p: float) -> bool:
        return self.integer(0, 99) >= 100 - round(100 * p)


class HypothesisChooser(Chooser):
    """Decisions drawn from Hypothesis (``st.data()``): the property tests' source, shrinkable."""

    def __init__(self, data):
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        from hypothesis import strategies as st

        return self.data.draw(st.integers(lo, hi))


class RandomChooser(Chooser):
    """Decisions from ``random.Random(seed)``: the fuzz script's source, reproducible by seed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


# ---- the generator ---------------------------------------------------------------------------------
@dataclass
class Case:
    """One random cell, how it is unrolled, and the seed of its numbers."""

    states: tuple
    updates: tuple
    input: sp.Symbol
    gates: dict
    params: tuple
    shapes: dict
    steps: int
    outputs: str
    loss: str
    output_activation: str
    output_size: int
    step_reduction: str
    bidirectional: bool
    batch: int
    seed: int
    extended_used: tuple = ()  # the EXTENDED functions the cell's expressions use

    def cell(self) -> rs.Cell:
        return rs.Cell(state=self.states, input=self.input, update=self.updates, params=list(self.params),
                       gates=self.gates, shapes=self.shapes)

    def unroll_options(self) -> dict:
        options = dict(steps=self.steps, outputs=self.outputs, loss=self.loss,
                       output_activation=self.output_activation, output_size=self.output_size)
        if self.outputs == "all":
            options["step_reduction"] = self.step_reduction
        if self.bidirectional:
            options["bidirectional"] = True
        return options

    def shape(self, symbol) -> tuple:
        value = self.shapes.get(symbol, ())
        return (value,) if isinstance(value, int) else tuple(value)

    @property
    def vector(self) -> bool:
        return bool(self.shapes.get(self.states[0]))

    def size(self) -> int:
        """Tokens in the cell's expressions: how Hypothesis and the fuzz script rank reproducers."""
        return sum(sp.count_ops(e) + len(e.free_symbols) for e in (*self.gates.values(), *self.updates))

    def param_shapes(self) -> dict:
        """Every parameter's shape, the readout's included, as the standard equations give them."""
        shapes = {p.name: self.shape(p) for p in self.params}
        if self.bidirectional:
            shapes.update({p.name + "_reverse": self.shape(p) for p in self.params})
        O = self.output_size
        if self.vector:
            w, b = (O, *self.shape(self.states[0])), (O,)
        else:
            w = b = (O,) if O > 1 else ()
        shapes["W_hy"] = w
        if self.bidirectional:
            shapes["W_hy_reverse"] = w
        shapes["b_y"] = b
        return shapes

    def point(self):
        """Parameter values, inputs ``X`` and targets ``Y`` from ``seed``."""
        rng = np.random.default_rng(self.seed)
        params = {}
        for name, shape in self.param_shapes().items():
            scale = 1 / math.sqrt(shape[1]) if len(shape) == 2 else 0.8
            params[name] = rng.normal(0, scale, shape)
        X = rng.normal(0, 1, (self.batch, self.steps) + self.shape(self.input))
        lead = (self.batch, self.steps) if self.outputs == "all" else (self.batch,)
        y_shape = lead + (self.output_size,)
        Y = rng.uniform(0, 1, y_shape) if self.loss == "bce" else rng.normal(0, 1, y_shape)
        return params, X, Y


class _Builder:
    """Composes expression trees for one cell, tracking the shape of every symbol."""

    def __init__(self, chooser, vector: bool, H: int, extended: bool):
        self.ch, self.vector, self.H, self.extended = chooser, vector, H, extended
        self.symbols: list[tuple[sp.Symbol, tuple]] = []  # (symbol, shape) usable in expressions
        self.pool: list[tuple[sp.Symbol, tuple]] = []  # parameters made so far
        self.names = iter(["a", "b", "u", "v", "w", "k", "m", "n", "p", "q", "s", "z"])

    # -- leaves ----------------------------------------------------------------------------------
    def param(self, shape: tuple) -> sp.Symbol:
        same = [p for p, s in self.pool if s == shape]
        if same and self.ch.chance(0.5):  # a parameter used twice (or more)
            return self.ch.choice(same)
        if len(shape) == 0:
            name = next(self.names, f"a{len(self.pool)}")
        else:
            name = ("d" if len(shape) == 1 else "W") + str(len(self.pool))
        p = sp.Symbol(name)
        self.pool.append((p, shape))
        return p

    def leaf(self, vec: bool, param_free: bool) -> sp.Expr:
        H = (self.H,)
        kinds = ["symbol", "symbol"]
        if not param_free:
            kinds += ["param"] + (["matvec", "matvec"] if vec else [])
        if not vec:
            kinds.append("constant")
        kind = self.ch.choice(kinds)
        if kind == "symbol":
            fits = [s for s, shape in self.symbols if shape == (H if vec else ())]
            if fits:
                return self.ch.choice(fits)
            kind = "constant" if not vec or param_free else "param"
        if kind == "constant" or (vec and param_free):
            return self.ch.choice([sp.Integer(2), sp.Rational(1, 2), sp.Integer(-1)])
        if kind == "param":
            return self.param(H if vec else ())
        vectors = [(s, shape) for s, shape in self.symbols if len(shape) == 1]
        if not vectors:
            return self.param(H)
        v, (m,) = self.ch.choice(vectors)
        return rs.matvec(self.param((self.H, m)), v)

    # -- trees -----------------------------------------------------------------------------------
    def unary(self):
        plain = [sp.tanh, sigmoid, relu, sp.exp,
                 lambda e: sp.log(1 + e**2), lambda e: sp.log(sigmoid(e)),  # log of something positive
                 lambda e: e**2, lambda e: e**3, lambda e: 1 / (1 + e**2), lambda e: sp.sqrt(1 + e**2),
                 sp.sin, sp.cos, sp.sinh, sp.cosh, sp.atan]
        extra = [sp.Abs, sp.sign, sp.erf, sp.Heaviside]
        return self.ch.choice(plain + (extra if self.extended else []))

    def expr(self, depth: int, vec: bool, param_free: bool) -> sp.Expr:
        if depth == 0 or self.ch.chance(0.3):
            return self.leaf(vec, param_free)
        kinds = ["unary", "unary", "sum", "difference", "product", "scaled"]
        if self.extended:
            kinds += ["max", "min", "piecewise"]
        kind = self.ch.choice(kinds)
        sub = functools.partial(self.expr, depth - 1, param_free=param_free)
        if kind == "unary":
            return self.unary()(sub(vec))
        if kind == "scaled":
            factor = self.ch.choice([sp.Integer(2), sp.Rational(-1, 2)]) if param_free else self.param(())
            return factor * sub(vec)
        a, b = sub(vec), sub(vec and self.ch.chance(0.5))
        if kind == "sum":
            return a + b
        if kind == "difference":
            return a - b
        if kind == "product":
            return a * b
        if kind in ("max", "min"):
            try:
                return (sp.Max if kind == "max" else sp.Min)(a, b)
            except ValueError:  # SymPy cannot order two constants such as log(σ(−sin 1)) and 2: add them instead
                return a + b
        return sp.Piecewise((a, b > 0), (sub(vec), True))


def _shape_of(expr, shapes: dict) -> tuple:
    if isinstance(expr, MatVec):
        return (shapes[expr.args[0]][0],)
    if isinstance(expr, sp.Symbol):
        return shapes.get(expr, ())
    found = {_shape_of(a, shapes) for a in expr.args} - {()}
    return found.pop() if found else ()


def draw_case(ch, extended: bool = True) -> Case:
    """A random cell: one or two states, up to two gates, scalar or vector, every supported function
    (and, with ``extended``, the functions of EXTENDED), parameters used twice and parameter-free
    pieces (a gate ``tanh(h)``, a delay line ``c' = h``, ``h' = c**2``)."""
    vector = ch.chance(0.4)
    H = ch.integer(1, 3) if vector else 0
    n_states = ch.integer(1, 2)
    states = sp.symbols("h c")[:n_states]
    x = sp.Symbol("x")
    shapes: dict = {}
    builder = _Builder(ch, vector, H, extended)
    for s in states:
        if vector:
            shapes[s] = H
        builder.symbols.append((s, (H,) if vector else ()))
    if vector and ch.chance(0.7):
        shapes[x] = ch.integer(1, 2)
        builder.symbols.append((x, (shapes[x],)))
    else:
        builder.symbols.append((x, ()))
    depth = ch.integer(1, 3)

    def piece(vec: bool) -> sp.Expr:
        # A short parameter-free piece a quarter of the time (a gate tanh(h), a delay line c' = h,
        # h' = c**2): defect A hid in exactly these.
        if ch.chance(0.25):
            return builder.expr(1, vec, param_free=True)
        return builder.expr(depth, vec, param_free=ch.chance(0.35))

    gates = {}
    for g in sp.symbols("g r")[:ch.integer(0, 2)]:
        expr = piece(vector and ch.chance(0.7))
        gates[g] = expr
        shape = _shape_of(expr, {**{s: sh for s, sh in builder.symbols}, **{p: sh for p, sh in builder.pool}})
        builder.symbols.append((g, shape))
    updates = tuple(piece(vector) for _ in states)
    used = set().union(*(e.free_symbols for e in (*gates.values(), *updates)))
    params = tuple(p for p, _ in builder.pool if p in used)
    for p, shape in builder.pool:
        if p in used and shape:
            shapes[p] = shape if len(shape) == 2 else shape[0]
    outputs = ch.choice(["last", "all"])
    loss, activation = ch.choice([("mse", "identity"), ("bce", "sigmoid"), ("mse", "tanh"), ("mse", "sigmoid"),
                                  ("mse", "relu")])
    functions_used = {type(f).__name__ for e in (*gates.values(), *updates) for f in sp.preorder_traversal(e)}
    return Case(states=states, updates=updates, input=x, gates=gates, params=params, shapes=shapes,
                steps=ch.integer(1, 4), outputs=outputs, loss=loss, output_activation=activation,
                output_size=ch.integer(1, 2), step_reduction=ch.choice(["mean", "sum"]),
                bidirectional=outputs == "all" and ch.chance(0.15), batch=ch.integer(1, 3),
                seed=ch.integer(0, 2**31 - 1), extended_used=tuple(sorted(functions_used & set(EXTENDED))))


# ---- the oracle: an independent NumPy forward pass --------------------------------------------------
_kinks: list | None = None  # while not None, every kink function appends which side it was on


def _note(side) -> None:
    if _kinks is not None:
        _kinks.append(np.asarray(side))


def _relu(z):
    _note(z > 0)
    return np.maximum(z, 0)


def _max(*args):
    _note(np.argmax(np.broadcast_arrays(*args), axis=0))
    return functools.reduce(np.maximum, args)


def _min(*args):
    _note(np.argmin(np.broadcast_arrays(*args), axis=0))
    return functools.reduce(np.minimum, args)


def _abs(z):
    _note(z >= 0)
    return np.abs(z)


def _sign(z):
    _note(np.sign(z))
    return np.sign(z)


def _heaviside(z, at_zero=0.5):
    _note(np.sign(z))
    return np.heaviside(z, at_zero)


def _piecewise(conditions, values):
    conditions = [np.asarray(c, dtype=bool) for c in conditions]
    for c in conditions:
        _note(c)
    return np.select(conditions, np.broadcast_arrays(*values), default=np.nan)


ORACLE_FUNCTIONS = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": _relu, "matvec": lambda W, v: v @ W.T,
    "maximum_of": _max, "minimum_of": _min, "absolute": _abs, "signum": _sign, "heaviside": _heaviside,
    "erf": np.vectorize(math.erf, otypes=[float]), "piecewise": _piecewise,
}


class _OraclePrinter(NumPyPrinter):
    """NumPy source for the oracle: rnnsym's functions and the kink functions call ORACLE_FUNCTIONS."""

    def _call(self, name, args):
        return f"{name}({', '.join(self._print(a) for a in args)})"

    def _print_sigmoid(self, e):
        return self._call("sigmoid", e.args)

    def _print_relu(self, e):
        return self._call("relu", e.args)

    def _print_MatVec(self, e):
        return self._call("matvec", e.args)

    def _print_Max(self, e):
        return self._call("maximum_of", e.args)

    def _print_Min(self, e):
        return self._call("minimum_of", e.args)

    def _print_Abs(self, e):
        return self._call("absolute", e.args)

    def _print_sign(self, e):
        return self._call("signum", e.args)

    def _print_Heaviside(self, e):
        return self._call("heaviside", e.args)

    def _print_erf(self, e):
        return self._call("erf", e.args)

    def _print_Piecewise(self, e):
        conditions = ", ".join(self._print(c) for _, c in e.args)
        values = ", ".join(self._print(v) for v, _ in e.args)
        return f"piecewise([{conditions}], [{values}])"


class Oracle:
    """The network's loss computed from the cell's own expressions, in float64 NumPy."""

    def __init__(self, case: Case):
        self.case = case
        c = case
        args = [*c.states, c.input, *c.gates, *c.params]
        printer = _OraclePrinter({"fully_qualified_modules": False, "inline": True})
        make = functools.partial(sp.lambdify, args, modules=[ORACLE_FUNCTIONS, "numpy"], printer=printer)
        self.gate_fns = [make(e) for e in c.gates.values()]
        self.update_fns = [make(e) for e in c.updates]
        self.state_sizes = [c.shapes.get(s, 1) for s in c.states]

    def _run(self, params: dict, X: np.ndarray, suffix: str, order) -> dict:
        """The first state at each step, running the cell over ``order`` from zero states."""
        c, B = self.case, X.shape[0]
        theta = [params[p.name + suffix] for p in c.params]
        states = [np.zeros((B, n)) for n in self.state_sizes]
        first = {}
        for t in order:
            x = X[:, t] if X.ndim == 3 else X[:, t, None]
            gates = [None] * len(self.gate_fns)
            for i, fn in enumerate(self.gate_fns):
                gates[i] = np.asarray(fn(*states, x, *gates, *theta), dtype=float) + np.zeros((B, 1))
            states = [np.broadcast_to(np.asarray(fn(*states, x, *gates, *theta), dtype=float), (B, n))
                      for fn, n in zip(self.update_fns, self.state_sizes)]
            first[t] = states[0]
        return first

    def outputs(self, params: dict, X: np.ndarray) -> np.ndarray:
        """``y`` as ``(batch, [steps,] components)``: ``g(W_hy·h + b_y)``, one per step for "all"."""
        c, T = self.case, self.case.steps

        def readout(h, W):
            return h @ np.atleast_2d(W).T if c.vector else h * W  # W_hy·h; a scalar h times each row

        forward = self._run(params, X, "", range(T))
        backward = self._run(params, X, "_reverse", range(T - 1, -1, -1)) if c.bidirectional else None
        ys = []
        for t in (range(T) if c.outputs == "all" else [T - 1]):
            z = readout(forward[t], params["W_hy"]) + params["b_y"]
            if backward is not None:
                z = z + readout(backward[t], params["W_hy_reverse"])
            ys.append(z)
        z = np.stack(ys, axis=1) if c.outputs == "all" else ys[0]
        return {"identity": lambda v: v, "sigmoid": ORACLE_FUNCTIONS["sigmoid"], "tanh": np.tanh,
                "relu": _relu}[c.output_activation](z), z

    def loss(self, params: dict, X: np.ndarray, Y: np.ndarray) -> float:
        c = self.case
        y, z = self.outputs(params, X)
        if c.loss == "bce":  # -(Y·log σ(z) + (1 − Y)·log(1 − σ(z))), written without cancelling for large |z|
            per_component = np.logaddexp(0, z) - Y * z
        else:
            per_component = (y - Y) ** 2
        per_step = per_component.mean(axis=-1).mean(axis=0)  # over components, then the batch
        if c.outputs == "last":
            return float(per_step)
        return float(per_step.sum() / (c.steps if c.step_reduction == "mean" else 1))

    def kinks(self, params, X, Y) -> list:
        """Which side of every kink each function was on, at this point."""
        global _kinks
        _kinks = []
        try:
            self.loss(params, X, Y)
            return _kinks
        finally:
            _kinks = None

    def gradient(self, params: dict, X, Y) -> dict:
        """Central differences (five-point stencil) of :meth:`loss` for every parameter element.
        A stencil that crosses a kink is retried with a step ten times smaller; an element whose
        point lies closer to a kink than that is left out (NaN)."""
        base = self.kinks(params, X, Y)
        grads = {}
        for name, value in params.items():
            grad = np.full(np.shape(value), np.nan)
            for index in np.ndindex(np.shape(value)):
                step = 1e-4
                while step > 1e-9:
                    values, same_side = [], True
                    for k in (2, 1, -1, -2):
                        moved = dict(params)
                        moved[name] = np.array(value, dtype=float)
                        moved[name][index] += k * step
                        values.append(self.loss(moved, X, Y))
                        same_side &= _same(self.kinks(moved, X, Y), base)
                    if same_side:
                        grad[index] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step)
                        break
                    step /= 10
            grads[name] = grad
        return grads


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# ---- one case, checked -----------------------------------------------------------------------------
@dataclass
class Outcome:
    status: str  # "ok", "refused" (at Cell construction, allowed), "skipped" (non-finite loss), "failed"
    failures: list = field(default_factory=list)  # (class, detail)
    expected: dict | None = None  # the oracle's gradient, for the reproducer


def check_case(case: Case) -> Outcome:
    """Build, unroll and compile the cell in every form, and compare each form's loss, outputs and
    gradient with the oracle. A cell using an EXTENDED function may instead be refused when it is
    built, in one line naming the function."""
    try:
        cell = case.cell()
    except rs.RnnsymError as error:
        message = str(error)
        named = [f for f in case.extended_used if f in message]
        if case.extended_used and named and "\n" not in message:
            return Outcome("refused")
        return Outcome("failed", [("Cell refused", message)])
    except Exception as error:  # noqa: BLE001 - anything else at construction is a defect to report
        return Outcome("failed", [(f"Cell raised {type(error).__name__}: {_gist(error)}", _first_line(error))])
    params, X, Y = case.point()
    oracle = Oracle(case)
    with np.errstate(all="ignore"):
        value = oracle.loss(params, X, Y)
        if not np.isfinite(value):
            return Outcome("skipped")
        expected = oracle.gradient(params, X, Y)
        outputs = oracle.outputs(params, X)[0]
    if not all(np.isfinite(g[~np.isnan(g)]).all() for g in expected.values()):
        return Outcome("skipped")
    failures = []
    try:
        net = rs.unroll(cell, **case.unroll_options())
    except Exception as error:  # noqa: BLE001
        return Outcome("failed", [(f"unroll raised {type(error).__name__}: {_gist(error)}", _first_line(error))],
                       expected)
    for form in (("unrolled",) if case.bidirectional else ("loop", "unrolled")):
        failures += _check_form(net, form, params, X, Y, value, outputs, expected)
    return Outcome("failed" if failures else "ok", failures, expected)


def _check_form(net, form, params, X, Y, value, outputs, expected) -> list:
    stage = "compile"
    try:
        compiled = net.compile(form=form)
        stage = "value_and_grad"
        got_value, grads = compiled.value_and_grad(params, X, Y)
        stage = "loss"
        got_loss = compiled.loss(params, X, Y)
        stage = "forward"
        got_outputs = compiled.forward(params, X)
    except Exception as error:  # noqa: BLE001
        return [(f"{form}: {stage} raised {type(error).__name__}: {_gist(error)}", _first_line(error))]
    failures = []
    scale = max(1.0, abs(value), *(np.nanmax(np.abs(g), initial=0) for g in expected.values()))
    for what, got in (("value_and_grad", got_value), ("loss", got_loss)):
        if not abs(got - value) <= VALUE_RTOL * abs(value) + 1e-12:
            failures.append((f"{form}: wrong loss from {what}", f"{got!r}, oracle {value!r}"))
    got_outputs = np.reshape(got_outputs, outputs.shape) if np.size(got_outputs) == outputs.size else got_outputs
    if np.shape(got_outputs) != outputs.shape or not np.allclose(got_outputs, outputs, rtol=VALUE_RTOL, atol=1e-12):
        failures.append((f"{form}: wrong forward outputs", f"{np.ravel(got_outputs)[:4]} … oracle {outputs.ravel()[:4]} …"))
    for name, numeric in expected.items():
        got = grads.get(name)
        if got is None or np.shape(got) != np.shape(numeric):
            failures.append((f"{form}: gradient of wrong shape", f"{name}: {np.shape(got)}, expected {np.shape(numeric)}"))
            continue
        known = ~np.isnan(numeric)
        bad = known & ~(np.abs(got - numeric) <= RTOL * np.abs(numeric) + ATOL * scale)
        if bad.any():
            i = tuple(np.argwhere(bad)[0])
            failures.append((f"{form}: wrong gradient",
                             f"d L/d {name}{list(i) if i else ''} = {np.asarray(got)[i]!r}, central differences "
                             f"{numeric[i]!r}"))
    return failures


def _gist(error: BaseException) -> str:
    """The start of an error's message with numbers and generated names blanked: a failure's class."""
    return re.sub(r"\d+", "N", re.sub(r"'_\w+'", "'_…'", _first_line(error)))[:60]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""


# ---- reproducers -----------------------------------------------------------------------------------
class _SourcePrinter(StrPrinter):
    """Expressions as Python that rebuilds them (``from sympy import *`` in scope)."""

    def _print_MatVec(self, e):
        return f"rs.matvec({self._print(e.args[0])}, {self._print(e.args[1])})"


def reproducer(case: Case, outcome: Outcome | None = None) -> str:
    """A self-contained script that rebuilds the case and prints every form's gradient."""
    printer = _SourcePrinter({"sympy_integers": True})
    src = printer.doprint
    names = [s.name for s in (*case.states, case.input, *case.gates, *case.params)]
    tup = lambda items: items[0] if len(items) == 1 else f"({', '.join(items)}{',' if len(items) == 1 else ''})"  # noqa: E731
    params, X, Y = case.point()
    lines = [
        "import numpy as np",
        "from sympy import *",
        "import rnnsym as rs",
        "from rnnsym.functions import sigmoid, relu",
        f"{', '.join(names)}, = symbols({' '.join(names)!r})",
        "cell = rs.Cell(",
        f"    state={tup([s.name for s in case.states])}, input={case.input.name}, "
        f"params=[{', '.join(p.name for p in case.params)}],",
    ]
    if case.gates:
        lines.append(f"    gates={{{', '.join(f'{g.name}: {src(e)}' for g, e in case.gates.items())}}},")
    lines.append(f"    update={tup([src(e) for e in case.updates])},")
    if case.shapes:
        lines.append(f"    shapes={{{', '.join(f'{s.name}: {v!r}' for s, v in case.shapes.items())}}},")
    lines.append(")")
    options = ", ".join(f"{k}={v!r}" for k, v in case.unroll_options().items())
    lines.append(f"net = rs.unroll(cell, {options})")
    lines.append("params = {" + ", ".join(f"{k!r}: np.array({v.tolist()!r})" for k, v in params.items()) + "}")
    lines.append(f"X = np.array({X.tolist()!r})")
    lines.append(f"Y = np.array({Y.tolist()!r})")
    if outcome is not None and outcome.expected is not None:
        lines.append("# central differences of an independent NumPy forward pass (tests/cellgen.py):")
        lines.append("expected = {" + ", ".join(f"{k!r}: {np.asarray(v).tolist()!r}"
                                                for k, v in outcome.expected.items()) + "}")
    forms = ("unrolled",) if case.bidirectional else ("loop", "unrolled")
    lines += [f"for form in {forms!r}:",
              "    value, grads = net.compile(form=form).value_and_grad(params, X, Y)",
              "    print(form, value, {k: np.round(v, 8).tolist() for k, v in grads.items()})"]
    if outcome is not None and outcome.expected is not None:
        lines.append("print('expected', {k: np.round(v, 8).tolist() for k, v in expected.items()})")
    return "\n".join(lines)
