"""Encoder–decoder networks (rs.seq2seq), with and without attention, against a PyTorch model written
here from the standard equations (PyTorch's own nn.RNN/LSTM/GRU for the cells, Luong's global
attention with each score by hand): the same loss and gradients in float64 to rel 1e-9, in every
backend; finite differences for user cells; the one-line errors of bad options."""
import numpy as np
import pytest
import sympy as sp

import rnnsym as rs

torch = pytest.importorskip("torch", reason="PyTorch is not installed; test_seq2seq compares with it")
from torch_seq2seq import TorchSeq2seq as _Reference  # noqa: E402  (needs torch)

S, T, I, H, V, BATCH = 4, 3, 2, 3, 4, 5


def TorchSeq2seq(encoder, decoder, attention, seed=0):
    return _Reference(encoder, decoder, attention, I, H, V, seed=seed)


def _jax_installed() -> bool:
    try:
        import jax
    except ImportError:
        return False
    jax.config.update("jax_enable_x64", True)
    return True


BACKENDS = ["numpy", "torch"] + (["jax"] if _jax_installed() else [])


def _data(seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, S, I)), rng.integers(0, V, size=(BATCH, T))


def _torch_loss(model, x, y, loss):
    model.zero_grad()
    onehot = torch.nn.functional.one_hot(torch.tensor(y), V).double()
    z = model.logits(torch.tensor(x), onehot)
    if loss == "cross_entropy":
        value = torch.nn.functional.cross_entropy(z.reshape(-1, V), torch.tensor(y).reshape(-1))
    else:
        value = torch.nn.functional.mse_loss(z, onehot)
    value.backward()
    return value.item(), model.gradients()


