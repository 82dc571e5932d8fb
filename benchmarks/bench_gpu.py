"""bench_backends.py's rows on a CUDA GPU: rnnsym's torch backend against torch eager autograd of
``nn.RNN``/``nn.LSTM`` (cuDNN) and ``torch.compile`` of the eager loop, rnnsym's JAX backend under
``jax.jit`` against the hand-written ``jit(value_and_grad(lax.scan))``; rnnsym's NumPy backend (on
the CPU) for reference, and as the answer every contender is checked against before timing.

    python benchmarks/bench_gpu.py                    # prints "no GPU" and exits 0 without one
    python benchmarks/bench_gpu.py --markdown FILE
    python benchmarks/bench_gpu.py --only torch,torch_no_graphs,torch_eager   # some contenders

Same cases, timing and targets as bench_backends.py, float64, and one row of the GPU's own
(``GPU_CASES``: LSTM H=128, batch 1024) large enough that the chip, not kernel launches, sets the time. JAX takes the GPU where its CUDA
build is installed (``pip install 'jax[cuda12]'``); with a CPU-only JAX its rows say so.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import bench_backends  # noqa: E402


def gpu_name() -> str | None:
    """The CUDA GPU's name, or None without one (or without a CUDA build of PyTorch or JAX)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import jax

        gpus = jax.devices("gpu")
        return gpus[0].device_kind if gpus else None
    except (ImportError, RuntimeError):  # RuntimeError: JAX has no GPU backend
        return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--only", type=lambda text: text.split(","), metavar="KEYS",
                        help="only these contenders, comma-separated (as bench_backends.py --only)")
    args = parser.parse_args(argv)
    name = gpu_name()
    if name is None:
        print("no GPU")
        return
    # JAX would take 75% of the GPU's memory when it starts, leaving PyTorch's rows little.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    header = bench_backends.machine_header(f"GPU: {name}")
    print("\n".join(header), flush=True)
    def done(case, result):  # each case as it ends: a run cut short still shows what it measured
        print(json.dumps(result), flush=True)

    results = bench_backends.run_cases(quick=False, device="cuda", done=done, only=args.only)
    missed = bench_backends.report(results, False, f"rnnsym's backends and their peers on {name}", args.markdown,
                                   header)
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
