"""Gradient flow: how the size of ∂L/∂h_t changes with the step t, symbolically and in numbers.

The gradient reaching step t is the loss gradient carried back through the product of local
Jacobians ``∂h_k/∂h_(k−1)`` (``w_(k−1)·f'(a_k)`` in the seed network, ``diag(f'(a_k))·W_hh`` for
Elman). With γ the bound on the activation's derivative and σ the largest singular value of the
recurrent matrix, ``‖∂h_t/∂h_k‖ ≤ (γσ)^(t−k)``: σ < 1/γ is *sufficient* for the gradient to vanish,
and σ > 1/γ is *necessary* (not sufficient) for it to explode (Pascanu, Mikolov and Bengio 2013).

For an encoder–decoder (:func:`rnnsym.seq2seq`) the steps are the encoder's: ``‖∂L/∂h_i‖`` for
encoder step i. Without attention the gradient reaches ``h_i`` only back through the decoder's
chain and the S − i encoder steps after it; with attention every encoder state is also a row of
``H_enc``, read by every score and context, so part of ``∂L/∂h_i`` arrives in one hop
(:attr:`GradientFlow.attention_norms`) however long the source. :func:`seq2seq_flow` measures both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .errors import RnnsymError, choose, positive_int
from .graph import ParamRole

# The bound on each activation's derivative (γ): tanh' ≤ 1, σ' ≤ 1/4, relu' ≤ 1.
DERIVATIVE_BOUNDS = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "identity": 1.0}


@dataclass
class GradientFlow:
    """What :func:`gradient_flow` measures, for one network, parameter set and batch."""

    network: object
    states: tuple[str, ...]  # the state node of each step, t = 1..T
    grad_norms: np.ndarray  # grad_norms[t-1] = ‖∂L/∂h_t‖ (Frobenius, over the whole batch)
    term_norms: dict[str, np.ndarray]  # shared weight -> ‖its step-t share of dL/dW‖, t = 1..T
    product: str  # the factor product between steps, as text
    product_latex: str
    gamma: float | None
    sigma_max: float | None
    statement: str = field(default="")
    # seq2seq with attention: ‖the part of ∂L/∂h_i that arrives through attention in one hop‖
    # (the row i of δH_enc, and for the additive score W_kᵀ·δk_i); None for any other network.
    attention_norms: np.ndarray | None = None

    @property
    def case(self) -> str:
        """``"vanishing"`` (σ < 1/γ: sufficient), ``"may explode"`` (σ ≥ 1/γ: necessary, not
        sufficient) or ``"not applicable"``."""
        if self.gamma is None:
            return "not applicable"
        return "vanishing" if self.sigma_max < 1 / self.gamma else "may explode"

    def table(self) -> str:
        lines = [f"{'step':>5}  {'‖∂L/∂h_t‖':>12}" + "".join(f"  {p:>12}" for p in self.term_norms)]
        for t in range(len(self.states)):
            lines.append(f"{t + 1:>5}  {self.grad_norms[t]:>12.4e}"
                         + "".join(f"  {v[t]:>12.4e}" for v in self.term_norms.values()))
        return "\n".join(lines)


def is_seq2seq(network) -> bool:
    """Whether ``network`` is an encoder–decoder (its options name the source length)."""
    return "source_steps" in network.options


def _encoder_states(network) -> tuple[str, ...]:
    """The encoder's first state at each source step (``h1 … hS``). Attention stacks exactly these
    into ``H_enc``; without attention, they are the encoder nodes of the state the readout reads in
    the decoder (``h_dec1`` → ``h``), or else the one state the encoder carries from step to step."""
    graph, S = network.graph, network.options["source_steps"]
    if "H_enc" in graph.nodes:
        return tuple(str(s) for s in graph["H_enc"].expr.args)
    by_base: dict[str, dict[int, str]] = {}
    for node in graph.nodes.values():
        if node.kind == "hidden" and node.base and node.step is not None and 1 <= node.step <= S:
            by_base.setdefault(node.base, {})[node.step] = node.name
    complete = {b: tuple(steps[i] for i in range(1, S + 1)) for b, steps in by_base.items() if len(steps) == S}
    read = [graph[p] for p in graph.parents(graph.of_kind("output")[0].name) if graph[p].kind == "hidden"]
    if read and read[0].base and read[0].base.endswith("_dec") and read[0].base[:-4] in complete:
        return complete[read[0].base[:-4]]
    carried = [names for names in complete.values()
               if S == 1 or any(graph[c].step == 2 for c in graph.children(names[0]))]
    if len(carried) != 1:
        raise RnnsymError("cannot tell which of the encoder's states is its first (the decoder's readout "
                          "state has another name); build the network with attention, or name both cells' "
                          "first state alike")
    return carried[0]


def _state_nodes(network) -> tuple[str, ...]:
    if is_seq2seq(network):
        return _encoder_states(network)
    rec = network.recurrence
    if rec is not None:
        return tuple(rec.name(rec.states[0], t) for t in range(1, network.steps + 1))
    hidden = sorted((n for n in network.graph.of_kind("hidden")), key=lambda n: n.step)
    return tuple(n.name for n in hidden)


def _recurrent_weight(network):
    """The recurrent weight(s) whose size bounds the Jacobian product, or None where the bound does
    not apply (an LSTM's or GRU's gated, additive state)."""
    if network.name == "seed":
        return [n.name for n in network.graph.of_kind("param") if n.param_role is ParamRole.RECURRENT_WEIGHT]
    if network.name == "elman":
        return ["W_hh"]
    return None


def gradient_flow(network, params=None, x=None, y=None, *, batch: int = 8, seed: int = 0) -> GradientFlow:
    """Per-step gradient sizes, the symbolic factor product and the vanishing/exploding condition.

    >>> flow = gradient_flow(rnnsym.seed_rnn(steps=10))
    >>> len(flow.grad_norms), flow.case in ("vanishing", "may explode")
    (10, True)
    """
    from .numeric.gradcheck import random_point

    drawn = random_point(network, batch, seed)
    params = drawn[0] if params is None else params
    x = drawn[1] if x is None else x
    y = drawn[2] if y is None else y
    compiled = network.compile(form="unrolled")
    adjoints, shares = compiled.adjoints(params, x, y)
    states = _state_nodes(network)
    grad_norms = np.array([np.linalg.norm(adjoints[s]) if s in adjoints else 0.0 for s in states])
    graph = network.graph
    term_norms = {}
    for p, per_node in shares.items():
        steps = {graph[node].step for node, _ in per_node
                 if graph[node].kind == "hidden" and 1 <= graph[node].step <= network.steps}
        if len(steps) < 2:
            continue  # used once: no per-step terms to compare
        by_step = np.zeros(network.steps)
        for t in range(1, network.steps + 1):
            total = sum((share for node, share in per_node if graph[node].kind == "hidden" and graph[node].step == t), 0.0)
            by_step[t - 1] = np.linalg.norm(total)
        term_norms[p] = by_step
    text, latex = factor_product(network)
    gamma = sigma = None
    statement = ("The bound (γσ)^(t−k) is stated for a recurrence h_t = f(W·h_(t−1) + …); in this cell "
                 "the state is also carried additively through gates (an LSTM's c_t = f_t⊙c_(t−1) + …), so it "
                 "does not apply; the product shown is the h-to-h part of one step.")
    weights = _recurrent_weight(network)
    if weights:
        gamma = DERIVATIVE_BOUNDS[network.options.get("activation", "tanh")]
        sigma = max(float(np.linalg.norm(np.atleast_2d(params[w]), 2)) for w in weights)
        statement = condition_statement(gamma, sigma)
    attention = None
    if is_seq2seq(network):
        attention = _attention_norms(network, params, adjoints, states)
        statement = _seq2seq_statement(network, grad_norms, attention)
    return GradientFlow(network, states, grad_norms, term_norms, text, latex, gamma, sigma, statement, attention)


def _attention_norms(network, params, adjoints, states) -> np.ndarray | None:
    """‖the part of ∂L/∂h_i that reaches h_i straight from attention‖ for each encoder step: the
    rows of δH_enc, plus W_kᵀ·δk_i where the additive score projects h_i into a key k_i."""
    if "H_enc" not in adjoints:
        return None
    stack = np.asarray(adjoints["H_enc"])  # (batch, S, hidden)
    norms = np.zeros(len(states))
    for i in range(len(states)):
        direct = stack[:, i, :]
        key = f"k{i + 1}"
        if key in adjoints:  # k_i = W_k·h_i: δh_i gains δk_i·W_k (per example, as rows)
            direct = direct + np.asarray(adjoints[key]) @ np.asarray(params["W_k"])
        norms[i] = np.linalg.norm(direct)
    return norms


def _seq2seq_statement(network, grad_norms, attention) -> str:
    S = len(grad_norms)
    ratio = grad_norms[0] / grad_norms[-1] if grad_norms[-1] else float("nan")
    text = f"‖∂L/∂h_1‖ / ‖∂L/∂h_{S}‖ = {ratio:.3g} over the {S} encoder steps"
    if attention is None:
        return (text + ": without attention the gradient reaches h_1 only back through the decoder's chain "
                f"and the {S - 1} encoder steps after it.")
    share = attention[0] / grad_norms[0] if grad_norms[0] else float("nan")
    return (text + f"; with {network.options['attention']} attention every h_i is also a row of H_enc, read by "
            f"every score and context, so part of ∂L/∂h_i arrives in one hop (at step 1: "
            f"{attention[0]:.3g}, {share:.0%} of ‖∂L/∂h_1‖ in norm).")


def condition_statement(gamma: float, sigma: float) -> str:
    """Which side of Pascanu et al.'s condition σ versus 1/γ holds, worded exactly."""
    if sigma < 1 / gamma:
        return (f"σ_max = {sigma:.4g} < 1/γ = {1 / gamma:.4g}: this is sufficient for the gradients to vanish, "
                f"since ‖∂h_t/∂h_k‖ ≤ (γ·σ_max)^(t−k) = {gamma * sigma:.4g}^(t−k).")
    return (f"σ_max = {sigma:.4g} ≥ 1/γ = {1 / gamma:.4g}: the condition necessary for exploding gradients "
            "holds; it is not sufficient, so they may still vanish.")


