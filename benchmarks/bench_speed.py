"""Scale and speed: rnnsym against a hand-written NumPy BPTT, the naive SymPy approach and PyTorch.

    python benchmarks/bench_speed.py                      # the full table (a few minutes)
    python benchmarks/bench_speed.py --quick              # small sizes, seconds (run by the tests)
    python benchmarks/bench_speed.py --markdown docs/benchmarks.md

Every case runs in a fresh subprocess, so its peak memory (the process's maximum resident set,
Python, SymPy and NumPy included) is its own. All numbers are float64, batch on the leading
axis, many-to-one with a sigmoid output and binary cross-entropy; times are the best of several
runs. "build + compile" is unrolling the network and compiling it (the cell's step is
differentiated once inside); ratios compare measurements made in the same run.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

# name: (network options, batch, targets) — the targets.
CASES = {
    "scalar_elman": dict(net=dict(kind="elman", steps=1000), batch=10_000,
                         quick=dict(steps=60, batch=500), compile_limit=3.0, memory_limit=500,
                         hand_limit=1.2, torch_speedup=1.5),
    "elman64": dict(net=dict(kind="elman", steps=100, input_size=16, hidden_size=64), batch=256,
                    quick=dict(steps=10, batch=32), compile_limit=5.0, hand_limit=1.5),
    "lstm32": dict(net=dict(kind="lstm", steps=50, input_size=8, hidden_size=32), batch=256,
                   quick=dict(steps=8, batch=32), compile_limit=10.0, torch_speedup=1.0),
}
SLOPE_STEPS = (10, 30, 100, 300, 1000)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(kind: str, steps: int, **sizes):
    import rnnsym as rs

    return {"elman": rs.elman_rnn, "lstm": rs.lstm, "gru": rs.gru}[kind](steps=steps, **sizes)


def torch_case(kind, params, x, y):
    """The same network in PyTorch (nn.RNN / nn.LSTM + Linear + BCE with logits), float64, CPU."""
    import torch

    torch.set_num_threads(2)
    H = params["W_hh" if kind == "elman" else "W_hi"].shape[0]
    I = params["W_ih" if kind == "elman" else "W_ii"].shape[1]
    module = (torch.nn.RNN if kind == "elman" else torch.nn.LSTM)(I, H, batch_first=True).double()
    readout = torch.nn.Linear(H, 1).double()
    with torch.no_grad():
        if kind == "elman":
            module.weight_ih_l0.copy_(torch.tensor(params["W_ih"]))
            module.weight_hh_l0.copy_(torch.tensor(params["W_hh"]))
            module.bias_ih_l0.copy_(torch.tensor(params["b_ih"]))
            module.bias_hh_l0.copy_(torch.tensor(params["b_hh"]))
        else:
            import numpy as np
            for src, dst in (("W_i", "weight_ih_l0"), ("W_h", "weight_hh_l0"), ("b_i", "bias_ih_l0"), ("b_h", "bias_hh_l0")):
                getattr(module, dst).copy_(torch.tensor(np.concatenate([params[src + g] for g in "ifgo"])))
        readout.weight.copy_(torch.tensor(params["W_hy"]))
        readout.bias.copy_(torch.tensor(params["b_y"]))
    tx, ty = torch.tensor(x), torch.tensor(y).reshape(-1, 1)

    def step():
        for p in (*module.parameters(), *readout.parameters()):
            p.grad = None
        out, _ = module(tx)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(readout(out[:, -1]), ty)
        loss.backward()
        return loss.item()

    return step


def run_case(name: str, quick: bool) -> dict:
    """One case in this process: build + compile, evaluation against the references, memory."""
    import numpy as np

    from rnnsym.numeric.gradcheck import random_point

    spec = CASES[name]
    options = dict(spec["net"])
    batch = spec["batch"]
    if quick:
        options["steps"], batch = spec["quick"]["steps"], spec["quick"]["batch"]
    kind = options.pop("kind")
    result = {"case": name, "steps": options["steps"], "batch": batch, **{k: v for k, v in options.items() if k != "steps"}}
    start = time.perf_counter()
    net = build(kind, **options)
    built = time.perf_counter()
    f = net.compile()  # differentiates the cell's step once, then writes and compiles the loop
    result["compile_s"] = time.perf_counter() - start
    result["unroll_s"] = built - start
    _, x, y = random_point(net, batch=batch, seed=0)
    # Weights scaled by 1/sqrt(fan-in) (half that for the recurrence) keep the dynamics contractive,
    # so that rounding differences between implementations stay at rounding level.
    rng = np.random.default_rng(1)
    params = {k: rng.normal(0.0, (0.5 if k.startswith("W_h") else 1.0) / math.sqrt(shape[-1] if shape else 1), size=shape)
              for k, shape in net.param_shapes.items()}
    repeat = 2 if quick else 5
    result["ours_s"] = best(lambda: f.value_and_grad(params, x, y), repeat)
    loss, _ = f.value_and_grad(params, x, y)
    result["peak_mb"] = peak_mb()
    from rnnsym.numeric.printer import kernels_in_use

    result["activations"] = kernels_in_use()  # the C extension, or NumPy where it is not built
    import handwritten

    if kind == "elman":
        hand = handwritten.elman_scalar if options.get("hidden_size", 1) == 1 else handwritten.elman_matrix
    else:
        hand = handwritten.lstm
    result["hand_s"] = best(lambda: hand(params, x, y), repeat)
    assert abs(hand(params, x, y)[0] - loss) < 1e-9 * max(1.0, abs(loss))
    try:
        step = torch_case(kind, params, x, y)
    except ImportError:
        result["torch_s"] = None
    else:
        assert abs(step() - loss) < 1e-9 * max(1.0, abs(loss))
        result["torch_s"] = best(step, repeat)
    return result


def run_seed() -> dict:
    start = time.perf_counter()
    import rnnsym as rs

    begin = time.perf_counter()
    net = rs.seed_rnn(steps=4)
    for name in net.param_names:
        net.derive(name)
    derived = time.perf_counter()
    net.compile()
    end = time.perf_counter()
    return {"case": "seed4", "derive_compile_s": end - begin, "derive_s": derived - begin, "compile_s": end - derived,
            "import_s": begin - start}


def run_slope(quick: bool) -> dict:
    steps = SLOPE_STEPS[:3] if quick else SLOPE_STEPS
    build("elman", 3).compile()  # SymPy's first use of each function is slow: not part of the growth
    times = []
    for T in steps:
        start = time.perf_counter()
        build("elman", T).compile()
        times.append(time.perf_counter() - start)
    xs, ys = [math.log(T) for T in steps], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)
    return {"case": "slope", "steps": list(steps), "times": times, "slope": slope}


def run_naive(quick: bool) -> dict:
    """SymPy's diff of the fully nested scalar Elman loss, then lambdify with cse=True."""
    import numpy as np
    import sympy as sp

    rows = []
    for T in ((5, 10) if quick else (10, 20, 30, 40)):
        w_ih, w_hh, b, w_hy, b_y, Y = sp.symbols("W_ih W_hh b W_hy b_y Y")
        xs = sp.symbols(f"x1:{T + 1}")
        h = sp.Integer(0)
        for t in range(T):
            h = sp.tanh(w_ih * xs[t] + w_hh * h + b)
        z = w_hy * h + b_y
        loss = sp.log(1 + sp.exp(z)) - Y * z
        params = (w_ih, w_hh, b, w_hy, b_y)
        start = time.perf_counter()
        try:
            grads = [sp.diff(loss, p) for p in params]
            fn = sp.lambdify((*params, *xs, Y), [loss, *grads], modules="numpy", cse=True)
        except RecursionError:
            rows.append({"steps": T, "derive_s": None, "error": "RecursionError"})
            continue
        derive = time.perf_counter() - start
        rng = np.random.default_rng(0)
        cols = [rng.normal(size=1000) for _ in range(T)]
        evaluate = best(lambda: fn(0.5, 0.5, 0.1, 0.5, 0.1, *cols, 1.0), 2)
        rows.append({"steps": T, "derive_s": derive, "eval_s_batch1000": evaluate})
    return {"case": "naive", "rows": rows}


