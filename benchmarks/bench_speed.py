"""Scale and speed: rnnsym against a hand-written NumPy BPTT, the naive SymPy approach, PyTorch,
``torch.compile`` and JAX.

    python benchmarks/bench_speed.py                      # the full table (several minutes)
    python benchmarks/bench_speed.py --quick              # small sizes, seconds (run by the tests)
    python benchmarks/bench_speed.py --markdown docs/benchmarks.md
    python benchmarks/bench_speed.py --contention         # BLAS threads 1 vs 2, second core busy or not

Every case runs in a fresh subprocess, so its peak memory (the process's maximum resident set,
Python, SymPy and NumPy included) is its own. All numbers are float64, batch on the leading
axis, many-to-one with a sigmoid output and binary cross-entropy. Each case's contenders (rnnsym
and its peers) are timed in turns, one call each per round, and each gets the median of its
rounds, so that load which comes and goes on the machine falls on all of them alike. "build +
compile" is unrolling the network and compiling it (the cell's step is differentiated once
inside); ratios compare measurements made in the same run.

The peers written here by hand (``torch.compile`` of an eager loop over the cell, JAX
``jit(value_and_grad)`` of a ``lax.scan``) take the cell from its standard equations, as a careful
user of each would: gate weights stacked, every step's input product taken before the loop. They
are optional; a peer that is not installed, or that fails to compile, is named in the table.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

# name: (network options, batch, targets) — the targets.
CASES = {
    "scalar_elman": dict(net=dict(kind="elman", steps=1000), batch=10_000,
                         quick=dict(steps=60, batch=500), compile_limit=3.0, memory_limit=500,
                         hand_limit=1.2, torch_speedup=1.5),
    "elman64": dict(net=dict(kind="elman", steps=100, input_size=16, hidden_size=64), batch=256,
                    quick=dict(steps=10, batch=32), compile_limit=5.0, hand_limit=1.5),
    "lstm32": dict(net=dict(kind="lstm", steps=50, input_size=8, hidden_size=32), batch=256,
                   quick=dict(steps=8, batch=32), compile_limit=10.0, torch_speedup=1.0),
}
SLOPE_STEPS = (10, 30, 100, 300, 1000)
# torch.compile unrolls a Python loop into one graph: at T = 100 that compiles in about half a
# minute; at T = 1000 Inductor gave up after three (RecursionError in its memory planner, torch
# 2.13), so a longer loop compiles the step alone and loops over it eagerly.
WHOLE_LOOP_MAX_STEPS = 100
# Peers in the order of the table's columns: (result key, label).
PEERS = (("hand", "hand NumPy"), ("torch", "PyTorch"), ("torch_compile", "torch.compile"), ("jax", "JAX"))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(contenders: dict, repeat: int, burst: int = 1) -> dict[str, float]:
    """The median time of one call of each contender, timed in turns: every round gives each
    contender a turn, in an order rotated by one from the last round's, so that load which comes
    and goes falls on all alike and no contender always follows the same neighbour.

    ``burst``: a turn is one untimed call and then this many timed ones, their mean its time. Called
    once right after another contender, every contender here ran slower (caches, memory pages and
    thread pools taken over by the last one: torch.compile 1.5 to 2.5 times, rnnsym by a third)
    than it does in a loop of its own, as training calls it."""
    names = list(contenders)
    times = {name: [] for name in names}
    for round_ in range(repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if burst > 1:
                contenders[name]()
            start = time.perf_counter()
            for _ in range(burst):
                contenders[name]()
            times[name].append((time.perf_counter() - start) / burst)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case_sizes(name: str, quick: bool, cases: dict = CASES) -> tuple[str, dict, int]:
    """A case's kind of cell, its network options and its batch (the quick run's steps and batch
    when ``quick``), looked up in ``cases``."""
    spec = cases[name]
    options = dict(spec["net"])
    batch = spec["batch"]
    if quick:
        options["steps"], batch = spec["quick"]["steps"], spec["quick"]["batch"]
    return options.pop("kind"), options, batch


def build(kind: str, steps: int, **sizes):
    import rnnsym as rs

    return {"elman": rs.elman_rnn, "lstm": rs.lstm, "gru": rs.gru}[kind](steps=steps, **sizes)


def torch_case(kind, params, x, y, dtype: str = "float64"):
    """The same network in PyTorch (nn.RNN / nn.LSTM + Linear + BCE with logits), float64 (or
    ``dtype``), CPU."""
    import torch

    torch.set_num_threads(2)
    H = params["W_hh" if kind == "elman" else "W_hi"].shape[0]
    I = params["W_ih" if kind == "elman" else "W_ii"].shape[1]
    precision = getattr(torch, dtype)
    module = (torch.nn.RNN if kind == "elman" else torch.nn.LSTM)(I, H, batch_first=True).to(precision)
    readout = torch.nn.Linear(H, 1).to(precision)
    with torch.no_grad():
        if kind == "elman":
            module.weight_ih_l0.copy_(torch.tensor(params["W_ih"]))
            module.weight_hh_l0.copy_(torch.tensor(params["W_hh"]))
            module.bias_ih_l0.copy_(torch.tensor(params["b_ih"]))
            module.bias_hh_l0.copy_(torch.tensor(params["b_hh"]))
        else:
            import numpy as np
            for src, dst in (("W_i", "weight_ih_l0"), ("W_h", "weight_hh_l0"), ("b_i", "bias_ih_l0"), ("b_h", "bias_hh_l0")):
                getattr(module, dst).copy_(torch.tensor(np.concatenate([params[src + g] for g in "ifgo"])))
        readout.weight.copy_(torch.tensor(params["W_hy"]))
        readout.bias.copy_(torch.tensor(params["b_y"]))
    tx, ty = torch.tensor(x, dtype=precision), torch.tensor(y, dtype=precision).reshape(-1, 1)

    def step():
        for p in (*module.parameters(), *readout.parameters()):
            p.grad = None
        out, _ = module(tx)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(readout(out[:, -1]), ty)
        loss.backward()
        return loss.item(), None  # its gradients are stacked per module: the loss is checked

    return step


def stacked_weights(kind: str, p: dict, concatenate):
    """``(W_i, W_h, b)`` of a hand-written peer from rnnsym's parameters: an LSTM's four gates
    stacked in PyTorch's order (i, f, g, o) with ``concatenate`` (torch.cat, jnp.concatenate)."""
    if kind == "elman":
        return p["W_ih"], p["W_hh"], p["b_ih"] + p["b_hh"]
    W_i, W_h = (concatenate([p[prefix + g] for g in "ifgo"]) for prefix in ("W_i", "W_h"))
    return W_i, W_h, concatenate([p["b_i" + g] + p["b_h" + g] for g in "ifgo"])


