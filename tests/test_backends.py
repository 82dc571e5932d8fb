"""The JAX and PyTorch backends: the same programs printed for another array library.

Oracles: the NumPy backend (rel 1e-10), torch autograd of torch.nn.RNN / LSTM / GRU, and jax.grad
of forwards written here from the standard equations; random user cells (Hypothesis) against the
NumPy backend; and what a JAX user relies on: jit, vmap, float32, a traced program that does not
grow with T.
"""
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import cellgen
import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.networks import NETWORKS
from rnnsym.numeric.gradcheck import random_point

jax = pytest.importorskip("jax", reason="JAX is not installed: pip install 'rnnsym[jax]'")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
try:
    import torch
except ImportError:  # the torch rows are skipped
    torch = None

BACKENDS = ["jax", pytest.param("torch", marks=pytest.mark.skipif(torch is None, reason="PyTorch is not installed"))]


def _close(got, expected, rel=1e-10):
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return float(np.max(np.abs(got - expected), initial=0.0)) <= rel * scale


def _agree(network, backend, batch=4, seed=1, rel=1e-10):
    params, x, y = random_point(network, batch=batch, seed=seed)
    value, grads = network.compile().value_and_grad(params, x, y)
    compiled = network.compile(backend=backend)
    got_value, got_grads = compiled.value_and_grad(params, x, y)
    assert _close(got_value, value, rel), (float(got_value), value)
    assert set(got_grads) == set(grads)
    for name in grads:
        assert _close(got_grads[name], grads[name], rel), name
    assert _close(compiled.loss(params, x, y), value, rel)
    assert _close(compiled.forward(params, x), network.compile().forward(params, x), rel)
    return compiled


NETWORKS_TO_AGREE = {
    "elman": lambda: rs.elman_rnn(steps=5, input_size=3, hidden_size=4),
    "scalar elman": lambda: rs.elman_rnn(steps=6),
    "lstm": lambda: rs.lstm(steps=5, input_size=3, hidden_size=4),
    "gru, softmax at every step": lambda: rs.gru(steps=4, input_size=2, hidden_size=3, outputs="all", output_size=3,
                                                 output_activation="softmax", loss="cross_entropy"),
    "elman relu, every step": lambda: rs.elman_rnn(steps=4, input_size=2, hidden_size=3, activation="relu",
                                                   outputs="all"),
    "lstm, truncated": lambda: rs.lstm(steps=6, input_size=2, hidden_size=3, truncate=2),
    "lstm, truncated, every step": lambda: rs.lstm(steps=5, input_size=2, hidden_size=3, outputs="all", truncate=2),
    "bidirectional gru": lambda: rs.gru(steps=4, input_size=2, hidden_size=2, bidirectional=True, outputs="all",
                                        output_activation="identity", loss="mse"),
    "seed network": lambda: rs.seed_rnn(steps=5),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(NETWORKS_TO_AGREE))
def test_every_backend_gives_the_numpy_backends_loss_outputs_and_gradients(name, backend):
    compiled = _agree(NETWORKS_TO_AGREE[name](), backend)
    # The scan serves one shared cell in one direction; the rest is the unrolled program.
    expected = "unrolled" if name in ("seed network", "bidirectional gru", "lstm, truncated, every step") else "loop"
    assert compiled.form == expected


@settings(max_examples=40, derandomize=True, deadline=None, database=None, phases=(Phase.generate,),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_a_random_user_cell_gives_the_same_gradients_on_every_backend(data):
    case = cellgen.draw_case(cellgen.HypothesisChooser(data), extended=True)
    try:
        network = rs.unroll(case.cell(), **case.unroll_options())
        params, x, y = random_point(network, batch=3, seed=case.seed)
        with np.errstate(all="ignore"):
            value, grads = network.compile().value_and_grad(params, x, y)
    except RnnsymError:  # a cell rnnsym refuses (named in one line): nothing to compare
        assume(False)
    assume(np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values()))
    for backend in ("jax",) + (("torch",) if torch is not None else ()):
        got_value, got_grads = network.compile(backend=backend).value_and_grad(params, x, y)
        assert _close(got_value, value, 1e-9), (backend, cellgen.reproducer(case))
        for name in grads:
            assert _close(got_grads[name], grads[name], 1e-9), (backend, name, cellgen.reproducer(case))