def in_subprocess(args: list[str]) -> dict:
    run = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise RuntimeError(f"benchmark case {args} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def table(results: dict, quick: bool) -> list[tuple[str, str, str]]:
    rows = [("σ and tanh in the compiled code", results["lstm32"]["activations"], "")]
    seed = results["seed4"]
    rows.append(("seed network, T = 4: derive all 11 + compile", f"{seed['derive_compile_s']:.3f} s",
                 f"derive {seed['derive_s']:.3f} s, compile {seed['compile_s']:.3f} s  "
                 + _target(seed["derive_compile_s"] < 0.5, "< 0.5 s", quick)))
    for name in CASES:
        r, spec = results[name], CASES[name]
        label = f"{name} (T = {r['steps']}, batch {r['batch']})"
        rows.append((f"{label}: build + compile", f"{r['compile_s']:.2f} s",
                     f"unroll {r['unroll_s']:.2f} s, derive the step + compile {r['compile_s'] - r['unroll_s']:.2f} s  "
                     + _target(r["compile_s"] < spec["compile_limit"], f"< {spec['compile_limit']:g} s", quick)))
        rows.append((f"{label}: value_and_grad", f"{r['ours_s'] * 1e3:.1f} ms", ""))
        if r.get("hand_s"):
            ratio = r["ours_s"] / r["hand_s"]
            goal = spec.get("hand_limit")
            rows.append((f"{label}: hand-written NumPy", f"{r['hand_s'] * 1e3:.1f} ms",
                         f"rnnsym / hand = {ratio:.2f}" + (f"  {_target(ratio <= goal, f'≤ {goal}', quick)}" if goal else "")))
        if r.get("torch_s"):
            speedup = r["torch_s"] / r["ours_s"]
            goal = spec.get("torch_speedup")
            rows.append((f"{label}: PyTorch CPU autograd", f"{r['torch_s'] * 1e3:.1f} ms",
                         f"PyTorch / rnnsym = {speedup:.2f}"
                         + (f"  {_target(speedup >= goal, f'≥ {goal}', quick)}" if goal else "")))
        elif "torch_speedup" in spec:
            rows.append((f"{label}: PyTorch CPU autograd", "not installed", ""))
        limit = spec.get("memory_limit")
        rows.append((f"{label}: peak memory (whole process)", f"{r['peak_mb']:.0f} MB",
                     _target(r["peak_mb"] < limit, f"< {limit} MB", quick) if limit else ""))
    slope = results["slope"]
    rows.append((f"build + compile, T = {', '.join(map(str, slope['steps']))}",
                 ", ".join(f"{t:.2f}" for t in slope["times"]) + " s", ""))
    rows.append(("log-log slope of build + compile against T", f"{slope['slope']:.2f}",
                 _target(slope["slope"] <= 1.1, "≤ 1.1", quick)))
    for row in results["naive"]["rows"]:
        if row["derive_s"] is None:
            rows.append((f"naive: SymPy diff + lambdify(cse), T = {row['steps']}", row["error"], ""))
        else:
            rows.append((f"naive: SymPy diff + lambdify(cse), T = {row['steps']}", f"{row['derive_s']:.2f} s",
                         f"its evaluation, batch 1000: {row['eval_s_batch1000'] * 1e3:.1f} ms"))
    return rows


def _target(ok: bool, text: str, quick: bool) -> str:
    if quick:
        return f"target {text} (full run)"
    return f"target {text}: {'met' if ok else 'MISSED'}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # one case, in this (fresh) process
        if args.case == "seed4":
            out = run_seed()
        elif args.case == "slope":
            out = run_slope(args.quick)
        elif args.case == "naive":
            out = run_naive(args.quick)
        else:
            out = run_case(args.case, args.quick)
        print(json.dumps(out))
        return
    flag = ["--quick"] if args.quick else []
    results = {name: in_subprocess(["--case", name, *flag]) for name in ("seed4", *CASES, "slope", "naive")}
    rows = table(results, args.quick)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>22}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")
    if args.markdown:
        from rnnsym.files import atomic_write_text

        lines = ["| measure | result | note |", "| --- | --- | --- |"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
        atomic_write_text(args.markdown, "\n".join(lines) + "\n")
    missed = [r for r in rows if "MISSED" in r[2]]
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
