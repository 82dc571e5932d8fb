"""A loop of products and fused kernels run in one C call: the step loop.

A loop form's step with fused kernels (rnnsym.numeric.loop_fusion) is a few lines: the recurrent
product ``h_(t−1) @ W`` into a buffer, the kernel's call, in the backward loop the kernel then
``δ_t @ W`` into the carried adjoint. Run by Python, each step costs a few microseconds of
interpreter and ctypes per line, and where parts of a batch run at once (rnnsym.numeric.batch_split)
every line takes the GIL in turn from the other part's thread: an Elman of hidden size 64 ran a part
in 12.1 ms alone and 14.9 with the other part beside it. Here the loop's lines are read back into
:class:`Product` and kernel steps, and the library's ``rs_steps`` runs every step: each product by
the BLAS NumPy uses (its ``cblas_?gemm``, found by threadpoolctl), each kernel by its C function,
without the GIL. Only lines of this grammar are read; a loop with any other line stays in Python, as
does every loop where that BLAS cannot be found.
"""
from __future__ import annotations

import ctypes
import functools
import re
from dataclasses import dataclass

import numpy as np

# ---- the loop's lines, read back -----------------------------------------------------------------

_NAME = r"[A-Za-z_]\w*"
_OPERAND = rf"{_NAME}(?:\[t\])?"
_ALIAS = re.compile(rf"({_NAME}) = ({_NAME})\[t\]")
_MM = re.compile(rf"(?:({_NAME}) = )?_mm\(({_OPERAND}), ({_NAME}), out=({_OPERAND})\)")  # a @ wᵀ
_MATMUL = re.compile(rf"numpy\.matmul\(({_OPERAND}), ({_NAME}), out=({_OPERAND})\)")  # a @ w
_ADD_MATMUL = re.compile(rf"numpy\.add\(({_OPERAND}), numpy\.matmul\(({_OPERAND}), ({_NAME})\), out=\1\)")
_KERNEL = re.compile(r"(_k\w+)\(t\)")


@dataclass(frozen=True)
class Product:
    """``out[t] = a[t] @ w`` (``out`` and ``a`` indexed by step where ``stepped`` names them, else
    the same array every step), added to what ``out`` holds where ``add``; as generated code, the
    expression ``w`` is the array or its transpose."""

    out: str
    a: str
    w: str
    stepped: str
    add: bool = False

    def code(self) -> str:
        return (f"_native.product({self.out}, {self.a}, {self.w}, stepped={self.stepped!r}"
                + (", add=True)" if self.add else ")"))


def _product(out: tuple[str, bool], a: tuple[str, bool], w: str, add: bool = False) -> Product:
    stepped = " ".join(role for role, (_, is_stepped) in (("out", out), ("a", a)) if is_stepped)
    return Product(out[0], a[0], w, stepped, add)


def read(body: list[str]) -> tuple[list, list[str]] | None:
    """The ops of a loop body (:class:`Product` s and kernel names, in order) and the lines that
    leave its names as the last step did, or None where a line is not of the grammar or no kernel
    is called (a loop without its library)."""
    ops, aliases, after = [], {}, []

    def operand(text: str) -> tuple[str, bool]:
        name, stepped = (text[:-3], True) if text.endswith("[t]") else (text, False)
        return aliases.get(name, (name, stepped))

    for line in (line.strip() for line in body):
        if m := _ALIAS.fullmatch(line):
            aliases[m.group(1)] = (m.group(2), True)
            after.append(line)
        elif m := _MM.fullmatch(line):
            ops.append(_product(operand(m.group(4)), operand(m.group(2)), f"{m.group(3)}.T"))
            if m.group(1):
                aliases[m.group(1)] = operand(m.group(4))
                after.append(f"{m.group(1)} = {m.group(4)}")
        elif m := _MATMUL.fullmatch(line):
            ops.append(_product(operand(m.group(3)), operand(m.group(1)), m.group(2)))
        elif m := _ADD_MATMUL.fullmatch(line):
            ops.append(_product(operand(m.group(1)), operand(m.group(2)), m.group(3), add=True))
        elif m := _KERNEL.fullmatch(line):
            ops.append(m.group(1))
        else:
            return None
    return (ops, after) if any(isinstance(op, str) for op in ops) else None


