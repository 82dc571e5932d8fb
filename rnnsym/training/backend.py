"""Where a run's gradients are computed: NumPy, JAX or PyTorch (``train(backend=..., device=...)``).

Only the compiled network's ``value_and_grad``, ``loss`` and ``forward`` run on the backend;
their results come back as NumPy arrays and Python floats, so the optimizers, clipping, the
divergence checks, checkpoints and history are the same code on every backend — and a
checkpoint written on one backend resumes on another.

``dtype`` (``"float32"`` or ``"float64"``) is the precision every call computes in, whatever the
data's: the network is compiled with it (``net.compile(..., dtype=dtype)``), so parameters,
data and gradients are all in it on every backend.

- ``"numpy"``: ``net.compile()`` as it is.
- ``"jax"``: ``net.compile(backend="jax")`` under ``jax.jit``, wrapped once, so the step is
  traced once per batch shape (the last, shorter batch of an epoch is the only other one), not
  every step (the batches go to JAX's device with the call). ``jax_enable_x64`` is turned on, as
  float64 needs (it is a global JAX setting).
- ``"torch"``: ``net.compile(backend="torch")`` over tensors on ``device`` (``"cpu"`` when not
  given, ``"cuda"``, ``"cuda:1"`` …); the data is moved there once, each batch is indexed there.
"""
from __future__ import annotations

import numpy as np

from ..backends import BACKENDS
from ..errors import RnnsymError, choose

# The precisions a run may train in (``train(dtype=...)``, ``rnnsym train --dtype``).
DTYPES = ("float32", "float64")


def check_backend(backend, device) -> None:
    """The choice itself, before anything is compiled or imported: the backend's name, and a device
    only for PyTorch (JAX places arrays itself; NumPy runs on the CPU)."""
    choose("backend", backend, BACKENDS)
    if device is not None and backend != "torch":
        raise RnnsymError(f"device applies to backend 'torch', not {backend!r}")
    # A name, or a torch.device (recognised without importing torch, which may not be installed).
    if device is not None and not isinstance(device, str) and type(device).__name__ != "device":
        raise RnnsymError(f"device must be a torch device name such as 'cpu' or 'cuda:0', got {device!r}")


def gradients_on(net, backend: str = "numpy", device=None, dtype: str = "float64") -> "Gradients":
    """The network's compiled functions on ``backend`` (and ``device``) in ``dtype``, returning NumPy
    results (gradients in ``dtype``, losses as Python floats)."""
    check_backend(backend, device)
    choose("dtype", dtype, DTYPES)
    if backend == "numpy":
        return Gradients(net.compile(dtype=dtype))
    compiled = net.compile(backend=backend, dtype=dtype)  # without the library: a one-line error naming the extra
    return JaxGradients(compiled) if backend == "jax" else TorchGradients(compiled, torch_device(device))


def torch_device(device) -> str:
    """``device`` checked against this machine: a one-line error when torch cannot use it."""
    import torch

    name = "cpu" if device is None else str(device)
    try:
        place = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise RnnsymError(f"unknown torch device {name!r}; allowed: cpu, cuda, cuda:N, or another torch device "
                          "name") from None
    if place.type == "cuda":
        if not torch.cuda.is_available():
            raise RnnsymError(f"CUDA is not available to torch {torch.__version__} on this machine "
                              f"(device {name!r}); train on 'cpu', or install a CUDA build of torch")
        if place.index is not None and place.index >= torch.cuda.device_count():
            raise RnnsymError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered from 0")
    try:
        torch.empty(0, device=place)
    except (RuntimeError, NotImplementedError, AssertionError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise RnnsymError(f"device {name!r} is not usable by torch {torch.__version__}: {reason[:160]}") from None
    return name


class Gradients:
    """The NumPy backend: the compiled network as it is."""

    backend, device = "numpy", None

    def __init__(self, compiled):
        self.compiled = compiled

    def data(self, array: np.ndarray):
        """``array`` where the backend reads it (once per run)."""
        return array

    def rows(self, array, index: np.ndarray):
        """The rows ``index`` of an array given by :meth:`data`."""
        return array[index]

    def value_and_grad(self, params, x, y):
        return self.compiled.value_and_grad(params, x, y)

    def loss(self, params, x, y) -> float:
        return self.compiled.loss(params, x, y)

    def forward(self, params, x, y=None) -> np.ndarray:
        """The outputs (a decoder that reads the previous target also needs ``y``: rnnsym.seq2seq)."""
        return self.compiled.forward(params, x, y)

    def release(self) -> None:
        """The compiled network outlives the run: its buffers need not."""
        self.compiled.workspaces.clear()


class JaxGradients(Gradients):
    backend = "jax"

    def __init__(self, compiled):
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 data stays float64, as on NumPy
        super().__init__(compiled)
        # Wrapped once: jit's cache then holds one trace per argument shape for the whole run.
        self._value_and_grad, self._loss, self._forward = (
            jax.jit(compiled.value_and_grad), jax.jit(compiled.loss), jax.jit(compiled.forward))

    def value_and_grad(self, params, x, y):
        loss, grads = self._value_and_grad(params, x, y)
        return float(loss), {name: np.array(g) for name, g in grads.items()}  # writable copies

    def loss(self, params, x, y) -> float:
        return float(self._loss(params, x, y))

    def forward(self, params, x, y=None) -> np.ndarray:
        return np.array(self._forward(params, x, y))

    def release(self) -> None:
        pass


class TorchGradients(Gradients):
    backend = "torch"

    def __init__(self, compiled, device: str):
        import torch

        super().__init__(compiled)
        self._torch, self.device = torch, device

    def data(self, array: np.ndarray):
        return self._torch.as_tensor(array, device=self.device)

    def rows(self, array, index: np.ndarray):
        return array[self._torch.as_tensor(index, device=array.device)]

    def value_and_grad(self, params, x, y):
        loss, grads = self.compiled.value_and_grad(params, x, y)
        return float(loss), {name: g.cpu().numpy() for name, g in grads.items()}

    def loss(self, params, x, y) -> float:
        return float(self.compiled.loss(params, x, y))

    def forward(self, params, x, y=None) -> np.ndarray:
        return self.compiled.forward(params, x, y).cpu().numpy()

    def release(self) -> None:
        pass
