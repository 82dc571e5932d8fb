"""Compiled NumPy gradients against independent oracles: a hand-written NumPy BPTT, finite
differences, and PyTorch autograd where it is installed."""
import numpy as np
import pytest

import rnnsym as rs
from rnnsym.numeric.gradcheck import random_point


def hand_written_seed(params, x, y):
    """The seed network's forward and backward pass, written by hand from the article's equations."""
    T = x.shape[1]
    w, wo, bo = params["w"], params[f"w{T}"], params[f"b{T + 1}"]
    os_ = [np.zeros(x.shape[0])]
    for t in range(1, T + 1):
        os_.append(np.tanh(w * x[:, t - 1] + params[f"w{t - 1}"] * os_[-1] + params[f"b{t}"]))
    z = wo * os_[T] + bo
    out = 1 / (1 + np.exp(-z))
    loss = np.mean(-(y * np.log(out) + (1 - y) * np.log(1 - out)))
    g = {k: 0.0 for k in params}
    dz = (out - y) / x.shape[0]
    g[f"w{T}"], g[f"b{T + 1}"] = np.sum(dz * os_[T]), np.sum(dz)
    do = dz * wo
    for t in range(T, 0, -1):
        da = do * (1 - os_[t] ** 2)
        g["w"] += np.sum(da * x[:, t - 1])
        g[f"w{t - 1}"] += np.sum(da * os_[t - 1])
        g[f"b{t}"] += np.sum(da)
        do = da * params[f"w{t - 1}"]
    return loss, g


