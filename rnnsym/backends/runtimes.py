"""What the generated code of each backend calls besides ``xp`` (the array API): the scan over
time, the activations in their library's stable form, and arrays made in x's precision and on
x's device. Each runtime is built only when its backend is asked for; without the library, the
error names the extra that installs it.
"""
from __future__ import annotations

from ..errors import RnnsymError

EXTRAS = {"jax": ("jax", "JAX"), "torch": ("torch", "PyTorch")}


def load(backend: str) -> dict:
    """The generated code's namespace for ``backend`` ("jax" or "torch")."""
    module, library = EXTRAS[backend]
    try:
        __import__(module)
        __import__("array_api_compat")  # the array API over both libraries
    except ImportError as error:
        raise RnnsymError(f"backend {backend!r} needs {library}: pip install 'rnnsym[{backend}]' "
                          f"({error.name} is not installed)") from None
    return _jax() if backend == "jax" else _torch()


def _common(xp) -> dict:
    """The helpers written once over the array API."""
    def outer(d, v):  # Σ over steps and examples of d ⊗ v: one matrix product
        return xp.reshape(d, (-1, d.shape[-1])).T @ xp.reshape(v, (-1, v.shape[-1]))

    def total(d, ndim):  # the sum over every axis but the parameter's own
        return xp.sum(d) if ndim == 0 else xp.sum(xp.reshape(d, (-1, *d.shape[d.ndim - ndim:])), axis=0)

    def mm(v, w):  # W·v for a batch (or a stack over time) of rows v
        return v @ w.T

    return {"xp": xp, "_outer": outer, "_total": total, "_mm": mm}


def _jax() -> dict:
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import erf

    def scan(step, carry, xs, length, reverse=False):
        return jax.lax.scan(step, carry, xs, length=length, reverse=reverse)

    def full(x, shape, value):
        return jnp.broadcast_to(jnp.asarray(value, dtype=x.dtype), shape)

    return {**_common(jnp), "_scan": scan, "_full": full, "_tanh": jnp.tanh, "_sigmoid": jax.nn.sigmoid,
            "_sigmoid_grad": lambda g, y: g * y * (1 - y), "_tanh_grad": lambda g, y: g * (1 - y * y),  # XLA fuses
            "_softmax": lambda z: jax.nn.softmax(z, axis=-1), "_log_softmax": lambda z: jax.nn.log_softmax(z, axis=-1),
            "_erf": erf, "_maximum": jnp.maximum, "_minimum": jnp.minimum, "_softplus": jax.nn.softplus}


def _torch() -> dict:
    import array_api_compat.torch as xp
    import torch

    def scan(step, carry, xs, length, reverse=False):
        """``lax.scan``'s meaning in a Python loop: ys stacked in the order of xs."""
        ys = [None] * length
        for t in (range(length - 1, -1, -1) if reverse else range(length)):
            carry, ys[t] = step(carry, tuple(a[t] for a in xs))
        return carry, tuple(torch.stack(column) for column in zip(*ys)) if ys and ys[0] else ()

    def full(x, shape, value):
        if isinstance(value, (int, float)):
            return torch.full(shape, float(value), dtype=x.dtype, device=x.device)
        return torch.broadcast_to(torch.as_tensor(value, dtype=x.dtype, device=x.device), shape)

    # A number as b stays a number (clamp): a tensor made of it would be copied from host memory.
    def maximum(a, b):
        return torch.clamp_min(a, b) if isinstance(b, (int, float)) else torch.maximum(a, b)

    def minimum(a, b):
        return torch.clamp_max(a, b) if isinstance(b, (int, float)) else torch.minimum(a, b)

    # One ATen call each for an activation's derivative times its adjoint, not three or four.
    return {**_common(xp), "_scan": scan, "_full": full, "_tanh": torch.tanh, "_sigmoid": torch.sigmoid,
            "_sigmoid_grad": torch.ops.aten.sigmoid_backward, "_tanh_grad": torch.ops.aten.tanh_backward,
            "_softmax": lambda z: torch.softmax(z, dim=-1), "_log_softmax": lambda z: torch.log_softmax(z, dim=-1),
            "_erf": torch.special.erf, "_maximum": maximum, "_minimum": minimum,
            "_softplus": lambda z: torch.logaddexp(z, torch.zeros_like(z))}