# ---- independent oracles -----------------------------------------------------------------------------------
@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["elman", "lstm", "gru"])
def test_every_backend_equals_torch_autograd_of_the_torch_module(kind, bidirectional, backend):
    torch.manual_seed(3)
    T, I, H, O = 4, 3, 2, 2
    module = getattr(torch.nn, {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind])(
        I, H, batch_first=True, bidirectional=bidirectional).double()
    readout = torch.nn.Linear(H * (2 if bidirectional else 1), O).double()
    network = NETWORKS[kind](steps=T, input_size=I, hidden_size=H, output_size=O, output_activation="identity",
                             loss="mse", outputs="all", bidirectional=bidirectional)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, T, I)), rng.normal(size=(5, T, O))
    loss = torch.nn.functional.mse_loss(readout(module(torch.tensor(x))[0]), torch.tensor(y))
    loss.backward()
    expected = rs.params_from_torch({k: v.grad for k, v in module.named_parameters()},
                                    {k: v.grad for k, v in readout.named_parameters()})
    value, grads = network.compile(backend=backend).value_and_grad(rs.params_from_torch(module, readout), x, y)
    assert float(value) == pytest.approx(loss.item(), rel=1e-10)
    for name, gradient in expected.items():
        assert _close(grads[name], gradient), name