@pytest.mark.parametrize("T", [1, 2, 4, 7, 20])
def test_compiled_matches_hand_written_bptt(T):
    net = rs.seed_rnn(steps=T)
    params, x, y = random_point(net, batch=16, seed=T)
    loss, grads = net.compile().value_and_grad(params, x, y)
    ref_loss, ref = hand_written_seed(params, x, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name in net.param_names:
        assert float(grads[name]) == pytest.approx(ref[name], rel=1e-9, abs=1e-15), name


@pytest.mark.parametrize("kwargs", [
    {}, dict(activation="sigmoid"), dict(activation="identity"), dict(shared_bias=True),
    dict(loss="mse", output_activation="identity"), dict(loss="mse", output_activation="tanh"),
])
@pytest.mark.parametrize("T", [1, 4, 12])
def test_compiled_matches_finite_differences(kwargs, T):
    net = rs.seed_rnn(steps=T, **kwargs)
    params, x, y = random_point(net, batch=5, seed=11)
    f = net.compile()
    _, grads = f.value_and_grad(params, x, y)
    h = 1e-5
    for name in net.param_names:
        up, down = dict(params), dict(params)
        up[name] += h
        down[name] -= h
        numeric = (f.loss(up, x, y) - f.loss(down, x, y)) / (2 * h)
        # A three-point difference is good to about 1e-11 absolute (rounding / h), hence abs=1e-9.
        assert float(grads[name]) == pytest.approx(numeric, rel=1e-6, abs=1e-9), name


def test_gradcheck_report_passes_and_lists_every_parameter(seed4):
    report = rs.gradcheck(seed4)
    assert report.ok and report.max_rel_error < 1e-8
    assert [r.name for r in report.rows] == list(seed4.param_names)
    assert "OK: max relative error" in report.table()


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    net = rs.seed_rnn(steps=3)
    f = net.compile()
    right = f.value_and_grad

    def wrong(params, x, y):
        loss, grads = right(params, x, y)
        grads["w"] = grads["w"] * 1.001
        return loss, grads

    monkeypatch.setattr(f, "value_and_grad", wrong)
    report = rs.gradcheck(net)
    assert not report.ok
    assert max(report.rows, key=lambda r: r.rel_error).name == "w"


def test_forward_matches_hand_written(seed4):
    params, x, y = random_point(seed4, batch=3)
    out = seed4.compile().forward(params, x)
    assert out.shape == (3,)
    loss = seed4.compile().loss(params, x, y)
    assert loss == pytest.approx(hand_written_seed(params, x, y)[0], rel=1e-12)


def test_bce_stays_finite_for_huge_logits(seed4):
    params, x, _ = random_point(seed4, batch=4)
    params["w4"], params["b5"] = 1e4, 1e4  # the output saturates to exactly 1.0 in float64
    y = np.array([0.0, 1.0, 0.0, 1.0])
    loss, grads = seed4.compile().value_and_grad(params, x, y)
    assert np.isfinite(loss) and loss > 1000
    assert all(np.isfinite(g) for g in grads.values())
    assert float(grads["b5"]) == pytest.approx(0.5)  # mean of (o5 - Y) = mean(1, 0, 1, 0)


def test_inputs_of_shape_batch_T_1_and_params_as_arrays(seed4):
    params, x, y = random_point(seed4, batch=3)
    f = seed4.compile()
    a = f.value_and_grad(params, x, y)
    b = f.value_and_grad({k: np.array([v]) for k, v in params.items()}, x[:, :, None], y[:, None])
    assert a[0] == b[0]
    assert all(b[1][k].shape == (1,) for k in params)


@pytest.mark.parametrize("change,message", [
    (lambda p, x, y: (p, x[:, :3], y), r"x must have shape \(batch, 4\) or \(batch, 4, 1\), got \(3, 3\)"),
    (lambda p, x, y: (p, x, y[:2]), r"y must have shape \(3,\) to match x, got \(2,\)"),
    (lambda p, x, y: (p, np.where(x > 0, np.nan, x), y), "x contains NaN or infinite values"),
    (lambda p, x, y: (p, x, y + np.inf), "y contains NaN or infinite values"),
    (lambda p, x, y: (p, x, y + 2), "targets for loss 'bce' must lie in"),
    (lambda p, x, y: ({k: v for k, v in p.items() if k != "w2"}, x, y), "params: missing w2; expected exactly: w, w0"),
    (lambda p, x, y: ({**p, "w9": 1.0}, x, y), "params: unknown w9"),
    (lambda p, x, y: ({**p, "w": np.ones(2)}, x, y), r"parameter 'w' must be a scalar, got shape \(2,\)"),
    (lambda p, x, y: ({**p, "w": "abc"}, x, y), "parameter 'w' must be numeric"),
])
def test_bad_arrays_get_one_line_errors(seed4, change, message):
    params, x, y = change(*random_point(seed4, batch=3))
    with pytest.raises(rs.RnnsymError, match=message) as err:
        seed4.compile().value_and_grad(params, x, y)
    assert "\n" not in str(err.value)


def test_generated_source_is_inspectable_and_uses_generated_names(seed4):
    source = seed4.compile().source
    assert "def value_and_grad(x, y, n_w, n_w0" in source
    assert "n_o4 = _tanh(" in source
    # The forward pass is written once, and tanh' = 1 - o**2 reuses its values instead of recomputing tanh.
    assert source.count("_tanh(") == 4
    backward_pass = source.split("def _backward")[1].split("\ndef ")[0]
    assert "_forward(x, " in backward_pass and "_tanh(" not in backward_pass


def test_matches_pytorch_autograd():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the NumPy oracles still run")
    net = rs.seed_rnn(steps=6)
    params, x, y = random_point(net, batch=8, seed=5)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    tx, ty = torch.tensor(x), torch.tensor(y)
    o = torch.zeros(8, dtype=torch.float64)
    for t in range(1, 7):
        o = torch.tanh(tp["w"] * tx[:, t - 1] + tp[f"w{t - 1}"] * o + tp[f"b{t}"])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(tp["w6"] * o + tp["b7"], ty)
    loss.backward()
    ours, grads = net.compile().value_and_grad(params, x, y)
    assert ours == pytest.approx(loss.item(), rel=1e-12)
    for k in params:
        assert float(grads[k]) == pytest.approx(tp[k].grad.item(), rel=1e-9, abs=1e-15), k


def test_the_sum_of_the_path_terms_matches_finite_differences_and_no_single_term_does():
    net = rs.seed_rnn(steps=4)
    report = rs.gradcheck(net, seed=2)
    (row,) = [r for r in report.rows if r.name == "w"]
    terms = net.derive("w").evaluate(report.params, report.x, report.y)
    assert len(terms) == 4
    assert sum(terms) == pytest.approx(row.numeric, rel=1e-8)
    assert all(abs(t - row.numeric) > 1e-3 * abs(row.numeric) for t in terms)


def test_trace_gives_every_node_value(seed4):
    params, x, y = random_point(seed4, batch=3)
    values = seed4.compile().trace(params, x, y)
    assert np.allclose(values["o5"], seed4.compile().forward(params, x))
    assert values["o0"] == 0 and np.array_equal(values["x2"], x[:, 1])


def test_a_large_network_is_checked_on_a_sample_and_along_one_direction():
    net = rs.lstm(steps=3, input_size=4, hidden_size=6)
    report = rs.gradcheck(net, max_entries=20)
    assert report.ok and report.checked == 20 and report.rows[-1].name == "(all, one direction)"
    assert "20 entries drawn at random were checked one by one" in report.table()
    assert rs.gradcheck(rs.seed_rnn(steps=4)).checked is None  # few entries: every one of them


def test_the_direction_row_catches_a_wrong_entry_the_sample_missed(monkeypatch):
    net = rs.elman_rnn(steps=3, input_size=2, hidden_size=4)
    compiled = net.compile()
    real = compiled.value_and_grad

    def wrong(params, x, y):  # one entry of W_hh off by 0.05
        loss, grads = real(params, x, y)
        grads["W_hh"] = grads["W_hh"].copy()
        grads["W_hh"][3, 3] += 0.05
        return loss, grads

    monkeypatch.setattr(compiled, "value_and_grad", wrong)
    report = rs.gradcheck(net, max_entries=1)
    assert [r.name for r in report.rows][0] != "W_hh" and not report.ok
    assert report.rows[-1].name == "(all, one direction)" and report.rows[-1].rel_error > 1e-3


# ---- precision: float32 data is computed in float32 --------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: rs.lstm(steps=6, input_size=3, hidden_size=4),
                                  lambda: rs.gru(steps=5, input_size=2, hidden_size=3, outputs="all", output_size=3,
                                                 output_activation="softmax", loss="cross_entropy"),
                                  lambda: rs.seed_rnn(steps=4),
                                  lambda: rs.elman_rnn(steps=5, input_size=2, hidden_size=3, bidirectional=True,
                                                       outputs="all")],
                         ids=["lstm-loop", "gru-softmax-loop", "seed-unrolled", "bidirectional-unrolled"])