def loop_lines(start: int, stop: int, step: int, body: list[str]) -> list[str] | None:
    """The generated lines that run ``for t in range(start, stop, step): body`` in one C call, or
    None where the body is not of the grammar or this process's BLAS cannot be called from C."""
    read_back = read(body)
    if read_back is None or gemm() is None:
        return None
    ops, after = read_back
    steps = range(start, stop, step)
    arguments = ", ".join(op.code() if isinstance(op, Product) else op for op in ops)
    lines = [f"    _native.steps({start}, {len(steps)}, {step}, {arguments})"]
    if after:  # the loop's names as its last step leaves them, as a Python loop would
        lines += [f"    t = {steps[-1]}", *(f"    {line}" for line in after)]
    return lines


# ---- the BLAS NumPy calls, from C ------------------------------------------------------------------

@functools.cache
def gemm() -> tuple[int, int] | None:
    """The addresses of ``cblas_dgemm`` and ``cblas_sgemm`` (64-bit integers) of the OpenBLAS
    NumPy's own products use, or None where it cannot be found."""
    from .threads import _blas

    for lib in _blas():
        if getattr(lib, "internal_api", "") != "openblas" or "scipy_openblas64_" not in str(lib.filepath):
            continue
        try:
            cdll = ctypes.CDLL(lib.filepath)
            return tuple(ctypes.cast(getattr(cdll, f"scipy_cblas_{p}gemm64_"), ctypes.c_void_p).value for p in "ds")
        except (OSError, AttributeError):
            return None
    return None


class StepOp(ctypes.Structure):
    """``rs_step_op`` (RUNNER_C): a kernel's step with its bound arguments (kind 0), or a product."""

    _fields_ = [("kind", ctypes.c_long), ("fn", ctypes.c_void_p), ("B", ctypes.c_long),
                ("arrays", ctypes.c_void_p), ("ss", ctypes.c_void_p), ("rs", ctypes.c_void_p),
                ("a", ctypes.c_void_p), ("a_step", ctypes.c_long), ("lda", ctypes.c_long),
                ("w", ctypes.c_void_p), ("ldw", ctypes.c_long),
                ("c", ctypes.c_void_p), ("c_step", ctypes.c_long), ("ldc", ctypes.c_long),
                ("m", ctypes.c_long), ("n", ctypes.c_long), ("k", ctypes.c_long), ("beta", ctypes.c_double)]


# ---- at run time ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoundProduct:
    """A :class:`Product` 's arrays, as the generated code passes them."""

    out: np.ndarray
    a: np.ndarray
    w: np.ndarray
    stepped: str
    add: bool

    def row(self, role: str, t: int) -> np.ndarray:
        array = getattr(self, role)
        return array[t] if role in self.stepped.split() else array


def product(out, a, w, stepped: str = "", add: bool = False) -> BoundProduct:
    return BoundProduct(out, a, w, stepped, add)


def run(cdll, t0: int, n: int, dt: int, *ops) -> None:
    """The steps ``t0, t0 + dt, …`` (``n`` of them) of ``ops`` (:func:`product` s and kernels'
    bound steps, rnnsym.numeric.native.FusedKernel.bind), in one C call; in NumPy where an array
    is not laid out for BLAS (never one the loop allocates)."""
    dtype = np.dtype(ops[0].out.dtype if isinstance(ops[0], BoundProduct) else ops[0].dtype)
    last = t0 + (n - 1) * dt
    if dtype not in (np.float32, np.float64) or gemm() is None or n < 1:
        return _in_numpy(t0, n, dt, ops)
    structs = (StepOp * len(ops))()
    kept = []  # the weights' contiguous copies, alive through the call
    for struct, op in zip(structs, ops):
        if not isinstance(op, BoundProduct):
            if op.dtype != dtype:
                return _in_numpy(t0, n, dt, ops)
            struct.kind, (struct.fn, struct.B, struct.arrays, struct.ss, struct.rs) = 0, op.c_call
        elif not _laid_out(struct, op, dtype, kept, (min(t0, last), max(t0, last))):
            return _in_numpy(t0, n, dt, ops)
    cdll.rs_steps(t0, n, dt, len(ops), structs, ctypes.c_void_p(gemm()[dtype == np.float32]), int(dtype == np.float32))


