"""A network compiled for JAX or PyTorch: the derived forward and backward as pure functions of
the library's arrays, behind the same dict-based entry points as the NumPy backend.

The checks are those that hold under ``jax.jit``: parameter names and every shape are checked
(shapes are known when a function is traced); the values (finite, targets in range) are not,
since a traced function cannot look at them — check data with the NumPy backend, or
``rnnsym.gradcheck``, once.
"""
from __future__ import annotations

import linecache
import os
from typing import Mapping

from ..errors import RnnsymError
from ..numeric.compiled import check_param_names, param_shaped, teacher_forcing
from . import cuda_graphs


class BackendCompiled:
    """``value_and_grad(params, x, y) -> (loss, {name: gradient})``, ``loss(params, x, y)`` and
    ``forward(params, x)`` over one library's arrays; ``source`` is the generated code.

    The computation runs in x's precision and on x's device (float32 or float64; JAX needs
    ``jax_enable_x64`` for float64); parameters are brought to them. Under JAX the three
    functions are pure: ``jax.jit``, ``jax.vmap`` and sharded arrays take them as they are.

    PyTorch tensors in CPU memory are computed by the NumPy lowering of the same program, on the
    tensors' own memory (no copy in, tensors out): on the CPU it runs each step in one fused pass
    where PyTorch would dispatch every small operation (an LSTM, hidden 32: 11 ms against 38 ms).
    ``with_cpu_lowering("torch")`` (or the environment's ``RNNSYM_TORCH_CPU=torch``) keeps torch's
    operations on the CPU too, as on every other device.

    On CUDA tensors ``value_and_grad`` records the program as a CUDA graph at its first call for a
    set of shapes and replays it after (see ``rnnsym.backends.cuda_graphs``);
    ``with_cuda_graphs(False)`` (or ``RNNSYM_CUDA_GRAPHS=0``) launches every kernel from Python.
    """

    cpu_lowering = os.environ.get("RNNSYM_TORCH_CPU", "numpy")  # "numpy" or "torch"
    cuda_graphs = os.environ.get("RNNSYM_CUDA_GRAPHS", "1") != "0"

    def __init__(self, network, source: str, runtime: dict, backend: str, form: str, gradient_keys: dict,
                 truncate: int | None = None):
        self.network, self.source, self.backend, self.form, self.truncate = network, source, backend, form, truncate
        self.param_names = network.param_names
        self.gradient_keys = gradient_keys
        filename = f"<rnnsym:{network.name}:T={network.steps}:{backend}:{form}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = dict(runtime)
        exec(compile(source, filename, "exec"), namespace)  # our own generated source, no user text
        self._xp = runtime["xp"]
        self._forward, self._loss, self._value_and_grad = (namespace[f] for f in ("forward", "loss", "value_and_grad"))
        self._no_grad = _no_grad(backend)
        self.dtype: str | None = None  # None: x's precision; else every call's ("float32", "float64")
        self._numpy = None  # the NumPy lowering, for torch tensors in CPU memory (made when first needed)
        self._graphs = cuda_graphs.GraphCache(self._shaped_value_and_grad)  # records nothing until a CUDA call

    def with_dtype(self, dtype: str) -> "BackendCompiled":
        """The same functions, computing in ``dtype`` whatever x is."""
        import copy

        fixed = copy.copy(self)
        fixed.dtype = dtype
        return fixed

    def with_cpu_lowering(self, lowering: str) -> "BackendCompiled":
        """The same functions, computing CPU tensors by ``lowering``: "numpy" (the default) or
        "torch" (torch's own operations, as on every other device)."""
        import copy

        from ..errors import choose

        choose("cpu lowering", lowering, ("numpy", "torch"))
        fixed = copy.copy(self)
        fixed.cpu_lowering = lowering
        return fixed

    def with_cuda_graphs(self, enabled: bool) -> "BackendCompiled":
        """The same functions, with ``value_and_grad`` on CUDA tensors replayed from a CUDA graph
        (``True``, the default) or launched kernel by kernel from Python (``False``)."""
        import copy

        fixed = copy.copy(self)
        fixed.cuda_graphs = bool(enabled)
        return fixed

    def _on_cpu(self, x):
        """The NumPy compiled network when ``x`` is a torch tensor in CPU memory (or not yet a
        tensor) and the CPU lowering is NumPy's; else None."""
        if self.backend != "torch" or self.cpu_lowering != "numpy" or getattr(getattr(x, "device", None), "type",
                                                                              "cpu") != "cpu":
            return None
        if self._numpy is None:
            self._numpy = self.network.compile(truncate=self.truncate, form=self.form)
        return self._numpy if self.dtype is None else self._numpy.with_dtype(self.dtype)

    def value_and_grad(self, params: Mapping, x, y):
        host = self._on_cpu(x)
        if host is not None:
            value, grads = host.value_and_grad(_host_params(params), _host(x), _host(y))
            import torch

            return torch.tensor(value, dtype=_torch_dtype(grads)), {k: torch.from_numpy(g) for k, g in grads.items()}
        with self._no_grad():
            x = self._x(x)
            inputs = (x, self._y(y, x), *self._params(params, x))
            graphed = self.cuda_graphs and cuda_graphs.usable(x)
            value, *grads = self._graphs(*inputs) if graphed else self._shaped_value_and_grad(*inputs)
            return value, dict(zip(self.param_names, grads))

    def _shaped_value_and_grad(self, x, y, *params) -> tuple:
        """(loss, each parameter's gradient in its own shape, in ``param_names``' order)."""
        value, grads = self._value_and_grad(x, y, *params)
        shapes, xp = self.network.param_shapes, self._xp
        return (value, *(xp.reshape(xp.asarray(grads[self.gradient_keys[name]], dtype=x.dtype, device=_device(x)),
                                    tuple(shapes[name]))
                         for name in self.param_names))

    def loss(self, params: Mapping, x, y):
        host = self._on_cpu(x)
        if host is not None:
            import torch

            x = _host(x)
            float32 = (self.dtype or str(getattr(x, "dtype", "float64"))).endswith("float32")
            return torch.tensor(host.loss(_host_params(params), x, _host(y)),
                                dtype=torch.float32 if float32 else torch.float64)
        with self._no_grad():
            x = self._x(x)
            return self._loss(x, self._y(y, x), *self._params(params, x))

    def forward(self, params: Mapping, x, y=None):
        host = self._on_cpu(x)
        if host is not None:
            import torch

            return torch.from_numpy(host.forward(_host_params(params), _host(x), None if y is None else _host(y)))
        with self._no_grad():
            x = self._x(x)
            targets = teacher_forcing(self.network, y, lambda: self._y(y, x))
            outputs = self._forward(x, *targets, *self._params(params, x))
            if self.form == "loop":
                return outputs
            # The unrolled form gives one output node per step with outputs="all", else one.
            return self._xp.stack(outputs, axis=1) if self.network.options.get("outputs") == "all" else outputs[0]

    # ---- checks that hold while tracing: names and shapes ---------------------------------------------
    def _params(self, params: Mapping, x) -> list:
        check_param_names(self.network, params)
        out = []
        for name, shape in self.network.param_shapes.items():
            value = params[name]
            value = self._xp.asarray(value.detach() if hasattr(value, "detach") else value,  # a torch leaf's data
                                     dtype=x.dtype, device=_device(x))
            value = param_shaped(name, value, tuple(shape))
            out.append(value)
        return out

    def _x(self, x):
        net, xp = self.network, self._xp
        x = _as_array(self.backend, x)
        T, size = net.steps, net.input_size
        scalar_inputs = net.graph.of_kind("input")[0].shape == ()
        if x.ndim == 2 and size == 1 and not scalar_inputs:
            x = x[:, :, None]
        elif x.ndim == 3 and x.shape[2] == 1 and scalar_inputs:
            x = x[:, :, 0]
        expected = (T,) if scalar_inputs else (T, size)
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise RnnsymError(f"x must have shape (batch, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        if self.dtype is not None:
            x = xp.astype(x, getattr(xp, self.dtype))
        elif not xp.isdtype(x.dtype, "real floating"):
            raise RnnsymError(f"x must hold floating-point numbers (float32 or float64), got {x.dtype}")
        return x

    def _y(self, y, x):
        net, xp = self.network, self._xp
        y = _as_array(self.backend, y, device=_device(x))
        targets = net.graph.of_kind("target")
        target = targets[0]
        lead = (x.shape[0], len(targets)) if target.step is not None else (x.shape[0],)
        size = target.shape[0] if target.shape else None
        if net.options.get("loss") == "cross_entropy" and xp.isdtype(y.dtype, "integral"):
            if tuple(y.shape) != lead:
                raise RnnsymError(f"class targets y must have shape {lead} to match x, got {tuple(y.shape)}")
            y = y[..., None] == xp.arange(size, device=_device(x))  # one-hot rows
        y = xp.astype(y, x.dtype)
        if size is None and y.ndim == len(lead) + 1 and y.shape[-1] == 1:
            y = y[..., 0]
        elif size == 1 and tuple(y.shape) == lead:
            y = y[..., None]
        expected = lead + ((size,) if size is not None else ())
        if tuple(y.shape) != expected:
            raise RnnsymError(f"y must have shape {expected} to match x, got {tuple(y.shape)}")
        return y


def _host(value):
    """A CPU tensor's NumPy view (no copy), or the value as it is."""
    return value.detach().numpy() if hasattr(value, "detach") else value


def _host_params(params: Mapping) -> dict:
    return {name: _host(value) for name, value in params.items()}


def _torch_dtype(arrays: dict):
    import numpy as np
    import torch

    return torch.float32 if any(a.dtype == np.float32 for a in arrays.values()) else torch.float64


def _as_array(backend: str, value, device=None):
    """An array of the backend's library (NumPy arrays and lists are converted; a tensor stays where it is)."""
    if backend == "torch":
        import torch

        return value if isinstance(value, torch.Tensor) else torch.as_tensor(value, device=device)
    import jax.numpy as jnp

    return jnp.asarray(value)


def _device(x):
    """x's device, for the arrays made beside it (None for JAX: its arrays follow their inputs)."""
    return getattr(x, "device", None) if type(x).__module__.startswith("torch") else None


def _no_grad(backend: str):
    if backend == "torch":
        import torch

        return torch.no_grad  # the derived backward needs no autograd graph
    from contextlib import nullcontext

    return nullcontext