def torch_loop_loss(kind: str, compile_step: bool = False):
    """The loss of the network written from the cell's equations as an eager PyTorch loop (``loss(x,
    y, p)`` with p the parameters by rnnsym's names). ``compile_step``: torch.compile the step alone
    (for loops too long to unroll into one graph)."""
    import torch

    def cell(p_t, h, c, W_h):  # p_t: the step's input product W_i·x_t + b
        if kind == "elman":
            return torch.tanh(p_t + h @ W_h.T), c
        i, f, g, o = (p_t + h @ W_h.T).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    # A compiled step takes x_t and makes its own input product: handed slices of a hoisted
    # product that requires grad, it ran 20 times slower than with x_t (torch 2.13, scalar Elman).
    step = torch.compile(lambda x_t, h, c, W_i, W_h, b: cell(x_t @ W_i.T + b, h, c, W_h)) if compile_step else None

    def loss(x, y, p):
        W_i, W_h, b = stacked_weights(kind, p, torch.cat)
        h = x.new_zeros(x.shape[0], W_h.shape[1])
        c = h
        if step is not None:
            for x_t in x.unbind(1):
                h, c = step(x_t, h, c, W_i, W_h, b)
        else:
            # Every step's input product at once, split by unbind: its backward stacks the steps'
            # gradients in one go, where indexing (P[:, t]) would add up T gradients of P's size.
            for p_t in (x @ W_i.T + b).unbind(1):
                h, c = cell(p_t, h, c, W_h)
        z = h @ p["W_hy"].T + p["b_y"]
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y)

    return loss


