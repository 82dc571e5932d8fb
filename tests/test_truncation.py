"""Truncated BPTT, one meaning everywhere (rnnsym.engine.truncation): each loss term carries its
gradient back at most k steps. Checked against PyTorch, where the state at the window's edge is
``detach()``ed, and against a hand-written truncated recursion; every compiled form agrees."""
import numpy as np
import pytest

import rnnsym as rs
from rnnsym.engine.truncation import dropped_by_source, truncation_cuts
from rnnsym.networks import NETWORKS
from rnnsym.numeric.gradcheck import random_point

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the loop/unrolled agreement still runs")


def _step(kind, rnn, x, state):
    """One step of PyTorch's documented equations, on the module's own parameters."""
    W_ih, W_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    if kind == "elman":
        return torch.tanh(x @ W_ih.T + b_ih + state @ W_hh.T + b_hh)
    if kind == "lstm":
        h, c = state
        i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    gi, gh = (x @ W_ih.T + b_ih).chunk(3, dim=-1), (state @ W_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(gi[0] + gh[0]), torch.sigmoid(gi[1] + gh[1])
    n = torch.tanh(gi[2] + r * gh[2])
    return (1 - z) * n + z * state


def _torch_truncated(kind, rnn, readout, x, y, k, outputs):
    """The mean loss, each loss term L_s carried back k steps: the state of step s − k is computed
    without gradient and detached, the window's k steps with it."""
    X, Y = torch.tensor(x), torch.tensor(y)
    B, T = X.shape[0], X.shape[1]
    zero = torch.zeros(B, rnn.hidden_size, dtype=torch.float64)
    initial = (zero, zero) if kind == "lstm" else zero

    def run(state, start, stop):  # steps start+1 … stop (1-based)
        for t in range(start, stop):
            state = _step(kind, rnn, X[:, t], state)
        return state

    losses = []
    for s in (range(1, T + 1) if outputs == "all" else [T]):
        with torch.no_grad():
            edge = run(initial, 0, max(s - k, 0))
        state = run(edge, max(s - k, 0), s)
        out = torch.sigmoid(readout(state[0] if kind == "lstm" else state))
        losses.append(torch.nn.functional.binary_cross_entropy(out, Y[:, s - 1] if outputs == "all" else Y))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("kind,cls", [("elman", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
@pytest.mark.parametrize("outputs", ["last", "all"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncated_gradients_match_pytorch_with_detach_at_the_window_edge(kind, cls, outputs, k):
    T, I, H, O = 5, 2, 3, 2
    torch.manual_seed(k)
    rnn = getattr(torch.nn, cls)(I, H, batch_first=True).double()
    readout = torch.nn.Linear(H, O).double()
    net = NETWORKS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, outputs=outputs)
    params = rs.params_from_torch(rnn, readout)
    rng = np.random.default_rng(k)
    x = rng.normal(size=(4, T, I))
    y = rng.uniform(size=(4, T, O) if outputs == "all" else (4, O))
    loss = _torch_truncated(kind, rnn, readout, x, y, k, outputs)
    loss.backward()
    want = rs.params_from_torch({name: p.grad for name, p in rnn.named_parameters()})
    want.update(W_hy=readout.weight.grad.numpy(), b_y=readout.bias.grad.numpy())
    for form in ("loop", "unrolled"):
        value, grads = net.compile(truncate=k, form=form).value_and_grad(params, x, y)
        assert value == pytest.approx(loss.item(), rel=1e-12)
        for name, g in want.items():
            np.testing.assert_allclose(grads[name], g, rtol=1e-9, atol=1e-13, err_msg=f"{name} ({form}, k={k})")


def test_bidirectional_truncation_is_refused_in_the_constructor_and_in_compile():
    with pytest.raises(rs.RnnsymError, match="truncate is not supported with bidirectional=True: the reverse"):
        rs.gru(steps=4, bidirectional=True, outputs="all", truncate=2)
    net = rs.gru(steps=4, bidirectional=True, outputs="all")
    with pytest.raises(rs.RnnsymError, match="truncate is not supported with bidirectional=True"):
        net.compile(truncate=2)


def test_each_loss_term_has_its_own_window():
    net = rs.elman_rnn(steps=4, outputs="all")
    assert dropped_by_source(net, 2) == {"L3": [("h2", "h1")], "L4": [("h3", "h2")]}  # L1, L2 reach h0 anyway
    assert truncation_cuts(net, 2) == {("h2", "h1"), ("h3", "h2")}
    assert dropped_by_source(rs.elman_rnn(steps=4), 2) == {"L": [("h3", "h2")]}
    assert dropped_by_source(net, 4) == {} and truncation_cuts(net, 9) == set()


@pytest.mark.parametrize("k", [1, 2, 4])
def test_truncated_per_step_losses_agree_in_every_form_for_a_user_cell(k):
    import sympy as sp

    h, c, x, a, u = sp.symbols("h c x a u")
    cell = rs.Cell(state=(h, c), input=x, params=[a, u], update=(sp.tanh(a * x + u * h * c), h))  # a delay line
    net = rs.unroll(cell, steps=5, outputs="all")
    params, x_, y_ = random_point(net, batch=3, seed=k)
    loop = net.compile(truncate=k, form="loop").value_and_grad(params, x_, y_)[1]
    unrolled = net.compile(truncate=k, form="unrolled").value_and_grad(params, x_, y_)[1]
    for name in loop:
        np.testing.assert_allclose(loop[name], unrolled[name], rtol=1e-12, atol=1e-15)


def test_the_derivation_drops_each_loss_terms_own_factors_and_its_paths_sum_to_the_compiled_gradient():
    import sympy as sp

    h, x, a, u = sp.symbols("h x a u")
    net = rs.unroll(rs.Cell(state=h, input=x, params=[a, u], update=sp.tanh(a * x + u * h)), steps=4,
                    outputs="all", truncate=2)
    d = net.derive("u")
    truncation = next(s for s in d.steps if s.kind == "truncation")
    assert [(eq.lhs.of, eq.lhs.wrt, eq.label) for eq in truncation.equations] == [
        ("h2", "h1", "dropped for L3"), ("h3", "h2", "dropped for L4")]
    # L4 reaches h4 and h3 only; L2 reaches h2 and h1 (h0 is a constant anyway).
    assert ("L", "L4", "y4", "h4", "h3", "u") in d.paths and ("L", "L4", "y4", "h4", "h3", "h2", "u") not in d.paths
    assert ("L", "L3", "y3", "h3", "h2", "h1", "u") not in d.paths and ("L", "L2", "y2", "h2", "h1", "u") in d.paths
    params, x_, y_ = random_point(net, batch=3, seed=5)
    want = net.compile(form="loop").value_and_grad(params, x_, y_)[1]["u"]
    assert sum(d.evaluate(params, x_, y_)) == pytest.approx(float(want), rel=1e-12)
    windows_shown = [s.title for s in d.steps if s.kind == "recursive"]
    assert windows_shown[:2] == ["Recursive view of L1's window (steps 1 … 1)", "Recursive view of L2's window (steps 1 … 2)"]
    assert "dL/du = [∂L/∂L₁]·[dL₁/du] + [∂L/∂L₂]·[dL₂/du] + [∂L/∂L₃]·[dL₃/du] + [∂L/∂L₄]·[dL₄/du]" in d.text()
