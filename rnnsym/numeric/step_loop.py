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
    kept = []  # the weights' copies, alive through the call
    own = dtype == np.float64 and cdll.rs_own_products()
    for struct, op in zip(structs, ops):
        if not isinstance(op, BoundProduct):
            if op.dtype != dtype:
                return _in_numpy(t0, n, dt, ops)
            struct.kind, (struct.fn, struct.B, struct.arrays, struct.ss, struct.rs) = 0, op.c_call
        elif not _laid_out(struct, op, dtype, kept, (min(t0, last), max(t0, last)), own):
            return _in_numpy(t0, n, dt, ops)
    cdll.rs_steps(t0, n, dt, len(ops), structs, ctypes.c_void_p(gemm()[dtype == np.float32]), int(dtype == np.float32))


# Up to this many rows, a float64 step product is rnnsym's own (RUNNER_C's rs_product_f64, where
# built: AVX-512), its weight packed once per loop: 0.54-0.90 of OpenBLAS's time at 32 rows on the
# built-in cells' steps; from 128 rows on, BLAS's own packing pays for itself (1.0-1.1).
OWN_ROWS = 64


def _laid_out(struct: StepOp, op: BoundProduct, dtype, kept: list, span: tuple[int, int], own: bool) -> bool:
    """Whether ``op`` 's arrays can be handed to C as they are (its weight copied contiguous, or
    packed for rnnsym's own product where ``own`` and the rows are few), ``struct`` filled in if so."""
    w = np.asarray(op.w, dtype=dtype)
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
    w = _packed(w) if own and m <= OWN_ROWS else np.ascontiguousarray(w)  # one copy either way
    kept.append(w)
    struct.kind, struct.a, struct.a_step, struct.lda = 2 if w.ndim == 3 else 1, a, a_step, lda
    struct.w, struct.ldw, struct.c, struct.c_step, struct.ldc = w.ctypes.data, max(1, n), c, c_step, ldc
    struct.m, struct.n, struct.k, struct.beta = m, n, k, float(op.add)
    return True


