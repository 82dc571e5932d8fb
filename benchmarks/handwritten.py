"""Hand-written NumPy BPTT for the Elman network, the reference that compiled code is measured against.

Written as a careful person would: the input projection for all steps in one matrix product
before the loop, states kept for the backward pass, weight gradients reduced once after it.
Many-to-one, sigmoid output with binary cross-entropy, batch-mean loss; PyTorch's parameter names.
"""
from __future__ import annotations

import numpy as np


def elman_scalar(params, x, y):
    """Hidden size 1, input size 1: every product is a scalar times a (batch,) array."""
    w_ih, w_hh, b_ih, b_hh, w_hy, b_y = (float(np.ravel(params[k])[0])
                                         for k in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hy", "b_y"))
    x = x.reshape(x.shape[0], -1)
    y = np.ravel(y)
    B, T = x.shape
    X = x.T
    P = w_ih * X + (b_ih + b_hh)
    H = np.empty((T + 1, B))
    H[0] = 0.0
    for t in range(T):
        np.tanh(P[t] + w_hh * H[t], out=H[t + 1])
    z = w_hy * H[T] + b_y
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    dz = (1.0 / (1.0 + np.exp(-z)) - y) / B
    D = np.empty((T, B))
    dh = dz * w_hy
    for t in range(T - 1, -1, -1):
        D[t] = dh * (1.0 - H[t + 1] ** 2)
        dh = D[t] * w_hh
    db = D.sum()
    grads = {"W_ih": np.dot(D.ravel(), X.ravel()), "W_hh": np.dot(D.ravel(), H[:-1].ravel()),
             "b_ih": db, "b_hh": db, "W_hy": np.dot(dz, H[T]), "b_y": dz.sum()}
    return loss, {k: np.reshape(v, np.shape(params[k])) for k, v in grads.items()}


def elman_matrix(params, x, y):
    """Vector states: matrix products for the recurrence and one reduction per weight at the end."""
    W_ih, W_hh, b_ih, b_hh, W_hy, b_y = (params[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hy", "b_y"))
    B, T, _ = x.shape
    Hn = W_hh.shape[0]
    y = y.reshape(B, -1)
    X = np.moveaxis(x, 1, 0)
    P = X @ W_ih.T + (b_ih + b_hh)
    H = np.empty((T + 1, B, Hn))
    H[0] = 0.0
    for t in range(T):
        np.tanh(P[t] + H[t] @ W_hh.T, out=H[t + 1])
    z = H[T] @ W_hy.T + b_y
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    dz = (1.0 / (1.0 + np.exp(-z)) - y) / (B * z.shape[1])
    D = np.empty((T, B, Hn))
    dh = dz @ W_hy
    for t in range(T - 1, -1, -1):
        D[t] = dh * (1.0 - H[t + 1] ** 2)
        dh = D[t] @ W_hh
    Df = D.reshape(-1, Hn)
    db = Df.sum(axis=0)
    return loss, {"W_ih": Df.T @ X.reshape(-1, X.shape[-1]), "W_hh": Df.T @ H[:-1].reshape(-1, Hn),
                  "b_ih": db, "b_hh": db, "W_hy": dz.T @ H[T], "b_y": dz.sum(axis=0)}
