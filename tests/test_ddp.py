"""examples/train_ddp.py under torchrun: rs.to_torch trained with DistributedDataParallel on two
processes (gloo, localhost) ends where one process training on the whole batch ends."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnsym as rs
from rnnsym.errors import RnnsymError

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'rnnsym[torch]'")
pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="this PyTorch build has no gloo backend for torch.distributed")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_ddp.py"
ARGS = ["--network", "lstm", "--hidden-size", "3", "--seq-len", "5", "--batch", "12", "--steps", "3",
        "--lr", "0.5", "--seed", "4"]
# What the launcher says when the processes cannot meet: no local sockets, no free port, a host
# name that does not resolve (a sandbox). That machine cannot run DDP at all, which is not a fault
# of rnnsym's; any other failure, the script's own errors included, fails the test.
CANNOT_LAUNCH = ("RendezvousConnectionError", "RendezvousTimeoutError", "DistNetworkError", "Address already in use",
                 "Connection refused", "getaddrinfo", "Failed to resolve", "connectFullMesh", "Network is unreachable")


def _example():
    spec = importlib.util.spec_from_file_location("train_ddp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_process_on_the_whole_batch(example):
    """The reference, written here without DDP: torch.optim.SGD over the whole batch."""
    args = example.arguments(["unused.json", *ARGS])
    net, x, y = example.problem(args)
    model = rs.to_torch(net, seed=args.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    for _ in range(args.steps):
        optimizer.zero_grad()
        model(x, y).backward()
        optimizer.step()
    return {name: value.detach().numpy() for name, value in model.rnnsym_params().items()}


def test_two_processes_under_ddp_end_where_one_process_on_the_whole_batch_ends(tmp_path):
    out = tmp_path / "model.json"
    # --standalone: a rendezvous on a free localhost port, so parallel runs cannot collide.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(EXAMPLE),
               str(out), *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    output = run.stdout + run.stderr
    if run.returncode != 0 and any(marker in output for marker in CANNOT_LAUNCH):
        pytest.skip(f"torch.distributed cannot start two processes on this machine: {output[-500:]}")
    assert run.returncode == 0, output[-3000:]
    # each process took its own half of the batch
    assert "process 0 of 2: examples 0 to 5 of 12" in run.stdout
    assert "process 1 of 2: examples 6 to 11 of 12" in run.stdout
    trained = rs.load_model(out).params
    expected = _one_process_on_the_whole_batch(_example())
    assert set(trained) == set(expected)
    for name, value in expected.items():
        scale = max(1.0, float(np.max(np.abs(value))))
        assert float(np.max(np.abs(trained[name] - value))) <= 1e-10 * scale, name
    start = rs.to_torch(rs.lstm(steps=5, hidden_size=3), seed=4).rnnsym_params()
    assert not np.allclose(start["W_ii"].detach().numpy(), trained["W_ii"])  # it did train


def test_a_batch_that_does_not_split_evenly_is_refused_in_one_line():
    example = _example()
    x, y = np.zeros((10, 5)), np.zeros(10)
    with pytest.raises(RnnsymError, match=r"^--batch 10 does not split into 3 equal shares; give a multiple of 3$"):
        example.share(x, y, 0, 3)
    halves = [example.share(np.arange(10.0)[:, None], np.arange(10.0), rank, 2)[1] for rank in (0, 1)]
    assert [list(h) for h in halves] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
