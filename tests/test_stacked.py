"""Stacked layers (num_layers=k) of rs.elman_rnn, rs.lstm and rs.gru against PyTorch's own stacked
nn.RNN / nn.LSTM / nn.GRU with a Linear readout, in float64: the same loss and gradients, to rel
1e-9, in every compiled form and backend; the parameter names map to PyTorch's *_l{k} keys both ways."""
import re

import numpy as np
import pytest

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.networks import NETWORKS

torch = pytest.importorskip("torch", reason="PyTorch is not installed; test_stacked compares with it")

MODULES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}
T, I, H, O, BATCH = 4, 3, 2, 2, 5


def _jax_installed() -> bool:
    try:
        import jax
    except ImportError:
        return False
    jax.config.update("jax_enable_x64", True)  # float64, so that rel 1e-9 means something
    return True


# (form, backend) pairs: the loop form and the unrolled form in NumPy, and the other backends.
FORMS = [("loop", "numpy"), ("unrolled", "numpy"), ("auto", "torch")] + ([("auto", "jax")] if _jax_installed() else [])


def _case(kind, layers, outputs="all", seed=0):
    """A PyTorch stack with its readout, the rnnsym network of the same shape, and a batch."""
    torch.manual_seed(seed)
    module = getattr(torch.nn, MODULES[kind])(I, H, num_layers=layers, batch_first=True).double()
    readout = torch.nn.Linear(H, O).double()
    loss = "mse" if outputs == "all" else "bce"
    activation = "identity" if outputs == "all" else "sigmoid"
    net = NETWORKS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation=activation,
                         loss=loss, outputs=outputs, num_layers=layers)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(BATCH, T, I))
    y = rng.normal(size=(BATCH, T, O)) if outputs == "all" else rng.integers(0, 2, size=(BATCH, O)).astype(float)
    return module, readout, net, x, y


def _torch_loss_and_grads(module, readout, x, y, outputs="all"):
    """PyTorch autograd of the same model: the readout reads the top layer's state."""
    module.zero_grad()
    readout.zero_grad()
    seq, _ = module(torch.tensor(x))
    if outputs == "all":
        loss = torch.nn.functional.mse_loss(readout(seq), torch.tensor(y))
    else:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(readout(seq[:, -1]), torch.tensor(y))
    loss.backward()
    grads = rs.params_from_torch({k: v.grad for k, v in module.named_parameters()},
                                 {k: v.grad for k, v in readout.named_parameters()})
    return loss.item(), grads


