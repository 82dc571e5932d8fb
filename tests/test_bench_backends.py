"""The backends benchmark runs (in its quick mode), checks every contender before timing it, says
honestly whether each target was met, and the GPU benchmark steps aside where there is no GPU."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backends_benchmark_quick_mode_prints_every_row_target_and_the_load(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    markdown = tmp_path / "backends.md"
    run = subprocess.run([sys.executable, str(BENCHMARKS / "bench_backends.py"), "--quick", "--markdown", str(markdown)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for text in ("load average before measuring", "scalar_elman", "elman64", "lstm32", "rnnsym NumPy",
                 "rnnsym JAX (jit)", "hand JAX jit(vg(scan))", "rnnsym torch", "torch eager nn.RNN/LSTM",
                 "torch.compile loop: full run only", "Against the NumPy backend"):
        assert text in run.stdout, text
    for case in ("scalar_elman", "elman64", "lstm32"):
        assert f"{case}: rnnsym JAX (jit) / hand JAX jit(vg(scan)) = " in run.stdout
        assert f"{case}: rnnsym torch / torch eager nn.RNN/LSTM = " in run.stdout
    assert "MISSED" not in run.stdout  # a quick run's sizes are not the targets' sizes
    written = markdown.read_text()
    assert "| case | rnnsym NumPy |" in written and "load average" in written


def test_a_target_is_met_missed_or_not_measured_as_the_times_say():
    bench = _module("bench_backends")
    times = {"numpy": 1.0, "jax": 1.05, "jax_hand": 1.0, "torch": 1.3, "torch_eager": 1.0}
    results = {"lstm32": {"steps": 8, "batch": 32, "times": times, "notes": {}}}
    lines = bench.target_lines(results, quick=False)
    assert lines[0].startswith("lstm32: rnnsym JAX (jit) / hand JAX jit(vg(scan)) = 1.05") and lines[0].endswith("met")
    assert lines[1].startswith("lstm32: rnnsym torch / torch eager nn.RNN/LSTM = 1.30") and lines[1].endswith("MISSED")
    del times["torch_eager"]
    results["lstm32"]["notes"]["torch_eager"] = {"absent": "not installed"}
    assert bench.target_lines(results, quick=False)[1].endswith("not measured (not installed)")
    honest = bench.against_numpy_lines({"lstm32": {"times": {"numpy": 2.0, "jax": 1.0, "torch": 4.0}}})
    assert honest == ["lstm32: faster than rnnsym NumPy: rnnsym JAX (jit) 2.00×; slower (times NumPy's): rnnsym torch 2.00×"]


def test_a_contender_whose_gradient_is_off_stops_the_benchmark_and_a_failing_one_is_named():
    bench = _module("bench_backends")
    from rnnsym.numeric.gradcheck import random_point

    net = bench.build("lstm", steps=4, input_size=3, hidden_size=2)
    params, x, y = random_point(net, batch=5, seed=0)
    reference = net.compile().value_and_grad(params, x, y)
    loss, grads = reference
    off = {name: g.copy() for name, g in grads.items()}
    off["W_hf"][0, 0] += 1e-4

    def failing():
        raise RuntimeError("InductorError: no C compiler\nmore detail")

    steps, notes = bench.checked_steps({"right": lambda: (lambda: reference), "failing": failing}, reference, quick=False)
    assert list(steps) == ["right"] and notes["failing"]["absent"] == "failed: RuntimeError: InductorError: no C compiler"
    with pytest.raises(AssertionError, match="wrong disagrees"):
        bench.checked_steps({"wrong": lambda: (lambda: (loss, off))}, reference, quick=False)


def test_rnnsyms_jax_and_torch_contenders_give_the_numpy_backends_answer():
    bench = _module("bench_backends")
    from rnnsym.numeric.gradcheck import random_point

    for kind in ("elman", "lstm"):
        net = bench.build(kind, steps=4, input_size=3, hidden_size=2)
        params, x, y = random_point(net, batch=5, seed=0)
        reference = net.compile().value_and_grad(params, x, y)
        makers = {k: v for k, v in bench.makers(kind, net, params, x, y).items() if k in ("jax", "torch")}
        steps, notes = bench.checked_steps(makers, reference, quick=True)
        for name in ("jax", "torch"):
            assert name in steps or notes[name]["absent"] == "not installed", notes


def test_gpu_benchmark_says_no_gpu_and_exits_0_without_one():
    bench = _module("bench_gpu")
    if bench.gpu_name() is not None:
        pytest.skip("a GPU is present: run benchmarks/bench_gpu.py itself")
    run = subprocess.run([sys.executable, str(BENCHMARKS / "bench_gpu.py")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "no GPU"
