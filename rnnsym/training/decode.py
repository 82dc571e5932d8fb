"""Greedy decoding: a teacher-forced decoder (rnnsym.seq2seq) run on its own predictions.

Trained with the previous *target* as its input, at prediction time the decoder must read its own
previous output instead. The output at target step t depends only on the inputs before it, so
decoding fills the decoder's inputs one step at a time: run the network, take the most probable
symbol at step t as the input of step t+1, and run again (T passes for T target steps; the last
pass's outputs are those of the decoded sequence at every step).
"""
from __future__ import annotations

import numpy as np


def greedy_decode(forward, params, x, target_steps: int, classes: int, as_input=np.asarray) -> np.ndarray:
    """The outputs ``(N, T, classes)`` of the decoder fed its own most probable symbols.

    ``forward(params, x, y)`` is a compiled network's (or training backend's) forward pass with
    one-hot decoder inputs ``y``; ``as_input`` puts an array where ``forward`` reads it."""
    n = np.shape(x)[0]
    symbols = np.zeros((n, target_steps), dtype=int)  # symbol 0 where nothing is decoded yet: never read
    eye = np.eye(classes)
    for t in range(target_steps):
        outputs = np.asarray(forward(params, x, as_input(eye[symbols])))
        symbols[:, t] = np.argmax(outputs[:, t], axis=-1)
    return outputs


def sequence_accuracy(outputs, y) -> float:
    """The share of sequences whose every step's most probable symbol is the target's."""
    right = np.argmax(outputs, axis=-1) == np.argmax(y, axis=-1)
    return float(np.mean(np.all(right, axis=-1)))


def attention_map(net, params, x) -> tuple[np.ndarray, np.ndarray]:
    """The greedily decoded outputs ``(N, T, classes)`` of an attention seq2seq network for the
    sources ``x``, and its attention weights ``(N, T, S)``: row t is ``α_t`` over the source steps."""
    compiled = net.compile(form="unrolled")
    T, classes = net.options["target_steps"], net.options["output_size"]
    outputs = greedy_decode(compiled.forward, params, x, T, classes)
    decoded = np.eye(classes)[np.argmax(outputs, axis=-1)]
    trace = compiled.trace(params, x, decoded)
    return outputs, np.stack([trace[f"alpha{t}"] for t in range(1, T + 1)], axis=1)
