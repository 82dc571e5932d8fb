"""SymPy expressions to NumPy source, with numerically stable forms of the activations and losses."""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ..functions import sigmoid, relu


class softplus(sp.Function):
    """``log(1 + exp(z))``, printed as ``logaddexp(0, z)`` so it never overflows."""


# Rewrites applied before printing: log of a sigmoid is a softplus (BCE stays finite for huge logits).
_u = sp.Wild("u")
STABLE_REWRITES = (
    (sp.log(sigmoid(_u)), -softplus(-_u)),
    (sp.log(1 - sigmoid(_u)), -softplus(_u)),
)


def stable(expr: sp.Expr) -> sp.Expr:
    for pattern, replacement in STABLE_REWRITES:
        expr = expr.replace(pattern, replacement)
    return expr


class CodePrinter(NumPyPrinter):
    """NumPy source; every symbol is printed through the generated-name table, never raw."""

    def __init__(self, names: dict[sp.Symbol, str]):
        super().__init__({"fully_qualified_modules": True})
        self._names = names

    def _print_Symbol(self, expr):
        return self._names[expr]

    def _print_sigmoid(self, expr):
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_softplus(self, expr):
        return f"numpy.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_relu(self, expr):
        return f"numpy.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_Heaviside(self, expr):
        return f"numpy.heaviside({self._print(expr.args[0])}, 0.0)"


def _sigmoid(z):
    import numpy

    # exp(-logaddexp(0, -z)) = 1 / (1 + exp(-z)) without overflow for large |z|.
    return numpy.exp(-numpy.logaddexp(0.0, -z))


RUNTIME = {"_sigmoid": _sigmoid}
