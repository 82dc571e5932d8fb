"""``rs.to_torch(net)``: a network as a ``torch.nn.Module`` whose backward is the derived backward.

The module's forward calls the torch backend's ``value_and_grad`` (``net.compile(backend="torch")``)
inside a ``torch.autograd.Function``: the derived gradients are computed with the loss, saved, and
handed to autograd in backward, scaled by the incoming gradient. Autograd never records the
computation itself; it only routes the derived gradients into the module's parameters, so any torch
optimizer, ``DistributedDataParallel`` and ``.to(device)`` / ``.float()`` / ``.double()`` work.

Where the parameters live:

- a built-in one-layer Elman RNN, LSTM or GRU (``rs.elman_rnn``, ``rs.lstm``, ``rs.gru``, optionally
  bidirectional) keeps PyTorch's layout: ``model.rnn`` holds exactly ``torch.nn.RNN/LSTM/GRU``'s
  tensors (``weight_ih_l0``, ..., ``*_reverse``; gate blocks stacked i,f,g,o / r,z,n) and
  ``model.readout`` a ``torch.nn.Linear``'s ``weight`` and ``bias``, so their state dicts load into
  those modules and back (the modules compute what the network computes with its default
  activation, tanh; ``relu`` for ``nn.RNN(nonlinearity="relu")``). The forward slices the stacked
  tensors into rnnsym's parameters (views), and autograd adds each block's gradient into its rows;
- any other network (a user's cell, the seed network) gets generated names ``p0, p1, ...`` in the
  network's parameter order (a user's parameter name never becomes an attribute);
  ``model.rnnsym_names`` maps them back.

``model.rnnsym_params()`` gives ``{rnnsym name: tensor}`` for every network.

This file imports torch only when ``to_torch`` is called, so ``import rnnsym`` stays free of it.
"""
from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from typing import Mapping

import numpy as np

from ..errors import RnnsymError, choose
from ..networks.torch_weights import TORCH_NAMES, _blocks, _tag, params_to_torch

# The built-in constructors' network names and the kind torch_weights calls them.
BUILTIN_KINDS = {"elman": "rnn", "lstm": "lstm", "gru": "gru"}
INITS = ("normal", "xavier", "orthogonal")


def to_torch(net, params: Mapping | None = None, *, dtype=None, device=None, init: str = "xavier",
             init_scale: float = 0.5, seed: int = 0, truncate: int | None = None):
    """A ``torch.nn.Module`` that runs ``net``'s derived forward and backward.

    - ``model(x, y)``: the batch-mean loss, a 0-d tensor; ``loss.backward()`` puts the derived
      gradients (those of ``net.compile().value_and_grad``) in the parameters' ``.grad``.
    - ``model(x)``: the network's outputs, without a gradient (the derived program differentiates
      the loss, not the outputs).

    ``x`` and ``y`` are shaped as for ``net.compile()`` (batch first) and may be tensors or NumPy
    arrays; they are brought to the module's dtype and device (``y`` keeps an integer dtype for
    class targets). ``x`` gets no gradient, so an ``x`` that requires one is refused.

    ``params``: rnnsym's parameter dict (NumPy arrays, numbers or tensors) to start from; when None,
    they are drawn as ``rs.train`` draws them: ``init`` (``"normal"``, ``"xavier"``,
    ``"orthogonal"``), ``init_scale`` and ``seed``, so the same seed gives ``rs.train``'s start.
    ``dtype``: ``torch.float64`` (the default) or ``torch.float32``; ``device``: any torch device.
    ``truncate``: truncated BPTT, as ``net.compile(truncate=...)``.

    >>> import torch, rnnsym as rs  # doctest: +SKIP
    >>> model = rs.to_torch(rs.lstm(steps=5, input_size=2, hidden_size=3), seed=0)  # doctest: +SKIP
    >>> torch.nn.LSTM(2, 3, batch_first=True).double().load_state_dict(model.rnn.state_dict())  # doctest: +SKIP
    """
    torch = _torch()
    dtype = torch.float64 if dtype is None else dtype
    choose("dtype", dtype, (torch.float32, torch.float64))
    compiled = net.compile(truncate=truncate, backend="torch")
    start = _start_params(net, params, init, init_scale, seed)
    model = _classes().RnnsymModule(net, compiled, start)
    return model.to(dtype=dtype, device=device)