def factor_product(network) -> tuple[str, str]:
    """``∏_k ∂h_k/∂h_(k−1)`` written for a general step k, from the derivation of step 2."""
    from .printing.latex import LatexStepPrinter
    from .printing.text import TextPrinter
    from .records import JacobianItem, Product, Sum

    states = _state_nodes(network)
    if len(states) < 2:
        return "1", "1"
    graph = network.graph
    current, previous = states[1], states[0]
    rename = {}
    for node in graph.nodes.values():
        if node.step in (1, 2) and node.kind in ("hidden", "param", "input", "constant"):
            m = re.fullmatch(r"(.*?)(\d+)", node.name)
            if m and node.kind != "param" or (m and node.step == 2):
                base = m.group(1).rstrip("_")
                k = "k" if node.step == 2 else "k-1"
                if node.kind == "param":  # the seed's w1 carries o1 into layer 2: w_(k−1)
                    k = "k-1"
                rename[node.symbol] = sp.Symbol(f"{base}_{{{k}}}")
    def renamed(child, parent):
        return tuple(t.renamed(rename) for t in network.jacobian(child, parent).terms)

    # Every path from h_k back to h_(k−1) inside one step (through the gates of an LSTM or GRU).
    within = {n for n, node in graph.nodes.items() if node.step == 2 and node.kind == "hidden"}
    paths, stack = [], [(current,)]
    while stack:
        path = stack.pop()
        for parent in graph.parents(path[-1]):
            if parent == previous:
                paths.append(path + (parent,))
            elif parent in within:
                stack.append(path + (parent,))
    if network.is_scalar:
        item = sp.Add(*[sp.Mul(*[t.factor for a, b in zip(p, p[1:]) for t in renamed(a, b)]) for p in paths])
    else:
        products = [Product(tuple(JacobianItem(renamed(a, b)) for a, b in zip(p, p[1:])), grouped=True)
                    if len(p) > 2 else JacobianItem(renamed(*p)) for p in sorted(paths, key=len)]
        item = products[0] if len(products) == 1 else Sum(tuple(products))
    text = TextPrinter().doprint(item)
    for raw, pretty in (("_{k-1}", "₍ₖ₋₁₎"), ("_{k−1}", "₍ₖ₋₁₎"), ("_{k}", "ₖ")):
        text = text.replace(raw, pretty)
    latex = LatexStepPrinter().doprint(item)
    several = len(paths) > 1 or " + " in text
    return ("∏_k " + ("({})" if several else "{}").format(text),
            r"\prod_{k} " + (r"\left(%s\right)" % latex if several else latex))


