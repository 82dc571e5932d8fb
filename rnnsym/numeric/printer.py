"""SymPy expressions to NumPy source, with numerically stable forms of the activations and losses."""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ..engine.rules import ExampleOuter, Outer, Part, RowOf, Summed, TransposeTimes
from ..functions import Concat, MatVec, Mix, Scores, Stack, relu, sigmoid, softmax
from ..program.ir import OuterSum, OverBatch
from ..program.step import AtStep, Columns


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


# Functions written straight into an array (``out=``), and those that run in place.
_INTO = {sp.tanh: "_tanh({}, out={})", sigmoid: "_sigmoid({}, out={})", sp.exp: "numpy.exp({}, out={})",
         relu: "numpy.maximum({}, 0.0, out={})"}
_IN_PLACE = {sp.tanh: "_tanh_", sigmoid: "_sigmoid_"}
IN_PLACE_FUNCTIONS = frozenset(_IN_PLACE)  # the activations the generated code can apply in place


class _Column(sp.Function):
    """A per-example scalar combined elementwise with a vector: printed ``v[..., None]``, so that
    its (…, batch) array broadcasts over the vector's components, not along the batch."""

    nargs = 1


Info = tuple  # (batched, shape): True when the value carries the leading batch (and step) axes;
# shape: its own shape, () for a scalar. None in either place: not known to the printer.


class AttentionPrinting:
    """The attention operations (rnnsym.functions: Stack, Scores, Mix) and their shares (RowOf,
    ExampleOuter) for :class:`CodePrinter`: a stack is one (S, n) matrix per example, so each is a
    batched matrix product (the array API has matmul and stack, not einsum)."""

    def _attention_info(self, expr) -> Info:
        """A stack is (S, n) per example; ``H·q`` has H's rows, ``Hᵀ·a`` its columns, a row of a
        stack's adjoint its columns, ``x·vᵀ`` per example both sizes."""
        if isinstance(expr, OuterSum):
            return self._outer_sum_info(expr)
        infos = [self.info(a) for a in expr.args if isinstance(a, sp.Expr) and not a.is_Integer]
        batched = True if any(b for b, _ in infos) else (None if any(b is None for b, _ in infos) else False)
        shapes = [shape for _, shape in infos]
        if any(shape is None for shape in shapes):
            return (batched, None)
        if isinstance(expr, Stack):
            return (batched, (len(expr.args), *shapes[0]))
        if isinstance(expr, Concat):  # joined vectors: their sizes added
            return (batched, (sum(shape[0] for shape in shapes),))
        if isinstance(expr, Part):
            return (batched, (int(expr.args[2]) - int(expr.args[1]),))
        if isinstance(expr, ExampleOuter):
            return (batched, shapes[0] + shapes[1])
        stack = shapes[0]
        return (batched, stack[:1] if isinstance(expr, Scores) else stack[1:])

    def _print_RowOf(self, expr):  # row i of a batch of stacks' adjoints (batch, S, n)
        return f"({self._print(expr.args[0])})[..., {int(expr.args[1])}, :]"

    def _print_ExampleOuter(self, expr):  # x·vᵀ for each example
        x, v = (self._print(a) for a in expr.args)
        return f"(({x})[..., :, None] * ({v})[..., None, :])"

    def _print_Stack(self, expr):
        return f"{self._module}.stack(({''.join(self._print(a) + ', ' for a in expr.args)}), axis=-2)"

    def _print_Scores(self, expr):  # H·q for each example: (batch, S, n) @ (batch, n, 1)
        stack, query = (self._print(a) for a in expr.args)
        return f"(({stack}) @ ({query})[..., None])[..., 0]"

    def _print_Concat(self, expr):  # [u; v] along the components (NumPy's name; the array API's is concat)
        joined = "concat" if self._module == "xp" else "concatenate"
        return f"{self._module}.{joined}(({''.join(self._print(a) + ', ' for a in expr.args)}), axis=-1)"

    def _print_Part(self, expr):  # components start … stop − 1 of a joined vector's adjoint
        return f"({self._print(expr.args[0])})[..., {int(expr.args[1])}:{int(expr.args[2])}]"

    def _print_Mix(self, expr):  # Hᵀ·a for each example: (batch, 1, S) @ (batch, S, n)
        stack, weights = (self._print(a) for a in expr.args)
        return f"(({weights})[..., None, :] @ ({stack}))[..., 0, :]"


