"""Distance from the roofline: each contender's value_and_grad against a lower bound on its time
built from this machine's peaks, measured in the same run.

    python benchmarks/roofline.py                        # every case (about 3 minutes on 2 cores)
    python benchmarks/roofline.py --quick                # tiny sizes, seconds (run by the tests)
    python benchmarks/roofline.py --cases elman256,lstm128 --rounds 9
    python benchmarks/roofline.py --compile              # torch.compile too (about 30 s per case)
    python benchmarks/roofline.py --markdown docs/benchmarks.md

The peaks (measured first, in this run):

- float64 (and, for reference, float32) matrix product GFLOP/s: NumPy's BLAS on every core, a large
  square product, the median of a few;
- memory bandwidth GB/s: a large ``np.copyto``, bytes read plus bytes written over its time;
- the fastest activation, ns per element on one core: float64 ``tanh`` by NumPy, by rnnsym's own
  compiled kernel (rnnsym.numeric.native, the C the fused step kernels are) and by JAX's ``jit``
  where installed, in a process pinned to one core; the fastest of them is the peak.

The work of one value_and_grad (forward and backward, ``work``): matrix-product FLOPs (the input
product ``2·T·B·I·G`` and the recurrent one ``2·(T−1)·B·H·G`` forward, G = H for Elman and 4H for an
LSTM; backward the input weights' gradient once more and the recurrent product twice more, for
the carried adjoint and the recurrent weights' gradient; h_0 = 0 needs no product), activation
evaluations (one tanh per hidden unit and step for Elman, five for an LSTM, none backward: their
derivatives come from the stored values) and the bytes that must move at least once (``x`` read
forward and again for its weights' gradient; the states the backward pass reads — Elman h_t, an
LSTM's four gates, c_t and tanh(c_t) — written once and read once; weights read, gradients written).
The strategy behind the count is the usual one: no product or activation computed twice.

The bound is ``max(matmul + activations, memory)``: ``flops / dgemm peak + activations × ns /
cores`` against ``bytes / bandwidth``. Products and activations run on the same cores' vector units,
so their times add; memory traffic can overlap with both (prefetching, out-of-order execution), so
it is the max against their sum. The plain max of all three would be a lower bound too, but a looser
one than any machine reaches when a case does both products and activations. A contender's
distance is its time over the bound: 1 is the machine's limit.

Contenders, all float64, CPU, timed in turns (one call each per round, rounds rotated, medians;
bench_speed.interleaved), each case in a fresh process, every answer checked against rnnsym's
NumPy backend before it is timed (bench_speed.checked_steps): rnnsym (``net.compile()``), PyTorch
``nn.RNN``/``nn.LSTM``, JAX ``jit(value_and_grad(lax.scan))`` where installed and, with ``--compile``,
``torch.compile`` of an eager loop over the cell.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import bench_speed  # noqa: E402  (the cases, the timing and the peers)
from bench_speed import build, checked_steps, interleaved, jax_case, torch_case, torch_loop_case  # noqa: E402

# bench_speed's cases and two larger rows, where products dominate: (kind, options, batch, quick).
CASES = {name: (spec["net"]["kind"], {k: v for k, v in spec["net"].items() if k != "kind"}, spec["batch"], spec["quick"])
         for name, spec in bench_speed.CASES.items()}
CASES["elman256"] = ("elman", dict(steps=200, input_size=32, hidden_size=256), 64, dict(steps=8, batch=16))
CASES["lstm128"] = ("lstm", dict(steps=200, input_size=32, hidden_size=128), 64, dict(steps=8, batch=16))
# Contenders in the order of the table's columns: (key, label).
CONTENDERS = (("rnnsym", "rnnsym"), ("torch", "PyTorch nn"), ("jax", "JAX jit"), ("torch_compile", "torch.compile"))
ACTIVATIONS_PER_UNIT = {"elman": 1, "lstm": 5}  # per hidden unit and step: tanh; σ i, f, o, tanh g and c
STORED_PER_UNIT = {"elman": 1, "lstm": 6}  # per hidden unit and step, for the backward pass
# Sizes of the peak measurements: (matrix side, copied doubles, activation elements), full and quick.
PEAK_SIZES = {False: (2048, 2**25, 2**17), True: (1024, 2**23, 2**14)}
MARKERS = ("<!-- roofline: begin -->", "<!-- roofline: end -->")


class Refused(Exception):
    """A bad option: printed as one line, exit status 2."""


# ---- the work of one value_and_grad ---------------------------------------------------------------
def work(kind: str, steps: int, batch: int, input_size: int = 1, hidden_size: int = 1, output_size: int = 1,
         itemsize: int = 8) -> dict:
    """FLOPs of the matrix products, activation evaluations and bytes moved by one value_and_grad
    of a many-to-one network (see the module's docstring for what is counted)."""
    T, B, I, H, O = steps, batch, input_size, hidden_size, output_size
    G = H * (4 if kind == "lstm" else 1)
    input_product = 2 * T * B * I * G
    recurrent = 2 * (T - 1) * B * H * G  # h_0 = 0: the first step has none
    readout = 2 * B * H * O
    # Backward: the input weights' gradient (x needs no adjoint); the recurrent weights' gradient
    # and the carried adjoint; the readout's weight gradient and the adjoint of h_T.
    flops = (input_product + recurrent + readout) + (input_product + 2 * recurrent + 2 * readout)
    activations = ACTIVATIONS_PER_UNIT[kind] * T * B * H + 2 * B * O  # the loss: an exp and a log per output
    parameters = G * (I + H + 2) + O * (H + 1)  # two biases per gate, as rnnsym and PyTorch have
    moved = (2 * T * B * I  # x: forward, and again for its weights' gradient
             + 2 * STORED_PER_UNIT[kind] * T * B * H  # stored states: written once, read once
             + 2 * parameters + B * O)  # weights read, gradients written; the targets
    return {"flops": flops, "activations": activations, "bytes": moved * itemsize}


def bound(counts: dict, peaks: dict) -> dict:
    """The case's lower bound and its terms, in seconds."""
    terms = {"matmul": counts["flops"] / (peaks["gflops64"] * 1e9),
             "activations": counts["activations"] * peaks["activation_ns"] * 1e-9 / peaks["cores"],
             "memory": counts["bytes"] / (peaks["copy_gbs"] * 1e9)}
    compute = terms["matmul"] + terms["activations"]
    return {**terms, "bound": max(compute, terms["memory"]), "by": "compute" if compute >= terms["memory"] else "memory"}


# ---- the peaks ------------------------------------------------------------------------------------
def _median_time(fn, repeat: int, calls: int = 1) -> float:
    fn()  # warm: pages touched, threads started, code compiled
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def measure_peaks(quick: bool) -> dict:
    """dgemm GFLOP/s (float64, float32) and copy GB/s on every core, here; the activation peak in a
    process pinned to one core."""
    import numpy as np

    side, copied, _ = PEAK_SIZES[quick]
    repeat = 3 if quick else 5
    rng = np.random.default_rng(0)
    peaks = {"cores": len(os.sched_getaffinity(0))}
    for dtype, key in ((np.float64, "gflops64"), (np.float32, "gflops32")):
        a = rng.normal(size=(side, side)).astype(dtype)
        out = np.empty_like(a)
        peaks[key] = 2 * side**3 / _median_time(lambda: np.matmul(a, a, out=out), repeat) / 1e9
    source = np.ones(copied)
    target = np.empty_like(source)
    peaks["copy_gbs"] = 2 * source.nbytes / _median_time(lambda: np.copyto(target, source), repeat + 2) / 1e9
    run = subprocess.run([sys.executable, __file__, "--activation-peak", *(["--quick"] if quick else [])],
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"the activation peak failed:\n{run.stderr}")
    peaks["activation_by"] = json.loads(run.stdout.strip().splitlines()[-1])
    peaks["activation_ns"] = min(peaks["activation_by"].values())
    return peaks


def activation_peak(quick: bool) -> dict[str, float]:
    """ns per element of float64 tanh on one core, by each implementation available; this process
    is pinned to one core first, so a threaded implementation cannot use a second."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import numpy as np

    n = PEAK_SIZES[quick][2]
    width = 1024
    x = np.random.default_rng(0).normal(size=(n // width, width))
    out = np.empty_like(x)
    repeat, calls = (3, 5) if quick else (7, 20)
    result = {"NumPy tanh": _median_time(lambda: np.tanh(x, out=out), repeat, calls) / x.size * 1e9}
    kernel = _rnnsym_tanh(x, out)
    if kernel is not None:
        result["rnnsym kernel tanh"] = _median_time(kernel, repeat, calls) / x.size * 1e9
    try:
        import jax
    except ImportError:
        return result
    jax.config.update("jax_enable_x64", True)
    jx = jax.numpy.asarray(x)
    tanh = jax.jit(jax.numpy.tanh)
    result["JAX jit tanh"] = _median_time(lambda: tanh(jx).block_until_ready(), repeat, calls) / x.size * 1e9
    return result


def _rnnsym_tanh(x, out):
    """rnnsym's compiled kernel computing ``out = tanh(x)`` over a (B, W) array, bound; None where
    rnnsym builds no kernels here (no C compiler, RNNSYM_NATIVE=0)."""
    import numpy as np
    import sympy as sp

    from rnnsym.numeric import native
    from rnnsym.numeric.kernel_c import Kernel, Operand

    a, result = sp.Symbol("a"), sp.Dummy("result")
    kernel = Kernel("roofline_tanh", x.shape[1], (Operand("x", False, True, True), Operand("out", False, True, True)),
                    ((a, 0),), ((result, sp.tanh(a)),), ((1, result),))
    library = native.load([kernel])
    if library is None:
        return None
    step = library.kernels["roofline_tanh"].bind(x.shape[0], np.float64, x, out)
    step(0)
    if not np.allclose(out, np.tanh(x), rtol=1e-12, atol=0):
        raise AssertionError("rnnsym's tanh kernel disagrees with NumPy's")
    return lambda: step(0)


# ---- the contenders --------------------------------------------------------------------------------
def case_sizes(name: str, quick: bool) -> tuple[str, dict, int]:
    kind, options, batch, small = CASES[name]
    options = dict(options)
    if quick:
        options["steps"], batch = small["steps"], small["batch"]
    return kind, options, batch


def run_case(name: str, quick: bool, rounds: int, with_compile: bool) -> dict:
    """One case in this process: every contender checked against rnnsym's NumPy backend, then timed
    in turns."""
    from bench_backends import point

    kind, options, batch = case_sizes(name, quick)
    net = build(kind, **options)
    start = time.perf_counter()
    f = net.compile()
    compile_s = time.perf_counter() - start
    params, x, y = point(net, batch)  # x, y from random_point(net, batch, seed=0); contractive weights
    reference = f.value_and_grad(params, x, y)
    makers = {"torch": lambda: torch_case(kind, params, x, y), "jax": lambda: jax_case(kind, params, x, y)}
    if with_compile:
        makers["torch_compile"] = lambda: torch_loop_case(kind, params, x, y)
    steps, notes = checked_steps(makers, reference, quick)
    load = os.getloadavg()[0]
    times = interleaved({"rnnsym": lambda: f.value_and_grad(params, x, y), **steps}, rounds, burst=1 if quick else 2)
    return {"case": name, "kind": kind, **options, "batch": batch, "compile_s": compile_s, "load": load,
            "times": times, "notes": notes}


def run_cases(names: list[str], quick: bool, rounds: int, with_compile: bool) -> dict:
    """Each case in a fresh process (its thread pools, JIT caches and allocations its own); a quick
    run's all in this one (seconds, not imports)."""
    if quick:
        return {name: run_case(name, quick, rounds, with_compile) for name in names}
    results = {}
    for name in names:
        args = ["--case", name, "--rounds", str(rounds), *(["--compile"] if with_compile else [])]
        run = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=1200)
        if run.returncode != 0:
            raise RuntimeError(f"case {name} failed:\n{run.stderr}")
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    return results


