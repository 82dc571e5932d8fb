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


class sigmoid(sp.Function):
    """The logistic function ``1 / (1 + exp(-z))``, kept as one symbol so it prints as σ."""

    def fdiff(self, argindex=1):
        return DERIVATIVE_RULES[sigmoid](self)

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def _eval_is_extended_real(self):  # what SymPy's own rules ask of an argument (sign(σ(z))')
        return self.args[0].is_extended_real

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real else None

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)


class relu(sp.Function):
    """The rectifier ``max(0, z)``."""

    def fdiff(self, argindex=1):
        return DERIVATIVE_RULES[relu](self)

    def _eval_rewrite_as_Max(self, z, **kwargs):
        return sp.Max(0, z)

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_nonnegative(self):
        return True if self.args[0].is_extended_real else None

    def _eval_evalf(self, prec):
        return self.rewrite(sp.Max)._eval_evalf(prec)


class softmax(sp.Function):
    """``exp(z) / Σ exp(z)`` over a vector: not elementwise, so it has no rule in the table; it is
    only used fused with cross-entropy, whose combined derivative is ``o - Y``."""


class MatVec(sp.Function):
    """``W·v``, a matrix (a parameter) times a vector node: the one non-elementwise operation.

    Everything else in a cell is elementwise over vectors; the engine gives this product its own
    rules (``∂(W·v)/∂v = W``; a weight's gradient is the outer product ``δ vᵀ``).
    """

    nargs = 2


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
