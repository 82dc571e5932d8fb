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
