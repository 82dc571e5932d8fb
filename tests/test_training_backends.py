"""rnnsym.train and ``rnnsym train`` on the JAX and PyTorch backends: the same run as NumPy's (losses
and parameters to 1e-9 in float64), checkpoints that resume on another backend, the step traced
once under jax.jit, and one-line errors for a bad backend or device."""
import json
import subprocess
import sys

import numpy as np
import pytest

import rnnsym as rs
from rnnsym.errors import RnnsymError

pytest.importorskip("jax")
pytest.importorskip("torch")
pytest.importorskip("array_api_compat")

BACKENDS = ["jax", "torch"]


def elman():
    return rs.elman_rnn(steps=5, input_size=2, hidden_size=4, loss="mse", output_activation="identity")


def lstm():
    return rs.lstm(steps=4, input_size=1, hidden_size=3)


# network, task, settings: adam with clipping, a validation split and a last batch shorter than the others
TASKS = {
    "elman-adding": (elman, "adding", dict(optimizer="adam", lr=0.02, clip=1.0, batch_size=16)),
    "lstm-sentiment": (lstm, "sentiment", dict(optimizer="momentum", lr=0.3, batch_size=24)),
}


def run(kind: str, backend: str, **extra):
    make, task, settings = TASKS[kind]
    return rs.train(make(), task, backend=backend, **{"epochs": 3, "size": 90, "seed": 4, **settings, **extra})