def scaled_params(network, scale: float, seed: int = 0) -> dict:
    """Parameters whose recurrent matrices have largest singular value ``scale`` exactly (a scaled
    random orthogonal matrix; the seed network's recurrent weights are ``scale``), the other
    weights drawn with standard deviation 1/√fan-in, biases zero."""
    rng = np.random.default_rng(seed)
    params = {}
    for node in network.graph.of_kind("param"):
        shape = node.shape
        recurrent = node.param_role is ParamRole.RECURRENT_WEIGHT
        if recurrent and shape == ():
            params[node.name] = float(scale)
        elif recurrent and len(shape) == 2 and shape[0] == shape[1]:
            q, r = np.linalg.qr(rng.normal(size=shape))
            params[node.name] = scale * q * np.sign(np.diag(r))
        elif node.param_role.is_bias:
            params[node.name] = np.zeros(shape) if shape else 0.0
        else:
            fan_in = shape[-1] if shape else 1
            params[node.name] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=shape) if shape else float(rng.normal())
    return params


def flow_sweep(kind: str, steps: int, scales, activations=("tanh", "sigmoid", "relu"), hidden_size: int = 8,
               batch: int = 16, seed: int = 0) -> dict:
    """``{(activation, scale): GradientFlow}`` for a sweep of recurrent-weight scales."""
    from .networks import make_network

    positive_int("steps", steps)
    choose("network", kind, ("seed", "elman", "lstm", "gru"))
    results = {}
    for activation in activations:
        options = {} if kind == "seed" else dict(hidden_size=hidden_size)
        net = make_network(kind, steps, activation=activation, **options)
        from .numeric.gradcheck import random_point

        _, x, y = random_point(net, batch, seed)
        for scale in scales:
            if not scale > 0:
                raise RnnsymError(f"scales must be positive, got {scale!r}")
            results[(activation, scale)] = gradient_flow(net, scaled_params(net, scale, seed), x, y)
    return results


