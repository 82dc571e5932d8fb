/* Vectorised float64 activations for the compiled networks, in place.
 *
 * Why this exists: NumPy has SIMD float64 exp/tanh only for AVX-512; elsewhere each element is a
 * scalar libm call (about 10 ns here), and an LSTM's forward pass is mostly five of them per hidden
 * unit and step. Compiled with -ffast-math, GCC turns these loops into calls to glibc's vector math
 * library (libmvec: _ZGVdN4v_exp, _ZGVdN4v_tanh), four doubles at a time, accurate to a few ulp.
 * An AVX2 build and a baseline (SSE2) build of each loop are chosen between once, at import.
 *
 * -ffast-math is confined to this file's compilation (not its link, so the process's floating-point
 * mode is left alone). glibc declares the vector functions only under it, -ffinite-math-only
 * included, so the loops are kept to plain arithmetic the compiler has no reason to rewrite: no
 * comparisons, min or max (those would drop NaN). The hardware then does IEEE arithmetic, so
 * exp overflowing to inf gives sigma = 0 and a NaN stays NaN; the tests check both on the build.
 *
 * Where this extension could not be built, rnnsym.numeric.printer computes the same with NumPy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define KERNELS(SUFFIX)                                                             \
    static void sigmoid_##SUFFIX(double *restrict x, Py_ssize_t n) {               \
        for (Py_ssize_t i = 0; i < n; i++)                                           \
            x[i] = 1.0 / (1.0 + exp(-x[i]));                                         \
    }                                                                                \
    static void tanh_##SUFFIX(double *restrict x, Py_ssize_t n) {                  \
        for (Py_ssize_t i = 0; i < n; i++)                                           \
            x[i] = tanh(x[i]);                                                       \
    }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC push_options
#pragma GCC target("avx2,fma")
KERNELS(avx2)
#pragma GCC pop_options
#define HAVE_AVX2_BUILD 1
#endif
KERNELS(base)

typedef void (*kernel)(double *restrict, Py_ssize_t);
static kernel sigmoid_kernel = sigmoid_base, tanh_kernel = tanh_base;
static const char *isa = "baseline";

/* f(a) in place, or f(a, out): a and out are float64 arrays of one shape whose last axis is
 * contiguous (a (batch, 4H) gate block's column slice is). Anything else is a TypeError (a
 * read-only out, a ValueError) and the caller uses NumPy. The loops run without the GIL. */
static int get(PyObject *obj, Py_buffer *view, int flags) {
    if (PyObject_GetBuffer(obj, view, flags | PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return -1;
    int ok = view->itemsize == 8 && view->format != NULL && strcmp(view->format, "d") == 0 &&
             (view->ndim == 0 || view->strides[view->ndim - 1] == 8) && view->ndim <= 8;
    if (!ok) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "expected float64 arrays whose last axis is contiguous");
        return -1;
    }
    return 0;
}

static PyObject *apply(PyObject *args, kernel f) {
    PyObject *src, *dst = NULL;
    if (!PyArg_UnpackTuple(args, "kernel", 1, 2, &src, &dst))
        return NULL;
    if (dst == NULL)
        dst = src;
    Py_buffer in, out;
    if (get(src, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    if (get(dst, &out, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    if (in.ndim != out.ndim || memcmp(in.shape, out.shape, in.ndim * sizeof(Py_ssize_t)) != 0) {
        PyBuffer_Release(&in);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_TypeError, "the input and output shapes differ");
        return NULL;
    }
    /* Contiguous arrays are one row, whatever their shape (a (batch, 1) state is not batch rows of 1). */
    int flat = PyBuffer_IsContiguous(&in, 'C') && PyBuffer_IsContiguous(&out, 'C');
    int nd = flat ? 1 : in.ndim;
    Py_ssize_t row = flat ? in.len / 8 : nd ? in.shape[nd - 1] : 1, rows = row ? (in.len / 8) / row : 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t index[8] = {0};
    for (Py_ssize_t r = 0; r < rows; r++) {
        char *a = in.buf, *b = out.buf;
        for (int k = 0; k < nd - 1; k++) {
            a += index[k] * in.strides[k];
            b += index[k] * out.strides[k];
        }
        if (a != b)
            memmove(b, a, row * 8);
        f((double *)b, row);
        for (int k = nd - 2; k >= 0 && ++index[k] == in.shape[k]; k--)
            index[k] = 0;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    Py_INCREF(dst);
    return dst;
}

/* The calling thread's floating-point control: flush-to-zero and denormals-are-zero on or off
 * (SSE's MXCSR, x86-64 only). float32 gradients that vanish over many steps reach subnormal numbers,
 * each of whose operations costs a microcode assist (an Elman of hidden size 64 over 100 steps: 72
 * against 13 ms); XLA on the CPU flushes them by default. Returns the previous control word, to
 * give back to restore_fp_mode; elsewhere nothing changes and -1 comes back. */
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define RS_FLUSH 0x8040u /* FTZ (bit 15) and DAZ (bit 6) */
static PyObject *py_flush_denormals(PyObject *self, PyObject *args) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | RS_FLUSH);
    return PyLong_FromUnsignedLong(old);
}
static PyObject *py_restore_fp_mode(PyObject *self, PyObject *args) {
    unsigned long mode;
    if (!PyArg_ParseTuple(args, "k", &mode))
        return NULL;
    _mm_setcsr((unsigned int)mode);
    Py_RETURN_NONE;
}
#else
static PyObject *py_flush_denormals(PyObject *self, PyObject *args) { return PyLong_FromLong(-1); }
static PyObject *py_restore_fp_mode(PyObject *self, PyObject *args) { Py_RETURN_NONE; }
#endif

static PyObject *py_sigmoid(PyObject *self, PyObject *args) { return apply(args, sigmoid_kernel); }
static PyObject *py_tanh(PyObject *self, PyObject *args) { return apply(args, tanh_kernel); }

static PyMethodDef methods[] = {
    {"sigmoid", py_sigmoid, METH_VARARGS, "sigmoid(a[, out]): 1 / (1 + exp(-a)), in place or into out."},
    {"tanh", py_tanh, METH_VARARGS, "tanh(a[, out]): tanh(a), in place or into out."},
    {"flush_denormals", py_flush_denormals, METH_NOARGS, "flush_denormals(): FTZ and DAZ on, this thread; the previous mode."},
    {"restore_fp_mode", py_restore_fp_mode, METH_VARARGS, "restore_fp_mode(mode): this thread's mode as flush_denormals gave it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "Vectorised float64 activations, in place.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
#ifdef HAVE_AVX2_BUILD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        sigmoid_kernel = sigmoid_avx2;
        tanh_kernel = tanh_avx2;
        isa = "avx2";
    }
#endif
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "isa", isa) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
