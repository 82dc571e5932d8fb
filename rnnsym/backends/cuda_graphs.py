"""CUDA graphs for the torch backend's ``value_and_grad``.

On a GPU the derived program is a fixed sequence of a few thousand small kernels (a Python loop
over the time steps, some tens of kernels a step), so Python and kernel launches, not the GPU,
set its time: an LSTM of hidden size 128 took 45 ms where cuDNN's fused ``nn.LSTM`` took 7. The
sequence depends only on the shapes, so the first call for a set of shapes records it as a CUDA
graph and every later call copies its inputs into the recorded ones and replays the graph: one
launch for the whole program. A program that cannot be recorded (an operation that copies from
or waits for the host) runs kernel by kernel every time, with one warning that says why: the
generated programs are written to be recordable, so that warning is a defect to report.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict


class GraphCache:
    """``function(*tensors) -> tuple of tensors``, replayed from a CUDA graph per set of input
    shapes, dtypes and devices (the ``size`` most recent kept). Every call returns fresh tensors:
    a result is never overwritten by a later call."""

    def __init__(self, function, size: int = 4):
        self.function, self.size = function, size
        self._graphs: OrderedDict = OrderedDict()  # key -> (static inputs, static outputs, graph)
        self._unrecordable: set = set()

    def __call__(self, *tensors):
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in tensors)
        if key in self._unrecordable:
            return self.function(*tensors)
        if key not in self._graphs:
            recorded = _record(self.function, tensors)
            if isinstance(recorded, Exception):
                self._unrecordable.add(key)
                reason = (str(recorded).strip().splitlines() or [type(recorded).__name__])[0]
                warnings.warn(f"rnnsym: value_and_grad could not be recorded as a CUDA graph ({reason}); "
                              "it runs kernel by kernel", RuntimeWarning, stacklevel=3)
                return self.function(*tensors)
            self._graphs[key] = recorded
            if len(self._graphs) > self.size:  # the oldest graph's memory goes back to torch's pool
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        inputs, outputs, graph = self._graphs[key]
        import torch

        with torch.cuda.device(tensors[0].device):  # the inputs' GPU, whichever is current
            for static, tensor in zip(inputs, tensors):
                static.copy_(tensor)
            graph.replay()
            return tuple(out.clone() for out in outputs)

    def __len__(self) -> int:
        return len(self._graphs)


def _record(function, tensors):
    """(static inputs, static outputs, graph) for ``function`` on tensors shaped as ``tensors``,
    or the error where recording failed (the function copied from the host, say)."""
    import torch

    device = tensors[0].device
    inputs = [t.detach().clone() for t in tensors]
    with torch.cuda.device(device):
        # A warm-up on a side stream first: cuBLAS makes its handles and workspaces outside the recording.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            function(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = tuple(function(*inputs))
        except Exception as error:  # noqa: BLE001  (any operation torch refuses while recording)
            torch.cuda.synchronize()
            return error
    return inputs, outputs, graph


def usable(x) -> bool:
    """Whether ``x`` is a CUDA tensor, the only kind a graph is recorded for."""
    return getattr(getattr(x, "device", None), "type", None) == "cuda"
