"""The loop form: a shared cell compiled once, run by a Python loop over time.

An unrolled cell repeats the same step T times, so the step is differentiated once (its local
Jacobians are taken from the nodes of step 1) and the generated code is a ``for t in range(T)``
loop around that one step, forward and backward; the source does not grow with T. States and
gates are kept in (T, batch, ...) arrays for the backward pass; a parameter's share is not
reduced inside the loop but stored per step and reduced once afterwards with one matrix product
over all steps and examples (``Σ_t δ_tᵀ h_(t−1)`` as a single BLAS call).
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import sympy as sp

from ..engine.local import local_jacobian
from ..functions import DERIVATIVE_RULES, MatVec, sigmoid
from .codegen import _Emitter, _nodes_needing_adjoints, output_seeds
from .compiled import CompiledNetwork
from .printer import RUNTIME, stable

IN2 = "        "  # the loop body's indent


def loop_supported(network) -> bool:
    rec = getattr(network, "recurrence", None)
    return rec is not None and not rec.bidirectional


def compile_loop(network, truncate: int | None = None) -> CompiledNetwork:
    graph, rec, T = network.graph, network.recurrence, network.steps
    em = _Emitter(graph)
    names = em.names
    params = [n.name for n in graph.of_kind("param")]
    args = ", ".join(names[graph[p].symbol] for p in params)
    k = T if truncate is None else min(truncate, T)
    per_step = network.options.get("outputs") == "all"

    # The template: the nodes of step 1, the previous states (step 0) and the input x1.
    step = [n for n, node in graph.nodes.items() if node.kind == "hidden" and node.step == 1]
    prev = {rec.name(s, 0): s for s in rec.states}
    new = {rec.name(s, 1): s for s in rec.states}
    x1 = rec.name(rec.input, 1)
    x_shape = graph[x1].shape
    col = "" if x_shape == () else ", :"

    def buf(name: str) -> str:  # per-step storage of a template node
        return f"S_{names[graph[name].symbol]}"

    def stacked(name: str) -> str:
        """All steps' values of a template node, as a (T, batch, ...) array."""
        if name == x1:
            return "_X"
        if name in prev:
            return f"S_{names[graph[rec.name(prev[name], 1)].symbol]}[:-1]"
        if name in new:
            return f"S_{names[graph[name].symbol]}[1:]"
        return buf(name)

    def at(name: str, t: str) -> str:
        if name in prev:
            return f"S_{names[graph[rec.name(prev[name], 1)].symbol]}[{t}]"
        if name in new:
            return f"{buf(name)}[{t} + 1]"
        return f"{buf(name)}[{t}]"

    # ---- forward: the loop over time -------------------------------------------------------------
    # Time-major view of the inputs (no copy: products that need it contiguous make their own).
    # Large arrays come from the workspace (rnnsym.numeric.workspace): the same memory every call.
    forward = ["    _B = x.shape[0]", "    _ws = _workspace(_B)", "    _X = numpy.moveaxis(x, 1, 0)"]
    for name in step:
        node = graph[name]
        extra = "1" if name in new else "0"
        forward.append(f"    {buf(name)} = _ws.empty({buf(name)!r}, ({T} + {extra}, _B) + {node.shape!r})")
    for name, state in prev.items():
        forward.append(f"    {at(name, '0')} = {float(graph[name].value)!r}")
    forward.append(f"    for t in range({T}):")
    forward.append(f"        {names[graph[x1].symbol]} = x[:, t{col}]")
    for name in prev:
        forward.append(f"        {names[graph[name].symbol]} = {at(name, 't')}")
    # Terms that read only the input and parameters (W_ih·x_t + b) do not depend on the
    # recurrence: they are computed for all steps at once, one large matrix product, before the loop.
    hoisted: list[tuple[sp.Symbol, sp.Expr]] = []
    hoisted_shape: dict[sp.Symbol, tuple] = {}  # (T, batch) + this: the node whose argument it is
    node_shape = [()]
    time_parallel = {graph[x1].symbol} | {graph[p].symbol for p in params}

    def hoist(expr: sp.Expr) -> sp.Expr:
        if expr.is_Add:
            free = [a for a in expr.args if a.free_symbols <= time_parallel]
            if any(graph[x1].symbol in a.free_symbols for a in free) and len(free) > 1 or (
                    free and any(isinstance(a, MatVec) for a in free)):
                symbol = em.symbol(f"_P{len(hoisted)}")
                hoisted.append((symbol, sp.Add(*free)))
                hoisted_shape[symbol] = node_shape[0]
                rest = [hoist(a) for a in expr.args if a not in free]
                return sp.Add(symbol, *rest, evaluate=False)
        if expr.args and not isinstance(expr, MatVec):
            return expr.func(*[hoist(a) for a in expr.args], evaluate=False)
        return expr

    step_exprs = {}
    for name in step:
        node_shape[0] = graph[name].shape
        step_exprs[name] = hoist(graph[name].expr)
    # Weights that multiply the same vector in one step (an LSTM's W_hi, W_hf, W_hg, W_ho all
    # multiply h_(t-1)) are stacked into one matrix: one BLAS call per step instead of four,
    # forward and backward, as PyTorch's stacked weight_hh does.
    groups: dict[sp.Symbol, list[sp.Symbol]] = {}
    for e in step_exprs.values():
        for product in sorted(e.atoms(MatVec), key=sp.default_sort_key):
            matrix, vector = product.args
            if matrix not in groups.setdefault(vector, []):
                groups[vector].append(matrix)
    stacks: dict[sp.Symbol, tuple[str, dict]] = {}  # vector -> (stacked name, {matrix: slice})
    for vector, matrices in groups.items():
        if len(matrices) < 2:
            continue
        stacked_name = f"_W{len(stacks)}"
        rows, start = {}, 0
        for m in matrices:
            n = graph[m.name].shape[0]
            rows[m], start = f"{start}:{start + n}", start + n
        stacks[vector] = (stacked_name, rows)
        forward.insert(forward.index(f"    for t in range({T}):"),
                       f"    {stacked_name} = numpy.concatenate([{', '.join(names[m] for m in matrices)}])")
    slices = {}
    for vector, (stacked_name, rows) in stacks.items():
        for m, rng in rows.items():
            symbol = sp.Symbol(f"_M{stacked_name}[..., {rng}]")
            em.names[symbol] = f"_M{stacked_name[2:]}[..., {rng}]"
            slices[MatVec(m, vector)] = symbol
    step_exprs = {name: e.xreplace(slices) for name, e in step_exprs.items()}
    per_t = {symbol: sp.Symbol(f"{symbol.name}[t]") for symbol, _ in hoisted}
    block = _gate_block(graph, step, step_exprs, stacks, slices, dict(hoisted), graph[x1].symbol, params)
    # The hoisted input products of several weights (W_ii, W_if, W_ig, W_io) are one product too.
    x_weights = []
    for P, value in hoisted:
        if block and P in block.hoisted:
            continue
        for product in sorted(value.atoms(MatVec), key=sp.default_sort_key):
            if product.args[1] == graph[x1].symbol and product.args[0] not in x_weights:
                x_weights.append(product.args[0])
    x_slices = {}
    if len(x_weights) > 1:
        start, rows = 0, []
        for m in x_weights:
            n = graph[m.name].shape[0]
            symbol = sp.Symbol(f"_Q[..., {start}:{start + n}]")
            em.names[symbol] = symbol.name
            x_slices[MatVec(m, graph[x1].symbol)] = symbol
            start += n
        em.names[sp.Symbol("_WX")] = "_WX"
        forward.insert(forward.index(f"    for t in range({T}):"),
                       f"    _WX = numpy.concatenate([{', '.join(names[m] for m in x_weights)}])")
        forward.insert(forward.index(f"    for t in range({T}):"),
                       f"    _Q = _mm(_X, _WX, out=_ws.empty('_Q', ({T}, _B, {start})))")
    # Each hoisted sum is accumulated in place: into its own column block of _Q when it starts with
    # one (the biases are added there), else into a workspace array that its first term fills.
    x_symbol = {graph[x1].symbol: em.symbol("_X")}
    blocks_used = [a for _, v in hoisted for a in sp.Add.make_args(v.xreplace(x_slices)) if a in x_slices.values()]
    if block:  # one weight matrix [W_x | W_h | b] for the product with [x_t, h_(t-1), 1]
        biases = ", ".join(em.code(sp.Add(*g.biases)) if g.biases else f"numpy.zeros({graph[g.node].shape[0]})"
                           for g in block.gates.values())
        x_block = ", ".join(names[g.x_weight] for g in block.gates.values())
        forward.insert(forward.index(f"    for t in range({T}):"),
                       f"    _WC = numpy.concatenate([numpy.concatenate([{x_block}]), {stacks[block.vector][0]}, "
                       f"numpy.concatenate([{biases}])[:, None]], axis=1)")
    for symbol, value in hoisted:
        em.names[per_t[symbol]] = f"{symbol.name}[t]"
        if block and symbol in block.hoisted:
            continue
        terms = sorted(sp.Add.make_args(value.xreplace(x_slices).xreplace(x_symbol)),
                       key=lambda a: (a not in x_slices.values(), not isinstance(a, MatVec)))
        first, P = terms[0], symbol.name
        if first in x_slices.values() and blocks_used.count(first) == 1:
            lines = [f"    {P} = {em.code(first)}"]
        else:
            lines = [f"    {P} = _ws.empty({P!r}, ({T}, _B) + {hoisted_shape[symbol]!r})"]
            lines.append(f"    {em.printer.product_into(first, P)}" if isinstance(first, MatVec)
                         else f"    {P}[...] = {em.code(first)}")
        large = [a for a in terms[1:] if a.has(em.symbol("_X"), MatVec, *x_slices.values())]
        small = [a for a in terms[1:] if a not in large]  # parameters only: summed before the pass
        lines += [f"    {P} += {em.code(term)}" for term in large]
        if small:
            lines.append(f"    {P} += {em.code(sp.Add(*small))}")
        at_loop = forward.index(f"    for t in range({T}):")
        forward[at_loop:at_loop] = lines
    if not any(graph[x1].symbol in e.free_symbols for e in step_exprs.values()):
        forward.remove(f"        {names[graph[x1].symbol]} = x[:, t{col}]")  # only the hoisted terms read it
    for vector, (stacked_name, rows) in stacks.items():
        em.names[sp.Symbol(stacked_name)] = stacked_name
        M, width = f"_M{stacked_name[2:]}", sum(graph[m.name].shape[0] for m in rows)
        product = MatVec(sp.Symbol(stacked_name), vector)
        if block and block.vector == vector:
            forward.append("        _mm(S_XH[t], _WC, out=S_G[t])")
            continue
        forward.insert(forward.index(f"    for t in range({T}):"), f"    {M}_out = _ws.empty('{M}', (_B, {width}))")
        forward.append(f"        {M} = {em.printer.product_into(product, M + '_out')}")
    # A function of a node that is not itself a node (tanh(c) in an LSTM's h = o·tanh(c)) is kept
    # from the forward pass, since the backward pass needs it again.
    kept: dict[sp.Expr, sp.Symbol] = {}
    for name in step:
        for f in sorted(step_exprs[name].atoms(sp.Function), key=sp.default_sort_key):
            if (f != step_exprs[name] and not isinstance(f, MatVec) and f.func in DERIVATIVE_RULES
                    and f.free_symbols <= {graph[n].symbol for n in (*step, *prev)}):
                kept.setdefault(f, em.symbol(f"_F{len(kept)}"))
    for f, symbol in kept.items():
        forward.insert(forward.index(f"    for t in range({T}):"),
                       f"    S{symbol.name} = _ws.empty('S{symbol.name}', ({T}, _B) + {_shape_of(graph, f)!r})")
    gate_nodes = {g.node: g for g in block.gates.values()} if block else {}
    for name in step:
        value = step_exprs[name]
        if name in gate_nodes:
            activation = em.code(value).split("(", 1)[0]
            forward.append(f"        {names[graph[name].symbol]} = {activation}_({at(name, 't')})")
            continue
        for f, symbol in kept.items():
            if value.has(f):
                forward.append(f"        {symbol.name} = {em.code(f)[:-1]}, out=S{symbol.name}[t])")
                value = value.xreplace({f: symbol})
        value = value.xreplace(per_t)
        code = em.code(value)
        if code.startswith(("_tanh(", "_sigmoid(")) and code.endswith(")"):
            # Written straight into the step's buffer, its argument too when it is a sum of two:
            # no temporary arrays (the LSTM's gates are most of its forward pass).
            buffer = at(name, 't')
            arg = value.args[0]
            if arg.is_Add and len(arg.args) == 2:  # then the activation runs in place
                forward.append(f"        numpy.add({em.code(arg.args[0])}, {em.code(arg.args[1])}, out={buffer})")
                forward.append(f"        {names[graph[name].symbol]} = {code.split('(', 1)[0]}_({buffer})")
            else:
                forward.append(f"        {names[graph[name].symbol]} = {code[:-1]}, out={buffer})")
        else:
            forward.append(f"        {names[graph[name].symbol]} = {at(name, 't')} = {code}")

    if block:
        # The gates' storage: column blocks of one (T, batch, width) array. The state the stacked
        # weights multiply is a column block of [x_t, h_(t-1), 1], kept for all steps.
        views = []
        for m, gate in block.gates.items():
            forward.remove(f"    {buf(gate.node)} = _ws.empty({buf(gate.node)!r}, ({T} + 0, _B) + {graph[gate.node].shape!r})")
            views.append(f"    {buf(gate.node)} = S_G[..., {block.rows[m]}]")
        forward[2:2] = [f"    S_G = _ws.empty('S_G', ({T}, _B, {block.width}))", *views]
        state = buf(rec.name(prev[block.vector.name], 1))
        I, H = block.columns
        at_state = forward.index(f"    {state} = _ws.empty({state!r}, ({T} + 1, _B) + ({H},))")
        forward[at_state:at_state + 1] = [
            f"    S_XH = _ws.empty('S_XH', ({T} + 1, _B, {I + H + 1}))",
            f"    S_XH[:{T}, :, 0:{I}] = _X",
            f"    S_XH[..., {I + H}] = 1.0",
            f"    {state} = S_XH[..., {I}:{I + H}]"]
    freed = [symbol.name for symbol, _ in hoisted if not (block and symbol in block.hoisted)]
    if freed:  # only the forward loop reads them: free them before the backward pass allocates
        forward.append(f"    del {', '.join(freed)}")

    # ---- readout and loss ---------------------------------------------------------------------------
    loss = graph.loss
    if per_step:
        out, term, target = "y1", graph["L1"], "Y1"
        views = {rec.name(s, 1): stacked(rec.name(s, 1)) for s in rec.states}
        forward += [f"    {names[graph[n].symbol]} = {v}" for n, v in views.items()]
        tcol = "" if graph[target].shape == () else ", :"
        targets = [f"    {names[graph[target].symbol]} = numpy.moveaxis(y, 1, 0)" if tcol else
                   f"    {names[graph[target].symbol]} = y.T"]
    else:
        out, term, target = "y", loss, "Y"
        last = {rec.name(s, T): rec.name(s, 1) for s in rec.states}
        forward += [f"    {names[graph[n].symbol]} = {at(t1, str(T - 1))}" for n, t1 in last.items()]
        targets = [f"    {names[graph[target].symbol]} = y"]
    out_node = graph[out]
    logit = out_node.expr
    if out_node.expr.is_Function and len(out_node.expr.args) == 1:
        z = em.symbol("_z_out")  # the loss reads the pre-activation again (log(sigmoid(z)))
        forward.append(f"    {z.name} = {em.code(out_node.expr.args[0])}")
        logit = out_node.expr.func(z)
    forward.append(f"    {names[out_node.symbol]} = {em.code(logit)}")
    # What the readout read, as arrays that the backward loop does not overwrite.
    readout_view = ({rec.name(s, 1): stacked(rec.name(s, 1)) for s in rec.states} if per_step else
                    {rec.name(s, T): at(rec.name(s, 1), str(T - 1)) for s in rec.states})
    reduce_axis = "" if out_node.shape == () else ("numpy.mean({}, axis=-1)" if term.reduce == "mean" else "numpy.sum({}, axis=-1)")
    loss_expr = sp.factor_terms(stable(term.expr.xreplace({out_node.symbol: logit})))
    loss_lines = list(targets) + em.lines([("_loss", loss_expr, reduce_axis or "{}")])
    if per_step:
        over_steps = "numpy.mean" if network.options.get("step_reduction", "mean") == "mean" else "numpy.sum"
        loss_lines.append(f"    _per_example = {over_steps}(_loss, axis=0)")
    else:
        loss_lines.append("    _per_example = _loss")

    # ---- backward ------------------------------------------------------------------------------------
    needs = _nodes_needing_adjoints(graph)
    inv_b = em.symbol("_inv_batch")
    backward = [f"    {inv_b.name} = 1.0 / _B"]
    grads: dict[str, list[str]] = {p: [] for p in params}
    counter = itertools.count()

    def param_share(p: str, term, factor, lines: list, deferred: list, t: str | None):
        """A parameter's share: inside the loop it is stored per step, reduced after the loop."""
        shape = graph[p].shape
        if t is None:  # outside the loop: the readout's parameters, from (batch, ...) or (T, batch, ...) arrays
            name = f"_r{next(counter)}"
            lines.append((name, factor, "{}"))
            if term.outer is not None:
                grads[p].append(f"_outer({name}, {readout_view[term.outer.name]})")
            else:
                grads[p].append(f"_total({name}, {len(shape)})")
            return
        leaf = None
        if term.outer is None and shape == ():
            # A scalar weight times a stored value (w·x, u·h): keep the common factor, dot it later.
            for arg in sp.Mul.make_args(factor):
                if isinstance(arg, sp.Symbol) and arg.name in (x1, *prev, *step):
                    leaf, factor = arg.name, factor / arg
                    break
        name = f"_d{next(counter)}"
        lines.append((name, factor, "{}"))
        deferred.append((p, name, term, leaf))
        owner[name] = current[0]

    owner: dict[str, str] = {}  # deferred share -> the step node it flows out of
    current = [None]
    seed_lines: list = []
    state_of = {rec.name(s, t): s for s in rec.states for t in (1, T)}
    carry: dict[str, list[str]] = {s: [] for s in rec.states}  # adjoints flowing into the loop
    for parent in graph.parents(out):
        if parent not in needs:
            continue
        for t_, factor in output_seeds(network, term.name, out, parent, inv_b):
            if graph[parent].kind == "param":
                param_share(parent, t_, factor, seed_lines, [], None)
            else:  # the output reads the first state: its adjoint enters the loop
                name = f"_s{next(counter)}"
                wrap = em.printer.backward_product("{}", t_.matrix) if t_.matrix is not None else "{}"
                seed_lines.append((name, factor, wrap))
                carry[state_of[parent]].append(name)
    backward += em.lines(seed_lines)

    # The loop, from the last step back (truncated BPTT stops after k steps).
    loop = []
    deferred: list = []
    g_carry = {s: f"_g_{s}" for s in rec.states}
    for s in rec.states:
        shape = graph[rec.name(s, 1)].shape
        if per_step:
            backward.append(f"    _seed_{s} = {' + '.join(carry[s])}" if carry[s] else f"    _seed_{s} = None")
            backward.append(f"    {g_carry[s]} = numpy.zeros((_B,) + {shape!r})")
        else:
            backward.append(f"    {g_carry[s]} = {' + '.join(carry[s])}" if carry[s]
                            else f"    {g_carry[s]} = numpy.zeros((_B,) + {shape!r})")
    loop.append(f"    for t in range({T - 1}, {T - 1 - k}, -1):")
    loop.append(f"        {names[graph[x1].symbol]} = x[:, t{col}]")
    for name in prev:
        loop.append(f"        {names[graph[name].symbol]} = {at(name, 't')}")
    for name in step:
        loop.append(f"        {names[graph[name].symbol]} = {at(name, 't')}")
    for symbol in kept.values():
        loop.append(f"        {symbol.name} = S{symbol.name}[t]")
    within: dict[str, list[str]] = {n: [] for n in step}
    for s in rec.states:
        name = rec.name(s, 1)
        within[name].append(g_carry[s] + (f" + _seed_{s}[t]" if per_step and carry[s] else ""))
    next_carry: dict[str, list[str]] = {s: [] for s in rec.states}
    joined: dict[sp.Symbol, dict] = {}
    for name in reversed(step):
        if not within[name]:
            continue
        g = em.symbol(f"g_{names[graph[name].symbol]}")
        current[0] = name
        loop.append(f"        {g.name} = {' + '.join(within[name])}")
        targets = []
        for parent in graph.parents(name):
            if parent not in needs and parent not in prev:
                continue
            pnode = graph[parent]
            for t_ in local_jacobian(graph, name, parent).terms:
                factor = g * t_.factor.xreplace(kept)
                if pnode.kind == "param":
                    param_share(parent, t_, factor, targets, deferred, "t")
                    continue
                c = f"_c{next(counter)}"
                vector = graph[parent].symbol
                if t_.matrix is not None and parent in prev and vector in stacks:
                    targets.append((c, factor, "{}"))  # joined below: one product with the stacked matrix
                    joined.setdefault(vector, {})[t_.matrix] = c
                    continue
                if t_.matrix is not None:
                    wrap = em.printer.backward_product("{}", t_.matrix)
                elif pnode.shape == () and graph[name].shape != ():
                    wrap = "numpy.sum({}, axis=-1)"
                else:
                    wrap = "{}"
                targets.append((c, factor, wrap))
                (next_carry[prev[parent]] if parent in prev else within[parent]).append(c)
        loop += em.lines(targets, indent=IN2)
    # Per-step parameter shares are stored and reduced once after the loop. The shares of a stack's
    # weights (the LSTM's four gates) go side by side into one buffer, so that both the adjoint
    # carried back (δ_stack @ W_stack) and the weights' gradients are single matrix products.
    code_of, body = {}, []
    for line in loop:
        stripped = line.strip()
        if stripped.startswith("_d") and " = " in stripped:
            target, code = stripped.split(" = ", 1)
            code_of[target] = code
        else:
            body.append(line)
    line_code = {}
    for line in body:
        stripped = line.strip()
        if stripped.startswith("_c") and " = " in stripped:
            target, code = stripped.split(" = ", 1)
            line_code[target] = code
    shared_codes = {code_of[name] for _, name, _, _ in deferred}
    buffers: dict[str, tuple[str, str | None]] = {}  # share code -> (buffer, column slice or None)
    allocations, carried, groups = [], [], []
    for vector, shares in joined.items():
        stacked_name, rows = stacks[vector]
        codes = [line_code.get(shares.get(m)) for m in rows]
        if all(c in shared_codes for c in codes) and len(set(codes)) == len(codes):
            group = f"_DS{len(groups)}"
            width = sum(graph[m.name].shape[0] for m in rows)
            allocations.append((group, (width,)))
            for code, rng in zip(codes, rows.values()):
                buffers[code] = (group, rng)
            groups.append((group, dict(zip(codes, rows.values()))))
            product = f"{group}[t] @ {stacked_name}"
        else:
            parts = [shares.get(m) or f"numpy.zeros((_B, {graph[m.name].shape[0]}))" for m in rows]
            product = f"numpy.concatenate([{', '.join(parts)}], axis=-1) @ {stacked_name}"
        c = f"_c{next(counter)}"
        carried.append(f"        {c} = {product}")
        next_carry[prev[vector.name]].append(c)
    for p, name, t_, leaf in deferred:  # a share has the shape of the node it flows out of
        code = code_of[name]
        if code not in buffers:
            buffers[code] = (f"_D{len(allocations)}", None)
            allocations.append((buffers[code][0], graph[owner[name]].shape))
    stores = [f"        {b}[t] = {code}" if rng is None else f"        {b}[t, ..., {rng}] = {code}"
              for code, (b, rng) in buffers.items()]
    loop = body + stores + carried
    for s in rec.states:
        shape = graph[rec.name(s, 1)].shape
        loop.append(f"        {g_carry[s]} = {' + '.join(next_carry[s])}" if next_carry[s]
                    else f"        {g_carry[s]} = numpy.zeros((_B,) + {shape!r})")
    allocate = "zeros" if k < T else "empty"  # truncated: the steps before the window stay unused
    # The hoisted sums are dead once the forward loop is done: a buffer of the same shape takes
    # their memory, so a long sequence holds one (T, batch, ...) array less.
    dead = [(P, hoisted_shape[symbol]) for symbol, _ in hoisted for P in [symbol.name] if P in freed]
    for b, shape in allocations:
        reused = next((P for P, s in dead if s == shape), None)
        if reused:
            dead.remove((reused, shape))
            backward.append(f"    {b} = _ws.{allocate}({reused!r}, ({T}, _B) + {shape!r})  # {reused}'s memory")
        else:
            backward.append(f"    {b} = _ws.{allocate}({b!r}, ({T}, _B) + {shape!r})")

    window = f"{T - k}:{T}"
    reductions = []

    def signature(t_, leaf, p):
        return ("outer", t_.outer.name) if t_.outer is not None else ("dot", leaf) if leaf else ("total", len(graph[p].shape))

    done = set()
    for group, columns in groups:  # one reduction per weight family of a stack
        if block:  # [δW_x | δW_h | δb] = Σ δ_gatesᵀ [x_t, h_(t-1), 1]: one product
            I, H = block.columns
            reductions.append(f"    _GB = _outer({group}[{window}], S_XH[{window}])")
            part = {("outer", x1): f"0:{I}", ("outer", block.vector.name): f"{I}:{I + H}", ("total", 1): f"{I + H}"}
            for p, name, t_, leaf in deferred:
                if code_of[name] in columns and signature(t_, leaf, p) in part:
                    grads[p].append(f"_GB[{columns[code_of[name]]}, {part[signature(t_, leaf, p)]}]")
                    done.add(name)
            continue
        by_signature: dict = {}
        for entry in deferred:
            p, name, t_, leaf = entry
            if code_of[name] in columns:
                by_signature.setdefault(signature(t_, leaf, p), []).append(entry)
        for (kind, what), entries in by_signature.items():
            if {code_of[e[1]] for e in entries} != set(columns) or kind == "dot":
                continue
            g = f"_G{len(reductions)}"
            if kind == "outer":
                reductions.append(f"    {g} = _outer({group}[{window}], {stacked(what)}[{window}])")
            else:
                reductions.append(f"    {g} = _total({group}[{window}], 1)")
            for p, name, t_, leaf in entries:
                grads[p].append(f"{g}[{columns[code_of[name]]}]")
                done.add(name)
    for p, name, t_, leaf in deferred:
        if name in done:
            continue
        b, rng = buffers[code_of[name]]
        d = f"{b}[{window}]" if rng is None else f"{b}[{window}, ..., {rng}]"
        if t_.outer is not None:
            grads[p].append(f"_outer({d}, {stacked(t_.outer.name)}[{window}])")
        elif leaf is not None:
            grads[p].append(f"_dot({d}, {stacked(leaf)}[{window}])")
        else:
            grads[p].append(f"_total({d}, {len(graph[p].shape)})")
    loop += reductions

    out_grads = []
    for p in params:
        shape = graph[p].shape
        out_grads.append(" + ".join(grads[p]) if grads[p] else (f"numpy.zeros({shape})" if shape else "0.0"))

    header = ["# Generated by rnnsym: one step of the cell, differentiated once, run in a loop over time.",
              "# Every name below is generated; n_<node>1 stands for the current step's node."]
    source = "\n".join([
        *header,
        f"def forward(x, {args}):", *forward,
        f"    return (numpy.moveaxis({names[out_node.symbol]}, 0, 1),)" if per_step else f"    return ({names[out_node.symbol]},)",
        "",
        f"def loss(x, y, {args}):", *forward, *loss_lines, "    return numpy.mean(_per_example)",
        "",
        f"def value_and_grad(x, y, {args}):", *forward, *loss_lines, *backward, *loop,
        f"    return numpy.mean(_per_example), ({', '.join(out_grads)},)",
        "",
    ])
    return CompiledNetwork(network, source, {**RUNTIME, **LOOP_RUNTIME}, truncate=truncate, form="loop")


