"""The compiled network: generated NumPy functions behind checked, dict-based entry points."""
from __future__ import annotations

import linecache
from typing import Mapping

import numpy as np

from ..errors import RnnsymError, listed
from . import batch_split
from .fp_mode import flush_denormals
from .threads import call_threads
from .workspace import Workspaces


class CompiledNetwork:
    """NumPy functions for one network. ``source`` holds the generated code, for reading.

    >>> f = rnnsym.seed_rnn(steps=4).compile()
    >>> loss, grads = f.value_and_grad(params, x, y)  # doctest: +SKIP

    ``params`` maps every parameter name to a float or array; ``x`` is ``(batch, T)`` or
    ``(batch, T, input_size)``; ``y`` is ``(batch,)``. The loss is the batch mean and
    ``grads[name]`` has the parameter's shape.

    The precision is x's: float32 data is computed in float32 (parameters and targets brought to
    it, gradients returned in it), anything else in float64; ``dtype`` ("float32" or "float64")
    fixes it whatever x is.

    The loop form keeps its large (T, batch, ...) arrays between calls, per thread and for the
    latest batch size, up to 1 GiB (``workspaces``; ``workspaces.nbytes`` tells how much,
    ``workspaces.clear()`` frees it). What the functions return is never part of them. Safe to
    call from several threads.
    """

    def __init__(self, network, source: str, runtime: dict, truncate: int | None = None, form: str = "unrolled"):
        self.network = network
        self.dtype: np.dtype | None = None  # None: x's precision (float32 stays float32), else this one
        self.source = source
        self.truncate = truncate
        self.form = form  # "unrolled" (straight-line code per step) or "loop" (one step in a loop over time)
        self.program = None  # the adjoint program printed (rnnsym.program); the loop form's: one step's
        self.param_names = network.param_names
        filename = f"<rnnsym:{network.name}:T={network.steps}:{form}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        # The loop form keeps its large arrays between calls (rnnsym.numeric.workspace).
        self.workspaces = Workspaces()
        namespace = {"numpy": np, **runtime, "_workspace": self.workspaces}
        exec(compile(source, filename, "exec"), namespace)  # our own generated source, no user text
        self._namespace, self._filename = namespace, filename
        self._swept = ".sweep(" in source  # its loops run over row blocks on the cores already
        # Every function copies x time-major first and checks it there, as it passes through the
        # cache (rnnsym.numeric.loop._time_major), rather than in a pass of its own over x.
        functions = source.split("\ndef ")
        self._x_checked_in_copy = len(functions) > 1 and all("\n    _time_major(_X, x" in f for f in functions[1:])
        self.traces: dict = {}  # name -> a function giving the source of a trace, compiled when first used
        self._forward = namespace["forward"]
        self._loss = namespace["loss"]
        self._value_and_grad = namespace["value_and_grad"]
        self._trace = namespace.get("trace")
        self._adjoints = namespace.get("adjoints")

    def with_dtype(self, dtype: str) -> "CompiledNetwork":
        """The same functions, computing in ``dtype`` ("float32" or "float64") whatever x is."""
        import copy

        fixed = copy.copy(self)  # the generated functions and workspaces are shared
        fixed.dtype = np.dtype(dtype)
        return fixed

    # ---- entry points -------------------------------------------------------------------------------
    def forward(self, params: Mapping, x, y=None) -> np.ndarray:
        """The network output for each example: ``(batch,)`` or ``(batch, output_size)``; with
        ``outputs="all"``, one per step: ``(batch, T)`` or ``(batch, T, output_size)``. A decoder
        that reads the previous target (teacher forcing, rnnsym.seq2seq) needs ``y``."""
        x = self._x(x)
        targets = teacher_forcing(self.network, y, lambda: self._y(y, x))
        with call_threads(x.dtype), flush_denormals(x.dtype):
            outputs = self._forward(x, *targets, *self._params(params, x.dtype))
        self.workspaces.trim()
        if self.form == "unrolled" and self.network.options.get("outputs") == "all":
            return np.stack(outputs, axis=1)  # one output node per step
        return outputs[0]

    def loss(self, params: Mapping, x, y) -> float:
        """The batch-mean loss."""
        x = self._x(x)
        with call_threads(x.dtype), flush_denormals(x.dtype):
            value = float(self._loss(x, self._y(y, x), *self._params(params, x.dtype)))
        self.workspaces.trim()
        return value

    def value_and_grad(self, params: Mapping, x, y) -> tuple[float, dict[str, np.ndarray]]:
        """The batch-mean loss and its gradient with respect to every parameter."""
        x = self._x(x)
        y, values = self._y(y, x), self._params(params, x.dtype)
        spans = [(0, x.shape[0])] if self._swept else batch_split.parts(x.shape[0], self.network.steps)
        if len(spans) > 1:  # a part of the batch a core (rnnsym.numeric.batch_split)
            value, grads = batch_split.value_and_grad(self._value_and_grad, spans, x, y, values, self.workspaces.trim)
        else:
            with call_threads(x.dtype), flush_denormals(x.dtype):  # (see either's module)
                value, grads = self._value_and_grad(x, y, *values)
        self.workspaces.trim()
        if isinstance(grads, dict):  # by the gradients' generated names
            grads = [grads[self.gradient_keys[name]] for name in self.param_names]
        return float(value), {  # copies: parameters tied in the code (b_ih, b_hh) share one array
            name: np.array(g, dtype=x.dtype).reshape(np.shape(params[name]))
            for name, g in zip(self.param_names, grads)
        }

    def adjoints(self, params: Mapping, x, y):
        """Per-example adjoints ``∂L/∂node`` of the batch-mean loss, for every hidden node, and each
        parameter's share from each node that uses it (``{param: [(node, share)]}``)."""
        if self._adjoints is None and "adjoints" in self.traces:
            self._adjoints = self._compile_trace("adjoints")
        if self._adjoints is None:
            raise RnnsymError("adjoints are traced by the unrolled form: use network.compile(form='unrolled')")
        x = self._x(x)
        nodes, shares = self._adjoints(x, self._y(y, x), *self._params(params, x.dtype))
        return (dict(zip(self.adjoint_nodes, nodes)),
                {p: list(zip(self.share_nodes[p], s)) for p, s in zip(self.param_names, shares)})

    def trace(self, params: Mapping, x, y) -> dict[str, np.ndarray]:
        """Every node's value (the loss excepted) for each example, by node name."""
        if self._trace is None:
            raise RnnsymError("node values are traced by the unrolled form: use network.compile(form='unrolled')")
        x = self._x(x)
        values = self._trace(x, self._y(y, x), *self._params(params, x.dtype))
        names = [n.name for n in self.network.graph.nodes.values() if n.kind not in ("loss", "loss_term")]
        return dict(zip(names, values))

    def _compile_trace(self, name: str):
        """A trace's function, written and compiled the first time it is asked for (the parameters'
        shares, one by one, cost as much to print as the rest of the source); its source is appended
        to ``source``."""
        code = self.traces.pop(name)()
        self.source += "\n" + code
        exec(compile(self.source, self._filename, "exec"), self._namespace)  # our own generated source
        linecache.cache[self._filename] = (len(self.source), None, self.source.splitlines(True), self._filename)
        return self._namespace[name]

    # ---- input checks: a clear error before anything is computed ----------------------------------
    def _params(self, params: Mapping, dtype=np.float64) -> list:
        return [value.astype(dtype, copy=False) for value in check_params(self.network, params).values()]

    def _x(self, x) -> np.ndarray:
        float32 = self.dtype == np.float32 if self.dtype is not None else getattr(x, "dtype", None) == np.float32
        x = _finite("x", x, np.float32 if float32 else np.float64, check=not self._x_checked_in_copy)
        T, size = self.network.steps, self.network.input_size
        scalar_inputs = self.network.graph.of_kind("input")[0].shape == ()
        if x.ndim == 2 and size == 1 and not scalar_inputs:
            x = x[:, :, None]
        elif x.ndim == 3 and x.shape[2] == 1 and scalar_inputs:
            x = x[:, :, 0]
        expected = (T,) if scalar_inputs else (T, size)
        if x.ndim != len(expected) + 1 or x.shape[1:] != expected or x.shape[0] < 1:
            allowed = f"(batch, {T})" + (" or (batch, T, 1)" if size == 1 else "") if scalar_inputs else (
                f"(batch, {T}, {size})" + (f" or (batch, {T})" if size == 1 else ""))
            raise RnnsymError(f"x must have shape {allowed.replace('T', str(T))}, got {x.shape}")
        return x

    def _y(self, y, x: np.ndarray) -> np.ndarray:
        net = self.network
        targets = net.graph.of_kind("target")
        per_step = targets[0].step is not None
        size = targets[0].shape[0] if targets[0].shape else None
        lead = (x.shape[0], len(targets)) if per_step else (x.shape[0],)
        if net.options.get("loss") == "cross_entropy":
            y = _class_targets(y, lead, size)
        y = _finite("y", y, x.dtype)
        if size is None and y.ndim == len(lead) + 1 and y.shape[-1] == 1:
            y = y[..., 0]
        elif size == 1 and y.shape == lead:
            y = y[..., None]
        expected = lead + ((size,) if size is not None else ())
        if y.shape != expected:
            raise RnnsymError(f"y must have shape {expected} to match x, got {y.shape}")
        if net.options.get("loss") == "bce" and ((y < 0) | (y > 1)).any():
            bad = y[(y < 0) | (y > 1)].flat[0]
            raise RnnsymError(f"y holds {float(bad)!r}; targets for loss 'bce' must lie in [0, 1]")
        if net.options.get("loss") == "cross_entropy":
            _check_probability_rows(y)
        return y