def plot_flow(results: dict, path, title: str = "") -> None:
    """Gradient size against step (log scale), one panel per activation, one line per scale."""
    plt = _pyplot()
    activations = list(dict.fromkeys(a for a, _ in results))
    fig, axes = plt.subplots(1, len(activations), figsize=(4.2 * len(activations), 3.4), squeeze=False, sharey=True)
    for ax, activation in zip(axes[0], activations):
        for (act, scale), flow in results.items():
            if act != activation:
                continue
            steps = np.arange(1, len(flow.grad_norms) + 1)
            norms = np.maximum(flow.grad_norms, 1e-300)
            label = f"σ = {scale:g}" + (f" ({flow.case})" if flow.gamma is not None else "")
            ax.semilogy(steps, norms, marker=".", label=label)
        ax.set_title(activation)
        ax.set_xlabel("step t")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("‖∂L/∂h_t‖")
    if title:
        fig.suptitle(title)
    _write_png(fig, path)


def seq2seq_params(network, seed: int = 0) -> dict:
    """PyTorch's default initialisation of recurrent cells, U(−1/√H, 1/√H) for every parameter,
    drawn per parameter name: networks with and without attention get the same encoder, decoder
    and readout, so what differs between them is attention alone."""
    import zlib

    bound = 1.0 / np.sqrt(network.options["hidden_size"])
    return {name: np.random.default_rng([seed, zlib.crc32(name.encode())]).uniform(-bound, bound, size=shape)
            for name, shape in network.param_shapes.items()}


