"""The code printer of the JAX and PyTorch backends: the NumPy printer's code over the array API.

The generated source calls ``xp``, the array-API namespace of the arrays it is given
(``array_api_compat.array_namespace``: ``jax.numpy``, or PyTorch through array-api-compat's
wrapper), so one printing serves both backends; the few operations the standard lacks, and the
activations (σ, a stable softplus), come from each backend's runtime (``_sigmoid``, ``_full``, …).
The code makes no array from host data and reads no value back, so that PyTorch can record it as
a CUDA graph (tests/test_cuda_graphs.py checks every built-in network and random user cells).
Nothing is written into an array (no ``out=``): a JAX program is pure, and PyTorch's autograd-free
tensors need no in-place tricks to be fast on a GPU.
"""
from __future__ import annotations

import sympy as sp

from ..numeric.printer import CodePrinter


class ArrayPrinter(CodePrinter):
    """Prints ``xp.<function>`` where the NumPy printer prints ``numpy.<function>``."""

    _module = "xp"
    _concat = "xp.concat"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # SymPy's NumPy printer names its functions "numpy.exp", … in a table: the same functions,
        # by the same names, are in every array-API namespace.
        self.known_functions = {name: "xp." + code.split(".", 1)[1] if code.startswith("numpy.") else code
                                for name, code in self.known_functions.items()}
        self.known_constants = {name: "xp." + code.split(".", 1)[1] if code.startswith("numpy.") else code
                                for name, code in self.known_constants.items()}

    def _print(self, expr, **kwargs):
        # An expression of numbers (σ(0), √π: a zero initial state folded in) is a number here:
        # torch's functions take tensors only, and a Python int would be JAX's integer array.
        if isinstance(expr, sp.Expr) and not expr.is_Atom and expr.is_number:
            try:
                value = float(expr.evalf())
            except TypeError:  # not real
                value = None
            if value is not None and abs(value) != float("inf") and value == value:
                return repr(value)
        return super()._print(expr, **kwargs)

    def _print_Mul(self, expr):
        """``g·y·(1 − y)`` and ``g·(1 − y²)`` (σ's and tanh's derivatives written in their output,
        times an adjoint) as the runtime's ``_sigmoid_grad(g, y)`` and ``_tanh_grad(g, y)``: one
        call where PyTorch would dispatch three or four small operations per step."""
        for arg in expr.args:
            y = _one_minus(arg)
            if y is None:
                continue
            symbol, power = y
            rest = list(expr.args)
            rest.remove(arg)
            if power == 1 and symbol in rest:
                rest.remove(symbol)
                name = "_sigmoid_grad"
            elif power == 2:
                name = "_tanh_grad"
            else:
                continue
            g = sp.Mul(*rest)
            if g.free_symbols:  # an adjoint, not a number: both arguments are arrays
                return f"{name}({self._print(g)}, {self._print(symbol)})"
        return super()._print_Mul(expr)

    # max, min and softplus through the runtime: array-api-compat makes the number in maximum(z, 0.0)
    # or logaddexp(0.0, z) a tensor copied from host memory, which a CUDA graph cannot record.
    def _nested(self, ufunc: str, args) -> str:
        ufunc = {"xp.maximum": "_maximum", "xp.minimum": "_minimum"}.get(ufunc, ufunc)
        # Numbers last: the runtime's _maximum(a, b) takes a number as b only.
        return super()._nested(ufunc, sorted(args, key=lambda a: bool(getattr(a, "is_number", False))))

    def _print_relu(self, expr):
        return f"_maximum({self._print(expr.args[0])}, 0.0)"

    def _print_softplus(self, expr):
        return f"_softplus({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        # H(z) with its value at 0 (relu's rule says 0): the standard has no heaviside.
        z, value = self._print(expr.args[0]), float(expr.args[1]) if len(expr.args) > 1 else 0.5
        at_zero = "" if value == 0.0 else f" + {value!r} * (({z}) == 0)"
        return f"(xp.where(({z}) > 0, 1.0, 0.0){at_zero})"

    def _print_Piecewise(self, expr):  # nested where: the standard has no select
        *pairs, (last, condition) = expr.args
        code = self._print(last) if condition == sp.true else f"xp.where({self._print(condition)}, {self._print(last)}, xp.nan)"
        for value, condition in reversed(pairs):
            code = f"xp.where({self._print(condition)}, {self._print(value)}, {code})"
        return code

    def _print_And(self, expr):  # two-argument logical functions, nested (no .reduce in the standard)
        return self._nested("xp.logical_and", expr.args)

    def _print_Or(self, expr):
        return self._nested("xp.logical_or", expr.args)

    def full(self, shape: str, value: str) -> str:
        return f"_full(x, {shape}, {value})"  # x's precision, on x's device

    def zeros_like(self, param: str, shape: tuple) -> str:
        return f"xp.zeros_like({param})"


def _one_minus(expr) -> tuple | None:
    """``(y, 1)`` for ``1 − y``, ``(y, 2)`` for ``1 − y²`` (y a symbol: a stored value), else None."""
    if not (expr.is_Add and len(expr.args) == 2 and sp.S.One in expr.args):
        return None
    (other,) = [a for a in expr.args if a != sp.S.One]
    negated = -other
    if isinstance(negated, sp.Symbol):
        return negated, 1
    if negated.is_Pow and isinstance(negated.base, sp.Symbol) and negated.exp == 2:
        return negated.base, 2
    return None
