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


def lstm(params, x, y):
    """An LSTM as fast as plain NumPy allows: the four gates stacked into one (batch, 4H) product
    per step, sigmoid and tanh through one exp each, weight gradients reduced once at the end."""
    gates = "ifgo"
    W_i = np.concatenate([params["W_i" + g] for g in gates])
    W_h = np.concatenate([params["W_h" + g] for g in gates])
    b = np.concatenate([params["b_i" + g] + params["b_h" + g] for g in gates])
    W_hy, b_y = params["W_hy"], params["b_y"]
    B, T, _ = x.shape
    H = W_h.shape[1]
    y = y.reshape(B, -1)
    X = np.moveaxis(x, 1, 0)
    P = (X.reshape(-1, X.shape[-1]) @ W_i.T).reshape(T, B, 4 * H) + b
    A = np.empty((T, B, 4 * H))  # activated gates i, f, g, o
    C = np.zeros((T + 1, B, H))
    Hs = np.zeros((T + 1, B, H))
    TC = np.empty((T, B, H))

    def sig(z):
        return 1.0 / (1.0 + np.exp(-z))

    for t in range(T):
        z = P[t] + Hs[t] @ W_h.T
        A[t, :, :2 * H] = sig(z[:, :2 * H])
        A[t, :, 2 * H:3 * H] = 2.0 * sig(2.0 * z[:, 2 * H:3 * H]) - 1.0
        A[t, :, 3 * H:] = sig(z[:, 3 * H:])
        i, f, g, o = A[t, :, :H], A[t, :, H:2 * H], A[t, :, 2 * H:3 * H], A[t, :, 3 * H:]
        C[t + 1] = f * C[t] + i * g
        TC[t] = 2.0 * sig(2.0 * C[t + 1]) - 1.0
        Hs[t + 1] = o * TC[t]
    zo = Hs[T] @ W_hy.T + b_y
    loss = np.mean(np.logaddexp(0.0, zo) - y * zo)
    dz = (sig(zo) - y) / (B * zo.shape[1])
    dh = dz @ W_hy
    dc = np.zeros((B, H))
    D = np.empty((T, B, 4 * H))
    for t in range(T - 1, -1, -1):
        i, f, g, o = A[t, :, :H], A[t, :, H:2 * H], A[t, :, 2 * H:3 * H], A[t, :, 3 * H:]
        tc = TC[t]
        dc = dc + dh * o * (1.0 - tc * tc)
        D[t, :, 3 * H:] = dh * tc * o * (1.0 - o)
        D[t, :, :H] = dc * g * i * (1.0 - i)
        D[t, :, H:2 * H] = dc * C[t] * f * (1.0 - f)
        D[t, :, 2 * H:3 * H] = dc * i * (1.0 - g * g)
        dc = dc * f
        dh = D[t] @ W_h
    Df = D.reshape(-1, 4 * H)
    gW_i = Df.T @ X.reshape(-1, X.shape[-1])
    gW_h = Df.T @ Hs[:-1].reshape(-1, H)
    gb = Df.sum(axis=0)
    grads = {"W_hy": dz.T @ Hs[T], "b_y": dz.sum(axis=0)}
    for k, g in enumerate(gates):
        rows = slice(k * H, (k + 1) * H)
        grads["W_i" + g], grads["W_h" + g] = gW_i[rows], gW_h[rows]
        grads["b_i" + g] = grads["b_h" + g] = gb[rows]
    return loss, grads