def torch_loop_case(kind, params, x, y, compiled: bool = True):
    """A step of the eager loop (``torch_loop_loss``) under torch.compile, or plain where
    ``compiled`` is false; float64, CPU, gradients by ``loss.backward()``. Returns the step and
    the form compiled."""
    import torch

    torch.set_num_threads(2)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx, ty = torch.tensor(x), torch.tensor(y).reshape(-1, 1)
    steps = x.shape[1]
    whole = steps <= WHOLE_LOOP_MAX_STEPS
    loss_fn = torch_loop_loss(kind, compile_step=compiled and not whole)
    if compiled and whole:
        loss_fn = torch.compile(loss_fn)

    def step():
        for v in p.values():
            v.grad = None
        loss = loss_fn(tx, ty, p)
        loss.backward()
        return loss.item(), {k: v.grad for k, v in p.items()}

    form = "whole loop" if whole else f"the step; T = {steps} is too long to unroll"
    return step, form if compiled else "eager"


def jax_case(kind, params, x, y):
    """``jax.jit(jax.value_and_grad(loss))`` with the loss a ``lax.scan`` over the cell; float64."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

    def loss(p, x, y):
        W_i, W_h, b = stacked_weights(kind, p, jnp.concatenate)
        P = jnp.swapaxes(x, 0, 1) @ W_i.T + b  # time-major for the scan; all input products at once
        zeros = jnp.zeros((x.shape[0], W_h.shape[1]))

        def elman_step(h, p_t):
            return jnp.tanh(p_t + h @ W_h.T), None

        def lstm_step(state, p_t):
            h, c = state
            i, f, g, o = jnp.split(p_t + h @ W_h.T, 4, axis=1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None

        if kind == "elman":
            h, _ = lax.scan(elman_step, zeros, P)
        else:
            (h, _), _ = lax.scan(lstm_step, (zeros, zeros), P)
        z = h @ p["W_hy"].T + p["b_y"]
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    jp = {k: jnp.asarray(v) for k, v in params.items()}
    jx, jy = jnp.asarray(x), jnp.asarray(y).reshape(-1, 1)

    def step():
        value, grads = jax.block_until_ready(value_and_grad(jp, jx, jy))
        return float(value), grads

    return step


def agrees(reference: tuple, answer: tuple) -> bool:
    """A peer's (loss, gradients) against rnnsym's, to rounding; gradients where the peer gives them
    by parameter name."""
    import numpy as np

    (loss, grads), (value, theirs) = reference, answer
    if abs(value - loss) > 1e-9 * max(1.0, abs(loss)):
        return False
    for name, g in (theirs or {}).items():
        g = np.asarray(g).reshape(np.shape(grads[name]))
        if not np.allclose(g, grads[name], rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(grads[name]).max()))):
            return False
    return True


def numpy_of(value):
    """A JAX array or torch tensor (any device) as NumPy."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    import numpy as np

    return np.asarray(value)


def checked_steps(makers_: dict, reference, quick: bool) -> tuple[dict, dict]:
    """Every contender's step, its answer checked against the NumPy backend's and its first call
    (the compile) made outside the timing; and what the table says about each (first call, form,
    or why it is absent)."""
    steps, notes = {}, {}
    for name, make in makers_.items():
        if name == "torch_compile" and quick:  # tens of seconds of compiling: the full run only
            notes[name] = {"absent": "full run only"}
            continue
        start = time.perf_counter()
        try:
            made = make()
            step, form = made if isinstance(made, tuple) else (made, None)
            value, grads = step()
        except ImportError as error:
            notes[name] = {"absent": f"not installed ({error})" if "GPU" in str(error) else "not installed"}
            continue
        except Exception as error:  # a peer that cannot compile here is reported, not fatal
            notes[name] = {"absent": f"failed: {type(error).__name__}: {str(error).strip().splitlines()[0][:80]}"}
            continue
        answer = (value, {k: numpy_of(g) for k, g in grads.items()} if grads else None)
        if not agrees(reference, answer):
            raise AssertionError(f"{name} disagrees with rnnsym's NumPy backend: loss {value!r} against {reference[0]!r}")
        notes[name] = {"first_call_s": time.perf_counter() - start, "form": form}
        steps[name] = step
    return steps, notes