CASES = [("gru", "gru", None), ("lstm", "lstm", None), ("elman", "lstm", "dot"), ("lstm", "gru", "general"),
         ("gru", "gru", "additive"), ("lstm", "lstm", "additive")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("encoder,decoder,attention", CASES)
def test_loss_and_gradients_match_pytorch_autograd(encoder, decoder, attention, backend):
    model = TorchSeq2seq(encoder, decoder, attention)
    x, y = _data()
    expected_value, expected = _torch_loss(model, x, y, "cross_entropy")
    net = rs.seq2seq(encoder, decoder, source_steps=S, target_steps=T, input_size=I, hidden_size=H,
                     output_size=V, attention=attention)
    value, grads = net.compile(backend=backend).value_and_grad(model.params(), x, y)
    assert float(value) == pytest.approx(expected_value, rel=1e-9)
    assert set(grads) == set(expected)
    for name, g in grads.items():
        np.testing.assert_allclose(np.asarray(g), expected[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_mse_loss_and_the_teacher_forced_forward_match_pytorch():
    model = TorchSeq2seq("gru", "elman", "general", seed=3)
    x, y = _data(4)
    expected_value, expected = _torch_loss(model, x, y, "mse")
    net = rs.seq2seq("gru", "elman", source_steps=S, target_steps=T, input_size=I, hidden_size=H,
                     output_size=V, attention="general", loss="mse")
    onehot = np.eye(V)[y]
    compiled = net.compile()
    value, grads = compiled.value_and_grad(model.params(), x, onehot)
    assert value == pytest.approx(expected_value, rel=1e-9)
    for name, g in grads.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-9, atol=1e-12, err_msg=name)
    outputs = compiled.forward(model.params(), x, onehot)
    with torch.no_grad():
        reference = model.logits(torch.tensor(x), torch.tensor(onehot)).numpy()
    np.testing.assert_allclose(outputs, reference, rtol=1e-12, atol=1e-12)


def test_attention_weights_are_a_distribution_over_the_source_steps():
    net = rs.seq2seq("gru", "gru", source_steps=S, target_steps=T, input_size=I, hidden_size=H, output_size=V,
                     attention="dot")
    model = TorchSeq2seq("gru", "gru", "dot")
    x, y = _data()
    trace = net.compile(form="unrolled").trace(model.params(), x, y)
    for t in range(1, T + 1):
        alpha = trace[f"alpha{t}"]
        assert alpha.shape == (BATCH, S) and (alpha > 0).all()
        np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("attention", [None, "dot", "additive"])
def test_user_cells_as_encoder_and_decoder_pass_the_gradient_check(attention):
    h, c, x = sp.symbols("h c x")
    W, U, b = sp.symbols("W U b")

    def cell(size, name):
        return rs.Cell(state=(h, c), input=x, params=[W, U, b], name=name,
                       update=(sp.tanh(c), c + rs.functions.sigmoid(rs.matvec(W, x) + rs.matvec(U, h) + b)),
                       shapes={h: H, c: H, x: size, W: (H, size), U: (H, H), b: H})

    net = rs.seq2seq(cell(I, "mine"), cell(V, "mine"), source_steps=3, target_steps=2, input_size=I,
                     hidden_size=H, output_size=V, attention=attention)
    assert {"W", "W_dec", "U_dec"} <= set(net.param_names)
    assert rs.gradcheck(net).ok


def test_the_forward_pass_of_a_teacher_forced_decoder_needs_the_targets():
    net = rs.seq2seq("gru", "gru", source_steps=2, target_steps=2, input_size=I, hidden_size=H, output_size=V)
    params = {n: np.zeros(s) for n, s in net.param_shapes.items()}
    with pytest.raises(rs.RnnsymError, match="teacher forcing"):
        net.compile().forward(params, np.zeros((1, 2, I)))
    with pytest.raises(rs.RnnsymError, match=r"y must have shape \(1, 2, 4\)"):
        net.compile().value_and_grad(params, np.zeros((1, 2, I)), np.zeros((1, 3, V)))


@pytest.mark.parametrize("call,message", [
    (lambda: rs.seq2seq("gru", "rnn", source_steps=2, target_steps=2), "unknown decoder 'rnn'; allowed: elman, lstm, gru"),
    (lambda: rs.seq2seq("gru", "gru", source_steps=2, target_steps=2, attention="luong"),
     "unknown attention 'luong'; allowed: None, dot, general, additive"),
    (lambda: rs.seq2seq("gru", "gru", source_steps=0, target_steps=2), "source_steps must be a positive integer, got 0"),
    (lambda: rs.seq2seq("gru", "gru", source_steps=2, target_steps=2, output_size=1),
     "cross-entropy needs output_size >= 2 classes, got 1"),
    (lambda: rs.seq2seq("gru", "gru", source_steps=2, target_steps=2, loss="bce"), "unknown loss 'bce'; allowed: cross_entropy, mse"),
    (lambda: rs.seq2seq(rs.Cell(state=sp.Symbol("h"), input=sp.Symbol("x"), update=sp.tanh(sp.Symbol("x")), params=[]),
                        "gru",
                        source_steps=2, target_steps=2, hidden_size=3),
     r"the encoder cell's input x has shape \(\); this network needs \(1,\)"),
])
def test_bad_options_get_one_line_errors(call, message):
    with pytest.raises(rs.RnnsymError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_the_loop_form_is_refused_with_the_form_that_works():
    net = rs.seq2seq("gru", "gru", source_steps=2, target_steps=2, hidden_size=2)
    with pytest.raises(rs.RnnsymError, match="use form 'unrolled'"):
        net.compile(form="loop")


def test_the_recursive_view_carries_delta_into_an_encoder_state_through_the_decoder_and_the_attention():
    net = rs.seq2seq("gru", "gru", source_steps=3, target_steps=2, input_size=I, hidden_size=H, output_size=V,
                     attention="dot")
    text = net.derive("W_in").text(full=True)
    # the last encoder state: the decoder's first step (its initial state) and its row of the stack
    assert ("δh₃ = W_hr_decᵀ·diag(r_dec1·(1 − r_dec1))·δr_dec1 + W_hz_decᵀ·diag(z_dec1·(1 − z_dec1))·δz_dec1"
            " + W_hn_decᵀ·diag(r_dec1·(1 − n_dec1²))·δn_dec1 + diag(z_dec1)·δh_dec1 + [δH_enc]₃") in text
    # the stack collects both attention paths of every decoder step: the scores and the context
    assert "δH_enc = δe₁·h_dec1ᵀ + alpha₁·δctx₁ᵀ + δe₂·h_dec2ᵀ + alpha₂·δctx₂ᵀ" in text
    assert "δe₁ = (diag(alpha₁) − alpha₁·alpha₁ᵀ)·δalpha₁" in text  # softmax's own Jacobian
    assert "δalpha₁ = H_encᵀ" not in text and "δalpha₁ = H_enc·δctx₁" in text
    assert r"\left[\delta_{H_{enc}}\right]_{3}" in net.derive("W_in").latex(full=True)


def test_the_path_view_lists_the_paths_into_an_encoder_state_through_the_decoder_and_the_attention():
    net = rs.seq2seq("elman", "elman", source_steps=2, target_steps=1, input_size=1, hidden_size=2, output_size=2,
                     attention="dot")
    text = net.derive("h1").text()
    chains = [line.strip().split("    ")[0] for line in text.splitlines() if line.startswith("    (∂L/∂L₁)")]
    chains = [c for c in chains if "=" not in c]
    # h1 reaches the loss through its row of the stack (into the context ctx = Hᵀα, and through the
    # scores e = H·q), and through h2, which goes on through its own row (two paths again) and through
    # the decoder's initial state (into ht directly, and as the query of the scores): 6 paths
    assert len(chains) == 6
    assert sum("(∂H_enc/∂h₁)" in c for c in chains) == 2 and sum("(∂h_dec1/∂h₂)" in c for c in chains) == 2
    for factor in ("∂ctx₁/∂H_enc = alpha₁·[·]ᵀ", "∂H_enc/∂h₁ = [·]₁", "∂ctx₁/∂alpha₁ = H_encᵀ",
                   "∂alpha₁/∂e₁ = (diag(alpha₁) − alpha₁·alpha₁ᵀ)", "∂e₁/∂H_enc = [·]·h_dec1ᵀ", "∂e₁/∂h_dec1 = H_enc"):
        assert factor in text, factor
    # larger: counted (11 198 460 paths at S = T = 6), and the recursive view gives the gradient
    big = rs.seq2seq("gru", "gru", source_steps=6, target_steps=6, hidden_size=2, attention="dot").derive("h1").text()
    assert "1. 11198460 chain-rule paths: too many to list" in big and "+ [δH_enc]₁" in big


def test_the_picture_draws_the_attention_edges_in_their_own_colour_with_a_legend():
    from rnnsym.docs.svg import _ATTENTION, picture_svg

    attending = rs.seq2seq("gru", "gru", source_steps=3, target_steps=2, hidden_size=2, output_size=3, attention="dot")
    svg = picture_svg(attending)
    assert svg.count(f'stroke="{_ATTENTION}"') >= 2 * 8  # into H_enc (3), e, alpha, ctx, ht at each target step
    assert "attention: the encoder states stacked in H_enc" in svg
    plain = picture_svg(rs.seq2seq("gru", "gru", source_steps=3, target_steps=2, hidden_size=2, output_size=3))
    assert _ATTENTION not in plain and "attention:" not in plain


def test_the_command_line_derives_checks_and_documents_a_seq2seq_network(tmp_path):
    import subprocess
    import sys

    def rnnsym(*args):
        return subprocess.run([sys.executable, "-m", "rnnsym", *args], capture_output=True, text=True, timeout=300)

    shape = ["--net", "seq2seq", "--attention", "general", "--steps", "3", "--target-steps", "2", "--hidden-size", "2",
             "--output-size", "3"]
    derived = rnnsym("derive", *shape, "W_a")
    assert derived.returncode == 0, derived.stderr
    assert "dL/dW_a" in derived.stdout and "δq₁" in derived.stdout
    checked = rnnsym("check", *shape)
    assert checked.returncode == 0 and "OK: max relative error" in checked.stdout
    site = rnnsym("docs", *shape, "--out", str(tmp_path / "site"))
    assert site.returncode == 0, site.stderr
    assert (tmp_path / "site" / "W_a.html").is_file() and "H_enc" in (tmp_path / "site" / "index.html").read_text()
    wrong = rnnsym("derive", "--net", "elman", "--attention", "dot", "W_ih")
    assert wrong.returncode == 2 and wrong.stderr.strip() == \
        "rnnsym: error: option attention applies to the seq2seq network(s), not to elman"


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoder=st.sampled_from(["elman", "lstm", "gru"]), decoder=st.sampled_from(["elman", "lstm", "gru"]),
       attention=st.sampled_from([None, "dot", "general", "additive"]), source=st.integers(1, 4),
       target=st.integers(1, 3), hidden=st.integers(1, 3), classes=st.integers(2, 4), seed=st.integers(0, 99))
def test_any_configuration_matches_pytorch(encoder, decoder, attention, source, target, hidden, classes, seed):
    from torch_seq2seq import TorchSeq2seq as Reference

    model = Reference(encoder, decoder, attention, 2, hidden, classes, seed=seed)
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(3, source, 2)), rng.integers(0, classes, size=(3, target))
    model.zero_grad()
    logits = model.logits(torch.tensor(x), torch.nn.functional.one_hot(torch.tensor(y), classes).double())
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, classes), torch.tensor(y).reshape(-1))
    loss.backward()
    net = rs.seq2seq(encoder, decoder, source_steps=source, target_steps=target, input_size=2, hidden_size=hidden,
                     output_size=classes, attention=attention)
    value, grads = net.compile().value_and_grad(model.params(), x, y)
    assert value == pytest.approx(loss.item(), rel=1e-9)
    expected = model.gradients()
    for name, g in grads.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-8, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("attention,name,message", [
    ("dot", "e", "the encoder cell's symbol e has the name of the attention's nodes (e…); rename it"),
    ("general", "W_a", "the encoder cell's symbol W_a has the name of an attention weight; rename it"),
])
def test_an_encoder_symbol_named_as_the_networks_own_nodes_is_refused_in_one_line(attention, name, message):
    h, x, W = sp.symbols("h x W")
    other = sp.Symbol(name)
    gates, params = ({other: sp.tanh(rs.matvec(W, x))}, [W]) if name == "e" else ({}, [W, other])
    update = (other + h,) if name == "e" else (sp.tanh(rs.matvec(W, x) + rs.matvec(other, h)),)
    shapes = {h: H, x: I, W: (H, I), other: (H, H) if name != "e" else H}
    cell = rs.Cell(state=(h,), input=x, params=params, gates=gates, update=update, shapes=shapes)
    with pytest.raises(rs.RnnsymError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rs.seq2seq(cell, "gru", source_steps=2, target_steps=2, input_size=I, hidden_size=H, output_size=V,
                   attention=attention)
    assert rs.seq2seq(cell, "gru", source_steps=2, target_steps=2, input_size=I, hidden_size=H, output_size=V)
