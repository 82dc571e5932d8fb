"""Train an rnnsym network with PyTorch's DistributedDataParallel: the derived backward on every process.

    torchrun --nproc_per_node=2 examples/train_ddp.py model.json --steps 20

Every process builds the same network (``rs.to_torch(net, seed=...)``: the same start everywhere)
and the same seeded batch of the built-in ``sentiment`` task, and takes its own contiguous share of
the batch. ``loss.backward()`` runs the derived backward on that share; DistributedDataParallel
averages the gradients over the processes (gloo on CPU, NCCL with ``--device cuda``), so each
optimizer step is the step on the whole batch. Process 0 writes the trained parameters as an rnnsym
model file (``rs.load_model(path)`` reads it back; so does ``rnnsym predict``).

Run without torchrun (``python examples/train_ddp.py model.json``) it is one process on the whole
batch: the same run, up to rounding.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.training.checkpoint import save_model
from rnnsym.training.loop import describe_network

NETWORKS = {"lstm": rs.lstm, "gru": rs.gru, "elman": rs.elman_rnn}
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="where process 0 writes the trained parameters (an rnnsym model file, .json)")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="lstm")
    parser.add_argument("--hidden-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=8, help="time steps T of each sequence")
    parser.add_argument("--batch", type=int, default=32, help="the whole batch, shared out over the processes")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="the start and the data follow from it")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (each process takes the GPU of its local rank)")
    return parser.parse_args(argv)


def problem(args):
    """The network and the whole batch, the same on every process."""
    net = NETWORKS[args.network](steps=args.seq_len, hidden_size=args.hidden_size)
    data = rs.make_task("sentiment", args.seq_len, size=args.batch, seed=args.seed)
    return net, data.x, data.y


def share(x, y, rank: int, world: int):
    """This process's contiguous share of the batch. Equal shares, so that the average of the
    processes' mean-loss gradients is the whole batch's."""
    if len(x) % world:
        raise RnnsymError(f"--batch {len(x)} does not split into {world} equal shares; give a multiple of {world}")
    size = len(x) // world
    return x[rank * size:(rank + 1) * size], y[rank * size:(rank + 1) * size]


def train(args) -> None:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if distributed:  # torchrun sets MASTER_ADDR/PORT, RANK and WORLD_SIZE: the env:// rendezvous
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        net, x, y = problem(args)
        model = rs.to_torch(net, seed=args.seed, dtype=DTYPES[args.dtype], device=device)
        wrapped = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
            if distributed else model
        size = len(x)
        x, y = (torch.as_tensor(a, dtype=DTYPES[args.dtype], device=device) for a in share(x, y, rank, world))
        print(f"process {rank} of {world}: examples {rank * len(x)} to {(rank + 1) * len(x) - 1} of {size}", flush=True)
        optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr)
        for step in range(1, args.steps + 1):
            optimizer.zero_grad()
            loss = wrapped(x, y)
            loss.backward()  # the derived backward here; DDP averages the gradients over the processes
            optimizer.step()
            report(step, loss.detach(), distributed, rank, world)
        if rank == 0:
            params = {name: value.detach().cpu().numpy() for name, value in model.rnnsym_params().items()}
            save_model(args.out, describe_network(net), params, backend="torch", device=str(device),
                       seed=args.seed)  # written atomically
            print(f"wrote {args.out}")
        if distributed:  # every process done before the group goes: a process that tore gloo down while
            dist.barrier()  # another still wrote its file once ended in "terminate called" (SIGABRT)
    finally:
        if distributed:
            dist.destroy_process_group()


def report(step: int, loss, distributed: bool, rank: int, world: int) -> None:
    """Process 0 prints the whole batch's loss before the step (the mean of the shares' losses)."""
    if distributed:
        dist.all_reduce(loss)
        loss = loss / world
    if rank == 0:
        print(f"step {step}: loss {loss.item():.6f}", flush=True)


def main(argv=None) -> int:
    try:
        train(arguments(argv))
    except RnnsymError as exc:  # one line, exit status 2, as the rnnsym command line does
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