def _assert_same(value, grads, expected_value, expected_grads, where):
    assert float(value) == pytest.approx(expected_value, rel=1e-9), where
    assert set(grads) == set(expected_grads), where
    for name, expected in expected_grads.items():
        got = np.asarray(grads[name])
        assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), f"{where}: {name}"


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_a_stack_has_pytorchs_loss_and_gradients_in_every_form_and_backend(kind, layers):
    module, readout, net, x, y = _case(kind, layers)
    params = rs.params_from_torch(module, readout)
    expected_value, expected_grads = _torch_loss_and_grads(module, readout, x, y)
    for form, backend in FORMS:
        value, grads = net.compile(form=form, backend=backend).value_and_grad(params, x, y)
        grads = {name: g.detach().numpy() if hasattr(g, "detach") else g for name, g in grads.items()}
        _assert_same(value, grads, expected_value, expected_grads, f"{kind} {layers} layers, {form} {backend}")


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_a_many_to_one_stack_reads_the_top_layers_last_state(kind):
    module, readout, net, x, y = _case(kind, 2, outputs="last", seed=3)
    params = rs.params_from_torch(module, readout)
    expected_value, expected_grads = _torch_loss_and_grads(module, readout, x, y, outputs="last")
    compiled = net.compile()
    with torch.no_grad():
        logits = readout(module(torch.tensor(x))[0][:, -1]).numpy()
    assert np.allclose(compiled.forward(params, x), 1 / (1 + np.exp(-logits)), rtol=1e-12, atol=1e-14)
    _assert_same(*compiled.value_and_grad(params, x, y), expected_value, expected_grads, kind)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_gradcheck_passes_for_a_two_layer_stack(kind):
    report = rs.gradcheck(NETWORKS[kind](steps=3, input_size=2, hidden_size=2, num_layers=2), seed=1)
    assert report.ok, report


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_parameter_names_map_to_pytorchs_layer_keys_both_ways(kind, layers):
    module, readout, net, _, _ = _case(kind, layers)
    params = rs.params_from_torch(module, readout)
    assert list(params) == list(net.param_names)  # the same names, in the same (PyTorch's) order
    assert {name: value.shape for name, value in params.items()} == net.param_shapes
    first = {"elman": "W_ih", "lstm": "W_ii", "gru": "W_ir"}[kind]
    assert params[f"{first}_l{layers - 1}"].shape == (H, H)  # a layer above reads the hidden state below
    state, readout_state = rs.params_to_torch(params)
    assert list(state) == list(module.state_dict())
    for key, value in module.state_dict().items():
        assert torch.equal(state[key], value), key
    assert torch.equal(readout_state["weight"], readout.weight.detach())
    fresh = getattr(torch.nn, MODULES[kind])(I, H, num_layers=layers, batch_first=True).double()
    rs.params_to_torch(params, fresh)  # checked, then loaded
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), module.state_dict().values()))


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_one_layer_keeps_its_names_without_a_layer_index(kind):
    one = NETWORKS[kind](steps=2, input_size=2, hidden_size=3, num_layers=1)
    assert one.param_names == NETWORKS[kind](steps=2, input_size=2, hidden_size=3).param_names
    assert not any("_l0" in name for name in one.param_names)
    assert "num_layers" not in one.options
    stacked = NETWORKS[kind](steps=2, input_size=2, hidden_size=3, num_layers=2)
    assert stacked.options["num_layers"] == 2
    assert stacked.recurrence.states[0] == "h_l1"  # the top layer's state, which the readout reads


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_a_bad_num_layers_is_refused_in_one_line(bad):
    for constructor in (rs.elman_rnn, rs.lstm, rs.gru):
        with pytest.raises(RnnsymError, match=f"^{re.escape(f'num_layers must be a positive integer, got {bad!r}')}$"):
            constructor(steps=3, num_layers=bad)


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_a_bidirectional_stack_has_pytorchs_loss_and_gradients_in_every_backend(kind, layers):
    # PyTorch's layer l reads both directions of layer l−1 at step t, joined: [h_fwd; h_bwd]
    torch.manual_seed(5)
    module = getattr(torch.nn, MODULES[kind])(I, H, num_layers=layers, bidirectional=True, batch_first=True).double()
    readout = torch.nn.Linear(2 * H, O).double()
    net = NETWORKS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation="identity",
                         loss="mse", outputs="all", num_layers=layers, bidirectional=True)
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(BATCH, T, I)), rng.normal(size=(BATCH, T, O))
    params = rs.params_from_torch(module, readout)
    assert list(params) == list(net.param_names) and {n: v.shape for n, v in params.items()} == net.param_shapes
    first = {"elman": "W_ih", "lstm": "W_ii", "gru": "W_ir"}[kind]
    assert params[f"{first}_l1"].shape == params[f"{first}_l1_reverse"].shape == (H, 2 * H)
    expected_value, expected_grads = _torch_loss_and_grads(module, readout, x, y)
    for backend in [b for _, b in FORMS if b != "numpy"] + ["numpy"]:
        value, grads = net.compile(backend=backend).value_and_grad(params, x, y)
        grads = {name: g.detach().numpy() if hasattr(g, "detach") else g for name, g in grads.items()}
        _assert_same(value, grads, expected_value, expected_grads, f"{kind} {layers} layers, bidirectional, {backend}")
    state, readout_state = rs.params_to_torch(params)  # and back into PyTorch's module
    assert list(state) == list(module.state_dict())
    assert all(np.array_equal(np.asarray(state[k]), v.detach().numpy()) for k, v in module.state_dict().items())


