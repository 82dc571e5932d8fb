"""rnnsym's backends against the peers a user would pick instead: the NumPy backend, the JAX backend
under ``jax.jit`` against a hand-written ``jit(value_and_grad(lax.scan))``, and the torch backend
against torch eager autograd of ``nn.RNN``/``nn.LSTM`` (its fused CPU kernel) and ``torch.compile``
of an eager loop over the cell.

    python benchmarks/bench_backends.py                    # the full table (a few minutes)
    python benchmarks/bench_backends.py --quick            # small sizes, seconds (run by the tests)
    python benchmarks/bench_backends.py --markdown FILE    # also write the table as Markdown

"rnnsym torch" is the torch backend as a user gets it: tensors in CPU memory computed by the
NumPy lowering of the same program; "torch ops" keeps torch's own operations on the CPU (the
lowering every other device runs), measured beside it.

The conventions and the hand-written peers are bench_speed.py's (imported from it, not copied):
its cases (sizes), each case in a fresh process, every contender's loss and gradients checked
against rnnsym's NumPy backend before anything is timed, contenders timed in turns and each given
the median of its rounds, ratios between measurements of the same run. All float64, CPU. The
load average is printed before measuring: figures taken on a busy machine say so.

Targets (the issue's): rnnsym's JAX backend within 1.1 times the hand-written JAX peer (it runs
the same kind of program), its torch backend within 1.2 times torch eager autograd of the
torch.nn module. The table also says, case by case, which contenders beat the NumPy backend. A full
run exits with status 1 where a target is missed (a quick run's sizes are not the targets').
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import bench_speed  # noqa: E402  (the cases, the timing and the hand-written peers)
from bench_speed import (CASES, build, case_sizes, checked_steps, interleaved, jax_case, torch_case,  # noqa: E402
                         torch_loop_case)

# Contenders in the order of the table's columns: (key, label).
CONTENDERS = (("numpy", "rnnsym NumPy"), ("jax", "rnnsym JAX (jit)"), ("jax_hand", "hand JAX jit(vg(scan))"),
              ("torch", "rnnsym torch"), ("torch_ops", "rnnsym torch, torch ops"), ("torch_eager", "torch eager nn.RNN/LSTM"),
              ("torch_compile", "torch.compile loop"), ("torch_no_graphs", "rnnsym torch, no CUDA graphs"))
# A GPU's own row: big enough that the chip, not the kernel launches, sets the time (GPU runs only).
GPU_CASES = {
    "lstm128_gpu": dict(net=dict(kind="lstm", steps=100, input_size=32, hidden_size=128), batch=1024,
                        quick=dict(steps=8, batch=64)),
}
# (ours, peer, limit): ours / peer must be at most limit.
TARGETS = (("jax", "jax_hand", 1.1), ("torch", "torch_eager", 1.2))


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def rnnsym_jax_case(net, params, x, y, device=None):
    """rnnsym's JAX backend under ``jax.jit``; the arrays on ``device`` (JAX's default if None)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    value_and_grad = jax.jit(net.compile(backend="jax").value_and_grad)
    jp, jx, jy = jax.device_put((params, x, y), device)

    def step():
        value, grads = jax.block_until_ready(value_and_grad(jp, jx, jy))
        return float(value), grads

    return step


def rnnsym_torch_case(net, params, x, y, device="cpu", cpu_lowering="numpy", graphs=True):
    """rnnsym's torch backend: the derived forward and backward, no autograd; CPU tensors by the
    NumPy lowering of the program (its default) or, with ``cpu_lowering="torch"``, by torch's own
    operations, the lowering every other device runs; CUDA tensors replayed from a CUDA graph
    (its default) or, with ``graphs=False``, launched kernel by kernel."""
    import torch

    torch.set_num_threads(2)
    compiled = net.compile(backend="torch").with_cpu_lowering(cpu_lowering).with_cuda_graphs(graphs)
    tp = {k: torch.tensor(v, device=device) for k, v in params.items()}
    tx, ty = torch.tensor(x, device=device), torch.tensor(y, device=device)

    def step():
        value, grads = compiled.value_and_grad(tp, tx, ty)
        return value.item(), grads  # .item() waits for the device

    return step