def test_float32_in_gives_float32_gradients_that_agree_with_float64_to_float32_precision(make):
    from rnnsym.numeric.gradcheck import random_point

    net = make()
    params, x, y = random_point(net, batch=8, seed=3)
    value, grads = net.compile().value_and_grad(params, x, y)
    compiled = net.compile()
    value32, grads32 = compiled.value_and_grad({k: np.float32(v) for k, v in params.items()}, x.astype(np.float32), y)
    assert value32 == pytest.approx(value, rel=1e-6)
    for name, g in grads.items():
        assert grads32[name].dtype == np.float32
        np.testing.assert_allclose(grads32[name], g, rtol=0, atol=1e-4 * max(1.0, float(np.abs(g).max())))
    # Computed in float32 throughout: every array the loop form keeps is float32 (not converted back).
    kept = getattr(compiled.workspaces._local, "workspace", None)
    assert kept is None or kept.dtype == np.float32 and all(a.dtype == np.float32 for a in kept._arrays.values())
    # compile(dtype="float32") fixes the precision whatever x is.
    fixed_value, fixed = net.compile(dtype="float32").value_and_grad(params, x, y)
    assert fixed_value == value32 and all(fixed[k].dtype == np.float32 for k in fixed)


def test_float64_stays_the_default_for_anything_but_float32():
    net = rs.elman_rnn(steps=3, input_size=2, hidden_size=2)
    from rnnsym.numeric.gradcheck import random_point

    params, x, y = random_point(net, batch=2, seed=0)
    _, grads = net.compile().value_and_grad(params, x.astype(np.float16), y)
    assert all(g.dtype == np.float64 for g in grads.values())
    with pytest.raises(rs.RnnsymError, match="unknown dtype 'float16'; allowed: float32, float64"):
        net.compile(dtype="float16")
