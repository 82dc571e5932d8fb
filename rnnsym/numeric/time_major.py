"""x copied time-major and checked finite in one pass.

The loop form reads x one step at a time, so every function first copies the batch-major
``(batch, T, …)`` x into a time-major ``(T, batch, …)`` array (rnnsym.numeric.loop._time_major) and
checks it finite. For the scalar Elman of T = 1000 and batch 10 000 that is 80 MB: NumPy's copy in
blocks of rows took 10.7 ms on two cores and its check a pass of its own, 4.3 more. The library's
``rs_time_major`` (C, in the runtime library every network's kernels share: rnnsym.numeric.native) copies a tile of rows ×
steps at a time, so both reads and writes stay within the cache, and checks each value as it
passes (``v − v`` is 0 for a finite v, NaN otherwise). With one value a step and AVX-512, a tile
is 8 × 8 values transposed in registers and written a cache line at a time past the cache
(streaming stores: no line read before it is overwritten): that x in 7.7 ms on one core, where
the scalar tiles took 19 (the workspace's arrays are aligned to 64 bytes for it); in float32, 8 × 8
in 256-bit registers (AVX).
"""
from __future__ import annotations

import ctypes

import numpy as np

C = r"""
/* x (B, T, I) to out (T, B, I), rows b0 … b1 − 1, in tiles; nonzero where a value is not finite. */
#include <stdint.h>
#define RS_TIME_MAJOR(NAME, REAL) \
static long NAME(const REAL *x, REAL *out, long B, long T, long I, long b0, long b1, long t0, long t1) { \
    long bad = 0; \
    for (long bt = b0; bt < b1; bt += 32) { \
        long be = bt + 32 < b1 ? bt + 32 : b1; \
        for (long tt = t0; tt < t1; tt += 64) { \
            long te = tt + 64 < t1 ? tt + 64 : t1; \
            for (long t = tt; t < te; t++) \
                for (long b = bt; b < be; b++) { \
                    const REAL *src = x + (b * T + t) * I; REAL *dst = out + (t * B + b) * I; \
                    for (long i = 0; i < I; i++) { REAL v = src[i]; dst[i] = v; bad |= (v - v != 0); } \
                } \
        } \
    } \
    return bad; \
}
RS_TIME_MAJOR(rs_tiles_f64, double)
RS_TIME_MAJOR(rs_tiles_f32, float)

/* One value a step (a scalar network's x): 8 rows × 8 steps a tile, transposed in registers, written
   past the cache where out's rows allow it (x is read once, by the forward pass, long after); the
   tiles 32 rows × 64 steps at a time (in the cache), rows b and b + 8 of a step one after the other
   (in float32 they fill one cache line). NAME's TILE(x, out, B, T, b, t, stream) copies one tile
   and says whether a value was not finite; the rows and steps left over take the plain tiles. */
#define RS_SCALAR_STEPS(NAME, TILE, PLAIN, REAL, ALIGN) \
static long NAME(const REAL *x, REAL *out, long B, long T, long b0, long b1) { \
    const int stream = (uintptr_t)out % ALIGN == 0 && B % 8 == 0 && b0 % 8 == 0; \
    const long T8 = T - T % 8, b8 = b0 + (b1 - b0) / 8 * 8; \
    long bad = 0; \
    for (long bt = b0; bt < b8; bt += 32) { \
        const long be = bt + 32 < b8 ? bt + 32 : b8; \
        for (long tt = 0; tt < T8; tt += 64) { \
            const long te = tt + 64 < T8 ? tt + 64 : T8; \
            for (long t = tt; t < te; t += 8) \
                for (long b = bt; b < be; b += 8) bad |= TILE(x, out, B, T, b, t, stream); \
        } \
    } \
    if (stream) _mm_sfence(); \
    bad |= PLAIN(x, out, B, T, 1, b8, b1, 0, T); \
    return bad | PLAIN(x, out, B, T, 1, b0, b8, T8, T); \
}

#if defined(__AVX__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
static inline long rs_transpose8_f64(const double *x, double *out, long B, long T, long b, long t, int stream) {
    const __m512i lo2 = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), hi2 = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    const __m512i lo4 = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0), hi4 = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
    __m512d r[8], c[8];
    __mmask8 nonfinite = 0;
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_loadu_pd(x + (b + i) * T + t);
        nonfinite |= _mm512_cmp_pd_mask(_mm512_sub_pd(r[i], r[i]), _mm512_setzero_pd(), _CMP_NEQ_UQ);
    }
    __m512d a0 = _mm512_unpacklo_pd(r[0], r[1]), a1 = _mm512_unpackhi_pd(r[0], r[1]);
    __m512d a2 = _mm512_unpacklo_pd(r[2], r[3]), a3 = _mm512_unpackhi_pd(r[2], r[3]);
    __m512d a4 = _mm512_unpacklo_pd(r[4], r[5]), a5 = _mm512_unpackhi_pd(r[4], r[5]);
    __m512d a6 = _mm512_unpacklo_pd(r[6], r[7]), a7 = _mm512_unpackhi_pd(r[6], r[7]);
    __m512d u0 = _mm512_permutex2var_pd(a0, lo2, a2), u1 = _mm512_permutex2var_pd(a0, hi2, a2);
    __m512d u2 = _mm512_permutex2var_pd(a1, lo2, a3), u3 = _mm512_permutex2var_pd(a1, hi2, a3);
    __m512d v0 = _mm512_permutex2var_pd(a4, lo2, a6), v1 = _mm512_permutex2var_pd(a4, hi2, a6);
    __m512d v2 = _mm512_permutex2var_pd(a5, lo2, a7), v3 = _mm512_permutex2var_pd(a5, hi2, a7);
    c[0] = _mm512_permutex2var_pd(u0, lo4, v0); c[4] = _mm512_permutex2var_pd(u0, hi4, v0);
    c[2] = _mm512_permutex2var_pd(u1, lo4, v1); c[6] = _mm512_permutex2var_pd(u1, hi4, v1);
    c[1] = _mm512_permutex2var_pd(u2, lo4, v2); c[5] = _mm512_permutex2var_pd(u2, hi4, v2);
    c[3] = _mm512_permutex2var_pd(u3, lo4, v3); c[7] = _mm512_permutex2var_pd(u3, hi4, v3);
    double *o = out + t * B + b;
    if (stream) for (int i = 0; i < 8; i++) _mm512_stream_pd(o + i * B, c[i]);
    else for (int i = 0; i < 8; i++) _mm512_storeu_pd(o + i * B, c[i]);
    return nonfinite != 0;
}
RS_SCALAR_STEPS(rs_scalar_steps_f64, rs_transpose8_f64, rs_tiles_f64, double, 64)
#endif

#if defined(__AVX__)
static inline long rs_transpose8_f32(const float *x, float *out, long B, long T, long b, long t, int stream) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 r[8], c[8];
    int nonfinite = 0;
    for (int i = 0; i < 8; i++) {
        r[i] = _mm256_loadu_ps(x + (b + i) * T + t);
        nonfinite |= _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(r[i], r[i]), zero, _CMP_NEQ_UQ));
    }
    __m256 a0 = _mm256_unpacklo_ps(r[0], r[1]), a1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 a2 = _mm256_unpacklo_ps(r[2], r[3]), a3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 a4 = _mm256_unpacklo_ps(r[4], r[5]), a5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 a6 = _mm256_unpacklo_ps(r[6], r[7]), a7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(a0, a2, 0x44), s1 = _mm256_shuffle_ps(a0, a2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(a1, a3, 0x44), s3 = _mm256_shuffle_ps(a1, a3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(a4, a6, 0x44), s5 = _mm256_shuffle_ps(a4, a6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(a5, a7, 0x44), s7 = _mm256_shuffle_ps(a5, a7, 0xEE);
    c[0] = _mm256_permute2f128_ps(s0, s4, 0x20); c[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    c[2] = _mm256_permute2f128_ps(s2, s6, 0x20); c[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    c[4] = _mm256_permute2f128_ps(s0, s4, 0x31); c[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    c[6] = _mm256_permute2f128_ps(s2, s6, 0x31); c[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
    float *o = out + t * B + b;
    if (stream) for (int i = 0; i < 8; i++) _mm256_stream_ps(o + i * B, c[i]);
    else for (int i = 0; i < 8; i++) _mm256_storeu_ps(o + i * B, c[i]);
    return nonfinite != 0;
}
RS_SCALAR_STEPS(rs_scalar_steps_f32, rs_transpose8_f32, rs_tiles_f32, float, 32)
#endif

long rs_time_major_f64(const double *x, double *out, long B, long T, long I, long b0, long b1) {
#if defined(__AVX512F__)
    if (I == 1) return rs_scalar_steps_f64(x, out, B, T, b0, b1);
#endif
    return rs_tiles_f64(x, out, B, T, I, b0, b1, 0, T);
}
long rs_time_major_f32(const float *x, float *out, long B, long T, long I, long b0, long b1) {
#if defined(__AVX__)
    if (I == 1) return rs_scalar_steps_f32(x, out, B, T, b0, b1);
#endif
    return rs_tiles_f32(x, out, B, T, I, b0, b1, 0, T);
}
"""


