"""Activations, their derivative rules, and losses, as SymPy building blocks.

The derivative rules live in one table, keyed by operation and written in the operation's
*output* ``y`` (``tanh' = 1 - y**2``, ``sigmoid' = y*(1 - y)``). That is what lets the engine
write a local factor such as ``∂o4/∂w3`` in node symbols, ``(1 - o4**2)*o3``, instead of
repeating the nested pre-activation.
"""
from __future__ import annotations

from typing import Callable

import sympy as sp

from .errors import RnnsymError, choose

# ---- printing for SymPy's code printers ------------------------------------------------------------
# SymPy asks an expression to print itself before it looks for a printer's own ``_print_<name>``
# (Printer._print), under the printer's ``printmethod`` name: ``_numpycode``, ``_pythoncode``,
# ``_ccode``, ... So that ``sp.lambdify``, ``sp.pycode`` and ``sp.ccode`` know rnnsym's functions,
# each function answers those names; and so that a printer that prints these functions its own way
# (rnnsym's CodePrinter calls the generated code's runtime ``_sigmoid``) keeps doing so, a printer's
# own ``_print_<name>`` is asked first.
ARRAY_LIBRARIES = {"_numpycode": "numpy", "_cupycode": "cupy", "_jaxcode": "jax", "_torchcode": "torch"}
CODE_PRINTMETHODS = (*ARRAY_LIBRARIES, "_pythoncode", "_mpmathcode", "_cmathcode", "_ccode", "_cxxcode")


def _library(printer) -> str:
    """Which language a SymPy code printer writes: an array library's name ("numpy", "scipy",
    "cupy", "jax", "torch"), "python" (the math module), "exact" (mpmath, cmath: no overflow to
    avoid, or complex arguments) or "c" (C and C++)."""
    method = printer.printmethod
    if method in ARRAY_LIBRARIES:
        from sympy.printing.numpy import SciPyPrinter

        return "scipy" if isinstance(printer, SciPyPrinter) else ARRAY_LIBRARIES[method]
    return {"_pythoncode": "python", "_ccode": "c", "_cxxcode": "c"}.get(method, "exact")


def _name(printer, dotted: str) -> str:
    """``dotted`` as the printer writes a library name (and imports it, for lambdify)."""
    return printer._module_format(dotted) if hasattr(printer, "_module_format") else dotted.rsplit(".", 1)[-1]


def _numpy_like(library: str) -> str:
    return {"scipy": "numpy", "jax": "jax.numpy"}.get(library, library)


class _Printed:
    """The code-printer hooks shared by rnnsym's functions: each subclass gives ``_code(printer,
    library, *args)``, the source of the call in one of the languages :func:`_library` names."""

    def _print_code(self, printer, **kwargs):
        own = getattr(printer, f"_print_{type(self).__name__}", None)
        if own is not None:  # the printer knows this function (rnnsym's own code printers)
            return own(self, **kwargs)
        return self._code(printer, _library(printer), *(printer._print(a) for a in self.args))

    def _code(self, printer, library: str, *args: str) -> str:  # pragma: no cover - each subclass has one
        raise NotImplementedError


for _method in CODE_PRINTMETHODS:
    setattr(_Printed, _method, _Printed._print_code)


class sigmoid(_Printed, sp.Function):
    """The logistic function ``1 / (1 + exp(-z))``, kept as one symbol so it prints as σ."""

    def fdiff(self, argindex=1):
        return DERIVATIVE_RULES[sigmoid](self)

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def _eval_rewrite_as_tanh(self, z, **kwargs):
        return (1 + sp.tanh(z / 2)) / 2

    def _eval_is_extended_real(self):  # what SymPy's own rules ask of an argument (sign(σ(z))')
        return self.args[0].is_extended_real

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real else None

    def _eval_is_finite(self):  # between 0 and 1 for every real argument, ±∞ included
        return True if self.args[0].is_extended_real else None

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _code(self, printer, library, z):
        # Stable forms only: 1/(1 + exp(-z)) overflows (a warning, or math's OverflowError) for large -z.
        if library in ("scipy", "jax", "torch"):
            return f"{_name(printer, {'scipy': 'scipy.special.expit', 'jax': 'jax.nn.sigmoid', 'torch': 'torch.sigmoid'}[library])}({z})"
        if library in ("numpy", "cupy"):  # σ(z) = exp(-softplus(-z)), softplus as logaddexp(0, ·)
            return f"{_name(printer, library + '.exp')}(-{_name(printer, library + '.logaddexp')}(0, -({z})))"
        if library == "python":  # z once, then the branch whose exp cannot overflow
            exp = _name(printer, "math.exp")
            return f"(lambda _z: 1/(1 + {exp}(-_z)) if _z >= 0 else {exp}(_z)/(1 + {exp}(_z)))({z})"
        if library == "c":  # one evaluation of z and no overflow (C has no lambda to branch on it once)
            return f"(0.5*tanh(0.5*({z})) + 0.5)"
        return printer._print(self.rewrite(sp.exp))