class _Gate(NamedTuple):
    node: str  # the gate node, act(P + M[..., rows])
    hoisted: sp.Symbol  # P = W_x·x + biases, computed in the block instead
    x_weight: sp.Symbol
    biases: tuple  # P's parameter terms


class _GateBlock(NamedTuple):
    vector: sp.Symbol  # what the stacked weights multiply (h_(t-1))
    columns: tuple  # (input size, state size)
    rows: dict  # stacked weight -> its column slice
    width: int
    gates: dict  # stacked weight -> _Gate, in stacking order
    hoisted: set  # the gates' hoisted sums


def _gate_block(graph, step, step_exprs, stacks, slices, hoisted, x, params) -> _GateBlock | None:
    """The LSTM pattern, found in any cell: every weight of the one stack feeds exactly one gate
    σ or tanh(W_x·x + b + W_h·h), with its own input weight. Then the gates are one
    (T, batch, width) array: each step writes W_h·h straight into it and adds the input products
    and biases (one product over all steps, before the loop) in one pass, and each gate's
    activation runs in place on its column block: no temporaries, as in PyTorch's fused cell.
    """
    if len(stacks) != 1 or len(graph[x.name].shape) != 1:
        return None
    vector, (_, rows) = next(iter(stacks.items()))
    parameters = {graph[p].symbol for p in params}
    gates, used = {}, set()
    for m, rng in rows.items():
        product = slices[MatVec(m, vector)]
        users = [n for n in step if step_exprs[n].has(product)]
        if len(users) != 1:
            return None
        node, e = users[0], step_exprs[users[0]]
        if not (e.func in (sigmoid, sp.tanh) and e.args[0].is_Add and len(e.args[0].args) == 2 and product in e.args[0].args):
            return None
        (P,) = [a for a in e.args[0].args if a != product]
        if P not in hoisted:
            return None
        terms = sp.Add.make_args(hoisted[P])
        inputs = [a for a in terms if isinstance(a, MatVec) and a.args[1] == x]
        biases = tuple(a for a in terms if a not in inputs)
        # One input weight of its own, and biases that are parameters of the gate's shape.
        if (len(inputs) != 1 or inputs[0].args[0] in used or not all(
                b in parameters and graph[b.name].shape == graph[node].shape for b in biases)):
            return None
        used.add(inputs[0].args[0])
        gates[m] = _Gate(node, P, inputs[0].args[0], biases)
    width = sum(graph[m.name].shape[0] for m in rows)
    columns = (graph[x.name].shape[0], graph[vector.name].shape[0])
    return _GateBlock(vector, columns, rows, width, gates, {g.hoisted for g in gates.values()})


