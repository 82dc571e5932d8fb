"""Compiled step kernels (rnnsym.numeric.kernel_c), built at first use and cached, with ctypes.

The C of a network's kernels is compiled with the system's C compiler into a shared library kept in
a cache folder under its source's hash, so a network built again (in this process or another) loads
it at once. Where there is no compiler, the build fails, or ``RNNSYM_NATIVE=0`` is set, ``load``
gives None and the network is compiled to NumPy alone, with the same results.

Only generated source is compiled: kernel and variable names are the compiler's own, never a user's.
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile
import threading
from pathlib import Path

import numpy as np

from . import step_loop, time_major
from .fp_mode import flush_denormals
from .kernel_c import Kernel, c_source

BUILD = "512-bit vectors where AVX-512"  # part of a build's cache key: changed with _compile's flags
_loaded: dict[str, ctypes.CDLL | None] = {}  # by source: built or loaded once per process
last_failure: str | None = None  # why the last build gave None (for `rnnsym info` and the tests)


def enabled() -> bool:
    return os.environ.get("RNNSYM_NATIVE", "1") != "0"


class Library:
    """A loaded build of some kernels: ``fused(name)`` is the kernel's callable pair, by precision."""

    def __init__(self, cdll: ctypes.CDLL, kernels: list[Kernel], runtime: ctypes.CDLL):
        self._cdll, self._runtime = cdll, runtime
        self.kernels = {k.name: FusedKernel(k, cdll) for k in kernels}

    product = staticmethod(step_loop.product)

    def time_major(self, out: np.ndarray, x: np.ndarray, blocks: list[tuple[int, int]]) -> bool | None:
        """x copied time-major into ``out`` and checked finite, its row ``blocks`` on the cores at
        once (rnnsym.numeric.time_major)."""
        return time_major.copy_checked(self._runtime, out, x, blocks, for_each_block)

    def steps(self, t0: int, n: int, dt: int, *ops) -> None:
        """A loop of products and kernels' steps in one C call (rnnsym.numeric.step_loop)."""
        step_loop.run(self._runtime, t0, n, dt, *ops)


class FusedKernel:
    """One kernel of a library; ``bind(B, arrays)`` before a loop gives the step's call ``f(t)``,
    and ``f.sweep(t0, n, dt)``: the ``n`` steps ``t0, t0 + dt, …`` at once, in row blocks over the
    cores (for a loop whose step is this kernel alone)."""

    def __init__(self, kernel: Kernel, cdll: ctypes.CDLL):
        self.kernel = kernel
        self._functions, self._sweeps = {}, {}
        pointers = [ctypes.c_void_p] * 3
        for tag, dtype in (("f64", np.float64), ("f32", np.float32)):
            f = getattr(cdll, f"{kernel.name}_{tag}")
            f.argtypes, f.restype = [ctypes.c_long] * 2 + pointers + [ctypes.c_long], None
            g = getattr(cdll, f"{kernel.name}_sweep_{tag}")
            g.argtypes, g.restype = [ctypes.c_long] * 5 + pointers + [ctypes.c_void_p], None
            self._functions[np.dtype(dtype)], self._sweeps[np.dtype(dtype)] = f, g
        self._written = {k for k, _ in kernel.stores}

    def bind(self, B: int, dtype, *arrays):
        """The step's call for these arrays (one per operand, in order, of ``dtype``): their
        addresses and strides are taken once, here. An input in another layout is copied first; an
        output must already be in the kernel's layout (the loop allocates them)."""
        dtype = np.dtype(dtype)
        f = self._functions[dtype]
        n = len(arrays)
        kept, pointers, steps, rows = [], (ctypes.c_void_p * n)(), (ctypes.c_long * n)(), (ctypes.c_long * n)()
        for k, (op, a) in enumerate(zip(self.kernel.operands, arrays)):
            a = self._laid_out(k, op, a, dtype, B)
            kept.append(a)
            pointers[k] = a.ctypes.data
            steps[k] = a.strides[0] // a.itemsize if op.stepped else 0
            rows[k] = a.strides[int(op.stepped)] // a.itemsize if op.batched else 0
        kept += [pointers, steps, rows]
        p, s, r = ctypes.addressof(pointers), ctypes.addressof(steps), ctypes.addressof(rows)

        def step(t, _kept=kept):
            f(t, B, p, s, r, -1)

        def sweep(t0: int, n: int, dt: int, _kept=kept, g=self._sweeps[dtype], width=self.kernel.width):
            blocks = row_blocks(B, n)
            count = len(self.kernel.sums)
            sums = np.zeros((len(blocks), count * width)) if count else None

            def run(i: int) -> None:  # ctypes lets go of the GIL for the call: blocks run at once
                with flush_denormals(dtype):  # on this block's thread (rnnsym.numeric.fp_mode)
                    g(t0, n, dt, *blocks[i], p, s, r, None if sums is None else sums[i].ctypes.data)
            for_each_block(run, len(blocks))
            # Summed in the blocks' order, which depends on B and n only: the same numbers on any
            # number of threads.
            return None if sums is None else sums.sum(axis=0).reshape(count, width).astype(dtype)
        step.sweep, step.dtype = sweep, dtype
        step.c_call = (ctypes.cast(f, ctypes.c_void_p).value, B, p, s, r)  # for rnnsym.numeric.step_loop
        return step

    def _laid_out(self, k: int, op, a, dtype, B: int) -> np.ndarray:
        """``a`` as the kernel reads it: of ``dtype``, its element axis contiguous."""
        a = np.asarray(a) if k in self._written else np.asarray(a, dtype=dtype)
        lead = int(op.stepped) + int(op.batched)
        expected = (B,) if op.batched else ()
        shape_ok = a.dtype == dtype and a.shape[int(op.stepped):lead] == expected and (
            a.ndim == lead + 1 if op.vector else math.prod(a.shape[lead:]) == 1)
        contiguous = all(a.strides[i] == a.itemsize for i in range(lead, a.ndim))
        if shape_ok and (contiguous or a.size == 0):
            return a
        if k in self._written:  # the loop's own arrays: a wrong layout is rnnsym's bug, not the user's
            raise AssertionError(f"kernel {self.kernel.name}: output {op.array} has shape {a.shape}, strides {a.strides}")
        if not shape_ok:
            raise AssertionError(f"kernel {self.kernel.name}: input {op.array} has shape {a.shape}")
        return np.ascontiguousarray(a)