def __getattr__(name: str):
    # RnnsymModule and DerivedLoss subclass torch classes, so they exist only once torch is imported.
    if name in ("RnnsymModule", "DerivedLoss"):
        return getattr(_classes(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _torch():
    from .runtimes import load

    load("torch")  # without torch: the one-line error naming the extra to install
    import torch

    return torch


def _start_params(net, params, init, init_scale, seed) -> dict[str, np.ndarray]:
    """float64 NumPy arrays of the parameters' shapes, checked, or drawn as rs.train draws them."""
    from ..networks.initializers import INIT_STREAM, init_params
    from ..numeric.compiled import check_params

    if params is not None:
        if not isinstance(params, Mapping):
            raise RnnsymError(f"params must be a dict of name -> value, got {type(params).__name__}")
        arrays = {name: value.detach().cpu().numpy() if hasattr(value, "detach") else value
                  for name, value in params.items()}
        return check_params(net, arrays, copy=True)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RnnsymError(f"seed must be a non-negative integer, got {seed!r}")
    choose("initialisation", init, INITS)
    return init_params(net, init, scale=init_scale, rng=np.random.default_rng([seed, INIT_STREAM]))


def builtin_kind(net) -> str | None:
    """``"rnn"``, ``"lstm"`` or ``"gru"`` for a network made by rs.elman_rnn / rs.lstm / rs.gru (any
    number of layers, one or two directions), whose parameters are exactly PyTorch's blocks; else None."""
    kind = BUILTIN_KINDS.get(net.name)
    if kind is None or "hidden_size" not in net.options or net.recurrence is None:
        return None
    layers = net.options.get("num_layers", 1)
    expected = {name for _, _, name in _slices(kind, _suffixes(net), layers)} | {"b_y"} | {
        "W_hy" + suffix for suffix in _suffixes(net)}
    return kind if set(net.param_names) == expected else None


def _suffixes(net) -> tuple[str, ...]:
    return ("", "_reverse") if net.options.get("bidirectional") else ("",)


def _slices(kind: str, suffixes, layers: int = 1):
    """(PyTorch tensor, block index, rnnsym name) for every block, in torch_weights' naming."""
    return [(f"{src}_l{layer}{suffix}", k, f"{dst}{block}{_tag(layer, layers)}{suffix}")
            for layer in range(layers) for suffix in suffixes for src, dst in TORCH_NAMES
            for k, block in enumerate(_blocks(kind))]


@functools.cache
def _classes():
    """The torch classes, made on first use (see ``__getattr__``)."""
    import torch
    from torch.autograd.function import once_differentiable

    def _parameters(state):
        return torch.nn.ParameterDict(OrderedDict((key, torch.nn.Parameter(value)) for key, value in state.items()))

    class DerivedLoss(torch.autograd.Function):
        """The loss, with the derived gradients computed beside it and returned by backward."""

        @staticmethod
        def forward(ctx, compiled, names, x, y, *values):
            loss, grads = compiled.value_and_grad(dict(zip(names, values)), x, y)
            ctx.save_for_backward(*(grads[name] for name in names))
            return loss

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_output):
            # grad_output is d(whatever .backward() was called on)/d(loss): 1 for loss.backward().
            return (None, None, None, None, *(grad_output * g for g in ctx.saved_tensors))

    class RnnsymModule(torch.nn.Module):
        """An rnnsym network as a module; see :func:`rnnsym.to_torch`."""

        def __init__(self, net, compiled, start: dict[str, np.ndarray]):
            super().__init__()
            self.network, self.compiled = net, compiled
            self.kind = builtin_kind(net)
            if self.kind is not None:
                self._torch_layout(start)
            else:
                self.rnnsym_names = {f"p{i}": name for i, name in enumerate(net.param_names)}
                for key, name in self.rnnsym_names.items():
                    self.register_parameter(key, torch.nn.Parameter(torch.as_tensor(start[name])))

        def _torch_layout(self, start):
            state, readout_state = params_to_torch(start, kind=self.kind)
            self.hidden_size = self.network.options["hidden_size"]
            # OrderedDict: ParameterDict sorts a plain dict's keys; these keep nn.LSTM's and Linear's order.
            self.rnn = _parameters(state)
            self.readout = _parameters(readout_state)
            self.rnnsym_names = None

        def rnnsym_params(self) -> dict:
            """``{rnnsym name: tensor}`` in the network's parameter order: the parameters
            themselves, or (PyTorch's layout) views of their blocks that autograd follows."""
            if self.kind is None:
                return {name: getattr(self, key) for key, name in self.rnnsym_names.items()}
            H, suffixes = self.hidden_size, _suffixes(self.network)
            layers = self.network.options.get("num_layers", 1)
            views = {name: self.rnn[key][k * H:(k + 1) * H] for key, k, name in _slices(self.kind, suffixes, layers)}
            # The readout reads the joined states [h_fwd, h_bwd]: the forward's columns first.
            weight = self.readout["weight"]
            views.update({"W_hy" + suffix: weight[:, i * H:(i + 1) * H] for i, suffix in enumerate(suffixes)})
            views["b_y"] = self.readout["bias"]
            return {name: views[name] for name in self.network.param_names}

        def forward(self, x, y=None):
            params = self.rnnsym_params()
            x = self._x(x, next(iter(params.values())))
            if y is None:
                return self.compiled.forward(params, x)
            y = torch.as_tensor(y, device=x.device)
            if torch.is_grad_enabled() and any(p.requires_grad for p in params.values()):
                names = tuple(params)
                return DerivedLoss.apply(self.compiled, names, x, y, *params.values())
            return self.compiled.loss(params, x, y)

        def _x(self, x, param):
            if param.dtype not in (torch.float32, torch.float64):
                raise RnnsymError(f"the module's parameters are {param.dtype}; it runs in torch.float32 or "
                                  "torch.float64: call .float() or .double()")
            if isinstance(x, torch.Tensor) and x.requires_grad:
                raise RnnsymError("x requires a gradient, but the derived backward gives gradients for the "
                                  "parameters only; pass x.detach()")
            x = torch.as_tensor(x, device=param.device)
            if not torch.is_floating_point(x):
                raise RnnsymError(f"x must hold floating-point numbers (float32 or float64), got {x.dtype}")
            return x.to(param.dtype)

        def __deepcopy__(self, memo):
            # copy.deepcopy(model) (AveragedModel, keeping the best model) copies the tensors; the
            # network and its compiled functions never change and hold modules, so they are shared.
            memo[id(self.network)], memo[id(self.compiled)] = self.network, self.compiled
            new = memo[id(self)] = type(self).__new__(type(self))
            new.__dict__.update({key: copy.deepcopy(value, memo) for key, value in self.__dict__.items()})
            return new

        def extra_repr(self) -> str:
            return f"network={self.network.name!r}, steps={self.network.steps}, backward='derived'"

    return type("Classes", (), {"RnnsymModule": RnnsymModule, "DerivedLoss": DerivedLoss})
