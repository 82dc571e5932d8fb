"""rs.to_torch: a torch.nn.Module whose backward is the derived backward.

Oracles: the NumPy backend's value_and_grad (float64, rel 1e-10), torch autograd of torch.nn.RNN /
LSTM / GRU loaded with the module's own state dict, and optimizer steps done by hand with the
NumPy gradients.
"""
import copy
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.functions import sigmoid
from rnnsym.numeric.gradcheck import random_point
from rnnsym.training.initializers import init_params

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'rnnsym[torch]'")

TORCH_CLASSES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}
BUILDERS = {"elman": rs.elman_rnn, "lstm": rs.lstm, "gru": rs.gru}


def _close(got, expected, rel=1e-10):
    got = got.detach().cpu().numpy() if hasattr(got, "detach") else got
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return got.shape == expected.shape and float(np.max(np.abs(got - expected), initial=0.0)) <= rel * scale


def _user_cell_with_gates():
    h, x, a, u, v, g = sp.symbols("h x a u v g")
    gate = sigmoid(v * x + u * h)
    cell = rs.Cell(state=h, input=x, update=g * sp.tanh(a * x + u * h) + (1 - g) * h, params=[a, u, v],
                   gates={g: gate})
    return rs.unroll(cell, 4)


NETWORKS = {
    "elman": lambda: rs.elman_rnn(steps=4, input_size=3, hidden_size=4),
    "lstm": lambda: rs.lstm(steps=5, input_size=3, hidden_size=4, output_size=2),
    "lstm, truncated": lambda: rs.lstm(steps=5, input_size=2, hidden_size=3, truncate=2),
    "gru, class targets at every step": lambda: rs.gru(steps=4, input_size=2, hidden_size=3, outputs="all",
                                                       output_size=3, output_activation="softmax",
                                                       loss="cross_entropy"),
    "bidirectional lstm": lambda: rs.lstm(steps=4, input_size=2, hidden_size=3, bidirectional=True, outputs="all"),
    "seed network": lambda: rs.seed_rnn(steps=4),
    "user cell with a gate": _user_cell_with_gates,
}


def _point(network, batch=5, seed=1):
    return random_point(network, batch=batch, seed=seed)  # integer class targets for cross-entropy


def _grads(model) -> dict:
    """The .grad of every parameter, in rnnsym's names."""
    if model.kind is None:
        return {name: getattr(model, key).grad for key, name in model.rnnsym_names.items()}
    return rs.params_from_torch({k: v.grad for k, v in model.rnn.named_parameters()},
                                {k: v.grad for k, v in model.readout.named_parameters()})


# ---- gradients -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_gradients_after_backward_are_the_numpy_backends(name):
    network = NETWORKS[name]()
    params, x, y = _point(network)
    value, expected = network.compile().value_and_grad(params, x, y)
    model = rs.to_torch(network, params)
    loss = model(torch.tensor(x), torch.tensor(y))
    assert loss.shape == () and loss.grad_fn is not None
    loss.backward()
    assert _close(loss, value)
    grads = _grads(model)
    assert set(grads) == set(expected)
    for key in expected:
        assert _close(grads[key], expected[key]), key


@pytest.mark.parametrize("bidirectional,layers", [(False, 1), (True, 1), (False, 3)])
@pytest.mark.parametrize("kind", sorted(TORCH_CLASSES))
def test_the_gradients_equal_torch_autograd_of_the_torch_module_with_the_same_weights(kind, bidirectional, layers):
    T, I, H, O = 4, 3, 2, 2
    network = BUILDERS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation="identity",
                             loss="mse", outputs="all", bidirectional=bidirectional, num_layers=layers)
    model = rs.to_torch(network, seed=4)
    module = getattr(torch.nn, TORCH_CLASSES[kind])(I, H, num_layers=layers, batch_first=True,
                                                   bidirectional=bidirectional).double()
    readout = torch.nn.Linear(H * (2 if bidirectional else 1), O).double()
    assert model.kind is not None and list(model.rnn.state_dict()) == list(module.state_dict())  # PyTorch's layout
    module.load_state_dict(model.rnn.state_dict())
    readout.load_state_dict(model.readout.state_dict())
    rng = np.random.default_rng(1)
    x, y = torch.tensor(rng.normal(size=(5, T, I))), torch.tensor(rng.normal(size=(5, T, O)))
    expected = torch.nn.functional.mse_loss(readout(module(x)[0]), y)
    expected.backward()
    loss = model(x, y)
    loss.backward()
    assert _close(loss, expected.item())
    for key, parameter in module.named_parameters():
        assert _close(model.rnn[key].grad, parameter.grad), key
    for key, parameter in readout.named_parameters():
        assert _close(model.readout[key].grad, parameter.grad), key