# ---- the tables ------------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}" if seconds >= 1e-2 else f"{seconds * 1e3:.3f}"


def _sizes(r: dict) -> str:
    return f"T={r['steps']} B={r['batch']} I={r.get('input_size', 1)} H={r.get('hidden_size', 1)}"


def peak_lines(peaks: dict) -> list[str]:
    by = ", ".join(f"{name} {ns:.2f}" for name, ns in peaks["activation_by"].items())
    return [f"cores: {peaks['cores']}",
            f"matrix product: float64 {peaks['gflops64']:.1f} GFLOP/s, float32 {peaks['gflops32']:.1f} GFLOP/s (all cores)",
            f"copy bandwidth: {peaks['copy_gbs']:.1f} GB/s (bytes read + written)",
            f"fastest activation: {peaks['activation_ns']:.2f} ns per element per core (float64 tanh, one core: {by})"]


def work_grid(results: dict, peaks: dict) -> list[list[str]]:
    rows = [["case", "sizes", "GFLOP", "activations (M)", "MB moved", "matmul ms", "activations ms", "memory ms",
             "bound ms", "bound by"]]
    for name, r in results.items():
        counts, b = r["work"], r["bound"]
        rows.append([name, _sizes(r), f"{counts['flops'] / 1e9:.3f}", f"{counts['activations'] / 1e6:.2f}",
                     f"{counts['bytes'] / 1e6:.1f}", _ms(b["matmul"]), _ms(b["activations"]), _ms(b["memory"]),
                     _ms(b["bound"]), b["by"]])
    return rows