def teacher_forcing(network, y, checked) -> tuple:
    """The targets the forward pass reads: ``(checked(),)`` for a network whose decoder reads the
    previous target (teacher forcing), ``()`` for any other (where y is not needed)."""
    if not network.options.get("teacher_forcing"):
        return ()
    if y is None:
        raise RnnsymError("this network's decoder reads the previous target (teacher forcing): "
                          "forward needs y as well as x")
    return (checked(),)


def _check_probability_rows(y: np.ndarray) -> None:
    """Cross-entropy's fused gradient ``o − Y`` is the derivative of ``−Σ Y·log softmax(z)`` only
    when each target row sums to 1 (then ``softmax(z)·ΣY − Y = o − Y``): refuse any other row,
    rather than return a gradient that does not belong to the loss."""
    if (y < 0).any():
        raise RnnsymError(f"y holds {float(y[y < 0].flat[0])!r}; cross-entropy targets are class indices "
                          "or probability rows (each entry >= 0, each row summing to 1)")
    sums = y.sum(axis=-1)
    off = np.abs(sums - 1) > 1e-9
    if off.any():
        where = tuple(int(i) for i in np.argwhere(off)[0])
        raise RnnsymError(f"y row {where[0] if len(where) == 1 else where} sums to {float(sums[where]):.6g}; "
                          "cross-entropy targets are class indices or probability rows summing to 1 "
                          "(multi-hot or empty rows need loss 'bce' with a sigmoid output)")