def peer_steps(kind, params, x, y, reference, quick: bool) -> tuple[dict, dict]:
    """Every peer's step, checked against rnnsym's answer and warmed up (compiled) outside the
    timing; and, by peer, what the table says about it (compile time, form, or why it is absent)."""
    import handwritten

    if kind == "elman":
        hand = handwritten.elman_scalar if params["W_hh"].shape == (1, 1) else handwritten.elman_matrix
    else:
        hand = handwritten.lstm
    makers = {"hand": lambda: (lambda: hand(params, x, y)),
              "torch": lambda: torch_case(kind, params, x, y),
              "torch_compile": lambda: torch_loop_case(kind, params, x, y),
              "jax": lambda: jax_case(kind, params, x, y)}
    return checked_steps(makers, reference, quick)


def run_case(name: str, quick: bool) -> dict:
    """One case in this process: build + compile, evaluation against the references, memory."""
    from rnnsym.numeric.gradcheck import random_point

    kind, options, batch = case_sizes(name, quick)
    result = {"case": name, "steps": options["steps"], "batch": batch, **{k: v for k, v in options.items() if k != "steps"}}
    start = time.perf_counter()
    net = build(kind, **options)
    built = time.perf_counter()
    f = net.compile()  # differentiates the cell's step once, then writes and compiles the loop
    result["compile_s"] = time.perf_counter() - start
    result["unroll_s"] = built - start
    _, x, y = random_point(net, batch=batch, seed=0)
    params = contractive_params(net)
    reference = f.value_and_grad(params, x, y)  # also sizes its workspaces: part of its memory
    result["peak_mb"] = peak_mb()  # before any peer is loaded into this process
    from rnnsym.numeric import native
    from rnnsym.numeric.printer import kernels_in_use

    result["activations"] = kernels_in_use()  # the C extension, or NumPy where it is not built
    result["step"] = native.in_use(f)  # the fused step kernels, or NumPy where they cannot be built
    steps, result["peers"] = peer_steps(kind, params, x, y, reference, quick)
    times = interleaved({"ours": lambda: f.value_and_grad(params, x, y), **steps}, 3 if quick else 7,
                        burst=1 if quick else 3)
    for contender, seconds in times.items():
        result[f"{contender}_s"] = seconds
    return result


# The other process of the contention measurement: one thread kept busy in NumPy, never in BLAS.
HOG = "import numpy\na = numpy.ones(4096)\nwhile True:\n    numpy.sin(a, out=a)\n"


class busy_core:
    """While inside, another process keeps one core busy (on a 2-core machine, the second)."""

    def __enter__(self):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-c", HOG], env=env)
        time.sleep(0.5)  # past its start-up, into the loop
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def products(kind: str, steps: int, batch: int, input_size: int = 1, hidden_size: int = 1) -> dict:
    """The BLAS calls of the case's compiled code, by what they do: (a shape, b shape), a @ b."""
    if hidden_size == 1:  # a scalar cell broadcasts; only the weight gradients reach BLAS (ddot)
        return {f"weight gradient, dot of {steps * batch:,} numbers": ((steps * batch,), (steps * batch,))}
    gates = hidden_size * (4 if kind == "lstm" else 1)
    rows = steps * batch
    return {f"step product ({batch}×{hidden_size})·({hidden_size}×{gates})": ((batch, hidden_size), (hidden_size, gates)),
            f"input products ({rows}×{input_size})·({input_size}×{gates})": ((rows, input_size), (input_size, gates)),
            f"weight gradient ({gates}×{rows})·({rows}×{hidden_size})": ((gates, rows), (rows, hidden_size))}