def distance_grid(results: dict) -> list[list[str]]:
    present = [(key, label) for key, label in CONTENDERS if any(key in r["times"] for r in results.values())]
    rows = [["case", "bound ms", *(f"{label} {unit}" for _, label in present for unit in ("ms", "×"))]]
    for name, r in results.items():
        cells = []
        for key, _ in present:
            seconds = r["times"].get(key)
            cells += ["—", "—"] if seconds is None else [_ms(seconds), f"{seconds / r['bound']['bound']:.1f}"]
        rows.append([name, _ms(r["bound"]["bound"]), *cells])
    return rows


def absent_lines(results: dict) -> list[str]:
    labels = dict(CONTENDERS)
    return [f"{name}: {labels[key]}: {note['absent']}" for name, r in results.items()
            for key, note in r["notes"].items() if "absent" in note]


def write_markdown(path: str, lines: list[str]) -> None:
    """The tables between the roofline markers of ``path`` where it has them (the rest of the file
    untouched), else as the whole file."""
    from rnnsym.files import atomic_write_text

    block = [MARKERS[0], *lines, MARKERS[1]]
    target = Path(path)
    text = target.read_text() if target.exists() else ""
    if MARKERS[0] in text and MARKERS[1] in text:
        before, rest = text.split(MARKERS[0], 1)
        after = rest.split(MARKERS[1], 1)[1]
        atomic_write_text(path, before + "\n".join(block) + after)
    else:
        atomic_write_text(path, "\n".join(block) + "\n")