def makers(kind, net, params, x, y, device: str = "cpu") -> dict:
    """Each contender's maker (a step, or (step, form)); on "cuda" the torch peers' tensors are made
    on the GPU (torch.device as the default device while bench_speed's peers build them)."""
    def on_device(make):
        def made():
            if device == "cpu":
                return make()
            import torch

            with torch.device(device):
                return make()
        return made

    def jax_device():
        if device == "cpu":
            return None
        import jax

        if jax.default_backend() != "gpu":
            raise ImportError("JAX has no GPU here (pip install 'jax[cuda12]')")
        return jax.devices("gpu")[0]

    def hand_jax():
        jax_device()  # JAX's default device is the GPU where it has one: the peer runs there
        return jax_case(kind, params, x, y)

    return {"jax": lambda: rnnsym_jax_case(net, params, x, y, jax_device()),
            "jax_hand": hand_jax,
            "torch": lambda: rnnsym_torch_case(net, params, x, y, device),
            "torch_ops": lambda: rnnsym_torch_case(net, params, x, y, device, cpu_lowering="torch"),
            "torch_eager": on_device(lambda: torch_case(kind, params, x, y)),
            "torch_compile": on_device(lambda: torch_loop_case(kind, params, x, y)),
            **({} if device == "cpu" else
               {"torch_no_graphs": lambda: rnnsym_torch_case(net, params, x, y, device, graphs=False)})}


def point(net, batch: int):
    """bench_speed's point: x, y from random_point, weights scaled by 1/sqrt(fan-in) (half that for
    the recurrence) so that the dynamics stay contractive and the backends agree to rounding."""
    import numpy as np

    from rnnsym.numeric.gradcheck import random_point

    _, x, y = random_point(net, batch=batch, seed=0)
    rng = np.random.default_rng(1)
    params = {k: rng.normal(0.0, (0.5 if k.startswith("W_h") else 1.0) / math.sqrt(shape[-1] if shape else 1), size=shape)
              for k, shape in net.param_shapes.items()}
    return params, x, y


def run_case(name: str, quick: bool, device: str = "cpu", only: list[str] | None = None) -> dict:
    """One case in this (fresh) process: every contender (or those ``only`` names; the NumPy
    backend always) checked, then timed in turns."""
    kind, options, batch = case_sizes(name, quick, {**CASES, **GPU_CASES})
    net = build(kind, **options)
    f = net.compile()
    params, x, y = point(net, batch)
    reference = f.value_and_grad(params, x, y)
    contenders = {k: make for k, make in makers(kind, net, params, x, y, device).items() if not only or k in only}
    steps, notes = checked_steps(contenders, reference, quick)
    load = load_average()
    times = interleaved({"numpy": lambda: f.value_and_grad(params, x, y), **steps}, 3 if quick else 7,
                        burst=1 if quick else 3)
    return {"case": name, "steps": options["steps"], "batch": batch, "device": device, "load_before": load,
            "load_after": load_average(), "notes": notes, "times": times}


def in_subprocess(args: list[str]) -> dict:
    run = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        raise RuntimeError(f"benchmark case {args} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


# ---- the tables --------------------------------------------------------------------------------------
def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.1f}" if seconds >= 1e-3 else f"{seconds * 1e3:.3f}"


def time_grid(results: dict, contenders=CONTENDERS) -> list[list[str]]:
    """Median ms of one value_and_grad, one line per case, a contender that is absent as —."""
    contenders = [(key, label) for key, label in contenders  # a column no case has (a GPU's own) is left out
                  if any(key in r["times"] or key in r["notes"] for r in results.values())]
    rows = [["case", *(label for _, label in contenders)]]
    for name, r in results.items():
        rows.append([f"{name} (T = {r['steps']}, batch {r['batch']})",
                     *(_ms(r["times"].get(key)) for key, _ in contenders)])
    return rows


def target_lines(results: dict, quick: bool) -> list[str]:
    """The issue's targets, one line each: met, MISSED, or not measured (a peer absent)."""
    labels = dict(CONTENDERS)
    lines = []
    for name, r in results.items():
        for ours, peer, limit in TARGETS:
            t = r["times"]
            if ours not in t or peer not in t:
                absent = r["notes"].get(ours if ours not in t else peer, {}).get("absent", "absent")
                lines.append(f"{name}: {labels[ours]} / {labels[peer]}: not measured ({absent})")
                continue
            ratio = t[ours] / t[peer]
            verdict = f"target ≤ {limit} (full run)" if quick else f"target ≤ {limit}: {'met' if ratio <= limit else 'MISSED'}"
            lines.append(f"{name}: {labels[ours]} / {labels[peer]} = {ratio:.2f}  {verdict}")
    return lines


