"""Thousands of random user cells, every compiled form checked against central differences of an
independent NumPy forward pass: the long run of tests/test_random_cells.py, with the same generator
(tests/cellgen.py) driven by ``random.Random(seed)`` instead of Hypothesis.

    python benchmarks/fuzz_cells.py                    # 2000 cases from seed 0
    python benchmarks/fuzz_cells.py --cases 5000 --start 10000
    python benchmarks/fuzz_cells.py --no-extended      # without Max, Min, Abs, sign, erf, Heaviside, Piecewise
    python benchmarks/fuzz_cells.py --case 123         # the reproducer of case 123, as a script

It prints the count of cases, refused cells (a cell using Max, Min, ... refused when it is built, in one
line naming the function: allowed), skipped draws (non-finite loss) and failures; for each failure,
its case number and what failed (``--case N`` prints that case as a self-contained script); for each
class of failure, the reproducer of its smallest case. The exit status is 1 when anything failed.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import cellgen  # noqa: E402


def case_of(number: int, extended: bool) -> cellgen.Case:
    return cellgen.draw_case(cellgen.RandomChooser(number), extended=extended)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="how many cases (default 2000)")
    parser.add_argument("--start", type=int, default=0, help="the first case number, the seed of its generator")
    parser.add_argument("--no-extended", dest="extended", action="store_false",
                        help="leave out Max, Min, Abs, sign, erf, Heaviside and Piecewise")
    parser.add_argument("--case", type=int, help="print the reproducer of this one case and check it")
    args = parser.parse_args(argv)

    if args.case is not None:
        case = case_of(args.case, args.extended)
        outcome = cellgen.check_case(case)
        print(cellgen.reproducer(case, outcome))
        print(f"# {outcome.status}: " + "; ".join(f"{k}: {d}" for k, d in outcome.failures))
        return 1 if outcome.status == "failed" else 0

    start = time.perf_counter()
    counts = collections.Counter()
    smallest: dict[str, tuple[int, int]] = {}  # failure class -> (size, case number)
    per_class = collections.Counter()
    for number in range(args.start, args.start + args.cases):
        case = case_of(number, args.extended)
        try:
            outcome = cellgen.check_case(case)
        except Exception as error:  # noqa: BLE001 - a defect of the oracle itself: report, keep going
            outcome = cellgen.Outcome("failed", [("the oracle raised " + type(error).__name__, str(error)[:200])])
        counts[outcome.status] += 1
        if outcome.status != "failed":
            continue
        print(f"case {number}: " + "; ".join(f"{k}: {d}" for k, d in outcome.failures), flush=True)
        for kind in dict.fromkeys(k for k, _ in outcome.failures):
            per_class[kind] += 1
            size = case.size()
            if kind not in smallest or size < smallest[kind][0]:
                smallest[kind] = (size, number)
    elapsed = time.perf_counter() - start
    print(f"\n{args.cases} cases (seeds {args.start}…{args.start + args.cases - 1}, "
          f"extended functions {'on' if args.extended else 'off'}) in {elapsed:.0f} s: "
          f"{counts['ok']} ok, {counts['refused']} refused at construction, {counts['skipped']} skipped "
          f"(non-finite loss), {counts['failed']} failed")
    for kind, n in per_class.most_common():
        number = smallest[kind][1]
        print(f"\n## {kind}: {n} case(s); smallest is case {number} "
              f"(python benchmarks/fuzz_cells.py --case {number}{'' if args.extended else ' --no-extended'})")
        case = case_of(number, args.extended)
        print(cellgen.reproducer(case, cellgen.check_case(case)))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
