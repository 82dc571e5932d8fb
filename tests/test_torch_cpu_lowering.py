"""The torch backend on the CPU: tensors in CPU memory are computed by the NumPy lowering of the same
program (the default; the rest of the suite runs torch's own operations, see conftest.py), with
torch tensors in and out, equal to the torch-operations lowering and to PyTorch's own modules."""
import numpy as np
import pytest

import rnnsym as rs

torch = pytest.importorskip("torch")

NETWORKS = {
    "lstm": lambda: rs.lstm(steps=5, input_size=3, hidden_size=4, output_size=2, output_activation="softmax",
                            loss="cross_entropy", outputs="all"),
    "seed": lambda: rs.seed_rnn(steps=4),
    "bidirectional gru": lambda: rs.gru(steps=4, input_size=2, hidden_size=3, bidirectional=True, outputs="all",
                                        loss="mse", output_activation="identity"),
    "seq2seq": lambda: rs.seq2seq("gru", "lstm", source_steps=3, target_steps=2, input_size=2, hidden_size=3,
                                  output_size=4, attention="dot"),
}


def _case(net, dtype=torch.float64):
    params, x, y = rs.numeric.gradcheck.random_point(net, batch=5, seed=3)
    return ({k: torch.tensor(np.asarray(v), dtype=dtype) for k, v in params.items()}, torch.tensor(x, dtype=dtype),
            torch.tensor(y) if net.options.get("loss") == "cross_entropy" else torch.tensor(y, dtype=dtype))


@pytest.mark.parametrize("name", NETWORKS)
def test_the_numpy_lowering_on_cpu_tensors_equals_torchs_operations(name):
    net = NETWORKS[name]()
    params, x, y = _case(net)
    on_numpy = net.compile(backend="torch").with_cpu_lowering("numpy")
    on_torch = net.compile(backend="torch").with_cpu_lowering("torch")
    value, grads = on_numpy.value_and_grad(params, x, y)
    assert on_numpy._numpy is not None and on_torch._numpy is None  # each ran its own lowering
    assert isinstance(value, torch.Tensor) and all(isinstance(g, torch.Tensor) for g in grads.values())
    assert all(g.dtype == torch.float64 and g.shape == params[k].shape for k, g in grads.items())
    expected_value, expected = on_torch.value_and_grad(params, x, y)
    assert float(value) == pytest.approx(float(expected_value), rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k].numpy(), expected[k].numpy(), rtol=1e-10, atol=1e-13, err_msg=k)
    extra = (y,) if net.options.get("teacher_forcing") else ()
    outputs = on_numpy.forward(params, x, *extra)
    np.testing.assert_allclose(outputs.numpy(), on_torch.forward(params, x, *extra).numpy(), rtol=1e-12)


def test_float32_tensors_stay_float32_and_match_pytorchs_lstm():
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, batch_first=True)
    readout = torch.nn.Linear(4, 1)
    net = rs.lstm(steps=6, input_size=3, hidden_size=4)
    params = {k: torch.tensor(v, dtype=torch.float32) for k, v in rs.params_from_torch(module, readout).items()}
    x = torch.randn(8, 6, 3)
    y = torch.randint(0, 2, (8, 1)).float()
    value, grads = net.compile(backend="torch").with_cpu_lowering("numpy").value_and_grad(params, x, y)
    assert value.dtype == torch.float32 and grads["W_hi"].dtype == torch.float32
    loss = torch.nn.functional.binary_cross_entropy_with_logits(readout(module(x)[0][:, -1]), y)
    loss.backward()
    expected = rs.params_from_torch({k: v.grad for k, v in module.named_parameters()},
                                    {k: v.grad for k, v in readout.named_parameters()})
    assert float(value) == pytest.approx(loss.item(), rel=1e-5)
    for k, g in grads.items():
        np.testing.assert_allclose(g.numpy(), expected[k], rtol=2e-4, atol=1e-6, err_msg=k)


def test_a_bad_cpu_lowering_is_refused_in_one_line():
    with pytest.raises(rs.RnnsymError, match="unknown cpu lowering 'gpu'; allowed: numpy, torch"):
        rs.seed_rnn(steps=2).compile(backend="torch").with_cpu_lowering("gpu")


def test_the_environment_chooses_the_cpu_lowering():
    import subprocess
    import sys

    code = "from rnnsym.backends.compiled import BackendCompiled as B; print(B.cpu_lowering)"
    for value, expected in ((None, "numpy"), ("torch", "torch")):
        env = {k: v for k, v in __import__("os").environ.items() if k != "RNNSYM_TORCH_CPU"}
        if value:
            env["RNNSYM_TORCH_CPU"] = value
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert out.stdout.strip() == expected, out.stderr