def test_backward_scales_the_derived_gradients_by_the_incoming_gradient_and_accumulates():
    network = rs.lstm(steps=3, input_size=2, hidden_size=2)
    params, x, y = _point(network)
    _, expected = network.compile().value_and_grad(params, x, y)
    model = rs.to_torch(network, params)
    (3.0 * model(x, y)).backward()
    model(x, y).backward()  # .grad accumulates, as for any torch module: 3g + g
    grads = _grads(model)
    for key in expected:
        assert _close(grads[key], 4.0 * expected[key]), key


# ---- training with torch's optimizers -----------------------------------------------------------------
def _adam_by_hand(params, grads, state, lr, betas=(0.9, 0.999), eps=1e-8):
    state["t"] = state.get("t", 0) + 1
    t, (b1, b2) = state["t"], betas
    for key in params:
        m = state.setdefault(("m", key), np.zeros_like(params[key]))
        v = state.setdefault(("v", key), np.zeros_like(params[key]))
        m[...] = b1 * m + (1 - b1) * grads[key]
        v[...] = b2 * v + (1 - b2) * grads[key] ** 2
        params[key] = params[key] - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


def _sgd_by_hand(params, grads, state, lr):
    for key in params:
        params[key] = params[key] - lr * grads[key]


@pytest.mark.parametrize("network_name", ["lstm", "seed network"])
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_torch_optimizer_steps_equal_the_same_steps_by_hand_with_numpy_gradients(optimizer, network_name):
    network = NETWORKS[network_name]()
    params, _, _ = _point(network, seed=2)
    model = rs.to_torch(network, params)
    lr = 0.05
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=lr)
    by_hand, state, f = {k: np.array(v, dtype=float) for k, v in params.items()}, {}, network.compile()
    for step in range(4):
        _, x, y = _point(network, seed=10 + step)  # a new batch each step
        opt.zero_grad()
        model(x, y).backward()
        opt.step()
        _, grads = f.value_and_grad(by_hand, x, y)
        (_adam_by_hand if optimizer == "Adam" else _sgd_by_hand)(by_hand, grads, state, lr)
    got = model.rnnsym_params()
    for key in by_hand:
        assert _close(got[key], by_hand[key]), key


def test_a_float32_module_trains_in_float32_close_to_the_float64_gradients():
    network = NETWORKS["lstm"]()
    params, x, y = _point(network)
    value, expected = network.compile().value_and_grad(params, x, y)
    model = rs.to_torch(network, params, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    loss = model(x, y)  # float64 NumPy data is brought to the module's dtype
    loss.backward()
    assert loss.dtype == torch.float32
    grads = _grads(model)
    for key in expected:
        assert _close(grads[key], expected[key], rel=1e-5), key
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.named_parameters())


def test_double_and_float_switch_the_modules_precision():
    network = NETWORKS["elman"]()
    params, x, y = _point(network)
    model = rs.to_torch(network, params, dtype=torch.float32).double()
    value, _ = network.compile().value_and_grad(params, x, y)
    loss = model(x, y)
    assert loss.dtype == torch.float64
    assert _close(loss, value, rel=1e-6)  # float32's rounding of the parameters stays in them
    assert model.float()(x, y).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_module_on_cuda_gives_the_cpu_modules_gradients():
    network = NETWORKS["lstm"]()
    params, x, y = _point(network)
    cpu, cuda = rs.to_torch(network, params), rs.to_torch(network, params, device="cuda")
    cpu(x, y).backward()
    loss = cuda(x, y)
    assert loss.device.type == "cuda"
    loss.backward()
    for (key, a), (_, b) in zip(cpu.named_parameters(), cuda.named_parameters()):
        assert b.grad.device.type == "cuda" and _close(b.grad, a.grad), key


# ---- forward, no gradient ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bidirectional lstm", "seed network", "gru, class targets at every step"])
def test_the_outputs_are_the_numpy_backends_and_carry_no_gradient(name):
    network = NETWORKS[name]()
    params, x, y = _point(network)
    model = rs.to_torch(network, params)
    outputs = model(torch.tensor(x))
    assert outputs.grad_fn is None
    assert _close(outputs, network.compile().forward(params, x))
    with torch.no_grad():
        loss = model(x, y)
    assert loss.grad_fn is None and _close(loss, network.compile().loss(params, x, y))


# ---- parameters: PyTorch's layout, generated names, the start ---------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", sorted(TORCH_CLASSES))
def test_the_state_dict_round_trips_through_the_torch_module_both_ways(kind, bidirectional):
    T, I, H, O = 3, 2, 3, 2
    network = BUILDERS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation="identity",
                             loss="mse", outputs="all", bidirectional=bidirectional)
    torch.manual_seed(0)
    module = getattr(torch.nn, TORCH_CLASSES[kind])(I, H, batch_first=True, bidirectional=bidirectional).double()
    readout = torch.nn.Linear(H * (2 if bidirectional else 1), O).double()
    assert list(rs.to_torch(network).rnn.state_dict()) == list(module.state_dict())  # the same keys, same order
    # torch -> rnnsym: the module computes what the torch modules compute
    model = rs.to_torch(network, seed=5)
    model.rnn.load_state_dict(module.state_dict())
    model.readout.load_state_dict(readout.state_dict())
    x = torch.tensor(np.random.default_rng(2).normal(size=(4, T, I)))
    with torch.no_grad():
        assert _close(model(x), readout(module(x)[0]))
    # rnnsym -> torch: a fresh module takes the model's weights, exactly
    other = rs.to_torch(network, seed=6)
    module.load_state_dict(other.rnn.state_dict())
    readout.load_state_dict(other.readout.state_dict())
    for key, value in other.state_dict().items():
        owner, name = key.split(".")
        assert torch.equal((module if owner == "rnn" else readout).state_dict()[name], value), key
    # and a whole model's state dict loads into another model of the same network
    model.load_state_dict(other.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))


