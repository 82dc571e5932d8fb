"""params_from_torch against real PyTorch modules: weights loaded as they are, then rnnsym's forward,
loss and gradients compared with torch autograd of the same module, in float64."""
import numpy as np
import pytest

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.networks import NETWORKS

torch = pytest.importorskip("torch", reason="PyTorch is not installed; finite differences still check these")

MODULES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _case(kind, T=4, I=3, H=2, O=2, bidirectional=True):
    torch.manual_seed(0)
    module = getattr(torch.nn, MODULES[kind])(I, H, batch_first=True, bidirectional=bidirectional).double()
    readout = torch.nn.Linear(H * (2 if bidirectional else 1), O).double()
    net = NETWORKS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation="identity",
                         loss="mse", outputs="all", bidirectional=bidirectional)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, T, I)), rng.normal(size=(5, T, O))
    return module, readout, net, x, y


def _torch_run(module, readout, x, y):
    seq, _ = module(torch.tensor(x))
    pred = readout(seq)
    loss = torch.nn.functional.mse_loss(pred, torch.tensor(y))
    loss.backward()
    return pred.detach().numpy(), loss.item()


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_a_bidirectional_module_and_its_joined_readout_convert_as_they_are(kind):
    module, readout, net, x, y = _case(kind)
    params = rs.params_from_torch(module, readout)
    assert set(params) == set(net.param_names)
    assert params["W_hy"].shape == params["W_hy_reverse"].shape == (2, 2)
    pred, loss = _torch_run(module, readout, x, y)
    f = net.compile()
    assert np.allclose(f.forward(params, x), pred, rtol=1e-12, atol=1e-14)
    assert f.loss(params, x, y) == pytest.approx(loss, rel=1e-12)
    value, grads = f.value_and_grad(params, x, y)
    assert value == pytest.approx(loss, rel=1e-12)
    # The gradients convert the same way: the module's and the readout's .grad as state dicts.
    reference = rs.params_from_torch({k: v.grad for k, v in module.named_parameters()},
                                     {k: v.grad for k, v in readout.named_parameters()})
    assert set(reference) == set(grads)
    for name, value in reference.items():
        assert np.allclose(grads[name], value, rtol=1e-10, atol=1e-13), name


def test_the_joined_readout_splits_forward_columns_first():
    module, readout, _, _, _ = _case("gru", H=3, O=1)
    weight = readout.weight.detach().numpy()
    params = rs.params_from_torch(module, readout)
    assert np.array_equal(params["W_hy"], weight[:, :3])
    assert np.array_equal(params["W_hy_reverse"], weight[:, 3:])


def test_a_one_direction_module_keeps_its_readout_whole():
    module, readout, net, x, y = _case("elman", bidirectional=False)
    params = rs.params_from_torch(module, readout)
    assert "W_hy_reverse" not in params
    assert np.array_equal(params["W_hy"], readout.weight.detach().numpy())
    _, loss = _torch_run(module, readout, x, y)
    for form in ("unrolled", "loop"):
        assert net.compile(form=form).loss(params, x, y) == pytest.approx(loss, rel=1e-12), form


def test_a_readout_without_bias_converts_with_a_zero_bias():
    module, _, net, x, y = _case("gru")
    readout = torch.nn.Linear(4, 2, bias=False).double()
    params = rs.params_from_torch(module, readout)
    assert np.array_equal(params["b_y"], np.zeros(2))
    _, loss = _torch_run(module, readout, x, y)
    assert net.compile().loss(params, x, y) == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("bidirectional,width,expected", [
    (True, 2, "readout weight has shape (2, 2); expected (outputs, 4) to read the joined forward and reverse states"),
    (False, 4, "readout weight has shape (2, 4); expected (outputs, 2) to read the hidden state"),
])
def test_a_readout_of_the_wrong_width_is_refused_in_one_line(bidirectional, width, expected):
    module, _, _, _, _ = _case("elman", bidirectional=bidirectional)
    with pytest.raises(RnnsymError) as err:
        rs.params_from_torch(module, torch.nn.Linear(width, 2).double())
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)
