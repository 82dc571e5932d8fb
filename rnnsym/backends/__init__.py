"""The derived gradients on JAX and PyTorch: further emitters of the same programs.

``network.compile(backend="jax" | "torch")`` prints the network's programs — the loop form's step
programs as two scans (rnnsym.backends.scan), or the unrolled adjoint program straight through
(rnnsym.numeric.emit) — with the array-API printer (rnnsym.backends.printer) instead of NumPy's,
and runs them with the library's runtime (rnnsym.backends.runtimes). No second generator: the same
rule table, program, passes and printer as the NumPy backend.
"""
from __future__ import annotations

from ..errors import RnnsymError
from .compiled import BackendCompiled

BACKENDS = ("numpy", "jax", "torch")


def compile_backend(network, backend: str, truncate: int | None, form: str) -> BackendCompiled:
    """``form``: "loop" (two scans over time; the traced program does not grow with T) or
    "unrolled" (every step written out: the seed network, bidirectional networks, and a loss at
    every step with truncation, whose windows the scan does not express)."""
    from . import runtimes
    from .printer import ArrayPrinter
    from .scan import ScanLowering, scan_supported

    runtime = runtimes.load(backend)
    if form == "auto":
        form = "loop" if scan_supported(network, truncate) else "unrolled"
    elif form == "loop" and not scan_supported(network, truncate):
        raise RnnsymError(f"backend {backend!r} runs form 'loop' for a network unrolled from one shared cell in one "
                          "direction, without truncation of a loss at every step; use form 'unrolled'")
    if form == "loop":
        lowering = ScanLowering(network, truncate)
        source = lowering.source()
        return BackendCompiled(network, source, runtime, backend, form, lowering.gradient_keys, truncate)
    from ..numeric.emit import NumPyEmitter
    from ..program.build import build_program
    from ..program.passes import optimise, simplify

    simplified = simplify(build_program(network, truncate), network)
    emitter = NumPyEmitter(optimise(simplified), network, simplified, printer_class=ArrayPrinter)
    source = emitter.source()
    return BackendCompiled(network, source, runtime, backend, form, emitter.gradient_keys, truncate)


__all__ = ["BACKENDS", "BackendCompiled", "compile_backend"]