def run_contention(name: str, quick: bool) -> dict:
    """rnnsym's value_and_grad, and each BLAS product it makes, with BLAS limited to 1 and to 2
    threads, the machine quiet and with another process busy on one core."""
    import numpy as np
    from threadpoolctl import ThreadpoolController

    from rnnsym.numeric.gradcheck import random_point

    kind, options, batch = case_sizes(name, quick)
    net = build(kind, **options)
    f = net.compile()
    params, x, y = random_point(net, batch=batch, seed=0)
    rng = np.random.default_rng(2)
    calls = {"value_and_grad": lambda: f.value_and_grad(params, x, y)}
    for label, (a, b) in products(kind, options["steps"], batch, options.get("input_size", 1),
                                  options.get("hidden_size", 1)).items():
        left, right = rng.normal(size=a), rng.normal(size=b)
        calls[label] = lambda left=left, right=right: left @ right
    controller = ThreadpoolController()
    rows = {label: {} for label in calls}
    as_it_runs = {}  # value_and_grad with rnnsym's own choice of threads, parts and blocks
    for busy in (False, True):
        with busy_core() if busy else contextlib.nullcontext():
            for label, call in calls.items():
                for threads, seconds in _by_threads(controller, call, 3 if quick else 7).items():
                    rows[label][f"{'busy' if busy else 'quiet'}{threads}"] = seconds
            as_it_runs["busy" if busy else "quiet"] = _median_call(calls["value_and_grad"], 3 if quick else 9)
    return {"case": name, "steps": options["steps"], "batch": batch, "rows": rows, "as_it_runs": as_it_runs}


def _median_call(call, repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def contractive_params(net) -> dict:
    """Weights scaled by 1/sqrt(fan-in) (half that for the recurrence): the dynamics are contractive,
    so that rounding differences between implementations (or precisions) stay at rounding level."""
    import numpy as np

    rng = np.random.default_rng(1)
    return {k: rng.normal(0.0, (0.5 if k.startswith("W_h") else 1.0) / math.sqrt(shape[-1] if shape else 1), size=shape)
            for k, shape in net.param_shapes.items()}


def run_float32(name: str, quick: bool) -> dict:
    """rnnsym in float32 (x given in float32) against PyTorch's float32 nn.RNN / nn.LSTM, and
    rnnsym in float64 for reference, timed in turns, medians."""
    import numpy as np

    from rnnsym.numeric.gradcheck import random_point

    kind, options, batch = case_sizes(name, quick)
    net = build(kind, **options)
    f = net.compile()
    _, x, y = random_point(net, batch=batch, seed=0)
    params = contractive_params(net)
    single = {k: v.astype(np.float32) for k, v in params.items()}
    x32 = x.astype(np.float32)
    value64, _ = f.value_and_grad(params, x, y)
    value32, grads32 = f.value_and_grad(single, x32, y)
    assert all(g.dtype == np.float32 for g in grads32.values()) and abs(value32 - value64) < 1e-4 * abs(value64)
    steps = {"rnnsym float32": lambda: f.value_and_grad(single, x32, y),
             "rnnsym float64": lambda: f.value_and_grad(params, x, y)}
    try:
        steps["PyTorch float32"] = torch_case(kind, params, x, y, dtype="float32")
        steps["PyTorch float64"] = torch_case(kind, params, x, y)
    except ImportError:
        pass
    times = interleaved(steps, 3 if quick else 9, burst=1 if quick else 3)
    return {"case": name, "steps": options["steps"], "batch": batch, "ms": {k: v * 1e3 for k, v in times.items()}}


def _by_threads(controller, call, repeat: int) -> dict[int, float]:
    """Median time of one call with BLAS limited to 1 and to 2 threads, in turns. A fast call is
    timed as many calls in a row (at least 20 ms each turn), its time divided by their number."""
    call()
    start = time.perf_counter()
    call()
    n = max(1, int(0.02 / max(time.perf_counter() - start, 1e-7)))
    times = {1: [], 2: []}
    for round_ in range(repeat):
        for threads in ((1, 2) if round_ % 2 == 0 else (2, 1)):
            with controller.limit(limits=threads, user_api="blas"):
                start = time.perf_counter()
                for _ in range(n):
                    call()
                times[threads].append((time.perf_counter() - start) / n)
    return {threads: statistics.median(t) for threads, t in times.items()}


def contention_table(results: dict) -> list[list[str]]:
    rows = [["case: call", "quiet, 1 thread", "quiet, 2 threads", "busy, 1 thread", "busy, 2 threads", "busy: 2 / 1"]]
    for name in CASES:
        r = results[name]
        for label, t in r["rows"].items():
            rows.append([f"{name} (T = {r['steps']}, batch {r['batch']}): {label}",
                         *(_duration(t[key]) for key in ("quiet1", "quiet2", "busy1", "busy2")),
                         f"{t['busy2'] / t['busy1']:.2f}"])
    return rows


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"


def run_seed() -> dict:
    start = time.perf_counter()
    import rnnsym as rs

    begin = time.perf_counter()
    net = rs.seed_rnn(steps=4)
    for name in net.param_names:
        net.derive(name)
    derived = time.perf_counter()
    net.compile()
    end = time.perf_counter()
    return {"case": "seed4", "derive_compile_s": end - begin, "derive_s": derived - begin, "compile_s": end - derived,
            "import_s": begin - start}


def run_slope(quick: bool) -> dict:
    steps = SLOPE_STEPS[:3] if quick else SLOPE_STEPS
    build("elman", 3).compile()  # SymPy's first use of each function is slow: not part of the growth
    times = []
    for T in steps:
        start = time.perf_counter()
        build("elman", T).compile()
        times.append(time.perf_counter() - start)
    xs, ys = [math.log(T) for T in steps], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)
    return {"case": "slope", "steps": list(steps), "times": times, "slope": slope}