class relu(_Printed, sp.Function):
    """The rectifier ``max(0, z)``."""

    def fdiff(self, argindex=1):
        return DERIVATIVE_RULES[relu](self)

    def _eval_rewrite_as_Max(self, z, **kwargs):
        return sp.Max(0, z)

    def _eval_rewrite_as_Heaviside(self, z, **kwargs):
        return z * sp.Heaviside(z, 0)

    def _eval_rewrite_as_Piecewise(self, z, **kwargs):
        return sp.Piecewise((z, z > 0), (0, True))

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_nonnegative(self):
        return True if self.args[0].is_extended_real else None

    def _eval_is_finite(self):
        return True if self.args[0].is_extended_real and self.args[0].is_finite else None

    def _eval_evalf(self, prec):
        return self.rewrite(sp.Max)._eval_evalf(prec)

    def _code(self, printer, library, z):
        if library == "torch":
            return f"{_name(printer, 'torch.relu')}({z})"
        if library in ARRAY_LIBRARIES.values() or library == "scipy":
            return f"{_name(printer, _numpy_like(library) + '.maximum')}({z}, 0.0)"
        if library == "python":
            return f"max(0.0, {z})"
        return printer._print(self.rewrite(sp.Max))


class softmax(_Printed, sp.Function):
    """``exp(z) / Σ exp(z)`` over a vector: not elementwise, so it has no rule in the table; it is
    only used fused with cross-entropy, whose combined derivative is ``o - Y``."""

    def _code(self, printer, library, z):  # over the last axis: a batch of vectors is (batch, n)
        if library == "scipy":
            return f"{_name(printer, 'scipy.special.softmax')}({z}, axis=-1)"
        if library == "jax":
            return f"{_name(printer, 'jax.nn.softmax')}({z}, axis=-1)"
        if library == "torch":
            return f"{_name(printer, 'torch.softmax')}({z}, dim=-1)"
        if library in ("numpy", "cupy"):  # exp(z - logsumexp(z)): z once, nothing overflows
            exp, logaddexp = _name(printer, library + ".exp"), _name(printer, library + ".logaddexp")
            return f"(lambda _z: {exp}(_z - {logaddexp}.reduce(_z, axis=-1, keepdims=True)))({z})"
        raise RnnsymError(f"softmax is over a vector: print it for numpy, scipy, jax or torch, "
                          f"not {printer.printmethod[1:]!r}")


class MatVec(_Printed, sp.Function):
    """``W·v``, a matrix (a parameter) times a vector node: the one non-elementwise operation.

    Everything else in a cell is elementwise over vectors; the engine gives this product its own
    rules (``∂(W·v)/∂v = W``; a weight's gradient is the outer product ``δ vᵀ``).
    """

    nargs = 2

    def _code(self, printer, library, matrix, vector):
        if library in (*ARRAY_LIBRARIES.values(), "scipy"):  # a batch of vectors (batch, n): v·Wᵀ
            return f"(({vector}) @ ({matrix}).T)"
        raise RnnsymError(f"W·v is a matrix product: print it for numpy, scipy, jax or torch, "
                          f"not {printer.printmethod[1:]!r}")


# ---- attention: a stack of encoder states, scores against it, and the weighted sum of its rows -----
# Not elementwise either: the engine gives each its own rules (rnnsym.engine.rules). A stack H is a
# matrix *node*, one (S, n) matrix per example, so these print as batched einsums, never as W·v.
def _array_library(printer, what: str) -> str:
    library = _library(printer)
    if library not in (*ARRAY_LIBRARIES.values(), "scipy"):
        raise RnnsymError(f"{what} is an array operation: print it for numpy, scipy, jax or torch, "
                          f"not {printer.printmethod[1:]!r}")
    return _numpy_like(library)


class Stack(_Printed, sp.Function):
    """``H = [h_1; …; h_S]``: the encoder's states as the rows of one matrix (per example)."""

    def _code(self, printer, library, *rows):
        namespace = _array_library(printer, "a stack of states")
        return f"{_name(printer, namespace + '.stack')}(({', '.join(rows)},), -2)"


class Scores(_Printed, sp.Function):
    """``H·q``: the dot product of every row of the stack ``H`` with the query ``q`` (``e_i = h_iᵀq``)."""

    nargs = 2

    def _code(self, printer, library, stack, query):
        namespace = _array_library(printer, "attention scores")
        return f"{_name(printer, namespace + '.einsum')}('...sh,...h->...s', {stack}, {query})"


class Mix(_Printed, sp.Function):
    """``Hᵀ·a = Σ_i a_i·h_i``: the rows of the stack ``H`` weighted by ``a`` and summed (a context)."""

    nargs = 2

    def _code(self, printer, library, stack, weights):
        namespace = _array_library(printer, "a weighted sum of states")
        return f"{_name(printer, namespace + '.einsum')}('...sh,...s->...h', {stack}, {weights})"


