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
    for row in ("σ and tanh in the compiled code", "a loop step's elementwise work", "seed network, T = 4: derive all 11 + compile",
                "scalar_elman", "elman64", "lstm32",
                "hand-written NumPy", "log-log slope", "naive: SymPy diff + lambdify(cse)",
                "torch.compile of the eager loop", "JAX jit(value_and_grad(lax.scan))", "rnnsym against its peers"):
        assert row in run.stdout


def _bench_speed():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_speed", SCRIPT.parent / "bench_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small_point(bench, kind):
    from rnnsym.numeric.gradcheck import random_point

    net = bench.build(kind, steps=4, input_size=3, hidden_size=2)
    params, x, y = random_point(net, batch=5, seed=0)
    return net.compile().value_and_grad(params, x, y), params, x, y


def test_peers_written_in_the_speed_benchmark_compute_rnnsyms_loss_and_gradients():
    import pytest

    pytest.importorskip("torch")
    bench = _bench_speed()
    for kind in ("elman", "lstm"):
        reference, params, x, y = _small_point(bench, kind)
        step, form = bench.torch_loop_case(kind, params, x, y, compiled=False)
        assert form == "eager" and bench.agrees(reference, step())
        try:
            import jax  # noqa: F401
        except ImportError:
            continue
        assert bench.agrees(reference, bench.jax_case(kind, params, x, y)())


def test_speed_benchmark_catches_a_peer_whose_gradient_is_off():
    bench = _bench_speed()
    (loss, grads), *_ = _small_point(bench, "lstm")
    off = {name: g.copy() for name, g in grads.items()}
    off["W_hf"][0, 0] += 1e-4
    assert not bench.agrees((loss, grads), (loss, off))
    assert not bench.agrees((loss, grads), (loss + 1e-6, grads))
    assert bench.agrees((loss, grads), (loss, None))


def test_speed_benchmark_names_a_missing_or_failing_peer_instead_of_stopping(monkeypatch):
    bench = _bench_speed()
    reference, params, x, y = _small_point(bench, "elman")

    def missing(*args, **kwargs):
        raise ImportError("No module named 'jax'")

    def failing(*args, **kwargs):
        raise RuntimeError("InductorError: no C compiler\nmore detail")

    monkeypatch.setattr(bench, "jax_case", missing)
    monkeypatch.setattr(bench, "torch_loop_case", failing)
    monkeypatch.setattr(bench, "torch_case", missing)
    steps, notes = bench.peer_steps("elman", params, x, y, reference, quick=False)
    assert set(steps) == {"hand"}
    assert notes["jax"] == {"absent": "not installed"} and notes["torch"] == {"absent": "not installed"}
    assert notes["torch_compile"] == {"absent": "failed: RuntimeError: InductorError: no C compiler"}


def test_speed_benchmark_contention_mode_prints_its_table():
    script = SCRIPT.parent / "bench_speed.py"
    run = subprocess.run([sys.executable, str(script), "--contention", "--quick"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        assert "threadpoolctl not installed" in run.stdout
        return
    for row in ("busy, 2 threads", "scalar_elman", "step product (32×64)·(64×64)", "lstm32", "value_and_grad",
                "value_and_grad as rnnsym runs it", "busy / quiet"):
        assert row in run.stdout


def test_speed_benchmark_float32_mode_times_rnnsym_in_float32_against_pytorch():
    script = SCRIPT.parent / "bench_speed.py"
    run = subprocess.run([sys.executable, str(script), "--float32", "--quick"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    for case in ("scalar_elman", "elman64", "lstm32"):
        line = next(line for line in run.stdout.splitlines() if line.startswith(case))
        assert "rnnsym float32" in line and "rnnsym float64" in line