def test_the_recursive_view_of_a_bidirectional_stack_takes_each_direction_its_part_of_the_joined_input():
    net = rs.gru(steps=3, input_size=2, hidden_size=2, num_layers=2, bidirectional=True, outputs="all", loss="mse",
                 output_activation="identity")
    assert net.graph["x_l1_2"].shape == (4,) and str(net.graph["x_l1_2"].expr) == "Concat(h_l0_2, h_l0_reverse2)"
    forward, backward = (net.derive(name).text(full=True) for name in ("W_ir_l0", "W_ir_l0_reverse"))
    assert "δh_l0_3 = [δx_l1_3]_(1…2)" in forward  # the forward state: the first half of layer 1's input
    assert "+ diag(z_l0_3)·δh_l0_3 + [δx_l1_2]_(1…2)" in forward
    assert "δh_l0_reverse1 = [δx_l1_1]_(3…4)" in backward  # the reverse state: the second half
    assert rs.gradcheck(net, seed=2).ok


def test_parameters_missing_a_layer_are_refused_in_one_line():
    params = {name: np.ones(shape) for name, shape in rs.gru(steps=2, input_size=3, hidden_size=2,
                                                               num_layers=3).param_shapes.items()}
    del params["W_hz_l1"]
    with pytest.raises(RnnsymError) as err:
        rs.params_to_torch(params)
    assert str(err.value).startswith("GRU (3 layers) parameters do not fit: missing W_hz_l1; expected W_ir_l0")
    params["W_hz_l1"] = np.ones((2, 3))  # layer 1 reads the hidden state (2), not the input (3)
    with pytest.raises(RnnsymError, match=r"^W_hz_l1 has shape \(2, 3\); expected \(2, 2\)"):
        rs.params_to_torch(params)


def test_a_state_dict_with_a_gap_in_its_layers_is_refused_in_one_line():
    state = torch.nn.RNN(2, 3, num_layers=3).state_dict()
    del state["weight_hh_l1"]
    with pytest.raises(RnnsymError, match=r"^expected an RNN/LSTM/GRU state dict .* got keys bias_hh_l0, "):
        rs.params_from_torch(state)


def test_the_derivation_of_a_bottom_weight_carries_delta_back_in_time_and_down_the_layers():
    net = rs.elman_rnn(steps=3, input_size=2, hidden_size=3, num_layers=2)
    text = net.derive("W_ih_l0").text()
    # Layer 0's state at step 2 hears from layer 1 at step 2 (down) and from itself at step 3 (back).
    assert "δh_l0_2 = W_ih_l1ᵀ·diag(1 − h_l1_2²)·δh_l1_2 + W_hh_l0ᵀ·diag(1 − x_l1_3²)·δx_l1_3" in text
    assert "δh_l1_2 = W_hh_l1ᵀ·diag(1 − h_l1_3²)·δh_l1_3" in text
    assert "dL/dW_ih_l0 = diag(1 − x_l1_1²)·δx_l1_1·x₁ᵀ + " in text


def test_a_saved_stack_is_rebuilt_with_its_layers():
    from rnnsym.training.loop import build_network, describe_network

    net = rs.lstm(steps=3, input_size=2, hidden_size=2, num_layers=3)
    assert build_network(describe_network(net)).param_names == net.param_names


def test_make_network_refuses_num_layers_for_the_seed_network_in_one_line():
    from rnnsym.networks import make_network

    with pytest.raises(RnnsymError, match=r"^option num_layers applies to the elman, lstm, gru network\(s\), not to seed$"):
        make_network("seed", 3, num_layers=2)
    assert make_network("gru", 3, num_layers=2).options["num_layers"] == 2