def _shape_of(graph, expr) -> tuple:
    """The shape of an elementwise function of step nodes: that of its vector arguments."""
    shapes = {graph[s.name].shape for s in expr.free_symbols if s.name in graph}
    return max(shapes, key=len) if shapes else ()


# ---- helpers the generated code calls -----------------------------------------------------------------
def _outer(d, v):
    """Σ over steps and examples of d ⊗ v: one matrix product (rows of d, columns of v).

    A strided view (the time-major input) that is large is contracted in place with einsum rather
    than copied; a small one is copied so the product can go to BLAS.
    """
    import numpy

    n, m = d.shape[-1], v.shape[-1]
    contiguous = d.flags.c_contiguous and v.flags.c_contiguous
    if n == m == 1 and contiguous:  # a 1×1 weight: one dot product (BLAS gemm is slow for this shape)
        return numpy.dot(d.reshape(-1), v.reshape(-1)).reshape(1, 1)
    if not contiguous and v.nbytes > 16 * 2**20 and n * m <= 64:
        letters = "abcdefgh"[: d.ndim - 1]
        return numpy.einsum(f"{letters}i,{letters}j->ij", d, v)
    return d.reshape(-1, n).T @ v.reshape(-1, m)


def _dot(d, v):
    """Σ over steps and examples of d·v; einsum reads strided views without copying them."""
    import numpy

    v = numpy.broadcast_to(v, d.shape)
    letters = "abcdefgh"[:d.ndim]
    return numpy.einsum(f"{letters},{letters}->", d, v)


def _total(d, ndim):
    """Sum over every axis but the parameter's own (ndim trailing axes)."""
    import numpy

    return numpy.sum(d) if ndim == 0 else numpy.sum(d.reshape(-1, *d.shape[-ndim:]), axis=0)


LOOP_RUNTIME = {"_outer": _outer, "_dot": _dot, "_total": _total}