def _class_targets(y, lead: tuple, classes: int) -> np.ndarray:
    """Cross-entropy targets: class indices of shape ``lead`` become one-hot rows."""
    array = np.asarray(y)
    if array.shape == lead and np.issubdtype(array.dtype, np.integer):
        if ((array < 0) | (array >= classes)).any():
            bad = array[(array < 0) | (array >= classes)].flat[0]
            raise RnnsymError(f"y holds class {bad}; classes must be 0 … {classes - 1}")
        return np.eye(classes)[array]
    return array


def check_params(network, params: Mapping, copy: bool = False) -> dict[str, np.ndarray]:
    """``params`` as float arrays of the network's parameter shapes, in its order; exactly its
    names, finite values and fitting shapes, or a one-line error (a scalar may come as shape (1,)).
    ``copy=True`` returns arrays the caller may change in place without touching ``params``."""
    check_param_names(network, params)
    checked = {}
    for name, shape in network.param_shapes.items():
        value = _finite(f"parameter {name!r}", params[name])
        checked[name] = param_shaped(name, value, shape)
        checked[name] = checked[name].copy() if copy else checked[name]
    return checked


def check_param_names(network, params: Mapping) -> None:
    """Exactly the network's parameter names, or a one-line error naming the difference."""
    if not isinstance(params, Mapping):
        raise RnnsymError(f"params must be a dict of name -> value, got {type(params).__name__}")
    names = network.param_names
    missing = [n for n in names if n not in params]
    unknown = [n for n in params if n not in names]
    if missing or unknown:
        problem = f"missing {listed(missing)}" if missing else f"unknown {listed(unknown)}"
        raise RnnsymError(f"params: {problem}; expected exactly: {listed(names)}")


def param_shaped(name: str, value, shape: tuple):
    """A parameter's array in its shape (a scalar may come as shape (1,)), or a one-line error."""
    if shape == () and tuple(value.shape) in ((), (1,)):
        return value.reshape(())
    if tuple(value.shape) != shape:
        expected = "a scalar" if shape == () else f"shape {shape}"
        raise RnnsymError(f"parameter {name!r} must be {expected}, got shape {tuple(value.shape)}")
    return value


def _finite(what: str, value, dtype=np.float64, check: bool = True) -> np.ndarray:
    """``value`` as an array of ``dtype``, checked finite unless the program checks it itself."""
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise RnnsymError(f"{what} must be numeric, got {type(value).__name__}") from None
    if check and not _all_finite(array):
        raise RnnsymError(f"{what} contains NaN or infinite values")
    return array


def _all_finite(array: np.ndarray) -> bool:
    """``np.isfinite(array).all()``; a large array in blocks on the cores at once (the scalar
    Elman's 80 MB x: 8 ms on one core)."""
    from .native import for_each_block

    flat = array.reshape(-1)  # a copy only where the array is not contiguous
    if flat.size < 4_000_000:
        return bool(np.isfinite(flat).all())
    size = 1 << 20
    finite = [True] * -(-flat.size // size)

    def check(i: int) -> None:
        finite[i] = bool(np.isfinite(flat[i * size:(i + 1) * size]).all())
    for_each_block(check, len(finite))
    return all(finite)