# A sweep's row blocks have at least this many elements' work each (below it, handing a block to
# a thread costs more than it saves), and there are at most MAX_BLOCKS of them.
MIN_BLOCK_WORK = 1_000_000
MAX_BLOCKS = 64


def row_blocks(B: int, n: int) -> list[tuple[int, int]]:
    """``[(b0, b1), …]``: the rows of an ``n``-step sweep over ``B`` rows in blocks of whole
    vectors (16 rows). They depend on ``B`` and ``n`` alone, so a result summed over them is the
    same on any number of threads; many blocks a core let a core another process slows take fewer."""
    size = max(-(-MIN_BLOCK_WORK // max(n, 1)), -(-B // MAX_BLOCKS))
    size = -(-size // 16) * 16
    return [(b, min(b + size, B)) for b in range(0, B, size)] if size < B else [(0, B)]


_here = threading.local()


class serial_blocks:
    """``with serial_blocks():`` this thread's blocks run in order, here (a thread that is itself
    one of several running at once: rnnsym.numeric.batch_split)."""

    def __enter__(self):
        self.saved, _here.serial = getattr(_here, "serial", False), True
        return self

    def __exit__(self, *exc):
        _here.serial = self.saved
        return False


def for_each_block(run, count: int) -> None:
    """``run(i)`` for each block ``i``: on the cores at once where this call may use more than one
    (:func:`rnnsym.numeric.threads.cores`), else in order, here."""
    from .threads import cores

    if count > 1 and cores() > 1 and not getattr(_here, "serial", False):
        list(thread_pool().map(run, range(count)))
    else:
        for i in range(count):
            run(i)


_executors: dict = {}
_executors_lock = threading.Lock()


def thread_pool(kind: str = "block"):
    """The process's thread pool for ``kind`` of work, a thread a core: row blocks, or the parts of
    a batch (rnnsym.numeric.batch_split), which run blocks of their own in order, never in a pool."""
    with _executors_lock:
        if kind not in _executors:
            from concurrent.futures import ThreadPoolExecutor

            _executors[kind] = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix=f"rnnsym-{kind}")
        return _executors[kind]


def in_use(compiled) -> str:
    """What runs a compiled network's loop step: "fused C kernels" or why NumPy does."""
    if "_native.kernels" in getattr(compiled, "source", ""):
        return "fused C kernels"
    if not enabled():
        return "NumPy (RNNSYM_NATIVE=0)"
    return f"NumPy ({last_failure})" if last_failure else "NumPy"


def load(kernels: list[Kernel]) -> Library | None:
    """The kernels compiled and loaded (cached by their source), or None where they cannot be."""
    global last_failure
    if not kernels or not enabled():
        return None
    runtime = _runtime()
    if runtime is None:
        return None
    source = c_source(kernels)
    key = hashlib.sha256((source + _machine() + BUILD).encode()).hexdigest()[:24]
    if key not in _loaded:
        path, last_failure = _build(source, key)
        _loaded[key] = ctypes.CDLL(str(path)) if path else None
    # The same C can serve kernels whose arrays differ in layout (stepped or not): a wrapper each.
    return Library(_loaded[key], kernels, runtime) if _loaded[key] is not None else None


RUNTIME_C = "/* Generated by rnnsym: the step loop and x time-major, for every network's kernels. */\n" + \
    "#include <math.h>\n" + step_loop.RUNNER_C + time_major.C


def _runtime() -> ctypes.CDLL | None:
    """The C every network's kernels share (rnnsym.numeric.step_loop's loop, rnnsym.numeric.
    time_major's copy), built once per machine and cached like the kernels, loaded once per process:
    half a second of compiling no network pays again."""
    global last_failure
    key = "runtime-" + hashlib.sha256((RUNTIME_C + _machine() + BUILD).encode()).hexdigest()[:24]
    if key not in _loaded:
        path, last_failure = _build(RUNTIME_C, key)
        _loaded[key] = ctypes.CDLL(str(path)) if path else None
        if _loaded[key] is not None:
            _declare(_loaded[key])
    return _loaded[key]


def _declare(cdll: ctypes.CDLL) -> None:
    cdll.rs_steps.argtypes = [ctypes.c_long] * 4 + [ctypes.POINTER(step_loop.StepOp), ctypes.c_void_p, ctypes.c_long]
    cdll.rs_steps.restype = None
    cdll.rs_own_products.argtypes, cdll.rs_own_products.restype = [], ctypes.c_long
    time_major.declare(cdll)


def _machine() -> str:
    """What a build depends on beyond its source: the compiler flags are for this CPU."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    return platform.machine() + platform.system() + flags


def _cache_dirs() -> list[Path]:
    home = os.environ.get("RNNSYM_CACHE") or os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    # Per user: a shared /tmp folder another user wrote is not loaded (Windows' temp folder is per user already).
    user = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    return [Path(home) / "rnnsym" / "kernels", Path(tempfile.gettempdir()) / f"rnnsym-kernels{user}"]


def _build(source: str, key: str) -> tuple[Path | None, str | None]:
    """``(the library's path, None)``, or ``(None, why not)``."""
    suffix = sysconfig.get_config_var("SHLIB_SUFFIX") or ".so"
    for folder in _cache_dirs():
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            continue
        if not _private(folder):
            continue
        path = folder / f"{key}{suffix}"
        if path.exists():
            return path, None
        return _compile(source, path)
    return None, "no private, writable cache folder for compiled kernels"


def _private(folder: Path) -> bool:
    """Whether only this user can put a library in ``folder``: one that anybody else could write
    (a /tmp folder made by someone else) would let them run code in this process."""
    if not hasattr(os, "getuid"):
        return os.access(folder, os.W_OK)
    info = folder.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022 and os.access(folder, os.W_OK)


def _compiler() -> list[str] | None:
    configured = (sysconfig.get_config_var("CC") or "").split()
    if configured and shutil.which(configured[0]):
        return configured
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else None


def _compile(source: str, path: Path) -> tuple[Path | None, str | None]:
    """Compiled into ``path`` through a temporary file beside it (replaced atomically: a process
    that builds the same kernels at the same time writes the same bytes)."""
    cc = _compiler()
    if cc is None:
        return None, "no C compiler found"
    base = ["-O3", "-fno-math-errno", "-fopenmp-simd", "-fPIC", "-shared"]
    # GCC and Clang tune recent x86 CPUs to 256-bit vectors; with AVX-512 the 512-bit ones let the
    # loops call libmvec's 8-wide tanh and exp (tanh: 2.1 against 2.9 ns an element on a Xeon of
    # 2026). The flag is refused elsewhere (Arm), and the next attempt has no such flag.
    wide = ["-mprefer-vector-width=512"] if "avx512f" in _machine() else []
    attempts = [base + ["-march=native", "-DRS_MVEC", *wide], base + ["-march=native", "-DRS_MVEC"],
                base + ["-march=native"], base]
    error = ""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        c_file, out = Path(tmp) / "kernels.c", Path(tmp) / path.name
        c_file.write_text(source)
        for flags in attempts:
            libs = ["-lmvec", "-lm"] if "-DRS_MVEC" in flags else ["-lm"]
            try:
                done = subprocess.run([*cc, *flags, str(c_file), "-o", str(out), *libs],
                                      capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as e:
                return None, f"the C compiler did not run: {e}"
            if done.returncode == 0:
                os.replace(out, path)
                return path, None
            error = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    return None, f"the C compiler failed: {error}"
