"""The torch backend's CUDA graphs (rnnsym/backends/cuda_graphs.py): a replayed value_and_grad is
the one launched kernel by kernel and the NumPy backend's, call after call on fresh inputs; results
are never overwritten; each set of shapes has its graph; a program that cannot be recorded runs
without one. The GPU tests are skipped without CUDA (benchmarks/gpu_session.sh runs them on one)."""
import numpy as np
import pytest

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