def _laid_out(struct: StepOp, op: BoundProduct, dtype, kept: list, span: tuple[int, int]) -> bool:
    """Whether ``op`` 's arrays can be handed to BLAS as they are (its weight copied contiguous),
    ``struct`` filled in if so."""
    w = np.ascontiguousarray(op.w, dtype=dtype)
    kept.append(w)
    rows = {}
    for role in ("out", "a"):
        array, stepped = getattr(op, role), role in op.stepped.split()
        if (array.dtype != dtype or array.ndim != 2 + stepped or array.strides[-1] != dtype.itemsize
                or (stepped and not 0 <= span[0] <= span[1] < array.shape[0])):
            return False
        ld = array.strides[-2] // dtype.itemsize
        if ld < max(1, array.shape[-1]) or array.strides[-2] % dtype.itemsize:
            return False
        rows[role] = (array.ctypes.data, array.strides[0] if stepped else 0, ld, array.shape[-2:])
    (c, c_step, ldc, (m, n)), (a, a_step, lda, (m_a, k)) = rows["out"], rows["a"]
    if w.ndim != 2 or w.shape != (k, n) or m_a != m:
        return False
    struct.kind, struct.a, struct.a_step, struct.lda = 1, a, a_step, lda
    struct.w, struct.ldw, struct.c, struct.c_step, struct.ldc = w.ctypes.data, max(1, n), c, c_step, ldc
    struct.m, struct.n, struct.k, struct.beta = m, n, k, float(op.add)
    return True


def _in_numpy(t0: int, n: int, dt: int, ops) -> None:
    for t in range(t0, t0 + n * dt, dt):
        for op in ops:
            if not isinstance(op, BoundProduct):
                op(t)
            elif op.add:
                out = op.row("out", t)
                out += op.row("a", t) @ op.w
            else:
                np.matmul(op.row("a", t), op.w, out=op.row("out", t))

RUNNER_C = """
/* The step loop (rnnsym.numeric.step_loop): each step's products through the BLAS NumPy uses, its
   kernels through their C functions, every step in one call. Sizes are the ILP64 BLAS's. */
typedef struct {
    long kind; void *fn; long B; void *arrays, *ss, *rs;
    char *a; long a_step, lda; char *w; long ldw; char *c; long c_step, ldc; long m, n, k; double beta;
} rs_step_op;
typedef void (*rs_kernel_fn)(long, long, void *, void *, void *, long);
typedef void (*rs_dgemm_fn)(int, int, int, long long, long long, long long, double, const double *, long long,
                            const double *, long long, double, double *, long long);
typedef void (*rs_sgemm_fn)(int, int, int, long long, long long, long long, float, const float *, long long,
                            const float *, long long, float, float *, long long);
enum { RS_ROW_MAJOR = 101, RS_NO_TRANS = 111 };
void rs_steps(long t0, long n, long dt, long nops, const rs_step_op *ops, void *gemm, long single) {
    for (long i = 0; i < n; i++) {
        long t = t0 + i * dt;
        for (long j = 0; j < nops; j++) {
            const rs_step_op *o = ops + j;
            if (o->kind == 0) {  /* the next step's rows asked of memory as it goes */
                ((rs_kernel_fn)o->fn)(t, o->B, o->arrays, o->ss, o->rs, i + 1 < n ? t + dt : -1);
                continue;
            }
            char *a = o->a + t * o->a_step, *c = o->c + t * o->c_step;
            if (single)
                ((rs_sgemm_fn)gemm)(RS_ROW_MAJOR, RS_NO_TRANS, RS_NO_TRANS, o->m, o->n, o->k, 1.0f, (const float *)a,
                                    o->lda, (const float *)o->w, o->ldw, (float)o->beta, (float *)c, o->ldc);
            else
                ((rs_dgemm_fn)gemm)(RS_ROW_MAJOR, RS_NO_TRANS, RS_NO_TRANS, o->m, o->n, o->k, 1.0, (const double *)a,
                                    o->lda, (const double *)o->w, o->ldw, o->beta, (double *)c, o->ldc);
        }
    }
}
"""
