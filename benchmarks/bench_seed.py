"""Speed of the seed engine, with the naive approach and a hand-written pass measured in the same run.

    python benchmarks/bench_seed.py           # the full table
    python benchmarks/bench_seed.py --quick   # small sizes, seconds (run by the test suite)

Targets (issue 2): deriving every parameter at T = 4 under 0.5 s; ``import rnnsym`` under 1 s;
T = 100 derives without error, where SymPy's diff of the fully nested loss dies at T = 40.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import rnnsym as rs  # noqa: E402
from rnnsym.numeric.gradcheck import random_point  # noqa: E402


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def import_time(repeat: int) -> float:
    code = "import time; s = time.perf_counter(); import rnnsym; print(time.perf_counter() - s)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeat))


def derive_all(T: int) -> None:
    net = rs.seed_rnn(steps=T)
    for name in net.param_names:
        net.derive(name)


def derive_all_and_compile(T: int) -> None:
    net = rs.seed_rnn(steps=T)
    for name in net.param_names:
        net.derive(name)
    net.compile()


def nested_loss(T: int) -> tuple[sp.Expr, sp.Symbol]:
    """The naive approach's input: the whole unrolled loss as one nested expression."""
    w = sp.Symbol("w")
    o = sp.Integer(0)
    for t in range(1, T + 1):
        o = sp.tanh(w * sp.Symbol(f"x{t}") + sp.Symbol(f"w{t - 1}") * o + sp.Symbol(f"b{t}"))
    out = 1 / (1 + sp.exp(-(sp.Symbol(f"w{T}") * o + sp.Symbol(f"b{T + 1}"))))
    y = sp.Symbol("Y")
    return -(y * sp.log(out) + (1 - y) * sp.log(1 - out)), w


def naive_diff(T: int) -> str:
    loss, w = nested_loss(T)
    start = time.perf_counter()
    try:
        sp.diff(loss, w)
    except RecursionError:
        return f"RecursionError after {time.perf_counter() - start:.2f} s"
    return f"{time.perf_counter() - start:.3f} s"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else 5
    big_T = 20 if args.quick else 100
    naive_Ts = [5] if args.quick else [10, 20, 30, 40]
    batch = 1000 if args.quick else 10000

    rows = []
    t_import = import_time(repeat)
    rows.append(("import rnnsym", f"{t_import:.3f} s", "target < 1 s", t_import < 1.0))
    t4 = best_of(lambda: derive_all(4), repeat)
    rows.append(("derive all 11 parameters, T = 4", f"{t4:.3f} s", "target < 0.5 s", t4 < 0.5))
    t4c = best_of(lambda: derive_all_and_compile(4), repeat)
    rows.append(("derive all + compile, T = 4", f"{t4c:.3f} s", "", None))
    tb = best_of(lambda: rs.seed_rnn(steps=big_T).derive("w"), 1)
    rows.append((f"derive dL/dw, T = {big_T} ({big_T} paths)", f"{tb:.3f} s", "must not fail", True))
    tbc = best_of(lambda: rs.seed_rnn(steps=big_T).compile(), 1)
    rows.append((f"compile, T = {big_T}", f"{tbc:.3f} s", "", None))
    for T in naive_Ts:
        rows.append((f"naive: SymPy diff of nested loss wrt w, T = {T}", naive_diff(T), "reference", None))

    # Evaluation against a hand-written NumPy forward and backward pass, same data, same run.
    from test_numeric import hand_written_seed

    net = rs.seed_rnn(steps=4)
    params, x, y = random_point(net, batch=batch, seed=1)
    f = net.compile()
    ours = best_of(lambda: f.value_and_grad(params, x, y), repeat * 4)
    hand = best_of(lambda: hand_written_seed(params, x, y), repeat * 4)
    rows.append((f"value_and_grad, T = 4, batch {batch}", f"{ours * 1e3:.2f} ms", "", None))
    rows.append(("hand-written NumPy BPTT, same data", f"{hand * 1e3:.2f} ms", "reference", None))
    rows.append(("ratio rnnsym / hand-written", f"{ours / hand:.2f}x", "lower is faster", None))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>30}  note")
    for name, result, note, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{name:<{width}}  {result:>30}  {note}{mark}")
    if not args.quick and any(ok is False for *_, ok in rows):
        sys.exit(1)  # quick mode only keeps the script from rotting; its sizes are not the targets


if __name__ == "__main__":
    main()