def declare(cdll) -> None:
    """The argument types of the library's ``rs_time_major_f64`` and ``_f32``."""
    for tag in ("f64", "f32"):
        f = getattr(cdll, f"rs_time_major_{tag}")
        f.argtypes, f.restype = [ctypes.c_void_p] * 2 + [ctypes.c_long] * 5, ctypes.c_long


def copy_checked(cdll, out: np.ndarray, x: np.ndarray, blocks: list[tuple[int, int]], for_each_block) -> bool | None:
    """``out[...] = moveaxis(x, 1, 0)``, its row ``blocks`` run by ``for_each_block``: whether
    every value is finite, or None (nothing copied) where the arrays are not laid out for it."""
    if (x.dtype != out.dtype or x.dtype not in (np.float32, np.float64) or not x.flags.c_contiguous
            or not out.flags.c_contiguous or x.ndim < 2 or out.shape != (x.shape[1], x.shape[0], *x.shape[2:])):
        return None
    f = getattr(cdll, "rs_time_major_" + ("f32" if x.dtype == np.float32 else "f64"))
    B, T, inner = x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))
    bad = [0] * len(blocks)

    def run(i: int) -> None:  # ctypes lets go of the GIL: the blocks run at once
        bad[i] = f(x.ctypes.data, out.ctypes.data, B, T, inner, *blocks[i])
    for_each_block(run, len(blocks))
    return not any(bad)
