"""The benchmark script runs (in its quick mode), so it cannot rot."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_seed.py"


def test_benchmark_quick_mode_prints_its_table():
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for row in ("import rnnsym", "derive all 11 parameters, T = 4", "naive: SymPy diff", "ratio rnnsym / hand-written"):
        assert row in run.stdout


def test_speed_benchmark_quick_mode_prints_every_measure():
    script = SCRIPT.parent / "bench_speed.py"
    run = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    for row in ("σ and tanh in the compiled code", "seed network, T = 4: derive all 11 + compile",
                "scalar_elman", "elman64", "lstm32",
                "hand-written NumPy", "log-log slope", "naive: SymPy diff + lambdify(cse)"):
        assert row in run.stdout