class Concat(_Printed, sp.Function):
    """``[u; v; …]``: vectors joined end to end (a bidirectional layer's two states, the input of
    the layer above it, as PyTorch's stacked bidirectional modules join them)."""

    def _code(self, printer, library, *parts):
        namespace = _array_library(printer, "joined vectors")
        return f"{_name(printer, namespace + '.concatenate')}(({', '.join(parts)},), axis=-1)"


ATTENTION_OPERATIONS = (Stack, Scores, Mix)


# ---- derivative rules: d f(z)/dz, written in the output y = f(z) ---------------------------
DERIVATIVE_RULES: dict[type, Callable[[sp.Expr], sp.Expr]] = {
    sp.tanh: lambda y: 1 - y**2,
    sigmoid: lambda y: y * (1 - y),
    relu: lambda y: sp.Heaviside(y, 0),  # y > 0 exactly when z > 0; the kink counts as 0
    sp.exp: lambda y: y,
}


# The functions a user's cell may use. Each has a derivative rnnsym takes (the table above, or
# SymPy's own for real arguments: |z|' = sign(z), max' a step, a step's derivative 0 away from
# it) and a NumPy form, in every compiled form. Anything else (Piecewise, conditions, integrals,
# complex numbers) is refused when the cell is built, not when the gradient is first computed.
CELL_FUNCTIONS: tuple[type, ...] = (
    sp.tanh, sigmoid, relu, sp.exp, sp.log, sp.sin, sp.cos, sp.sinh, sp.cosh, sp.atan,
    sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.erf, MatVec,
)
_CELL_ARITHMETIC = (sp.Symbol, sp.Add, sp.Mul, sp.Pow, sp.Number, sp.NumberSymbol)


def unsupported_function(expr: sp.Expr) -> str | None:
    """The name of the first piece of ``expr`` a cell may not use, or None when all is allowed."""
    for e in sp.preorder_traversal(expr):
        if isinstance(e, sp.Number) and not e.is_finite:
            return str(e)
        if not isinstance(e, (*_CELL_ARITHMETIC, *CELL_FUNCTIONS)):
            return type(e).__name__
        if isinstance(e, sp.Heaviside) and len(e.args) == 2 and not e.args[1].is_Number:
            # Its value at 0 is a constant of the step function, not a point to differentiate at.
            return f"{e} (Heaviside's value at 0 must be a number)"
    return None


def identity(z: sp.Expr) -> sp.Expr:
    return z


ACTIVATIONS: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "tanh": sp.tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "identity": identity,
}
OUTPUT_ACTIVATIONS = {**ACTIVATIONS, "softmax": softmax}


def activation(name: str) -> Callable[[sp.Expr], sp.Expr]:
    """The activation called ``name``; an unknown name is a one-line error listing the known ones."""
    choose("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]


# ---- losses of one example: L(output, target) --------------------------------------------------
def binary_cross_entropy(out: sp.Expr, target: sp.Expr) -> sp.Expr:
    return -(target * sp.log(out) + (1 - target) * sp.log(1 - out))


def squared_error(out: sp.Expr, target: sp.Expr) -> sp.Expr:
    return (out - target) ** 2


def cross_entropy(out: sp.Expr, target: sp.Expr) -> sp.Expr:
    return -target * sp.log(out)


# Each loss is elementwise over the output's components, then reduced as PyTorch does by default:
# BCE and MSE average over components, cross-entropy sums over classes.
LOSSES: dict[str, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    "bce": binary_cross_entropy,
    "mse": squared_error,
    "cross_entropy": cross_entropy,
}
LOSS_REDUCTION = {"bce": "mean", "mse": "mean", "cross_entropy": "sum"}
LOSS_TITLES = {"bce": "binary cross-entropy", "mse": "squared error", "cross_entropy": "cross-entropy"}

# Loss and output activation pairs whose product ∂L/∂o · ∂o/∂z is simply o - Y. Softmax has no
# elementwise derivative, so its pair is given here rather than found by cancelling.
FUSED_OUTPUT_GRADIENTS = {("cross_entropy", "softmax"): lambda out, target: out - target}


def loss(name: str, output_activation: str) -> Callable[[sp.Expr, sp.Expr], sp.Expr]:
    """The loss called ``name``, checked against the output activation it is paired with."""
    choose("loss", name, LOSSES)
    if name == "bce" and output_activation != "sigmoid":
        raise RnnsymError(
            f"loss 'bce' needs outputs in (0, 1), so output_activation must be 'sigmoid', "
            f"got {output_activation!r}"
        )
    if (name == "cross_entropy") != (output_activation == "softmax"):
        raise RnnsymError(
            f"loss 'cross_entropy' and output_activation 'softmax' go together; "
            f"got loss {name!r} with output_activation {output_activation!r}"
        )
    return LOSSES[name]


def output_activation(name: str) -> Callable[[sp.Expr], sp.Expr]:
    """An output activation: any hidden activation, or ``softmax`` (with cross-entropy)."""
    choose("output_activation", name, OUTPUT_ACTIVATIONS)
    return OUTPUT_ACTIVATIONS[name]
