"""JAX's sharding carries the derived gradients across devices: the batch split over two devices
gives the loss and gradients of the whole batch on one.

JAX fixes its device count when it starts, so the sharded run is this file run as a script in a
fresh process with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (two CPU devices); it
prints what it measured as JSON and the tests below judge it. docs/scale.md shows the recipe that
``sharded_run`` follows.
"""
import json
import os
import subprocess
import sys

import pytest

BATCH = 8  # split in two halves of 4


def sharded_run(kind: str) -> dict:
    """The recipe: a Mesh over the devices, x and y split on the batch axis, parameters replicated,
    ``jax.jit(value_and_grad)`` called on the sharded arrays; and the same call unsharded."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import rnnsym as rs
    from rnnsym.numeric.gradcheck import random_point

    jax.config.update("jax_enable_x64", True)
    net = {"lstm": rs.lstm, "elman": rs.elman_rnn}[kind](steps=5, input_size=3, hidden_size=4)
    params, x, y = random_point(net, batch=BATCH, seed=3)
    value_and_grad = jax.jit(net.compile(backend="jax").value_and_grad)

    mesh = Mesh(np.array(jax.devices()), axis_names=("batch",))
    by_batch = NamedSharding(mesh, PartitionSpec("batch"))  # the leading axis split over the devices
    replicated = NamedSharding(mesh, PartitionSpec())
    sharded_x, sharded_y = jax.device_put(x, by_batch), jax.device_put(y, by_batch)
    sharded_params = {name: jax.device_put(value, replicated) for name, value in params.items()}
    loss, grads = value_and_grad(sharded_params, sharded_x, sharded_y)

    whole_loss, whole_grads = value_and_grad(params, x, y)  # one device, the whole batch
    outputs = jax.jit(net.compile(backend="jax").forward)(sharded_params, sharded_x)
    program = value_and_grad.lower(sharded_params, sharded_x, sharded_y).compile().as_text()
    return {
        "devices": len(jax.devices()),
        "x_devices": len(sharded_x.sharding.device_set),
        "x_shard_rows": sorted(shard.data.shape[0] for shard in sharded_x.addressable_shards),
        "loss_devices": len(loss.sharding.device_set),
        "grad_devices": sorted({len(g.sharding.device_set) for g in grads.values()}),
        "output_shard_rows": sorted(shard.data.shape[0] for shard in outputs.addressable_shards),
        "sums_across_devices": "all-reduce" in program,  # the halves' gradients added up
        "loss": float(loss), "whole_loss": float(whole_loss),
        "grads": {name: np.asarray(g).tolist() for name, g in grads.items()},
        "whole_grads": {name: np.asarray(g).tolist() for name, g in whole_grads.items()},
    }


def _run_on_two_devices(kind: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    run = subprocess.run([sys.executable, __file__, kind], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def _close(got, expected, rel=1e-12) -> bool:
    import numpy as np

    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected))))
    return float(np.max(np.abs(got - expected))) <= rel * scale


@pytest.mark.parametrize("kind", ["lstm", "elman"])
def test_the_batch_sharded_over_two_devices_gives_the_whole_batchs_loss_and_gradients(kind):
    pytest.importorskip("jax", reason="JAX is not installed: pip install 'rnnsym[jax]'")
    run = _run_on_two_devices(kind)
    # It really ran sharded: two devices, each holding half the batch, the gradients summed across them.
    assert run["devices"] == 2 and run["x_devices"] == 2
    assert run["x_shard_rows"] == [BATCH // 2, BATCH // 2]
    assert run["output_shard_rows"] == [BATCH // 2, BATCH // 2]
    assert run["loss_devices"] == 2 and run["grad_devices"] == [2]
    assert run["sums_across_devices"]
    assert _close(run["loss"], run["whole_loss"]), (run["loss"], run["whole_loss"])
    assert set(run["grads"]) == set(run["whole_grads"])
    for name, grad in run["grads"].items():
        assert _close(grad, run["whole_grads"][name]), name


if __name__ == "__main__":
    print(json.dumps(sharded_run(sys.argv[1])))
