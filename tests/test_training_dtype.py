"""Training in float32: ``rs.train(..., dtype="float32")`` and ``rnnsym train --dtype float32`` hold
the data, parameters, gradients and optimizer state in float32 on every backend, report Python
floats, write float64 checkpoints that resume in float32, and refuse a resumed run's other dtype."""
import json
import subprocess
import sys

import numpy as np
import pytest

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.training import load_checkpoint
from rnnsym.training.backend import gradients_on


def adding_net():
    return rs.elman_rnn(steps=8, input_size=2, hidden_size=8, output_activation="identity", loss="mse")


def adam_run(dtype, backend="numpy", epochs=30):
    return rs.train(adding_net(), "adding", optimizer="adam", lr=0.01, clip=1.0, epochs=epochs, size=400, seed=3,
                    dtype=dtype, backend=backend)


def dtypes(arrays):
    return {np.asarray(value).dtype for value in arrays.values()}


def rnnsym(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rnnsym", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_a_float32_run_keeps_every_parameter_and_optimizer_slot_in_float32_and_ends_near_float64():
    single, double = adam_run("float32"), adam_run("float64")
    state = single._state
    assert dtypes(single.params) == dtypes(state["params"]) == dtypes(state["best_params"]) == {np.dtype("float32")}
    slots = state["optimizer_state"]["slots"]
    assert sorted(slots) == ["m", "v"] and all(dtypes(values) == {np.dtype("float32")} for values in slots.values())
    assert dtypes(double.params) == {np.dtype("float64")}
    assert single.config["dtype"] == "float32" and double.config["dtype"] == "float64"
    # The history is Python floats on either precision, so it prints and writes to JSON alike.
    assert all(type(v) is float for column, values in single.history.items() if column != "epoch" for v in values)
    # Same seed, same start (drawn in float64, then rounded): after 30 epochs of Adam (about 300 steps)
    # the float32 loss is within 1e-4 relative of float64's. Rounding at float32's 6e-8 per operation,
    # accumulated over the steps, measured 2e-6 here; 1e-4 leaves room for other BLAS builds, while the
    # loss itself fell 30-fold, so a float32 run that trained differently could not pass. Not equal
    # bit for bit: the run did compute in float32.
    loss32, loss64 = single.final["train_loss"], double.final["train_loss"]
    assert loss64 < double.history["train_loss"][0] / 10
    assert loss32 == pytest.approx(loss64, rel=1e-4) and loss32 != loss64


def test_the_gradients_of_a_float32_run_are_float32():
    net = adding_net()
    f = gradients_on(net, "numpy", dtype="float32")
    params = {n: np.full(s, 0.1, dtype=np.float32) for n, s in net.param_shapes.items()}
    x = np.random.default_rng(0).uniform(size=(5, 8, 2))  # float64 data: computed in float32 all the same
    loss, grads = f.value_and_grad(params, x, np.ones(5))
    assert type(loss) is float and dtypes(grads) == {np.dtype("float32")}


def test_the_optimizers_keep_each_parameter_in_its_own_precision():
    from rnnsym.training import optimizers

    w = {"w": np.array(0.5, dtype=np.float32)}  # 0-d: NumPy 1.x would promote it with a Python float
    grads, _ = optimizers.clip_grad_norm({"w": np.array(3.0, dtype=np.float32)}, 1.0)
    assert grads["w"].dtype == np.float32
    # Even from float64 slots (a state made without a dtype), the parameter and its slots stay float32.
    params, state = optimizers.step("adam", w, grads, optimizers.new_state("adam", ["w"]), lr=0.1)
    assert params["w"].dtype == state["slots"]["m"]["w"].dtype == state["slots"]["v"]["w"].dtype == np.float32
    fresh = optimizers.new_state("momentum", {"w": (2, 3)}, "float32")
    assert fresh["slots"]["velocity"]["w"].dtype == np.float32 and fresh["slots"]["velocity"]["w"].shape == (2, 3)


def test_a_bad_dtype_is_one_line_naming_the_allowed_ones():
    with pytest.raises(RnnsymError, match=r"unknown dtype 'float16'; allowed: .*float32.*float64"):
        rs.train(adding_net(), "adding", epochs=1, size=40, dtype="float16")


def test_the_command_line_trains_in_float32_and_its_checkpoint_resumes_in_float32(tmp_path):
    run = rnnsym("train", "--net", "elman", "--task", "adding", "--epochs", "2", "--dtype", "float32",
                 "--out", str(tmp_path), "--quiet")
    assert run.returncode == 0, run.stderr
    assert "float32" in run.stdout.splitlines()[0]
    saved = json.loads((tmp_path / "checkpoint.json").read_text())
    assert saved["config"]["dtype"] == "float32"
    assert load_checkpoint(tmp_path / "checkpoint.json")["config"]["dtype"] == "float32"

    resumed = rnnsym("train", "--resume", str(tmp_path), "--epochs", "4", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    # Resumed in float32: the parameters are those of an uninterrupted float32 run, exactly (the
    # checkpoint's float64 numbers hold float32 values exactly), and differ from a float64 run's.
    model = json.loads((tmp_path / "params.json").read_text())
    assert model["config"]["dtype"] == "float32" and model["epoch"] == 4
    net = rs.elman_rnn(steps=4, input_size=2, output_activation="identity", loss="mse")
    straight = rs.train(net, "adding", epochs=4, dtype="float32")
    assert all(model["params"][n] == np.asarray(v, dtype=float).tolist() for n, v in straight.params.items())
    double = rs.train(net, "adding", epochs=4)
    assert any(model["params"][n] != np.asarray(v).tolist() for n, v in double.params.items())


def test_resuming_a_float32_run_with_another_dtype_is_refused_in_one_line(tmp_path):
    run = rnnsym("train", "--net", "elman", "--task", "adding", "--epochs", "1", "--dtype", "float32",
                 "--out", str(tmp_path), "--quiet")
    assert run.returncode == 0, run.stderr
    refused = rnnsym("train", "--resume", str(tmp_path), "--epochs", "2", "--dtype", "float64")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == ("rnnsym: error: --dtype float64 does not match the resumed run's dtype "
                                      "float32; drop --dtype to continue in float32")
    # The same in Python: a resumed run keeps its settings, dtype among them.
    net = rs.elman_rnn(steps=4, input_size=2, output_activation="identity", loss="mse")
    with pytest.raises(RnnsymError, match=r"^resume: dtype is 'float64' here but 'float32' in the checkpoint;"):
        rs.train(net, "adding", epochs=2, resume=tmp_path / "checkpoint.json")
    bad = rnnsym("train", "--net", "elman", "--task", "adding", "--dtype", "float16")
    assert bad.returncode == 2 and "Invalid value for '--dtype': 'float16' is not one of 'float32', 'float64'" \
        in bad.stderr


def test_a_checkpoint_written_before_dtype_was_a_setting_resumes_in_float64(tmp_path):
    net = rs.elman_rnn(steps=4, input_size=2, output_activation="identity", loss="mse")
    path = tmp_path / "checkpoint.json"
    rs.train(net, "adding", epochs=1, size=60, checkpoint=path)
    document = json.loads(path.read_text())
    del document["config"]["dtype"]
    path.write_text(json.dumps(document))
    resumed = rs.train(net, "adding", epochs=2, size=60, resume=path)
    assert resumed.config["dtype"] == "float64" and dtypes(resumed.params) == {np.dtype("float64")}


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_jax_and_torch_backends_train_in_float32(backend):
    pytest.importorskip(backend)
    pytest.importorskip("array_api_compat")
    result = adam_run("float32", backend=backend, epochs=2)
    slots = result._state["optimizer_state"]["slots"]
    assert dtypes(result.params) == {np.dtype("float32")}
    assert all(dtypes(values) == {np.dtype("float32")} for values in slots.values())
    assert all(type(v) is float for v in result.history["train_loss"])
    # Two epochs (about 20 steps): float32 on another library's kernels stays within 1e-4 of NumPy's float32.
    assert result.final["train_loss"] == pytest.approx(adam_run("float32", epochs=2).final["train_loss"], rel=1e-4)
