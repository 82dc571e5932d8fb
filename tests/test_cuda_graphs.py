"""The torch backend's CUDA graphs (rnnsym/backends/cuda_graphs.py): a replayed value_and_grad is
the one launched kernel by kernel and the NumPy backend's, call after call on fresh inputs; results
are never overwritten; each set of shapes has its graph; a program that cannot be recorded runs
without one. The GPU tests are skipped without CUDA (benchmarks/gpu_session.sh runs them on one)."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import cellgen
import rnnsym as rs
from rnnsym.backends.cuda_graphs import GraphCache

torch = pytest.importorskip("torch")
pytest.importorskip("array_api_compat")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

NETWORKS = {"lstm": lambda: rs.lstm(steps=6, input_size=3, hidden_size=5),
            "elman": lambda: rs.elman_rnn(steps=7, input_size=2, hidden_size=4)}


def _random_point(net, batch, seed, dtype):
    from rnnsym.numeric.gradcheck import random_point

    params, x, y = random_point(net, batch=batch, seed=seed)
    return ({k: np.asarray(v, dtype=dtype) for k, v in params.items()}, np.asarray(x, dtype=dtype), y)


def _on_cuda(params, x, y):
    return ({k: torch.tensor(v, device="cuda") for k, v in params.items()}, torch.tensor(x, device="cuda"),
            torch.tensor(y, device="cuda"))


def test_cpu_tensors_record_no_graph():
    net = NETWORKS["elman"]()
    compiled = net.compile(backend="torch").with_cpu_lowering("torch")
    params, x, y = _random_point(net, 4, 0, np.float64)
    compiled.value_and_grad({k: torch.tensor(v) for k, v in params.items()}, torch.tensor(x), torch.tensor(y))
    assert len(compiled._graphs) == 0


@cuda
@pytest.mark.filterwarnings("error:rnnsym. value_and_grad could not be recorded")
@pytest.mark.parametrize("kind", sorted(NETWORKS))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_replayed_gradients_are_the_numpy_backends_call_after_call(kind, dtype, tol):
    net = NETWORKS[kind]()
    graphed, eager, reference = net.compile(backend="torch"), net.compile(backend="torch").with_cuda_graphs(False), net.compile()
    kept = []
    for seed in range(4):  # fresh inputs each call: a replay that read stale inputs would differ
        params, x, y = _random_point(net, 8, seed, dtype)
        value, grads = graphed.value_and_grad(*_on_cuda(params, x, y))
        value_eager, grads_eager = eager.value_and_grad(*_on_cuda(params, x, y))
        ref_value, ref_grads = reference.value_and_grad(params, x, y)
        assert abs(value.item() - ref_value) <= tol * max(1.0, abs(ref_value))
        for name, g in grads.items():
            assert g.device.type == "cuda" and g.dtype == torch.tensor(x).dtype
            np.testing.assert_allclose(g.cpu().numpy(), ref_grads[name], rtol=tol, atol=tol, err_msg=name)
            np.testing.assert_allclose(g.cpu().numpy(), grads_eager[name].cpu().numpy(), rtol=tol, atol=tol)
        kept.append((value.clone(), {k: g.clone() for k, g in grads.items()}, value, grads))
    assert len(graphed._graphs) == 1  # one set of shapes, one recording
    for copy_value, copy_grads, value, grads in kept:  # no later call overwrote an earlier result
        assert torch.equal(copy_value, value) and all(torch.equal(copy_grads[k], grads[k]) for k in grads)


@cuda
def test_each_batch_size_has_its_own_graph():
    net = NETWORKS["lstm"]()
    compiled, reference = net.compile(backend="torch"), net.compile()
    for batch in (3, 9, 3):
        params, x, y = _random_point(net, batch, batch, np.float64)
        value, grads = compiled.value_and_grad(*_on_cuda(params, x, y))
        ref_value, ref_grads = reference.value_and_grad(params, x, y)
        assert abs(value.item() - ref_value) < 1e-10
        assert all(np.allclose(grads[k].cpu().numpy(), ref_grads[k], atol=1e-10) for k in grads)
    assert len(compiled._graphs) == 2


@cuda
def test_a_function_that_waits_for_the_host_runs_without_a_graph():
    def scaled(x):  # .item() copies to the host: torch refuses it while recording
        return (x * x.sum().item(),)

    cache = GraphCache(scaled)
    for seed in range(2):
        x = torch.randn(5, device="cuda", generator=torch.Generator("cuda").manual_seed(seed))
        if seed == 0:
            with pytest.warns(RuntimeWarning, match="could not be recorded as a CUDA graph"):
                (out,) = cache(x)
        else:  # the warning is said once
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                (out,) = cache(x)
        assert torch.allclose(out, x * x.sum())
    assert len(cache) == 0 and len(cache._unrecordable) == 1
    assert torch.equal(torch.ones(3, device="cuda") + 1, torch.full((3,), 2.0, device="cuda"))  # CUDA still works


@cuda
def test_the_oldest_graph_is_dropped_past_the_cache_size():
    cache = GraphCache(lambda x: (x * 2,), size=2)
    for n in (1, 2, 3):
        (out,) = cache(torch.arange(float(n), device="cuda"))
        assert torch.equal(out, torch.arange(float(n), device="cuda") * 2)
    assert len(cache) == 2


# ---- what makes a program recordable, checked on the CPU ---------------------------------------------
# A CUDA graph cannot record a tensor made from host data (torch.asarray(0.0, device="cuda") copies
# from host memory) or a value read back (.item()). The torch program's operations are the same on
# every device, so the CPU run below shows whether the GPU's recording would be refused: the CUDA
# tests above caught `logaddexp(0.0, z)` (array-api-compat turned the 0.0 into a host tensor), which
# made every recording fail and every call run without a graph, silently.
HOST_DATA = {"aten.lift_fresh.default", "aten.lift_fresh_copy.default", "aten._local_scalar_dense.default"}


class HostDataWatch:
    """A dispatch mode recording every operation in HOST_DATA, and where in the generated code it ran."""

    def __enter__(self):
        import traceback

        from torch.utils._python_dispatch import TorchDispatchMode

        seen = self.seen = []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if str(func) in HOST_DATA:
                    lines = [f.line for f in traceback.extract_stack() if f.filename.startswith("<rnnsym:")]
                    seen.append(f"{func}: {lines[-1] if lines else '(outside the generated code)'}")
                return func(*args, **(kwargs or {}))

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def _host_data_ops(net, form: str, batch: int = 3) -> list[str]:
    from rnnsym.numeric.gradcheck import random_point

    compiled = net.compile(backend="torch", form=form).with_cpu_lowering("torch")
    params, x, y = random_point(net, batch=batch, seed=0)
    tp = {k: torch.tensor(v) for k, v in params.items()}
    tx, ty = torch.tensor(x), torch.tensor(y)
    with HostDataWatch() as watch:
        compiled.value_and_grad(tp, tx, ty)
    return watch.seen


BUILT_IN = {
    "seed": lambda: rs.seed_rnn(),
    "lstm": lambda: rs.lstm(steps=4, input_size=2, hidden_size=3),
    "gru, cross-entropy, all steps": lambda: rs.gru(steps=3, input_size=2, hidden_size=3, output_size=3,
                                                     loss="cross_entropy", output_activation="softmax",
                                                     outputs="all"),
    "elman, mse": lambda: rs.elman_rnn(steps=4, input_size=2, hidden_size=3, loss="mse"),
    "elman relu": lambda: rs.elman_rnn(steps=4, input_size=2, hidden_size=3, activation="relu"),
    "seq2seq, additive attention": lambda: rs.seq2seq("gru", "lstm", source_steps=3, target_steps=2, input_size=2,
                                                      hidden_size=3, output_size=3, attention="additive"),
}


@pytest.mark.parametrize("form", ["loop", "unrolled"])
@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_built_in_programs_make_no_tensor_from_host_data(name, form):
    net = BUILT_IN[name]()
    if form == "loop" and name in ("seed", "seq2seq, additive attention"):
        pytest.skip("the unrolled form only (the seed network's cell is not one shared cell)")
    assert _host_data_ops(net, form) == []


@settings(max_examples=40, derandomize=True, deadline=None, database=None, phases=(Phase.generate,),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_user_cells_programs_make_no_tensor_from_host_data(data):
    case = cellgen.draw_case(cellgen.HypothesisChooser(data), extended=True)  # Max, Min, Piecewise, … too
    try:
        net = rs.unroll(case.cell(), **case.unroll_options())
    except rs.RnnsymError:
        assume(False)  # refused when built: tests/test_random_cells.py checks the refusal's message
    for form in ("unrolled",) if case.bidirectional else ("loop", "unrolled"):
        assert _host_data_ops(net, form, batch=case.batch) == [], cellgen.reproducer(case, None)