def seq2seq_flow(encoder: str = "gru", decoder: str = "gru", *, source_steps: int = 50, target_steps: int = 5,
                 attentions=(None, "dot", "general", "additive"), input_size: int = 2, hidden_size: int = 8,
                 output_size: int = 4, loss: str = "cross_entropy", batch: int = 16, seed: int = 0) -> dict:
    """``{attention: GradientFlow}`` over the encoder steps of one encoder–decoder built with each
    attention (None: without), at the same point: :func:`seq2seq_params` and the same batch.

    >>> flows = seq2seq_flow(source_steps=6, target_steps=2, hidden_size=3, attentions=(None, "dot"))
    >>> [len(f.grad_norms) for f in flows.values()], flows["dot"].attention_norms is not None
    ([6, 6], True)
    """
    from .networks import seq2seq
    from .numeric.gradcheck import random_point

    positive_int("batch", batch)
    attentions = tuple(dict.fromkeys(attentions))
    if not attentions:
        raise RnnsymError("attentions must name at least one of None, 'dot', 'general', 'additive'")
    results, x, y = {}, None, None
    for attention in attentions:
        net = seq2seq(encoder, decoder, source_steps=source_steps, target_steps=target_steps, input_size=input_size,
                      hidden_size=hidden_size, output_size=output_size, attention=attention, loss=loss)
        if x is None:  # one batch for every network: the inputs and targets do not depend on attention
            _, x, y = random_point(net, batch, seed)
        results[attention] = gradient_flow(net, seq2seq_params(net, seed), x, y)
    return results


def plot_seq2seq_flow(results: dict, path, title: str = "") -> None:
    """‖∂L/∂h_i‖ against encoder step i (log scale), one line per attention; dashed, the part that
    arrives through attention in one hop."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for attention, flow in results.items():
        steps = np.arange(1, len(flow.grad_norms) + 1)
        line, = ax.semilogy(steps, np.maximum(flow.grad_norms, 1e-300), marker=".",
                            label=f"{attention or 'no'} attention: ‖∂L/∂h_i‖")
        if flow.attention_norms is not None:
            ax.semilogy(steps, np.maximum(flow.attention_norms, 1e-300), linestyle="--", color=line.get_color(),
                        label=f"{attention}: through attention (one hop)")
    ax.set_xlabel("encoder step i")
    ax.set_ylabel("‖∂L/∂h_i‖ (over the batch)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _write_png(fig, path)


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed, none opened), imported only here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_png(fig, path) -> None:
    """``fig`` laid out, written to ``path`` as a PNG atomically, and closed."""
    import io

    from .files import atomic_write_bytes

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def compare_lstm_elman(steps: int = 50, hidden_size: int = 8, scale: float = 1.0, seed: int = 0,
                       forget_bias: float = 1.0) -> dict:
    """The same conditions for both (hidden size, inputs, recurrent matrices of largest singular
    value ``scale``, the LSTM's forget-gate bias at its usual ``forget_bias``): how much of the
    gradient at the last step reaches the first, ``ratio = ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖``."""
    from .networks import make_network
    from .numeric.gradcheck import random_point

    out = {}
    for kind in ("elman", "lstm"):
        net = make_network(kind, steps, hidden_size=hidden_size)
        _, x, y = random_point(net, 16, seed)
        params = scaled_params(net, scale, seed)
        if kind == "lstm":  # the usual LSTM initialisation: forget gate open (Gers et al. 2000)
            params["b_if"] = params["b_if"] + forget_bias
        flow = gradient_flow(net, params, x, y)
        out[kind] = {"first": float(flow.grad_norms[0]), "last": float(flow.grad_norms[-1]),
                     "ratio": float(flow.grad_norms[0] / flow.grad_norms[-1])}
    return out
