"""SymPy expressions to NumPy source, with numerically stable forms of the activations and losses."""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ..functions import sigmoid, softmax


class softplus(sp.Function):
    """``log(1 + exp(z))``, printed as ``logaddexp(0, z)`` so it never overflows."""


class log_softmax(sp.Function):
    """``z - logsumexp(z)`` over the last axis: cross-entropy without overflow."""


# Rewrites applied before printing: log of a sigmoid is a softplus (BCE stays finite for huge logits).
_u = sp.Wild("u")
STABLE_REWRITES = (
    (sp.log(sigmoid(_u)), -softplus(-_u)),
    (sp.log(1 - sigmoid(_u)), -softplus(_u)),
    (sp.log(softmax(_u)), log_softmax(_u)),
)


def stable(expr: sp.Expr) -> sp.Expr:
    for pattern, replacement in STABLE_REWRITES:
        expr = expr.replace(pattern, replacement)
    if expr.has(softplus):
        # softplus(a) = softplus(-a) + a turns BCE's Y*softplus(-z) + (1 - Y)*softplus(z) into
        # softplus(z) - Y*z: one exp and one log per example instead of two of each.
        expr = sp.expand(expr.replace(
            lambda e: isinstance(e, softplus) and e.args[0].could_extract_minus_sign(),
            lambda e: softplus(-e.args[0]) + e.args[0]))
    return expr


class CodePrinter(NumPyPrinter):
    """NumPy source; every symbol is printed through the generated-name table, never raw."""

    def __init__(self, names: dict[sp.Symbol, str], shapes: dict[sp.Symbol, tuple] | None = None):
        super().__init__({"fully_qualified_modules": True})
        self._names = names
        self._shapes = shapes or {}

    def _print_Symbol(self, expr):
        return self._names[expr]

    def _print_tanh(self, expr):
        return f"_tanh({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr):
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_softplus(self, expr):
        return f"numpy.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_relu(self, expr):
        return f"numpy.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_MatVec(self, expr):
        matrix, vector = expr.args
        return forward_product(self._print(vector), self._print(matrix), self._shapes.get(matrix, ()))

    def backward_product(self, left: str, matrix: sp.Symbol) -> str:
        """``left @ W``: an adjoint carried back through ``W·v``."""
        return backward_product(left, self._print(matrix), self._shapes.get(matrix, ()))

    def _print_softmax(self, expr):
        return f"_softmax({self._print(expr.args[0])})"

    def _print_log_softmax(self, expr):
        return f"_log_softmax({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        return f"numpy.heaviside({self._print(expr.args[0])}, 0.0)"


def forward_product(vector: str, matrix: str, shape: tuple) -> str:
    """``W·v`` batch-first, ``v @ Wᵀ``; with one input column it is a broadcast product, which
    avoids a BLAS call on a (batch, 1) operand (a scalar Elman cell is all such products)."""
    return f"({vector} * {matrix}.T)" if len(shape) == 2 and shape[1] == 1 else f"_mm({vector}, {matrix})"


def _mm(v, w):
    """``v @ wᵀ`` with every leading axis of v folded into one: a (T, batch, n) stack of vectors is
    one BLAS call, where NumPy's stacked matmul would make T small ones."""
    if v.ndim <= 2:
        return v @ w.T
    return (v.reshape(-1, v.shape[-1]) @ w.T).reshape(v.shape[:-1] + (w.shape[0],))


def backward_product(left: str, matrix: str, shape: tuple) -> str:
    """``δ @ W``; a broadcast product when W has one row."""
    return f"(({left}) * {matrix})" if len(shape) == 2 and shape[0] == 1 else f"({left}) @ {matrix}"


# NumPy vectorizes exp but, on many CPUs, not float64 tanh (about three times slower here); so tanh
# and σ are written through one exp each, in place. Both are exact to about 1e-16 absolute.
def _sigmoid(z, out=None):
    """σ(z) = 1 / (1 + exp(−z)); exp overflowing to inf for very negative z gives exactly 0."""
    import numpy

    r = numpy.negative(z, out=out)
    with numpy.errstate(over="ignore"):
        r = numpy.exp(r, out=r if numpy.ndim(r) else None)
    r += 1.0
    return numpy.divide(1.0, r, out=r if numpy.ndim(r) else None)


def _tanh(z, out=None):
    """tanh(z) = 1 − 2 / (exp(2z) + 1)."""
    import numpy

    r = numpy.multiply(z, 2.0, out=out)
    with numpy.errstate(over="ignore"):
        r = numpy.exp(r, out=r if numpy.ndim(r) else None)
    r += 1.0
    if numpy.ndim(r) == 0:
        return 1.0 - 2.0 / r
    numpy.divide(2.0, r, out=r)
    return numpy.subtract(1.0, r, out=r)


def _log_softmax(z):
    import numpy

    shifted = z - numpy.max(z, axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.sum(numpy.exp(shifted), axis=-1, keepdims=True))


def _softmax(z):
    import numpy

    return numpy.exp(_log_softmax(z))


RUNTIME = {"_sigmoid": _sigmoid, "_tanh": _tanh, "_mm": _mm, "_softmax": _softmax, "_log_softmax": _log_softmax}