def test_other_networks_get_generated_names_never_a_users_name():
    h, x = sp.symbols("h x")
    forward, training = sp.symbols("forward training")  # would shadow nn.Module's own attributes
    network = rs.unroll(rs.Cell(state=h, input=x, update=sp.tanh(forward * x + training * h),
                                params=[forward, training]), 3)
    model = rs.to_torch(network, seed=1)
    assert list(model.state_dict()) == ["p0", "p1", "p2", "p3"]
    assert model.rnnsym_names == {"p0": "forward", "p1": "training", "p2": "W_hy", "p3": "b_y"}
    assert list(model.rnnsym_params()) == list(network.param_names)
    assert callable(model.forward) and model.training is True
    model(np.zeros((2, 3)), np.zeros(2)).backward()


def test_the_start_is_rs_trains_start_for_the_same_seed_or_the_given_params():
    from rnnsym.training.loop import _INIT
    network = NETWORKS["gru, class targets at every step"]()
    for init in ("xavier", "orthogonal"):
        expected = init_params(network, init, scale=0.5, rng=np.random.default_rng([7, _INIT]))  # rs.train's draw
        got = rs.to_torch(network, init=init, seed=7).rnnsym_params()
        assert all(_close(got[k], expected[k], rel=0) for k in expected), init
    assert not _close(rs.to_torch(network, seed=8).rnnsym_params()["W_ir"], expected["W_ir"])
    params, _, _ = _point(network)
    given = rs.to_torch(network, params).rnnsym_params()
    assert all(_close(given[k], params[k], rel=0) for k in params)
    # tensors with gradients (another model's parameters) are accepted and copied, not shared
    copied = rs.to_torch(network, rs.to_torch(network, params).rnnsym_params())
    assert all(_close(copied.rnnsym_params()[k], params[k], rel=0) for k in params)


def test_a_deep_copy_trains_apart_from_the_original():
    network = NETWORKS["lstm"]()
    params, x, y = _point(network)
    model = rs.to_torch(network, params)
    twin = copy.deepcopy(model)
    twin(x, y).backward()
    torch.optim.SGD(twin.parameters(), lr=0.1).step()
    assert model.rnn.weight_ih_l0.grad is None
    assert _close(model.rnnsym_params()["W_ii"], params["W_ii"], rel=0)
    assert not _close(twin.rnnsym_params()["W_ii"], params["W_ii"])


# ---- bad input: one line -----------------------------------------------------------------------------------
def _one_line_error(call, *words):
    with pytest.raises(RnnsymError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_bad_input_is_one_line_naming_the_bad_value():
    network = NETWORKS["lstm"]()
    params, x, y = _point(network)
    model = rs.to_torch(network, params)
    _one_line_error(lambda: model(np.zeros((5, 4, 3)), y), "x must have shape", "(5, 4, 3)")
    _one_line_error(lambda: model(x, np.zeros((5, 7))), "y must have shape", "(5, 7)")
    _one_line_error(lambda: model(torch.tensor(x, requires_grad=True), y), "x.detach()")
    _one_line_error(lambda: model.half()(x, y), "torch.float16", ".double()")
    _one_line_error(lambda: rs.to_torch(network, {k: v for k, v in params.items() if k != "b_y"}), "missing", "b_y")
    _one_line_error(lambda: rs.to_torch(network, {**params, "W_ii": np.zeros((2, 2))}), "W_ii", "(2, 2)")
    _one_line_error(lambda: rs.to_torch(network, [1, 2]), "params must be a dict")
    _one_line_error(lambda: rs.to_torch(network, dtype=torch.float16), "dtype", "torch.float64")
    _one_line_error(lambda: rs.to_torch(network, init="zeros"), "zeros", "xavier")
    _one_line_error(lambda: rs.to_torch(network, seed=-1), "seed", "-1")


def test_without_torch_to_torch_names_the_extra_and_import_rnnsym_does_not_load_torch():
    code = ("import sys; import rnnsym as rs; assert 'torch' not in sys.modules, 'import rnnsym loaded torch'; "
            "sys.modules['torch'] = None\n"
            "try:\n    rs.to_torch(rs.lstm(steps=2))\nexcept rs.RnnsymError as e:\n    print(e)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "pip install 'rnnsym[torch]'" in run.stdout

