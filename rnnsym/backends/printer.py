"""The code printer of the JAX and PyTorch backends: the NumPy printer's code over the array API.

The generated source calls ``xp``, the array-API namespace of the arrays it is given
(``array_api_compat.array_namespace``: ``jax.numpy``, or PyTorch through array-api-compat's
wrapper), so one printing serves both backends; the few operations the standard lacks, and the
activations (σ, a stable softplus), come from each backend's runtime (``_sigmoid``, ``_full``, …).
Nothing is written into an array (no ``out=``): a JAX program is pure, and PyTorch's autograd-free
tensors need no in-place tricks to be fast on a GPU.
"""
from __future__ import annotations

from ..numeric.printer import CodePrinter


class ArrayPrinter(CodePrinter):
    """Prints ``xp.<function>`` where the NumPy printer prints ``numpy.<function>``."""

    _module = "xp"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # SymPy's NumPy printer names its functions "numpy.exp", … in a table: the same functions,
        # by the same names, are in every array-API namespace.
        self.known_functions = {name: "xp." + code.split(".", 1)[1] if code.startswith("numpy.") else code
                                for name, code in self.known_functions.items()}

    def _print_Heaviside(self, expr):
        # H(z) with its value at 0 (relu's rule says 0): the standard has no heaviside.
        z, value = self._print(expr.args[0]), float(expr.args[1]) if len(expr.args) > 1 else 0.5
        at_zero = "" if value == 0.0 else f" + {value!r} * (({z}) == 0)"
        return f"(xp.where(({z}) > 0, 1.0, 0.0){at_zero})"

    def full(self, shape: str, value: str) -> str:
        return f"_full(x, {shape}, {value})"  # x's precision, on x's device

    def zeros_like(self, param: str, shape: tuple) -> str:
        return f"xp.zeros_like({param})"

