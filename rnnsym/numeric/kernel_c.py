"""Fused step kernels: a step's elementwise work as one C loop, emitted from the program.

A loop form's step is a few matrix products and, around them, a dozen elementwise operations on
(batch, H) arrays (an LSTM's five activations, its cell update, the backward pass's shares). As
NumPy calls each costs a few microseconds of overhead and an array written and read again, which at
the sizes of a recurrent step is most of the time. A :class:`Kernel` is that elementwise work as
data: the arrays it reads and writes (:class:`Operand`), the values it computes per element in
order, and what it writes where. :func:`c_source` prints kernels as C, one function per kernel and
precision; rnnsym.numeric.native compiles and runs them.

Every value in a kernel is one element: a (batch, H) operand's ``[b, j]``, a parameter vector's
``[j]``, a per-example scalar's ``[b]``. Each iteration loads all its inputs before it stores
anything, so an output may be an input's own array (an activation in place, a carried adjoint
updated) without a hazard.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.codegen.ast import float32, real
from sympy.printing.c import C99CodePrinter

from ..functions import relu, sigmoid


@dataclass(frozen=True)
class Operand:
    """An array the kernel reads or writes: ``array`` is the generated code's expression for it,
    bound once before the loop; ``stepped``: its first axis is time (the kernel reads row t);
    ``batched``: it has a row per example; ``vector``: its last axis is the kernel's width (else it
    is one value per row, or one value in all)."""

    array: str
    stepped: bool
    batched: bool
    vector: bool


@dataclass(frozen=True)
class Kernel:
    """``values``: ``(symbol, expression)`` computed per element, in order, from the operands'
    elements (``loads``: symbol → operand index) and earlier values; ``stores``: ``(operand index,
    symbol)``, written at the end of each element's work; ``sums``: expressions of the element's
    values added up over every row and step a sweep covers, per column of the kernel's width (a
    parameter's gradient, reduced where it is computed instead of stored per step and read again)."""

    name: str
    width: int
    operands: tuple[Operand, ...]
    loads: tuple[tuple[sp.Symbol, int], ...]
    values: tuple[tuple[sp.Symbol, sp.Expr], ...]
    stores: tuple[tuple[int, sp.Symbol], ...]
    sums: tuple[sp.Expr, ...] = ()  # each summed over the rows and steps of a sweep (in double)


# The functions a kernel can compute, each with IEEE semantics (NaN in, NaN out, as NumPy's ufuncs).
SUPPORTED = (sp.Add, sp.Mul, sp.Pow, sp.exp, sp.log, sp.tanh, sigmoid, relu, sp.sin, sp.cos, sp.sinh, sp.cosh,
             sp.atan, sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.erf)


