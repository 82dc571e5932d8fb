"""Long sequences: time, peak memory and output size of ``rnnsym derive`` and ``rnnsym check`` at
large T, and where the time of one derivation goes.

    python benchmarks/bench_long.py                      # T = 20000
    python benchmarks/bench_long.py --steps 5000 --timeout 60
    python benchmarks/bench_long.py --pythonpath /path/to/an/older/checkout   # the same, for another version

Targets (issue 11, item 6): ``derive w3 --steps 20000`` under 10 s and under 100 kB of output.
Each command runs in its own process; a command that has not finished after ``--timeout``
seconds is stopped and reported as such. Prints its figures; it is not a test.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time


def run(args: list[str], timeout: float, pythonpath: str | None) -> dict:
    """Run ``python -m rnnsym ARGS``: wall time, peak resident memory and bytes written to stdout."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        # From inside the other checkout, since `python -m` puts the working folder first on the path.
        process = subprocess.Popen([sys.executable, "-m", "rnnsym", *args], stdout=subprocess.PIPE,
                                   stderr=null, env=env, cwd=pythonpath or None)
        out, finished = b"", True
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
            finished = False
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time as well as wall time: on a shared, busy machine the wall time says little.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "bytes": len(out), "finished": finished, "rc": process.returncode}


def peak_memory_mb(args: list[str], timeout: float, pythonpath: str | None) -> float | None:
    """Peak resident memory of one more run of the command (Linux: getrusage of the child)."""
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.run([sys.executable, '-m', 'rnnsym', *sys.argv[1:]], stdout=subprocess.DEVNULL,"
            " stderr=subprocess.DEVNULL, timeout=%r)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n" % timeout)
    try:
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                              timeout=timeout + 30, cwd=pythonpath or None)
        return int(done.stdout.strip()) / 1024 if done.returncode == 0 and done.stdout.strip() else None
    except (subprocess.TimeoutExpired, ValueError):
        return None


def phases(steps: int) -> None:
    """Where one derivation's time goes, in this process (this checkout's rnnsym)."""
    import rnnsym as rs

    t0 = time.perf_counter()
    net = rs.seed_rnn(steps=steps)
    t1 = time.perf_counter()
    for name in ("w3", "w"):
        t2 = time.perf_counter()
        d = net.derive(name)
        t3 = time.perf_counter()
        text = d.text()
        t4 = time.perf_counter()
        print(f"  {name}: build the network {t1 - t0:.2f} s (once), derive {t3 - t2:.2f} s, "
              f"text {t4 - t3:.3f} s, {len(text.encode())} bytes, "
              f"{sum(len(s.equations) for s in d.steps)} equations in its steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a command is stopped")
    parser.add_argument("--pythonpath", help="run the commands against the rnnsym in this folder")
    parser.add_argument("--no-check", action="store_true", help="skip `rnnsym check` (it may not finish)")
    options = parser.parse_args()
    T = options.steps
    commands = [["derive", "w3", "--steps", str(T)], ["derive", "w", "--steps", str(T)]]
    if not options.no_check:
        commands.append(["check", "--steps", str(T)])
    print(f"rnnsym at T = {T} ({options.pythonpath or 'this checkout'}); timeout {options.timeout:.0f} s")
    for args in commands:
        result = run(args, options.timeout, options.pythonpath)
        memory = peak_memory_mb(args, options.timeout, options.pythonpath) if result["finished"] else None
        status = (f"{result['wall']:.1f} s ({result['cpu']:.1f} s of CPU), {result['bytes'] / 1000:.1f} kB of output"
                  + (f", peak {memory:.0f} MB" if memory else "") if result["finished"]
                  else f"not finished after {options.timeout:.0f} s ({result['bytes'] / 1000:.1f} kB written)")
        print(f"  rnnsym {' '.join(args)}: {status}")
    if not options.pythonpath:
        print("Phases, in this process:")
        phases(T)


if __name__ == "__main__":
    main()