def run_naive(quick: bool) -> dict:
    """SymPy's diff of the fully nested scalar Elman loss, then lambdify with cse=True."""
    import numpy as np
    import sympy as sp

    rows = []
    for T in ((5, 10) if quick else (10, 20, 30, 40)):
        w_ih, w_hh, b, w_hy, b_y, Y = sp.symbols("W_ih W_hh b W_hy b_y Y")
        xs = sp.symbols(f"x1:{T + 1}")
        h = sp.Integer(0)
        for t in range(T):
            h = sp.tanh(w_ih * xs[t] + w_hh * h + b)
        z = w_hy * h + b_y
        loss = sp.log(1 + sp.exp(z)) - Y * z
        params = (w_ih, w_hh, b, w_hy, b_y)
        start = time.perf_counter()
        try:
            grads = [sp.diff(loss, p) for p in params]
            fn = sp.lambdify((*params, *xs, Y), [loss, *grads], modules="numpy", cse=True)
        except RecursionError:
            rows.append({"steps": T, "derive_s": None, "error": "RecursionError"})
            continue
        derive = time.perf_counter() - start
        rng = np.random.default_rng(0)
        cols = [rng.normal(size=1000) for _ in range(T)]
        evaluate = best(lambda: fn(0.5, 0.5, 0.1, 0.5, 0.1, *cols, 1.0), 2)
        rows.append({"steps": T, "derive_s": derive, "eval_s_batch1000": evaluate})
    return {"case": "naive", "rows": rows}