def _jax_lstm_loss(p, x, y, truncate=None):
    """An LSTM from the standard equations (torch.nn.LSTM's), the last state through a sigmoid
    readout and binary cross-entropy; truncated BPTT stops the gradient at step T − k."""
    h = c = jnp.zeros((x.shape[0], p["W_hi"].shape[0]))
    T = x.shape[1]
    for t in range(T):
        if truncate is not None and t == T - truncate:
            h, c = jax.lax.stop_gradient(h), jax.lax.stop_gradient(c)
        gate = {k: x[:, t] @ p[f"W_i{k}"].T + p[f"b_i{k}"] + h @ p[f"W_h{k}"].T + p[f"b_h{k}"] for k in "ifgo"}
        c = jax.nn.sigmoid(gate["f"]) * c + jax.nn.sigmoid(gate["i"]) * jnp.tanh(gate["g"])
        h = jax.nn.sigmoid(gate["o"]) * jnp.tanh(c)
    z = h @ p["W_hy"].T + p["b_y"]
    return jnp.mean(jnp.sum(jnp.logaddexp(0.0, z) - y.reshape(z.shape) * z, axis=-1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("truncate", [None, 2])
def test_every_backend_equals_jax_grad_of_an_lstm_written_from_its_equations(truncate, backend):
    network = rs.lstm(steps=5, input_size=3, hidden_size=4, truncate=truncate)
    params, x, y = random_point(network, batch=6, seed=2)
    value, expected = jax.value_and_grad(_jax_lstm_loss)({k: jnp.asarray(v) for k, v in params.items()},
                                                        jnp.asarray(x), jnp.asarray(y), truncate)
    got_value, grads = network.compile(backend=backend).value_and_grad(params, x, y)
    assert float(got_value) == pytest.approx(float(value), rel=1e-10)
    for name in expected:
        assert _close(grads[name], expected[name]), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_user_cell_with_a_gate_equals_jax_grad_of_its_equations(backend):
    h, x, a, u, c, v = sp.symbols("h x a u c v")
    f = sp.Symbol("f")
    cell = rs.Cell(state=h, input=x, params=[a, u, c, v], gates={f: rs.functions.sigmoid(a * x + u * h)},
                   update=f * h + (1 - f) * sp.tanh(c * x + v * h))
    network = rs.unroll(cell, steps=6, outputs="all", loss="mse", output_activation="identity")
    params, X, Y = random_point(network, batch=5, seed=4)

    def loss(p, X, Y):
        state, per_step = jnp.zeros(X.shape[0]), []
        for t in range(X.shape[1]):
            gate = jax.nn.sigmoid(p["a"] * X[:, t] + p["u"] * state)
            state = gate * state + (1 - gate) * jnp.tanh(p["c"] * X[:, t] + p["v"] * state)
            per_step.append((p["W_hy"] * state + p["b_y"] - Y[:, t]) ** 2)
        return jnp.mean(jnp.mean(jnp.stack(per_step), axis=0))

    value, expected = jax.value_and_grad(loss)({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(X),
                                               jnp.asarray(Y).reshape(X.shape))
    got_value, grads = network.compile(backend=backend).value_and_grad(params, X, Y)
    assert float(got_value) == pytest.approx(float(value), rel=1e-10)
    for name in expected:
        assert _close(grads[name], expected[name]), name


# ---- what a JAX user relies on ----------------------------------------------------------------------------
def _jax_point(network, batch=4, seed=1, dtype=jnp.float64):
    params, x, y = random_point(network, batch=batch, seed=seed)
    return ({k: jnp.asarray(v, dtype=dtype) for k, v in params.items()}, jnp.asarray(x, dtype=dtype),
            jnp.asarray(y, dtype=dtype))


def test_the_jax_value_and_grad_is_pure_jit_and_vmap_take_it():
    network = rs.lstm(steps=5, input_size=3, hidden_size=4)
    compiled = network.compile(backend="jax")
    params, x, y = _jax_point(network)
    value, grads = compiled.value_and_grad(params, x, y)
    jit_value, jit_grads = jax.jit(compiled.value_and_grad)(params, x, y)
    assert _close(jit_value, value, 1e-13) and all(_close(jit_grads[k], grads[k], 1e-13) for k in grads)
    # An ensemble: two parameter sets at once.
    twice = {k: jnp.stack([v, 0.5 * v]) for k, v in params.items()}
    values, stacked = jax.vmap(compiled.value_and_grad, in_axes=(0, None, None))(twice, x, y)
    half_value, half_grads = compiled.value_and_grad({k: 0.5 * v for k, v in params.items()}, x, y)
    assert values.shape == (2,) and _close(values[1], half_value, 1e-12)
    assert all(_close(stacked[k][1], half_grads[k], 1e-12) for k in grads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_in_float32_out_close_to_float64(backend):
    network = rs.gru(steps=5, input_size=3, hidden_size=4)
    params, x, y = random_point(network, batch=8, seed=5)
    value, grads = network.compile().value_and_grad(params, x, y)
    if backend == "jax":
        convert, dtype = (lambda a: jnp.asarray(a, dtype=jnp.float32)), jnp.float32
    else:
        convert, dtype = (lambda a: torch.tensor(a, dtype=torch.float32)), torch.float32
    got_value, got = network.compile(backend=backend).value_and_grad({k: convert(v) for k, v in params.items()},
                                                                     convert(x), convert(y))
    assert got_value.dtype == dtype and all(g.dtype == dtype for g in got.values())
    assert float(got_value) == pytest.approx(value, rel=1e-5)
    assert all(_close(np.asarray(got[k]), grads[k], 1e-4) for k in grads)


def test_the_traced_jax_program_does_not_grow_with_the_sequence():
    def traced(steps):
        network = rs.lstm(steps=steps, input_size=2, hidden_size=3)
        jaxpr = jax.make_jaxpr(network.compile(backend="jax").value_and_grad)(*_jax_point(network, batch=2))
        return len(jaxpr.jaxpr.eqns)

    assert traced(5) == traced(200)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_the_torch_backend_takes_tensors_and_needs_no_autograd():
    network = rs.elman_rnn(steps=4, input_size=2, hidden_size=3)
    params, x, y = random_point(network, batch=3, seed=0)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    value, grads = network.compile(backend="torch").value_and_grad(tensors, torch.tensor(x), torch.tensor(y))
    assert isinstance(value, torch.Tensor) and not value.requires_grad
    assert all(isinstance(g, torch.Tensor) and g.shape == tensors[k].shape for k, g in grads.items())


# ---- bad input and a missing library -------------------------------------------------------------------------
def test_a_missing_library_names_the_extra_that_installs_it(monkeypatch):
    from rnnsym.backends import runtimes

    monkeypatch.setitem(runtimes.EXTRAS, "jax", ("rnnsym_no_such_module", "JAX"))
    with pytest.raises(RnnsymError, match=r"backend 'jax' needs JAX: pip install 'rnnsym\[jax\]'"):
        rs.elman_rnn(steps=9).compile(backend="jax")


def test_an_unknown_backend_is_refused_in_one_line():
    with pytest.raises(RnnsymError, match="unknown backend 'tensorflow'; allowed: numpy, jax, torch"):
        rs.elman_rnn(steps=2).compile(backend="tensorflow")


@pytest.mark.parametrize("backend", ["numpy", *BACKENDS])
def test_bad_shapes_and_names_are_named_as_the_numpy_backend_names_them(backend):
    network = rs.elman_rnn(steps=3, input_size=2, hidden_size=2)
    params, x, y = random_point(network, batch=2, seed=0)
    compiled = network.compile(backend=backend)
    with pytest.raises(RnnsymError, match=r"x must have shape \(batch, 3, 2\), got \(2, 4, 2\)"):
        compiled.value_and_grad(params, np.zeros((2, 4, 2)), y)
    with pytest.raises(RnnsymError, match="params: missing W_hh; expected exactly"):
        compiled.value_and_grad({k: v for k, v in params.items() if k != "W_hh"}, x, y)
    with pytest.raises(RnnsymError, match=r"parameter 'W_ih' must be shape \(2, 2\), got shape \(3, 2\)"):
        compiled.value_and_grad({**params, "W_ih": np.zeros((3, 2))}, x, y)
    with pytest.raises(RnnsymError, match=r"y must have shape \(2, 1\) to match x, got \(3,\)"):
        compiled.value_and_grad(params, x, np.zeros((3,)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_named_like_the_generated_codes_own_names_stay_apart(backend):
    # The runtime's names (xp, _scan, _full) and the code's locals (_B) as a user's parameter names:
    # every name the code prints is generated, so they cannot shadow each other.
    h, x = sp.symbols("h x")
    xp, scan, full, batch = sp.symbols("xp _scan _full _B")
    cell = rs.Cell(state=h, input=x, params=[xp, scan, full, batch], update=sp.tanh(xp * x + scan * h + full) * batch)
    _agree(rs.unroll(cell, steps=3, outputs="all"), backend)


def test_activation_derivatives_times_an_adjoint_are_one_runtime_call_each():
    # σ' and tanh' written in the output (y·(1 − y), 1 − y²) times an adjoint: _sigmoid_grad and
    # _tanh_grad (one ATen call in PyTorch); a number times them is left as it is.
    from rnnsym.backends.printer import ArrayPrinter

    g, y = sp.symbols("g y")
    printer = ArrayPrinter({g: "g", y: "y"}, {}, batched={g, y})
    assert printer.doprint(g * y * (1 - y)) == "_sigmoid_grad(g, y)"
    assert printer.doprint(3 * g * (1 - y**2)) == "_tanh_grad(3*g, y)"
    assert "_grad" not in printer.doprint(2 * y * (1 - y)) and "_grad" not in printer.doprint(g * (1 - y**3))
    source = rs.lstm(steps=3, input_size=2, hidden_size=2).compile(backend="torch").source
    assert "_sigmoid_grad(" in source and "_tanh_grad(" in source