def against_numpy_lines(results: dict) -> list[str]:
    """Honestly, case by case: which contenders beat the NumPy backend, and by how much."""
    labels = dict(CONTENDERS)
    lines = []
    for name, r in results.items():
        t = r["times"]
        if "numpy" not in t:
            continue
        faster = [f"{labels[k]} {t['numpy'] / s:.2f}×" for k, s in t.items() if k != "numpy" and s < t["numpy"]]
        slower = [f"{labels[k]} {s / t['numpy']:.2f}×" for k, s in t.items() if k != "numpy" and s >= t["numpy"]]
        lines.append(f"{name}: faster than rnnsym NumPy: {', '.join(faster) or 'none'}; "
                     f"slower (times NumPy's): {', '.join(slower) or 'none'}")
    return lines


def first_call_lines(results: dict) -> list[str]:
    labels = dict(CONTENDERS)
    lines = []
    for name, r in results.items():
        parts = []
        for key, note in r["notes"].items():
            if "absent" in note:
                parts.append(f"{labels[key]}: {note['absent']}")
            else:
                form = f" ({note['form']})" if note.get("form") else ""
                parts.append(f"{labels[key]} {note['first_call_s']:.1f} s{form}")
        lines.append(f"{name}: " + "; ".join(parts))
    return lines


def report(results: dict, quick: bool, title: str, markdown: str | None, header: list[str]) -> bool:
    """Prints the tables (and writes them, after ``header``, as Markdown); True where a target was missed."""
    grid = time_grid(results)
    targets, honest, firsts = target_lines(results, quick), against_numpy_lines(results), first_call_lines(results)
    print(f"\n{title}: median ms of one value_and_grad (loss and every gradient), float64")
    bench_speed.print_grid(grid)
    for heading, lines in (("Targets", targets), ("Against the NumPy backend", honest),
                           ("First call (compile), answer checked against the NumPy backend", firsts)):
        print(f"\n{heading}:")
        for line in lines:
            print(f"  {line}")
    if markdown:
        md = [f"{line}  " for line in header] + ["", *bench_speed.markdown_grid(grid)]
        for heading, lines in (("Targets", targets), ("Against the NumPy backend", honest),
                               ("First call (compile)", firsts)):
            md += ["", f"{heading}:", "", *(f"- {line}" for line in lines)]
        bench_speed.write_markdown(markdown, md)
    return any("MISSED" in line for line in targets)


def machine_header(device: str) -> list[str]:
    import platform

    one, five, fifteen = load_average()
    return [f"date: {time.strftime('%Y-%m-%d %H:%M')}",
            f"machine: {platform.machine()}, {os.cpu_count()} cores, {device}; Python {platform.python_version()}, "
            f"{_versions()}",
            f"load average before measuring: {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)"]


def _versions() -> str:
    out = []
    for module in ("numpy", "jax", "torch"):
        try:
            out.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            out.append(f"{module} not installed")
    return ", ".join(out)


def case_names(device: str = "cpu") -> list[str]:
    """The cases a run on ``device`` measures: the CPU's; on a GPU its own row first and the rest by
    length (torch.compile of the longest loop takes longest: a run cut short keeps the others)."""
    if device == "cpu":
        return list(CASES)
    return [*GPU_CASES, *sorted(CASES, key=lambda name: CASES[name]["net"]["steps"])]


def run_cases(quick: bool, device: str = "cpu", done=None, only: list[str] | None = None) -> dict:
    """Every case: each in a fresh process for the full run (its thread pools, JIT caches and
    torch.compile's state its own), all in this one for --quick (seconds, not imports).
    ``done(name, result)`` is called as each case ends (a long run's progress)."""
    results = {}
    for name in case_names(device):
        results[name] = (run_case(name, quick, device, only) if quick else
                         in_subprocess(["--case", name, "--device", device, *(["--only", ",".join(only)] if only else [])]))
        if done:
            done(name, results[name])
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--only", type=lambda text: text.split(","), metavar="KEYS",
                        help="only these contenders, comma-separated (" + ", ".join(k for k, _ in CONTENDERS[1:]) + ")")
    args = parser.parse_args(argv)
    if args.case:  # one case, in this (fresh) process
        print(json.dumps(run_case(args.case, args.quick, args.device, args.only)))
        return
    header = machine_header("CPU")
    print("\n".join(header), flush=True)
    results = run_cases(args.quick, only=args.only)
    loads = ", ".join(f"{name} {r['load_before'][0]:.2f}" for name, r in results.items())
    header.append(f"load average (1 min) as each case began timing: {loads}")
    print(header[-1])
    missed = report(results, args.quick, "rnnsym's backends and their peers on CPU", args.markdown, header)
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