class JoinPrinting:
    """The sums over steps done in one operation (rnnsym.program.passes.join_steps) for
    :class:`CodePrinter`: values joined along the batch axis, and a per-example sum of outer products
    as one batched product of two stacks."""

    _concat = "numpy.concatenate"  # the array API's is concat (NumPy has it from 2.0 only)

    def _outer_sum_info(self, expr) -> Info:  # an a's rows, a b's columns
        (_, rows), (_, columns) = (self.info(vectors[0]) for vectors in expr.args)
        return (True, None if rows is None or columns is None else rows + columns)

    def _print_OuterSum(self, expr):  # Σ_k a_k·b_kᵀ per example: (batch, m, K) @ (batch, K, n)
        a, b = ("".join(self._print(v) + ", " for v in vectors) for vectors in expr.args)
        return f"({self._module}.stack(({a}), axis=-1) @ {self._module}.stack(({b}), axis=-2))"

    def _print_Joined(self, expr):  # the values one under another along the batch axis
        return f"{self._concat}(({''.join(self._print(a) + ', ' for a in expr.args)}), axis=0)"


class CodePrinter(JoinPrinting, AttentionPrinting, NumPyPrinter):
    """NumPy source; every symbol is printed through the generated-name table, never raw.

    The printer knows which symbols carry the batch axis (``batched``: a node's value is
    (batch, *shape), a parameter's only its shape) and every symbol's shape. Arrays broadcast by
    their trailing axes, so a per-example scalar (batch,) combined with a vector (batch, n) or
    (n,) would pair its examples with the vector's components: such a scalar is printed with a
    trailing axis, ``x[..., None]`` (see :meth:`lifted`)."""

    def __init__(self, names: dict[sp.Symbol, str], shapes: dict[sp.Symbol, tuple] | None = None,
                 batched=()):
        super().__init__({"fully_qualified_modules": True})
        self._names = names
        self._shapes = shapes or {}
        batched = set(batched)
        self._info: dict[sp.Symbol, Info] = {s: (s in batched, shape) for s, shape in self._shapes.items()}
        self._known: dict[sp.Expr, Info] = {}  # info of expressions already seen

    def declare(self, symbol: sp.Symbol, info: Info) -> None:
        """The compiler's own value ``symbol`` (a temporary, an adjoint) is ``info = (batched, shape)``."""
        self._info[symbol] = info

    def info(self, expr: sp.Expr) -> Info:
        """``(batched, shape)`` of an expression: elementwise operations carry the batch axis if any
        argument does and have the shape of their vector arguments; ``W·v`` has W's rows."""
        found = self._known.get(expr)
        if found is None:
            found = self._info_of(expr)
            if None not in found:  # an unknown symbol may be declared later
                self._known[expr] = found
        return found

    def _info_of(self, expr: sp.Expr) -> Info:
        if isinstance(expr, sp.Symbol):
            return self._info.get(expr, (None, None))
        if expr.is_number:
            return (False, ())
        if isinstance(expr, MatVec):
            matrix, vector = expr.args
            rows = self._shapes.get(matrix, self._info.get(matrix, (None, None))[1])
            return (self.info(vector)[0], rows[:1] if rows else None)
        if isinstance(expr, Columns):
            return (self.info(expr.args[0])[0], (int(expr.args[2]) - int(expr.args[1]),))
        if isinstance(expr, (Stack, Scores, Mix, RowOf, ExampleOuter, OuterSum, Concat, Part)):
            return self._attention_info(expr)
        if isinstance(expr, AtStep):
            return self.info(expr.args[0])
        if isinstance(expr, TransposeTimes):  # Wᵀ·x: W's columns
            matrix, x = expr.args
            return (self.info(x)[0], self._shapes[matrix][1:])
        if isinstance(expr, Outer):  # x·vᵀ, summed over the batch by the product
            return (False, self.info(expr.args[0])[1] + self.info(expr.args[1])[1])
        if isinstance(expr, Summed):
            return (self.info(expr.args[0])[0], ())
        if isinstance(expr, OverBatch):
            inner = self.info(expr.args[0])[1]
            return (False, inner if isinstance(expr.args[0], Outer) or int(expr.args[1]) else ())
        infos = [self.info(a) for a in expr.args if isinstance(a, sp.Expr)]
        flags = [b for b, _ in infos]
        batched = True if True in flags else (None if None in flags else False)
        vectors = [s for _, s in infos if s]
        if isinstance(expr, _Column):
            return (batched, (1,))
        return (batched, vectors[0] if vectors else (None if any(s is None for _, s in infos) else ()))

    def lifted(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every per-example scalar that an elementwise operation combines with a
        vector marked as a column (printed ``[..., None]``)."""
        if expr.is_Atom or isinstance(expr, (MatVec, _Column)) or not isinstance(expr, sp.Expr):
            return expr
        args = [self.lifted(a) if isinstance(a, sp.Expr) else a for a in expr.args]
        shape = self.info(expr)[1]
        if shape:  # a vector: its per-example scalar arguments get a trailing axis
            args = [_Column(new) if isinstance(old, sp.Expr) and self.info(old) == (True, ()) else new
                    for old, new in zip(expr.args, args)]
        if all(new is old for new, old in zip(args, expr.args)):
            return expr
        return expr.func(*args, evaluate=False)

    def operand(self, expr: sp.Expr, shape: tuple) -> str:
        """The code of ``expr`` as one operand of an elementwise operation (or a store) whose result
        has ``shape``: a per-example scalar gets a trailing axis when ``shape`` is a vector's."""
        if shape and self.info(expr) == (True, ()):
            expr = _Column(expr)
        return self.doprint(expr)

    def doprint(self, expr, assign_to=None):
        return super().doprint(self.lifted(expr) if isinstance(expr, sp.Expr) else expr, assign_to)

    def _print__Column(self, expr):
        (arg,) = expr.args
        return f"{self._print(arg)}[..., None]" if isinstance(arg, sp.Symbol) else f"({self._print(arg)})[..., None]"

    def _print_Symbol(self, expr):
        return self._names[expr]

    _print_Dummy = _print_Symbol  # the compiler's own values, under the names it gave them

    def _print_softplus(self, expr):
        return f"{self._module}.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_relu(self, expr):
        return f"{self._module}.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_MatVec(self, expr):
        matrix, vector = expr.args
        return forward_product(self._print(vector), self._print(matrix), self._shapes.get(matrix, ()))

    def product_into(self, expr: MatVec, out: str) -> str:
        """``W·v`` written into the array ``out``."""
        matrix, vector = expr.args
        return forward_product(self._print(vector), self._print(matrix), self._shapes.get(matrix, ()), out)

    def backward_product(self, left: str, matrix: sp.Symbol) -> str:
        """``left @ W``: an adjoint carried back through ``W·v``."""
        return backward_product(left, self._print(matrix), self._shapes.get(matrix, ()))

    def _print_Columns(self, expr):
        array, start, stop = expr.args
        return f"{self._print(array)}[..., {int(start)}:{int(stop)}]"

    def _print_AtStep(self, expr):
        return f"{self._print(expr.args[0])}[t]"

    def call_into(self, expr: sp.Expr, out: str) -> str:
        """``f(z)`` written into the array ``out`` (no temporary)."""
        return _INTO[expr.func].format(self.doprint(expr.args[0]), out)

    def assign_into(self, expr: sp.Expr, out: str, shape: tuple) -> str | None:
        """``expr`` computed straight into the array ``out`` of ``shape`` when its last operation is
        a sum or a product of the same shape (``numpy.multiply(a, b, out=…)``: no temporary and no
        copy), else None."""
        if not (expr.is_Add or expr.is_Mul) or self.info(expr) != (True, shape):
            return None
        *rest, last = expr.args
        ufunc = "numpy.add" if expr.is_Add else "numpy.multiply"
        head = expr.func(*rest)
        return f"{ufunc}({self.operand(head, shape)}, {self.operand(last, shape)}, out={out})"

    def in_place(self, func, array: str) -> str | None:
        """``f`` applied to ``array`` in place, or None where there is no in-place form."""
        return f"{_IN_PLACE[func]}({array})" if func in _IN_PLACE else None

    # ---- the rule table's operations (rnnsym.engine.rules), batch first ---------------------------------
    def _print_Diag(self, expr):
        return self._print(sp.Mul(*expr.args))

    def _print_TransposeTimes(self, expr):  # Wᵀ·x for a batch of rows x: x @ W
        matrix, x = expr.args
        return backward_product(self._print(x), self._print(matrix), self._shapes.get(matrix, ()))

    def _print_Outer(self, expr):  # Σ over the batch of x·vᵀ: xᵀ @ v
        x, v = expr.args
        return f"({self._print(x)}).T @ {self._print(v)}"

    def _print_Summed(self, expr):
        return f"{self._module}.sum({self._print(expr.args[0])}, axis=-1)"

    def _print_Coupled(self, expr):  # (diag(o) − o·oᵀ)·x, row by row
        o, x = (self._print(a) for a in expr.args)
        return f"({o} * (({x}) - {self._module}.sum({o} * ({x}), axis=-1, keepdims=True)))"

    def _print_OverBatch(self, expr):
        share, ndim = expr.args
        if isinstance(share, Outer):  # the product already sums over the batch
            return self._print(share)
        inner = share.args[0] if isinstance(share, Summed) and not ndim else share  # a scalar sums it all anyway
        return f"{self._module}.sum({self._print(inner)})" if not ndim else f"{self._module}.sum({self._print(share)}, axis=0)"

    def _print_Heaviside(self, expr):
        # The value at 0 is the expression's own (SymPy's default is 1/2; relu's rule says 0).
        value = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"numpy.heaviside({self._print(expr.args[0])}, {float(value)!r})"

    def _print_Max(self, expr):
        return self._nested(f"{self._module}.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested(f"{self._module}.minimum", expr.args)

    def _nested(self, ufunc: str, args) -> str:
        """``max(a, b, c)`` as ``maximum(a, maximum(b, c))``: two-argument ufuncs broadcast."""
        code = self._print(args[-1])
        for a in reversed(args[:-1]):
            code = f"{ufunc}({self._print(a)}, {code})"
        return code

    # ---- arrays the code makes (the array-API printer of rnnsym.backends makes them on x's device) --------
    def full(self, shape: str, value: str) -> str:
        """An array of ``shape`` (code) filled with ``value`` (code), in the computation's precision."""
        return f"numpy.full({shape}, {value}, dtype=x.dtype)"

    def zeros_like(self, param: str, shape: tuple) -> str:
        """Zeros of a parameter's shape: the gradient of one that nothing reaches."""
        return f"numpy.zeros({shape}, dtype=x.dtype)" if shape else "0.0"

    def _print_runtime_call(self, expr):  # a function of the generated code's runtime (RUNTIME)
        return f"_{type(expr).__name__}({self._print(expr.args[0])})"

    _print_tanh = _print_sigmoid = _print_softmax = _print_log_softmax = _print_erf = _print_runtime_call


def forward_product(vector: str, matrix: str, shape: tuple, out: str | None = None) -> str:
    """``W·v`` batch-first, ``v @ Wᵀ``; with one input column it is a broadcast product, which
    avoids a BLAS call on a (batch, 1) operand (a scalar Elman cell is all such products).
    ``out``: the array to write the product into."""
    if len(shape) == 2 and shape[1] == 1:
        return f"({vector} * {matrix}.T)" if out is None else f"numpy.multiply({vector}, {matrix}.T, out={out})"
    return f"_mm({vector}, {matrix})" if out is None else f"_mm({vector}, {matrix}, out={out})"


def _mm(v, w, out=None):
    """``v @ wᵀ`` with every leading axis of v folded into one: a (T, batch, n) stack of vectors is
    one BLAS call, where NumPy's stacked matmul would make T small ones. ``out``: a C-contiguous
    array of the result's shape to write into (a workspace buffer)."""
    import numpy

    if v.ndim <= 2:
        return numpy.matmul(v, w.T, out=out)
    shape = v.shape[:-1] + (w.shape[0],)
    flat = numpy.matmul(v.reshape(-1, v.shape[-1]), w.T, out=None if out is None else out.reshape(-1, shape[-1]))
    return flat.reshape(shape) if out is None else out


def backward_product(left: str, matrix: str, shape: tuple) -> str:
    """``δ @ W``; a broadcast product when W has one row."""
    return f"(({left}) * {matrix})" if len(shape) == 2 and shape[0] == 1 else f"({left}) @ {matrix}"


# σ and tanh are most of a gated cell's forward pass. Where the optional C extension was built
# (rnnsym/numeric/_kernels.c) they run vectorised through glibc's vector math library, several
# times faster than NumPy's scalar float64 exp; otherwise NumPy computes them through one exp each
# (its float64 tanh is slower still on most CPUs). Both agree to about 1e-16.
try:
    from . import _kernels
except ImportError:  # not built: a platform without a C compiler, or another compiler
    _kernels = None


def kernels_in_use() -> str:
    """Which activations the compiled functions use: "C, avx2", "C, baseline" or "NumPy"."""
    return "NumPy" if _kernels is None else f"C, {_kernels.isa}"


def _vectorised(*arrays) -> bool:
    """Whether the C kernels take these: aligned, native float64 arrays of one shape (at most 8
    axes), the last axis contiguous."""
    import numpy

    return _kernels is not None and all(
        isinstance(a, numpy.ndarray) and a.dtype == numpy.float64 and a.flags.aligned and a.ndim <= 8
        and (a.ndim == 0 or a.strides[-1] == 8) and a.shape == arrays[0].shape for a in arrays)


def _numpy_sigmoid(a):
    """σ in place in NumPy: 1 / (1 + exp(−a)); exp overflowing to inf gives exactly 0."""
    import numpy

    numpy.negative(a, out=a)
    with numpy.errstate(over="ignore"):
        numpy.exp(a, out=a)
    a += 1.0
    return numpy.divide(1.0, a, out=a)


def _numpy_tanh(a):
    """tanh in place in NumPy: 1 − 2 / (exp(2a) + 1)."""
    import numpy

    numpy.multiply(a, 2.0, out=a)
    with numpy.errstate(over="ignore"):
        numpy.exp(a, out=a)
    a += 1.0
    numpy.divide(2.0, a, out=a)
    return numpy.subtract(1.0, a, out=a)


def _activation(kernel: str, in_numpy, z, out):
    """The activation of ``z`` into ``out`` (``out is z``: in place) by the C kernel where it takes
    these arrays, else by NumPy."""
    import numpy

    if _vectorised(z, out) and out.flags.writeable:
        return getattr(_kernels, kernel)(z, out)
    if out is not z:
        numpy.copyto(out, z)
    return in_numpy(out)


def _sigmoid_(a):
    """σ in place on a float64 array (returned)."""
    return _activation("sigmoid", _numpy_sigmoid, a, a)


def _tanh_(a):
    """tanh in place on a float64 array (returned)."""
    return _activation("tanh", _numpy_tanh, a, a)


def _sigmoid(z, out=None):
    """σ(z) = 1 / (1 + exp(−z)), into ``out`` (a new array when None)."""
    import numpy

    if out is None and numpy.ndim(z) == 0:
        with numpy.errstate(over="ignore"):
            return 1.0 / (1.0 + numpy.exp(-z))
    return _activation("sigmoid", _numpy_sigmoid, z, _empty_like(z) if out is None else out)


def _tanh(z, out=None):
    """tanh(z), into ``out`` (a new array when None)."""
    import numpy

    if out is None and numpy.ndim(z) == 0:
        return numpy.tanh(z)
    return _activation("tanh", _numpy_tanh, z, _empty_like(z) if out is None else out)


def _empty_like(z):
    """A new array for f(z): float32 stays float32, anything else is float64."""
    import numpy

    return numpy.empty(numpy.shape(z), dtype=numpy.float32 if getattr(z, "dtype", None) == numpy.float32 else numpy.float64)


def _log_softmax(z):
    import numpy

    shifted = z - numpy.max(z, axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.sum(numpy.exp(shifted), axis=-1, keepdims=True))


def _softmax(z):
    import numpy

    return numpy.exp(_log_softmax(z))


def _erf(z, out=None):
    """The error function elementwise (NumPy has none): Python's math.erf on each value."""
    import math

    import numpy

    values = numpy.vectorize(math.erf, otypes=[numpy.float64])(z).astype(_empty_like(z).dtype, copy=False)
    if out is None:
        return values
    out[...] = values
    return out


RUNTIME = {"_erf": _erf, "_sigmoid": _sigmoid, "_tanh": _tanh, "_sigmoid_": _sigmoid_, "_tanh_": _tanh_, "_mm": _mm, "_softmax": _softmax, "_log_softmax": _log_softmax}