def header_lines(quick: bool) -> list[str]:
    """bench_backends' machine header (date, machine, versions, load), the quick run said so."""
    import bench_backends

    lines = bench_backends.machine_header("CPU")
    return [lines[0] + (" (quick sizes)" if quick else ""), *lines[1:]]


# ---- the command -----------------------------------------------------------------------------------
def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (the test suite's run)")
    parser.add_argument("--cases", help=f"comma-separated, of {', '.join(CASES)} (default: all)")
    parser.add_argument("--rounds", help="timed rounds per contender (default 7; 3 with --quick)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (about 30 s of compiling per case)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown (between the markers "
                        "'<!-- roofline: begin -->' and '<!-- roofline: end -->' where FILE has them)")
    parser.add_argument("--json", metavar="FILE", help="also write the peaks and results as JSON")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--activation-peak", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.cases.split(",") if args.cases else list(CASES)
    for name in names:
        if name not in CASES:
            raise Refused(f"--cases: no case {name!r}; the cases are {', '.join(CASES)}")
    args.names = names
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    elif args.rounds.isdigit() and int(args.rounds) >= 1:
        args.rounds = int(args.rounds)
    else:
        raise Refused(f"--rounds: {args.rounds!r} is not a whole number of at least 1")
    return args


def main(argv=None) -> None:
    try:
        args = parse(argv)
    except Refused as error:
        print(f"roofline.py: {error}", file=sys.stderr)
        sys.exit(2)
    if args.activation_peak:  # in its own process, pinned to one core
        print(json.dumps(activation_peak(args.quick)))
        return
    if args.case:  # one case, in this (fresh) process
        print(json.dumps(run_case(args.case, args.quick, args.rounds, args.compile)))
        return
    header = header_lines(args.quick)
    print("\n".join(header), flush=True)
    peaks = measure_peaks(args.quick)
    peaks_text = peak_lines(peaks)
    print("\n".join(peaks_text), flush=True)
    results = run_cases(args.names, args.quick, args.rounds, args.compile)
    for r in results.values():
        r["work"] = work(r["kind"], r["steps"], r["batch"], r.get("input_size", 1), r.get("hidden_size", 1))
        r["bound"] = bound(r["work"], peaks)
    loads = ", ".join(f"{name} {r['load']:.2f}" for name, r in results.items())
    header.append(f"load average (1 min) as each case began timing: {loads}")
    works, distances, absent = work_grid(results, peaks), distance_grid(results), absent_lines(results)
    print(header[-1])
    print("\nThe work of one value_and_grad and its lower bound, max(matmul + activations, memory):")
    bench_speed.print_grid(works)
    print(f"\nDistance from the bound: median ms of one value_and_grad, float64, {args.rounds} rounds in turns; "
          "× = ms / bound")
    bench_speed.print_grid(distances)
    for line in absent:
        print(f"  {line}")
    if args.markdown:
        md = [*(f"{line}  " for line in header + peaks_text), "", *bench_speed.markdown_grid(works), "",
              *bench_speed.markdown_grid(distances), *([""] + [f"- {line}" for line in absent] if absent else [])]
        write_markdown(args.markdown, md)
    if args.json:
        from rnnsym.files import atomic_write_text

        atomic_write_text(args.json, json.dumps({"peaks": peaks, "results": results}, indent=1))


if __name__ == "__main__":
    main()