def assert_same_run(a, b, tol=1e-9):
    assert a.history.keys() == b.history.keys() and a.history["epoch"] == b.history["epoch"]
    for column, values in a.history.items():
        for u, v in zip(values, b.history[column]):
            assert (u is None) == (v is None) and (u is None or abs(u - v) <= tol * max(1.0, abs(u))), column
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        assert isinstance(b.params[name], np.ndarray) and b.params[name].dtype == np.float64
        np.testing.assert_allclose(b.params[name], a.params[name], rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def numpy_runs():
    return {kind: run(kind, "numpy") for kind in TASKS}


@pytest.mark.parametrize("kind", TASKS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_on_another_backend_is_the_numpy_run(numpy_runs, kind, backend):
    result = run(kind, backend)
    assert result.backend == backend and result.device == ("cpu" if backend == "torch" else None)
    assert numpy_runs[kind].backend == "numpy" and numpy_runs[kind].device is None
    assert_same_run(numpy_runs[kind], result)
    # The run did learn something, so the comparison is of a run that moved its parameters.
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]


def test_torch_runs_on_the_device_it_is_given(numpy_runs):
    assert_same_run(numpy_runs["lstm-sentiment"], run("lstm-sentiment", "torch", device="cpu"))


@pytest.mark.parametrize("first, then", [("numpy", "jax"), ("jax", "torch"), ("torch", "numpy")])
def test_a_checkpoint_written_on_one_backend_resumes_on_another(tmp_path, numpy_runs, first, then):
    path = tmp_path / "run.json"
    half = run("elman-adding", first, epochs=2, checkpoint=path)
    assert half.epoch == 2
    resumed = run("elman-adding", then, resume=path)
    assert resumed.backend == then and resumed.epoch == 3
    assert_same_run(numpy_runs["elman-adding"], resumed)


def test_jax_traces_the_training_step_once_per_batch_shape(monkeypatch):
    """jax.jit wraps the step once for the run: 72 training sequences in batches of 16 are two
    shapes (16 and 8), so two traces over 3 epochs of 5 batches, not 15."""
    from rnnsym.backends.compiled import BackendCompiled

    traced = []
    original = BackendCompiled.value_and_grad

    def counted(self, params, x, y):
        traced.append(tuple(x.shape))
        return original(self, params, x, y)

    monkeypatch.setattr(BackendCompiled, "value_and_grad", counted)
    result = rs.train(elman(), "adding", optimizer="sgd", lr=0.05, epochs=3, size=90, batch_size=16, backend="jax")
    assert result.epoch == 3
    assert sorted(traced) == [(8, 5, 2), (16, 5, 2)]


def test_jax_keeps_float64():
    import jax.numpy as jnp

    run("elman-adding", "jax", epochs=1)
    assert jnp.asarray(np.zeros(2)).dtype == jnp.float64


@pytest.mark.parametrize("backend, device, message", [
    ("tensorflow", None, "unknown backend 'tensorflow'; allowed: numpy, jax, torch"),
    ("jax", "cpu", "device applies to backend 'torch', not 'jax'"),
    ("numpy", "cuda", "device applies to backend 'torch', not 'numpy'"),
    ("torch", "nowhere", "unknown torch device 'nowhere'"),
])
def test_a_bad_backend_or_device_is_one_line(backend, device, message):
    with pytest.raises(RnnsymError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as error:
        rs.train(rs.seed_rnn(steps=4), "sentiment", epochs=1, size=20, backend=backend, device=device)
    assert "\n" not in str(error.value)


def test_cuda_without_cuda_says_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RnnsymError, match="^CUDA is not available") as error:
        rs.train(rs.seed_rnn(steps=4), "sentiment", epochs=1, size=20, backend="torch", device="cuda")
    assert "\n" not in str(error.value)


def test_torch_on_cuda_is_the_numpy_run(numpy_runs):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    assert_same_run(numpy_runs["lstm-sentiment"], run("lstm-sentiment", "torch", device="cuda"))


# ---- the command line ---------------------------------------------------------------------------------
def rnnsym(*args, python_prefix=None):
    if python_prefix:  # the command run after a line of Python that sets the scene (a library missing)
        code = f"{python_prefix}; import runpy, sys; sys.argv = ['rnnsym', *sys.argv[1:]]; " \
               "runpy.run_module('rnnsym', run_name='__main__')"
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, "-m", "rnnsym", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_train_on_jax_from_the_command_line_is_the_numpy_run(tmp_path):
    out = tmp_path / "jax"
    cli = rnnsym("train", "--net", "seed", "--task", "sentiment", "--lr", "0.5", "--epochs", "3", "--size", "100",
                 "--backend", "jax", "--out", str(out), "--quiet")
    assert cli.returncode == 0, cli.stderr
    assert "seed network (T = 4), sentiment, sgd lr=0.5, backend jax" in cli.stdout
    model = json.loads((out / "params.json").read_text())
    assert model["backend"] == "jax" and model["device"] is None
    again = rs.train(rs.seed_rnn(steps=4), "sentiment", lr=0.5, epochs=3, size=100)
    for name, value in again.params.items():
        assert model["params"][name] == pytest.approx(float(value), rel=1e-9, abs=1e-12)
    assert rs.load_model(out).metadata["backend"] == "jax"
    # and the checkpoint goes on under torch
    more = rnnsym("train", "--resume", str(out), "--epochs", "4", "--backend", "torch", "--quiet")
    assert more.returncode == 0, more.stderr
    assert "backend torch on cpu" in more.stdout and "finished 4 epochs" in more.stdout


@pytest.mark.parametrize("args, message", [
    (["--backend", "tensorflow"], "Invalid value for '--backend': 'tensorflow' is not one of 'numpy', 'jax', 'torch'"),
    (["--device", "cuda"], "--device applies to --backend torch, not numpy"),
    (["--backend", "jax", "--device", "cpu"], "--device applies to --backend torch, not jax"),
    (["--backend", "torch", "--device", "nowhere"], "unknown torch device 'nowhere'"),
])
def test_bad_backend_options_are_one_line_and_exit_2(tmp_path, args, message):
    cli = rnnsym("train", *args, "--epochs", "1", "--size", "20", "--quiet", "--out", str(tmp_path / "o"))
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert cli.stderr.count("\n") == 1 and cli.stderr.startswith("rnnsym: error: ") and message in cli.stderr
    assert "Traceback" not in cli.stderr and not (tmp_path / "o").exists()


def test_cuda_without_cuda_is_one_line_and_exit_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cli = rnnsym("train", "--backend", "torch", "--device", "cuda", "--epochs", "1", "--size", "20", "--quiet")
    assert cli.returncode == 2 and cli.stderr.startswith("rnnsym: error: CUDA is not available")
    assert cli.stderr.count("\n") == 1


@pytest.mark.parametrize("backend, library", [("jax", "jax"), ("torch", "torch")])
def test_a_missing_library_names_its_extra_and_exits_2(backend, library):
    cli = rnnsym("train", "--backend", backend, "--epochs", "1", "--size", "20", "--quiet",
                 python_prefix=f"import sys; sys.modules[{library!r}] = None")
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert cli.stderr.count("\n") == 1 and "Traceback" not in cli.stderr
    assert f"pip install 'rnnsym[{backend}]'" in cli.stderr