def in_subprocess(args: list[str]) -> dict:
    run = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise RuntimeError(f"benchmark case {args} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def table(results: dict, quick: bool) -> list[tuple[str, str, str]]:
    rows = [("σ and tanh in the compiled code", results["lstm32"]["activations"], ""),
            ("a loop step's elementwise work", results["lstm32"].get("step", "NumPy"), "")]
    seed = results["seed4"]
    rows.append(("seed network, T = 4: derive all 11 + compile", f"{seed['derive_compile_s']:.3f} s",
                 f"derive {seed['derive_s']:.3f} s, compile {seed['compile_s']:.3f} s  "
                 + _target(seed["derive_compile_s"] < 0.5, "< 0.5 s", quick)))
    for name in CASES:
        r, spec = results[name], CASES[name]
        label = f"{name} (T = {r['steps']}, batch {r['batch']})"
        rows.append((f"{label}: build + compile", f"{r['compile_s']:.2f} s",
                     f"unroll {r['unroll_s']:.2f} s, derive the step + compile {r['compile_s'] - r['unroll_s']:.2f} s  "
                     + _target(r["compile_s"] < spec["compile_limit"], f"< {spec['compile_limit']:g} s", quick)))
        rows.append((f"{label}: value_and_grad", f"{r['ours_s'] * 1e3:.1f} ms", ""))
        peers = r["peers"]
        if r.get("hand_s"):
            ratio = r["ours_s"] / r["hand_s"]
            goal = spec.get("hand_limit")
            rows.append((f"{label}: hand-written NumPy", f"{r['hand_s'] * 1e3:.1f} ms",
                         f"rnnsym / hand = {ratio:.2f}" + (f"  {_target(ratio <= goal, f'≤ {goal}', quick)}" if goal else "")))
        if r.get("torch_s"):
            speedup = r["torch_s"] / r["ours_s"]
            goal = spec.get("torch_speedup")
            rows.append((f"{label}: PyTorch CPU autograd", f"{r['torch_s'] * 1e3:.1f} ms",
                         f"PyTorch / rnnsym = {speedup:.2f}"
                         + (f"  {_target(speedup >= goal, f'≥ {goal}', quick)}" if goal else "")))
        else:
            rows.append((f"{label}: PyTorch CPU autograd", peers["torch"]["absent"], ""))
        for key, title in (("torch_compile", "torch.compile of the eager loop"), ("jax", "JAX jit(value_and_grad(lax.scan))")):
            rows.append(_peer_row(f"{label}: {title}", r, key, quick))
        limit = spec.get("memory_limit")
        rows.append((f"{label}: peak memory (whole process)", f"{r['peak_mb']:.0f} MB",
                     _target(r["peak_mb"] < limit, f"< {limit} MB", quick) if limit else ""))
    slope = results["slope"]
    rows.append((f"build + compile, T = {', '.join(map(str, slope['steps']))}",
                 ", ".join(f"{t:.2f}" for t in slope["times"]) + " s", ""))
    rows.append(("log-log slope of build + compile against T", f"{slope['slope']:.2f}",
                 _target(slope["slope"] <= 1.1, "≤ 1.1", quick)))
    for row in results["naive"]["rows"]:
        if row["derive_s"] is None:
            rows.append((f"naive: SymPy diff + lambdify(cse), T = {row['steps']}", row["error"], ""))
        else:
            rows.append((f"naive: SymPy diff + lambdify(cse), T = {row['steps']}", f"{row['derive_s']:.2f} s",
                         f"its evaluation, batch 1000: {row['eval_s_batch1000'] * 1e3:.1f} ms"))
    return rows


def _peer_row(measure: str, r: dict, key: str, quick: bool) -> tuple[str, str, str]:
    """A compiled peer: its time, rnnsym's against it (the issue's target: rnnsym leads) and what
    its first call (the compile) took."""
    peer = r["peers"][key]
    if "absent" in peer:
        return measure, peer["absent"], ""
    ratio = r["ours_s"] / r[f"{key}_s"]
    form = f" ({peer['form']})" if peer.get("form") else ""
    return (measure, f"{r[f'{key}_s'] * 1e3:.1f} ms",
            f"rnnsym / peer = {ratio:.2f}  {_target(ratio < 1.0, '< 1', quick)}; "
            f"first call{form} {peer['first_call_s']:.1f} s")


def peer_table(results: dict) -> list[list[str]]:
    """rnnsym's time against each peer's in one line per case, and the ratios rnnsym / peer."""
    rows = [["case", "rnnsym ms", *(f"{title} ms" for _, title in PEERS), *(f"/ {title}" for _, title in PEERS)]]
    for name in CASES:
        r = results[name]
        times = [f"{r[f'{key}_s'] * 1e3:.1f}" if r.get(f"{key}_s") else "—" for key, _ in PEERS]
        ratios = [f"{r['ours_s'] / r[f'{key}_s']:.2f}" if r.get(f"{key}_s") else "—" for key, _ in PEERS]
        rows.append([name, f"{r['ours_s'] * 1e3:.1f}", *times, *ratios])
    return rows


def _target(ok: bool, text: str, quick: bool) -> str:
    if quick:
        return f"target {text} (full run)"
    return f"target {text}: {'met' if ok else 'MISSED'}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--contention", action="store_true",
                        help="only rnnsym with BLAS threads 1 vs 2, the second core quiet or busy")
    parser.add_argument("--float32", action="store_true",
                        help="only float32: rnnsym against PyTorch's float32 modules (float64 for reference)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # one case, in this (fresh) process
        if args.contention:
            out = run_contention(args.case, args.quick)
        elif args.float32:
            out = run_float32(args.case, args.quick)
        elif args.case == "seed4":
            out = run_seed()
        elif args.case == "slope":
            out = run_slope(args.quick)
        elif args.case == "naive":
            out = run_naive(args.quick)
        else:
            out = run_case(args.case, args.quick)
        print(json.dumps(out))
        return
    flag = ["--quick"] if args.quick else []
    if args.contention:
        contention(flag, args.markdown)
        return
    if args.float32:
        float32_table(flag)
        return
    results = {name: in_subprocess(["--case", name, *flag]) for name in ("seed4", *CASES, "slope", "naive")}
    rows = table(results, args.quick)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>22}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")
    peers = peer_table(results)
    print("\nrnnsym against its peers: median ms, then rnnsym / peer (below 1: rnnsym is faster)")
    print_grid(peers)
    if args.markdown:
        lines = ["| measure | result | note |", "| --- | --- | --- |"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
        write_markdown(args.markdown, lines + [""] + markdown_grid(peers))
    missed = [r for r in rows if "MISSED" in r[2]]
    if missed:
        sys.exit(1)


def float32_table(flag: list[str]) -> None:
    """Each case in float32, in its own process: median ms per contender, and rnnsym / PyTorch."""
    print("float32: median ms of one value_and_grad (rnnsym / PyTorch below 1: rnnsym is faster)")
    for name in CASES:
        r = in_subprocess(["--case", name, "--float32", *flag])
        ms = r["ms"]
        ratio = (f"  rnnsym / PyTorch float32 = {ms['rnnsym float32'] / ms['PyTorch float32']:.2f}"
                 if "PyTorch float32" in ms else "  (PyTorch not installed)")
        print(f"{name} (T = {r['steps']}, batch {r['batch']}): "
              + ", ".join(f"{k} {v:.2f}" for k, v in ms.items()) + ratio)


def contention(flag: list[str], markdown: str | None) -> None:
    try:
        import threadpoolctl  # noqa: F401  (the subprocesses limit BLAS threads with it)
    except ImportError:
        print("contention: threadpoolctl not installed (pip install threadpoolctl)")
        return
    results = {name: in_subprocess(["--case", name, "--contention", *flag]) for name in CASES}
    grid = contention_table(results)
    print("rnnsym under CPU contention: median time of one call, BLAS limited to 1 or 2 threads, "
          "with another process busy on one core or not")
    print_grid(grid)
    runs = [["case", "quiet", "one core busy", "busy / quiet"]]
    for name in CASES:
        t = results[name]["as_it_runs"]
        runs.append([name, _duration(t["quiet"]), _duration(t["busy"]), f"{t['busy'] / t['quiet']:.2f}"])
    print("\nvalue_and_grad as rnnsym runs it (its own BLAS threads, batch parts and sweep blocks): "
          "median time, quiet and with another process busy on one core (target: busy / quiet ≤ 1.3)")
    print_grid(runs)
    if markdown:
        write_markdown(markdown, markdown_grid(grid) + [""] + markdown_grid(runs))


def print_grid(grid: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    for row in grid:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


def markdown_grid(grid: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(grid[0]) + " |", "|" + " --- |" * len(grid[0])] + ["| " + " | ".join(r) + " |" for r in grid[1:]]


def write_markdown(path: str, lines: list[str]) -> None:
    from rnnsym.files import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
