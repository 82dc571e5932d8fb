"""params_to_torch, the inverse of params_from_torch: weights go to real PyTorch modules and back
unchanged, and the modules loaded from an rnnsym network compute its forward pass (float64)."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.networks import NETWORKS

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

MODULES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}
FEW = settings(max_examples=12, deadline=None, derandomize=True, database=None)
sizes = st.integers(1, 4)


def _modules(kind, I, H, O, bidirectional, seed=0):
    torch.manual_seed(seed)
    module = getattr(torch.nn, MODULES[kind])(I, H, batch_first=True, bidirectional=bidirectional).double()
    return module, torch.nn.Linear(H * (2 if bidirectional else 1), O).double()


def _net(kind, I, H, O, bidirectional, T=3):
    return NETWORKS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation="identity",
                          loss="mse", outputs="all", bidirectional=bidirectional)


def _same_state(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@FEW
@given(kind=st.sampled_from(sorted(MODULES)), I=sizes, H=sizes, O=sizes, bidirectional=st.booleans())
def test_torch_weights_come_back_unchanged_through_rnnsym(kind, I, H, O, bidirectional):
    module, readout = _modules(kind, I, H, O, bidirectional)
    state, readout_state = rs.params_to_torch(rs.params_from_torch(module, readout))
    fresh, fresh_readout = _modules(kind, I, H, O, bidirectional, seed=1)
    fresh.load_state_dict(state)
    fresh_readout.load_state_dict(readout_state)
    assert _same_state(fresh.state_dict(), module.state_dict())
    assert _same_state(fresh_readout.state_dict(), readout.state_dict())


@FEW
@given(kind=st.sampled_from(sorted(MODULES)), I=sizes, H=sizes, O=sizes, bidirectional=st.booleans())
def test_rnnsym_weights_come_back_unchanged_through_torch(kind, I, H, O, bidirectional):
    net = _net(kind, I, H, O, bidirectional)
    rng = np.random.default_rng(I * 100 + H * 10 + O)
    params = {name: rng.normal(size=shape) for name, shape in net.param_shapes.items()}
    module, readout = _modules(kind, I, H, O, bidirectional)
    rs.params_to_torch(params, module, readout)
    back = rs.params_from_torch(module, readout)
    assert set(back) == set(params)
    for name, value in params.items():
        assert np.array_equal(back[name], value), name


@FEW
@given(kind=st.sampled_from(sorted(MODULES)), I=sizes, H=sizes, O=sizes, bidirectional=st.booleans())
def test_modules_loaded_from_an_rnnsym_network_compute_its_forward_pass(kind, I, H, O, bidirectional):
    net = _net(kind, I, H, O, bidirectional)
    rng = np.random.default_rng(7)
    params = {name: rng.normal(size=shape) for name, shape in net.param_shapes.items()}
    x = rng.normal(size=(2, 3, I))
    state, readout_state = rs.params_to_torch(params)
    module, readout = _modules(kind, I, H, O, bidirectional, seed=1)
    module.load_state_dict(state)
    readout.load_state_dict(readout_state)
    with torch.no_grad():
        want = readout(module(torch.tensor(x))[0]).numpy()
    got = net.compile().forward(params, x)
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_lstm_gate_blocks_stack_in_pytorchs_order_i_f_g_o():
    params = {name: np.full(shape, float("ifgo".index(name[3]) if name[0] == "W" else 9))
              for name, shape in _net("lstm", 1, 2, 1, False).param_shapes.items() if name not in ("W_hy", "b_y")}
    state, readout_state = rs.params_to_torch(params)
    assert readout_state is None
    assert list(state) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert state["weight_ih_l0"].dtype == torch.float64
    assert state["weight_ih_l0"][:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_the_exported_tensors_share_no_memory_with_the_parameters():
    params = {name: np.ones(shape) for name, shape in _net("elman", 2, 2, 1, False).param_shapes.items()}
    state, readout_state = rs.params_to_torch(params)
    state["weight_hh_l0"] += 1
    readout_state["weight"] += 1
    assert np.array_equal(params["W_hh"], np.ones((2, 2)))
    assert np.array_equal(params["W_hy"], np.ones((1, 2)))


def test_parameters_may_be_torch_tensors_with_gradients():
    module, readout = _modules("gru", 2, 3, 2, True)
    params = {name: torch.tensor(value, requires_grad=True)
              for name, value in rs.params_from_torch(module, readout).items()}
    state, readout_state = rs.params_to_torch(params)
    assert _same_state(state, module.state_dict()) and _same_state(readout_state, readout.state_dict())


def test_a_refused_readout_leaves_the_module_as_it_was():
    params = {name: np.ones(shape) for name, shape in _net("elman", 2, 2, 1, False).param_shapes.items()}
    module, readout = _modules("elman", 2, 2, 1, False)
    before = {key: value.clone() for key, value in module.state_dict().items()}
    with pytest.raises(RnnsymError, match=r"^weight from the parameters has shape \(1, 2\); this Linear has \(1, 3\)$"):
        rs.params_to_torch(params, module, torch.nn.Linear(3, 1).double())
    assert _same_state(module.state_dict(), before)


def test_a_readout_without_bias_takes_a_zero_b_y_and_refuses_another():
    params = {name: np.ones(shape) for name, shape in _net("gru", 2, 2, 1, False).param_shapes.items()}
    readout = torch.nn.Linear(2, 1, bias=False).double()
    with pytest.raises(RnnsymError, match="^the readout has no bias but b_y is not zero"):
        rs.params_to_torch(params, readout=readout)
    rs.params_to_torch({**params, "b_y": np.zeros(1)}, readout=readout)
    assert torch.equal(readout.weight, torch.ones(1, 2, dtype=torch.float64))


@pytest.mark.parametrize("names", [["w1", "w2"], ["W_ih", "W_ii"]])
def test_parameters_of_no_single_built_in_network_are_refused_in_one_line(names):
    with pytest.raises(RnnsymError) as err:
        rs.params_to_torch({name: np.ones((1, 1)) for name in names})
    assert str(err.value).startswith(f"cannot tell the network from the parameter names {', '.join(names)}; "
                                     "expected a built-in network's (Elman RNN W_ih, W_hh, b_ih, b_hh; LSTM W_ii, ")
    assert str(err.value).endswith("or give kind='rnn', 'lstm' or 'gru'")
    assert "\n" not in str(err.value)


ERRORS = [
    ({"extra": 1.0}, {}, "bidirectional LSTM parameters do not fit: unexpected extra; expected W_ii"),
    ({"drop": ("W_hf_reverse",)}, {}, "bidirectional LSTM parameters do not fit: missing W_hf_reverse; expected"),
    ({"drop": ("b_y",)}, {}, "bidirectional LSTM parameters do not fit: missing b_y; expected"),
    ({"W_hg": np.zeros((2, 3))}, {}, "W_hg has shape (2, 3); expected (2, 2) (input size 3, hidden size 2, output size 1)"),
    ({}, {"kind": "elman"}, "unknown kind 'elman'; allowed: rnn, lstm, gru"),
    ({}, {"kind": "gru"}, "bidirectional GRU parameters do not fit: missing W_ir"),
    ({}, {"module": ("GRU", True)}, "weight_ih_l0 from the parameters has shape (8, 3); this GRU has (6, 3)"),
    ({}, {"module": ("LSTM", False)}, "the parameters do not fit this LSTM: it has no bias_hh_l0_reverse, bias_ih_l0"),
    ({"drop": ("W_hy",)}, {}, "bidirectional LSTM parameters do not fit: missing W_hy; expected"),
    ({"W_hy": np.zeros(2)}, {}, "W_hy has shape (2,); expected (2, 2)"),
    ({"b_hi": "one"}, {}, "parameter b_hi must be an array of numbers, got str"),
    ({"drop": ("W_hy", "W_hy_reverse", "b_y")}, {"readout": True},
     "the parameters have no readout (W_hy, b_y) to load into the readout"),
]


@pytest.mark.parametrize("change,options,expected", ERRORS)
def test_parameters_that_do_not_fit_are_refused_in_one_line(change, options, expected):
    params = {name: np.ones(shape) for name, shape in _net("lstm", 3, 2, 1, True).param_shapes.items()}
    change, options = dict(change), dict(options)
    for name in change.pop("drop", ()):
        del params[name]
    params.update(change)
    if "module" in options:  # a module of another kind or direction than the network's
        name, bidirectional = options["module"]
        options["module"] = getattr(torch.nn, name)(3, 2, batch_first=True, bidirectional=bidirectional)
    if "readout" in options:
        options["readout"] = torch.nn.Linear(4, 1)
    with pytest.raises(RnnsymError) as err:
        rs.params_to_torch(params, **options)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_without_torch_the_state_dicts_hold_numpy_arrays(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    params = {name: np.ones(shape) for name, shape in _net("gru", 2, 3, 1, False).param_shapes.items()}
    state, readout_state = rs.params_to_torch(params)
    assert all(type(value) is np.ndarray for value in [*state.values(), *readout_state.values()])
    assert state["weight_hh_l0"].shape == (9, 3) and readout_state["weight"].shape == (1, 3)