def _packed(w: np.ndarray) -> np.ndarray:
    """``w`` (k, n) as panels of 16 columns, ``(panels, k, 16)``, the last one's missing columns 0."""
    k, n = w.shape
    panels = -(-n // 16)
    padded = np.zeros((k, panels * 16), dtype=w.dtype)
    padded[:, :n] = w
    return np.ascontiguousarray(padded.reshape(k, panels, 16).transpose(1, 0, 2))


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

RUNNER_C = r"""
/* The step loop (rnnsym.numeric.step_loop): each step's products through the BLAS NumPy uses (or,
   in float64 with AVX-512, rs_product_f64 below), its kernels through their C functions, every step
   in one call. Sizes are the ILP64 BLAS's. */
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

#if defined(__AVX512F__)
#include <immintrin.h>
/* c (rows ≤ 8, 16 columns under masks m0, m1) = a @ w (+ c where add), the sums in 16 registers
   over all of k: each step of k, two vectors of w's row and a broadcast of each row of a (the
   rows past ``rows`` read row 0 again, and are not stored). The sums are named, not an array: GCC
   kept an array of them on the stack, storing all 16 at every step of k (2.6× slower). */
#define RS_ROW(i) { const __m512d ai = _mm512_set1_pd(r##i[p]); \
                    c##i##0 = _mm512_fmadd_pd(ai, w0, c##i##0); c##i##1 = _mm512_fmadd_pd(ai, w1, c##i##1); }
static inline void rs_tile_f64(long k, const double *a, long lda, int rows, const double *w, long ldw,
                               double *c, long ldc, __mmask8 m0, __mmask8 m1, int add) {
    const double *r0 = a, *r1 = a + (rows > 1) * lda, *r2 = a + (rows > 2) * 2 * lda, *r3 = a + (rows > 3) * 3 * lda,
                 *r4 = a + (rows > 4) * 4 * lda, *r5 = a + (rows > 5) * 5 * lda, *r6 = a + (rows > 6) * 6 * lda,
                 *r7 = a + (rows > 7) * 7 * lda;
    __m512d c00 = _mm512_setzero_pd(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
            c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (long p = 0; p < k; p++) {
        const __m512d w0 = _mm512_maskz_loadu_pd(m0, w + p * ldw), w1 = _mm512_maskz_loadu_pd(m1, w + p * ldw + 8);
        RS_ROW(0) RS_ROW(1) RS_ROW(2) RS_ROW(3) RS_ROW(4) RS_ROW(5) RS_ROW(6) RS_ROW(7)
    }
    const __m512d sums[16] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71};
    for (int i = 0; i < rows; i++) {
        double *ci = c + i * ldc;
        __m512d s0 = sums[2 * i], s1 = sums[2 * i + 1];
        if (add) {
            s0 = _mm512_add_pd(_mm512_maskz_loadu_pd(m0, ci), s0);
            s1 = _mm512_add_pd(_mm512_maskz_loadu_pd(m1, ci + 8), s1);
        }
        _mm512_mask_storeu_pd(ci, m0, s0);
        _mm512_mask_storeu_pd(ci + 8, m1, s1);
    }
}

/* A step's product of few rows (kind 2): BLAS copies (packs) all of w on every call, which for a
   recurrent step (32 rows by a 256 × 256 w) is a large part of the call; here w is packed once per
   loop (rnnsym.numeric.step_loop._packed: panels of 16 columns, each k rows of 16 in a row, read
   without the cache sets that a row stride of 2 or 4 KiB would crowd) and a panel stays in the
   cache while every 8 rows of a pass it. */
static void rs_product_f64(long m, long n, long k, const double *a, long lda, const double *panels,
                           double *c, long ldc, int add) {
    for (long j = 0; j < n; j += 16) {
        const long cols = n - j < 16 ? n - j : 16;
        const __mmask8 m0 = cols >= 8 ? 0xFF : (__mmask8)((1u << cols) - 1);
        const __mmask8 m1 = cols >= 16 ? 0xFF : cols > 8 ? (__mmask8)((1u << (cols - 8)) - 1) : 0;
        const double *w = panels + j * k;  /* this panel: k rows of 16 */
        for (long i = 0; i < m; i += 8)
            rs_tile_f64(k, a + i * lda, lda, m - i < 8 ? (int)(m - i) : 8, w, 16, c + i * ldc + j, ldc, m0, m1, add);
    }
}
#endif

long rs_own_products(void) {  /* whether rs_product_f64 is built (kind 2 ops) */
#if defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}

static void rs_product(const rs_step_op *o, const char *a, char *c, void *gemm, long single) {
    if (single) {
        ((rs_sgemm_fn)gemm)(RS_ROW_MAJOR, RS_NO_TRANS, RS_NO_TRANS, o->m, o->n, o->k, 1.0f, (const float *)a,
                            o->lda, (const float *)o->w, o->ldw, (float)o->beta, (float *)c, o->ldc);
        return;
    }
#if defined(__AVX512F__)
    if (o->kind == 2) {
        rs_product_f64(o->m, o->n, o->k, (const double *)a, o->lda, (const double *)o->w, (double *)c, o->ldc,
                       o->beta != 0.0);
        return;
    }
#endif
    ((rs_dgemm_fn)gemm)(RS_ROW_MAJOR, RS_NO_TRANS, RS_NO_TRANS, o->m, o->n, o->k, 1.0, (const double *)a,
                        o->lda, (const double *)o->w, o->ldw, o->beta, (double *)c, o->ldc);
}

void rs_steps(long t0, long n, long dt, long nops, const rs_step_op *ops, void *gemm, long single) {
    for (long i = 0; i < n; i++) {
        long t = t0 + i * dt;
        for (long j = 0; j < nops; j++) {
            const rs_step_op *o = ops + j;
            if (o->kind == 0)  /* the next step's rows asked of memory as it goes */
                ((rs_kernel_fn)o->fn)(t, o->B, o->arrays, o->ss, o->rs, i + 1 < n ? t + dt : -1);
            else
                rs_product(o, o->a + t * o->a_step, o->c + t * o->c_step, gemm, single);
        }
    }
}
"""