def fusable(expr: sp.Expr) -> bool:
    """Whether ``expr`` is elementwise arithmetic a kernel can compute (no product of arrays, no
    reduction, nothing the C printer does not know)."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Symbol, sp.Number, sp.NumberSymbol)):
            continue
        if not isinstance(node, SUPPORTED):
            return False
        if isinstance(node, sp.Heaviside) and len(node.args) > 1 and not node.args[1].is_number:
            return False
    return True


_PREFETCH = """\
#if defined(__GNUC__) || defined(__clang__)
#define RS_PREFETCH(p, w) __builtin_prefetch((p), (w), 3)
#else
#define RS_PREFETCH(p, w) ((void)0)
#endif
"""

_HELPERS = """\
static inline REAL rs_sigmoidS(REAL x) { return ONE / (ONE + EXP(-x)); }
/* NumPy's maximum, minimum, sign and heaviside: NaN in, NaN out. */
static inline REAL rs_maxS(REAL a, REAL b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }
static inline REAL rs_minS(REAL a, REAL b) { return (a != a || b != b) ? a + b : (a < b ? a : b); }
static inline REAL rs_signS(REAL x) { return x != x ? x : (REAL)((x > 0) - (x < 0)); }
static inline REAL rs_heavisideS(REAL x, REAL at0) { return x != x ? x : (x < 0 ? 0 : (x > 0 ? ONE : at0)); }
"""

# glibc's vector math library (libmvec) has SIMD variants of these; declaring them lets GCC call
# four or eight at a time without -ffast-math (which would drop NaN and infinity handling).
_MVEC = """\
#if defined(RS_MVEC) && defined(__GLIBC__) && defined(__x86_64__)
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float logf(float);
#if __GLIBC_PREREQ(2, 35)
#pragma omp declare simd notinbranch
double tanh(double);
#pragma omp declare simd notinbranch
float tanhf(float);
#endif
#endif
"""


class _ElementPrinter(C99CodePrinter):
    """C for one element's value, in one precision: symbols under the kernel's own names, rnnsym's
    functions as the helpers above, small integer powers as products."""

    def __init__(self, names: dict, single: bool):
        super().__init__({"type_aliases": {real: float32}} if single else {})
        self._names, self._suffix = names, "_f" if single else "_d"

    def _print_Symbol(self, expr):
        return self._names[expr]

    _print_Dummy = _print_Symbol

    def _helper(self, name: str, *args) -> str:
        return f"rs_{name}{self._suffix}({', '.join(self._print(a) for a in args)})"

    def _print_sigmoid(self, expr):
        return self._helper("sigmoid", expr.args[0])

    def _print_relu(self, expr):
        return self._helper("max", expr.args[0], sp.S.Zero)

    def _print_sign(self, expr):
        return self._helper("sign", expr.args[0])

    def _print_Heaviside(self, expr):
        at0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return self._helper("heaviside", expr.args[0], at0)

    def _print_Max(self, expr):
        return self._nested("max", expr.args)

    def _print_Min(self, expr):
        return self._nested("min", expr.args)

    def _nested(self, name: str, args) -> str:
        code = self._print(args[-1])
        for a in reversed(args[:-1]):
            code = f"rs_{name}{self._suffix}({self._print(a)}, {code})"
        return code

    def _print_Pow(self, expr):
        base, exponent = expr.args
        if exponent.is_Integer and 1 <= abs(int(exponent)) <= 4:
            product = "(" + "*".join([f"({self._print(base)})"] * abs(int(exponent))) + ")"  # one factor, as x**2 is
            return product if exponent > 0 else f"({self._print(sp.S.One)}/{product})"
        return super()._print_Pow(expr)


def c_source(kernels: list[Kernel]) -> str:
    """The C of ``kernels``, each as ``<name>_f64`` and ``<name>_f32`` with the signature
    ``(long t, long B, void *const *arrays, const long *step_strides, const long *row_strides)``
    (strides in elements: rnnsym.numeric.native binds them), and as ``<name>_sweep_f64`` and
    ``_f32``, ``(long t0, long n, long dt, long b0, long b1, arrays, step_strides, row_strides,
    double *sums)``: the ``n`` steps ``t0, t0 + dt, …`` in order, over rows ``b0 … b1 − 1`` only,
    the kernel's sums added into ``sums`` (``len(kernel.sums) × width`` doubles). Every element's
    work reads and writes its own row, so a loop whose step is one kernel runs as row blocks, each
    through every step, on as many threads as there are blocks. (The loop that calls them, and x's
    time-major copy, are C of their own: rnnsym.numeric.native.RUNTIME_C.)"""
    out = ["/* Generated by rnnsym: fused elementwise step kernels. Every name is generated. */",
           "#include <math.h>", _MVEC, _PREFETCH]
    for suffix, ctype, one, exp in (("_d", "double", "1.0", "exp"), ("_f", "float", "1.0f", "expf")):
        out.append(_HELPERS.replace("S(", f"{suffix}(").replace("REAL", ctype).replace("ONE", one).replace("EXP", exp))
    for kernel in kernels:
        out += [_function(kernel, "f64", "double", single=False), _function(kernel, "f32", "float", single=True)]
    return "\n".join(out)


def _function(kernel: Kernel, tag: str, ctype: str, single: bool) -> str:
    rows = f"{kernel.name}_rows_{tag}"
    arguments = "void *const *arrays, const long *ss, const long *rs"
    # A kernel's sums are read from its sweeps only; its step call adds them into a scratch array.
    scratch = f"double sums[{len(kernel.sums) * kernel.width}] = {{0}}; " if kernel.sums else "double *sums = 0; "
    return "\n".join([
        _rows(kernel, rows, ctype, single),
        f"void {kernel.name}_{tag}(long t, long B, {arguments}, long pt) {{ {scratch}{rows}(t, 0, B, arrays, ss, rs, sums, pt); }}",
        f"void {kernel.name}_sweep_{tag}(long t0, long n, long dt, long b0, long b1, {arguments}, double *sums) {{",
        f"    for (long i = 0; i < n; i++) {rows}(t0 + i * dt, b0, b1, arrays, ss, rs, sums, i + 1 < n ? t0 + (i + 1) * dt : -1);",
        "}"])


def _rows(kernel: Kernel, function: str, ctype: str, single: bool) -> str:
    """One step's work on rows ``b0 … b1 − 1``, its sums added into ``sums``."""
    names = {symbol: f"v{i}" for i, (symbol, _) in enumerate((*kernel.loads, *kernel.values))}
    printer = _ElementPrinter(names, single)
    lines = [f"static inline void {function}(long t, long b0, long b1, void *const *arrays, const long *ss, const long *rs, "
             "double *sums, long pt) {"]
    for k, op in enumerate(kernel.operands):
        lines.append(f"    {ctype} *a{k} = ({ctype} *)arrays[{k}] + t * ss[{k}];")
    if kernel.width == 1:  # one value per example: the loop runs over the batch
        return "\n".join(lines + _scalar_rows(kernel, names, printer, ctype) + ["}"])
    lines.append("    for (long b = b0; b < b1; b++) {")
    row = {}
    for k, op in enumerate(kernel.operands):
        row[k] = f"r{k}"
        lines.append(f"        {ctype} *r{k} = a{k}" + (f" + b * rs[{k}];" if op.batched else ";"))
    lines += _prefetch_next(kernel, ctype)
    lines += ["        #pragma omp simd", f"        for (long j = 0; j < {kernel.width}; j++) {{"]
    where = {k: ("[j]" if op.vector else "[0]") for k, op in enumerate(kernel.operands)}
    lines += _element(kernel, names, printer, ctype, row, where, "            ")
    lines += [f"            sums[{i * kernel.width} + j] += (double)({printer.doprint(e)});" for i, e in enumerate(kernel.sums)]
    return "\n".join(lines + ["        }", "    }", "}"])


def _prefetch_next(kernel: Kernel, ctype: str) -> list[str]:
    """Where ``pt`` is a step (not −1), this row of that step's stepped arrays asked of memory now:
    a loop's next step reads (and writes) rows the forward pass left far outside the cache, and
    while this step's rows and the products between the kernels run, they arrive (an LSTM of
    hidden size 128, 32 rows: its backward kernel took 45 µs a step on rows from memory, 10 on
    rows in the cache)."""
    written = {k for k, _ in kernel.stores}
    stepped = [k for k, op in enumerate(kernel.operands) if op.stepped and op.batched and op.vector]
    if not stepped:
        return []
    per_line = 64 // (4 if ctype == "float" else 8)
    lines = ["        if (pt >= 0) {"]
    for k in stepped:
        lines += [f"            const {ctype} *n{k} = ({ctype} *)arrays[{k}] + pt * ss[{k}] + b * rs[{k}];",
                  f"            for (long j = 0; j < {kernel.width}; j += {per_line}) RS_PREFETCH(n{k} + j, {int(k in written)});"]
    return lines + ["        }"]


def _scalar_rows(kernel: Kernel, names: dict, printer, ctype: str) -> list[str]:
    """A scalar kernel's rows (one element apart, a scalar network's (batch,) arrays, get a
    vectorised loop of their own), its sums as a SIMD reduction."""
    batched = [k for k, op in enumerate(kernel.operands) if op.batched]
    contiguous = " && ".join(f"rs[{k}] == 1" for k in batched) or "1"
    row = {k: f"a{k}" for k in range(len(kernel.operands))}
    sums = [f"s{i}" for i in range(len(kernel.sums))]
    adds = [f"        {s} += (double)({printer.doprint(e)});" for s, e in zip(sums, kernel.sums)]
    reduction = f" reduction(+:{', '.join(sums)})" if sums else ""
    body = _element(kernel, names, printer, ctype, row, {k: "[b]" if k in batched else "[0]" for k in row}, "        ")
    strided = _element(kernel, names, printer, ctype, row, {k: f"[b * rs[{k}]]" if k in batched else "[0]" for k in row},
                       "        ")
    return [*(f"    double {s} = 0.0;" for s in sums),
            f"    if ({contiguous}) {{", f"    #pragma omp simd{reduction}", "    for (long b = b0; b < b1; b++) {", *body, *adds,
            "    }", "    } else {", "    for (long b = b0; b < b1; b++) {", *strided, *adds, "    }", "    }",
            *(f"    sums[{i}] += {s};" for i, s in enumerate(sums))]


def _element(kernel: Kernel, names: dict, printer, ctype: str, row: dict, where: dict, indent: str) -> list[str]:
    """One element's work: every load, then the values in order, then every store."""
    lines = [f"{indent}const {ctype} {names[symbol]} = {row[k]}{where[k]};" for symbol, k in kernel.loads]
    lines += [f"{indent}const {ctype} {names[symbol]} = {printer.doprint(expr)};" for symbol, expr in kernel.values]
    return lines + [f"{indent}{row[k]}{where[k]} = {names[symbol]};" for k, symbol in kernel.stores]
