"""The loop form's step as fused kernels: which of a step's elementwise work one C loop can do.

A forward step is its products (the stacked ones, one per stack) and then elementwise nodes; the
whole elementwise part becomes one kernel (rnnsym.numeric.kernel_c), after any product it reads
(``W·h_(t−1)`` of a single weight, computed into a buffer first). A backward step is mostly
elementwise shares with a few products: the kernel takes every statement that needs nothing a
product computes in this step, writes the parameter shares straight into their per-step buffers and
the carried adjoints into theirs; what depends on a product stays NumPy, after the kernel.

Where a step has something a kernel cannot compute (a broadcast node, a truncation window, a
vector of another width), nothing is fused and the step is NumPy as before.
"""
from __future__ import annotations

import math

import sympy as sp

from ..engine.rules import TransposeTimes
from ..functions import MatVec
from ..program.ir import Accumulate, Role
from ..program.step import AtStep, Columns, Write
from .kernel_c import Kernel, Operand, fusable


class KernelBuilder:
    """One kernel's operands, loads, values and stores, gathered as a step is walked."""

    def __init__(self, name: str, width: int):
        self.name, self.width = name, width
        self.operands: list[Operand] = []
        self.loads: dict[sp.Symbol, int] = {}
        self._loaded: dict[Operand, sp.Symbol] = {}
        self.values: list[tuple[sp.Symbol, sp.Expr]] = []
        self.defined: set = set()
        self.stores: list[tuple[int, sp.Symbol]] = []
        self.sums: list[sp.Expr] = []

    def operand(self, array: str, stepped: bool, batched: bool, vector: bool) -> int:
        op = Operand(array, stepped, batched, vector)
        if op not in self.operands:
            self.operands.append(op)
        return self.operands.index(op)

    def load(self, array: str, stepped: bool, batched: bool, vector: bool, symbol: sp.Symbol | None = None) -> sp.Symbol:
        """The symbol an element of ``array`` is read into (one per array)."""
        op = Operand(array, stepped, batched, vector)
        if op not in self._loaded:
            self._loaded[op] = symbol if symbol is not None else sp.Dummy(f"in{len(self._loaded)}")
            self.loads[self._loaded[op]] = self.operand(array, stepped, batched, vector)
        return self._loaded[op]

    def value(self, symbol: sp.Symbol, expr: sp.Expr) -> None:
        self.values.append((symbol, expr))
        self.defined.add(symbol)

    def store(self, array: str, stepped: bool, symbol: sp.Symbol) -> None:
        self.stores.append((self.operand(array, stepped, True, self.width > 1), symbol))

    def sum(self, expr: sp.Expr) -> int:
        """``expr`` summed over every row and step of a sweep: its index among the sweep's sums
        (one sum for shares alike, as a bias pair's)."""
        if expr not in self.sums:
            self.sums.append(expr)
        return self.sums.index(expr)

    def kernel(self) -> Kernel:
        return Kernel(self.name, self.width, tuple(self.operands), tuple((s, k) for s, k in self.loads.items()),
                      tuple(self.values), tuple(self.stores), tuple(self.sums))

    def bind_line(self, call: str) -> str:
        """``call = _native.kernels[name].bind(_B, x.dtype, <the operands' arrays>)``."""
        arrays = ", ".join(op.array for op in self.operands)
        return f"    {call} = _native.kernels[{self.name!r}].bind(_B, x.dtype, {arrays})"


def _ordered(items) -> list:
    """A set of SymPy objects in an order that does not depend on hashing: the same step gives the
    same C, and the same cached build, in every process."""
    return sorted(items, key=sp.default_sort_key)


def kernel_width(shapes) -> int | None:
    """The kernel's width for values of these shapes: one vector length, or 1 for scalars."""
    shapes = set(shapes)
    if len(shapes) != 1:
        return None
    (shape,) = shapes
    return 1 if shape == () else shape[0] if len(shape) == 1 else None


class _StepFusion:
    """What both passes' fusions share: an expression rewritten in the kernel's symbols. A product
    ``W·v`` of a value from before the step is computed into a buffer before the kernel; every other
    symbol is loaded from its array (``_load``, each pass's own) or is a value of the kernel."""

    def _resolved(self, expr: sp.Expr) -> sp.Expr | None:
        """``expr`` in the kernel's symbols, or None where a kernel cannot compute it."""
        k, replace = self.k, {}
        for a in _ordered(expr.atoms(AtStep)):  # a hoisted sum's row (forward)
            P = a.args[0]
            replace[a] = k.load(self.names[P], True, True, self._vector(self.fwd.hoisted_shape[P]))
        for c in _ordered(expr.atoms(Columns)):  # a stacked product's columns (forward)
            M, start, stop = c.args
            replace[c] = k.load(f"{self.names[M]}_out[..., {int(start)}:{int(stop)}]", False, True, True)
        for product in expr.atoms(MatVec, TransposeTimes):  # a 1×1 weight's product is a multiplication
            node = self.graph.nodes.get(product.args[0].name)
            if node is not None and node.kind == "param" and node.shape == (1, 1):
                replace[product] = sp.Mul(*product.args)
        expr = expr.xreplace(replace)
        for product in _ordered(expr.atoms(MatVec)):
            matrix, vector = product.args
            node = self.graph.nodes.get(matrix.name)
            if node is None or node.kind != "param" or not self._before_step(vector):
                return None
            out = f"_KM{self.k.name}{len(self.products)}"
            rows = node.shape[:1]
            self.before.append(f"    {out} = _ws.empty({out!r}, (_B,) + {rows!r})")
            self.products.append(f"        {self.printer.product_into(product, out)}")
            self.product_reads.add(vector)
            replace[product] = k.load(out, False, True, self._vector(rows))
        expr = expr.xreplace(replace)
        for s in _ordered(expr.free_symbols - set(replace.values())):
            if s in k.defined or s in k.loads:
                continue
            loaded = self._load(s)
            if loaded is None:
                return None
            replace[s] = loaded
        expr = expr.xreplace(replace)
        return expr if fusable(expr) else None

    def _node_load(self, s, stored: tuple) -> sp.Symbol | None:
        """A parameter's load, or a stored node's (``stored``: the template nodes with arrays)."""
        node = self.graph.nodes.get(getattr(s, "name", None))
        if node is None or node.symbol != s:
            return None
        if node.kind == "param":
            if not self._vector(node.shape) and math.prod(node.shape) != 1:  # a vector of another width, a matrix
                return None
            return self.k.load(self.names[s], False, False, self._vector(node.shape), symbol=s)
        if s.name in stored:
            return self.k.load(self.w.stacked(s.name), True, True, self._vector(node.shape), symbol=s)
        return None

    def _vector(self, shape: tuple) -> bool:
        """Whether a value of ``shape`` runs along the kernel's width (else it is one per row)."""
        return len(shape) == 1 and shape[0] == self.k.width


class ForwardFusion(_StepFusion):
    """The forward step's elementwise nodes as kernels (``fwd``: rnnsym.numeric.loop_forward's
    LoopForward, its passes run). ``fuse()`` gives ``(lines before the loop, lines of the body)``
    in place of the step's NumPy lines, or None.

    One kernel, after the step's products, unless a product reads a node of the same step (a stacked
    layer's input is the layer below's new state): then a kernel, that product, the next kernel. A
    later kernel reads the earlier ones' nodes from their storage, where every node is written."""

    def __init__(self, fwd, name: str):
        self.fwd, self.w, self.name = fwd, fwd, name
        self.graph, self.names, self.printer = fwd.graph, fwd.names, fwd.em.printer

    def fuse(self):
        fwd, graph = self.fwd, self.graph
        width = kernel_width(graph[n].shape for n in fwd.step)
        if width is None or any(fwd.program.writes[n] is Write.BROADCAST for n in fwd.step):
            return None
        self.before, self.body, self.product_reads = [], [], set()
        self.local = {graph[n].symbol for n in fwd.step} | set(fwd.kept.values())
        self.finished: set = set()  # nodes and kept values the kernels so far have stored
        self.chain: list[str] = []  # the kernels finished
        self._start(width)
        for name in fwd.step:
            read = {m.args[1] for m in fwd.step_exprs[name].atoms(MatVec)}
            if read & self.k.defined:  # a product of a node this kernel computes: the kernel ends here
                self._finish()
                self._start(width)
            if not self._node(name):
                return None
        self._finish()
        return self.before, self.body

    def _start(self, width: int) -> None:
        """A new kernel of the chain: ``fwd``, then ``fwd1``, ``fwd2``, …"""
        self.k = KernelBuilder(f"{self.name}{len(self.chain) or ''}", width)
        self.products = []

    def _finish(self) -> None:
        call = f"_k{self.k.name}"
        self.before.append(self.k.bind_line(call))
        self.body += [*self.products, f"        {call}(t)"]
        self.fwd.kernels.append(self.k.kernel())
        self.finished |= self.k.defined
        self.chain.append(self.k.name)

    def _node(self, name: str) -> bool:
        fwd, graph, k = self.fwd, self.graph, self.k
        symbol, value = graph[name].symbol, fwd.step_exprs[name]
        if fwd.program.writes[name] is Write.IN_PLACE:  # a gate: the block's product left its argument there
            value = value.func(k.load(fwd.buf(name), True, True, k.width > 1))
        for f, kept in fwd.kept.items():
            if value.has(f):
                inner = self._resolved(f)
                if inner is None or self.printer.info(kept) != (True, graph[name].shape):  # one per element
                    return False
                k.value(kept, inner)
                k.store(f"S{kept.name}", True, kept)
                value = value.xreplace({f: kept})
        value = self._resolved(value)
        if value is None or self.printer.info(fwd.step_exprs[name])[0] is not True:
            return False
        k.value(symbol, value)
        k.store(self._storage(symbol), True, symbol)
        return True

    def _storage(self, s) -> str:
        """Where a node or kept value of this step is stored, as a (T, batch, ...) array."""
        if s in self.fwd.kept.values():
            return f"S{s.name}"
        return f"{self.fwd.buf(s.name)}[1:]" if s.name in self.fwd.new else self.fwd.buf(s.name)

    def _before_step(self, vector) -> bool:
        if vector in self.finished:  # an earlier kernel's node: the product reads it from its storage
            load = f"        {self.names[vector]} = {self._storage(vector)}[t]"
            if load not in self.products:
                self.products.append(load)
            return True
        return vector not in self.local

    def _load(self, s) -> sp.Symbol | None:
        """An input, a previous state, a parameter, or what an earlier kernel stored."""
        if s in self.finished:
            return self.k.load(self._storage(s), True, True, self._vector(self.printer.info(s)[1]), symbol=s)
        return None if s in self.local else self._node_load(s, (self.fwd.x1, *self.fwd.prev))


class BackwardFusion(_StepFusion):
    """The backward step's elementwise statements as one kernel (``lowering``: the step's
    rnnsym.numeric.loop_backward.StepLowering, its shares placed). The kernel takes every statement
    that needs no value a product computes in this step; ``fuse()`` gives ``(lines before the loop,
    the body)`` — the body updates the carried adjoints in their own buffers — or None."""

    def __init__(self, lowering, printed: list, carried_products: list):
        self.low, self.printed, self.carried_products = lowering, printed, carried_products
        self.w, self.back, self.program = lowering.w, lowering.back, lowering.program
        self.graph, self.names, self.printer = self.w.graph, lowering.names, self.w.em.printer

    def fuse(self):
        w = self.w
        width = kernel_width(self.graph[n].shape for n in w.step)
        if width is None or w.windowed:
            return None
        self.k = KernelBuilder("bwd", width)
        self.before: list[str] = []
        self.products: list[str] = []
        self.python: list = []  # the statements left to NumPy, in order
        self.product_reads: set = set()  # what the products before the kernel read
        parts: dict[str, list] = {s: [] for s in w.rec.states}  # what each state's carried adjoint sums
        for s in self.printed:
            self._statement(s, parts)
        stores = self._stores()
        if not self.k.values:
            return None
        self.direct = self._products_into_carry(parts)
        python_lines = self._python_lines(stores)
        if python_lines is None:
            return None
        carry_lines = self._carried(parts)
        rows = self._shared_with_numpy()
        self.before.append(self.k.bind_line("_kbwd"))
        self.kernel = self.k.kernel()
        w.kernels.append(self.kernel)
        body = [*self.low._loads(), *self.products, "        _kbwd(t)", *rows, *python_lines, *carry_lines]
        return self.before, body

    def _shared_with_numpy(self) -> list[str]:
        """The kernel's values that NumPy lines read too, as body lines: each bound to its row of the
        buffer it is stored in, or stored by the kernel in a buffer of its own (bound before the loop)."""
        rows = []
        for symbol in sorted(self.k.defined & self.low.read, key=lambda s: self.names[s]):
            if symbol in self.back.buffers:
                b, rng = self.back.buffers[symbol]
                rows.append(f"        {self.names[symbol]} = {b}[t{'' if rng is None else f', ..., {rng}'}]")
            else:
                buffer = f"_KV{len(self.before)}"
                self.before += [f"    {buffer} = _ws.empty({buffer!r}, (_B,) + {self.printer.info(symbol)[1]!r})",
                                f"    {self.names[symbol]} = {buffer}"]
                self.k.store(buffer, False, symbol)
        return rows

    # ---- which statements the kernel takes ---------------------------------------------------------------
    def _statement(self, s, parts: dict) -> None:
        values = self.program.values
        if isinstance(s, Accumulate):
            role = values[s.target].role
            shares = [x.expr for x in s.shares if x.expr in self.names]
            if role is Role.GRADIENT:
                return
            if s.target in self.back.next_state:
                parts[self.back.next_state[s.target]] += [x for x in shares if x not in self.low.joined]
                return
            terms = list(shares)
            if s.carried is not None:
                terms.append(s.carried)
                state = self.w.new[s.node]
                if self.w.per_step and self.back.carry[state]:
                    terms.append(self.k.load(self.back.seed_of[state], True, True, self.k.width > 1))
            self._take(s, sp.Add(*terms, evaluate=False) if len(terms) > 1 else terms[0])
        else:
            self._take(s, s.expr)

    def _take(self, s, expr) -> None:
        info = self.printer.info(expr)
        expr = self._resolved(expr)
        if expr is None or info != (True, self.graph[self.w.step[0]].shape):  # one value per element
            self.python.append(s)
            return
        self.printer.declare(s.target, info)
        self.k.value(s.target, expr)

    def _before_step(self, vector) -> bool:
        node = self.graph.nodes.get(getattr(vector, "name", None))
        return node is not None and node.symbol == vector and vector.name in (self.w.x1, *self.w.prev, *self.w.step)

    def _load(self, s) -> sp.Symbol | None:
        """A value from before the step: a stored node or kept function, a parameter, a carried
        adjoint or the batch scale."""
        w, k = self.w, self.k
        loaded = self._node_load(s, (w.x1, *w.prev, *w.step))
        if loaded is not None:
            return loaded
        if s in w.kept.values():
            return k.load(f"S{s.name}", True, True, self._vector(self.printer.info(s)[1]), symbol=s)
        value = self.program.values.get(s)
        if value is not None and self.names.get(s) in self.back.g_carry.values():
            return k.load(self.names[s], False, True, self._vector(value.shape), symbol=s)
        if value is not None and value.role is Role.SCALE:
            return k.load(self.names[s], False, False, False, symbol=s)
        return None

    # ---- what it writes, and what NumPy does after it ----------------------------------------------------
    def _stores(self) -> list:
        """The parameter shares into their per-step buffers: the kernel's where it can compute
        them, else ``(value, where)`` for NumPy."""
        self.share_symbols: dict = {}  # a stored share -> the kernel's symbol for it
        left = []
        for value, (b, rng) in self.back.buffers.items():
            where = b if rng is None else f"{b}[..., {rng}]"
            expr = value if value in self.k.defined else self._resolved(value)
            if expr is None:
                left.append((value, f"{b}[t]" if rng is None else f"{b}[t, ..., {rng}]"))
                continue
            share = value
            if value not in self.k.defined:
                symbol = sp.Dummy("stored")
                self.k.value(symbol, expr)
                value = symbol
            self.k.store(where, True, value)
            self.share_symbols[share] = value
        return left

    def _products_into_carry(self, parts: dict) -> dict:
        """``{share: state}`` for a state whose carried adjoint is one NumPy product ``Wᵀ·δ`` (an
        Elman's ``δ @ W_hh``): printed into the carried buffer, no copy."""
        computed = {s.target: s for s in self.python if not isinstance(s, Accumulate)}
        stacked = {state for _, _, _, state in self.carried_products}
        direct = {}
        for state, shares in parts.items():
            if len(shares) == 1 and state not in stacked and shares[0] in computed:
                s = computed[shares[0]]
                if isinstance(s.expr, TransposeTimes) and self.program.values[s.target].role is Role.SHARE:
                    direct[s.target] = state
        return direct

    def _python_lines(self, stores: list) -> list[str] | None:
        """The statements left to NumPy, after the kernel, then their stores; None where one of them
        reads a carried adjoint (the kernel has written the next step's into its buffer by then)."""
        low = self.low
        low.read, lines = set(self.product_reads), []
        for s in self.python:
            if isinstance(s, Accumulate):
                shares = [x.expr for x in s.shares if x.expr in self.names]
                low.read |= set(shares) | ({s.carried} if s.carried is not None else set())
                terms = [self.names[x] for x in shares]
                if s.carried is not None:
                    state = self.w.new[s.node]
                    terms.insert(0, self.names[s.carried] + (f" + {self.back.seed_of[state]}[t]"
                                                              if self.w.per_step and self.back.carry[state] else ""))
                lines.append(f"        {self.names[s.target]} = {' + '.join(terms)}")
            elif s.target in self.direct:  # the one share carried back: its product straight into the buffer
                vector, matrix = low.code(s.expr.args[1]), self.names[s.expr.args[0]]
                lines.append(f"        numpy.matmul({vector}, {matrix}, out={self.back.g_carry[self.direct[s.target]]})")
            else:
                lines.append(f"        {self.names[s.target]} = {low.code(s.expr)}")
        lines += [f"        {where} = {low.code(value)}" for value, where in stores]
        for _, left, _, _ in self.carried_products:
            if isinstance(left, list):  # shares concatenated by name
                for v in left:
                    if v is not None:
                        low.code(v)
        if any(self.names.get(s) in self.back.g_carry.values() for s in low.read):
            return None
        return lines

    def _carried(self, parts: dict) -> list[str]:
        """Each state's carried adjoint for the step before, in its buffer: the kernel's shares summed
        there, then the products through stacked matrices and NumPy's shares added."""
        lines, into = [], {s: [] for s in self.w.rec.states}
        for state, shares in parts.items():
            mine = [x for x in shares if x in self.k.defined]
            carry = self.back.g_carry[state]
            if mine:
                total = sp.Dummy("carried")
                self.k.value(total, sp.Add(*mine, evaluate=False) if len(mine) > 1 else mine[0])
                self.k.store(carry, False, total)
            into[state] = [bool(mine) or any(x in self.direct for x in shares),
                           [self.names[x] for x in shares if x not in self.k.defined and x not in self.direct]]
            self.low.read |= {x for x in shares if x not in self.k.defined and x not in self.direct}
        for name, left, matrix, state in self.carried_products:
            left_code = left if isinstance(left, str) else (
                "numpy.concatenate([" + ", ".join(self.low.code(v) if v is not None else f"numpy.zeros((_B, {n}), dtype=x.dtype)"
                                                 for v, n in zip(left, _stack_rows(self.w, matrix))) + "], axis=-1)")
            into[state][1].append((left_code, matrix))
        for state, (written, rest) in into.items():
            carry = self.back.g_carry[state]
            for part in rest:
                if isinstance(part, tuple):
                    product = f"{part[0]}, {part[1]}"
                    lines.append(f"        numpy.add({carry}, numpy.matmul({product}), out={carry})" if written
                                 else f"        numpy.matmul({product}, out={carry})")
                else:
                    lines.append(f"        numpy.add({carry}, {part}, out={carry})" if written else f"        {carry}[...] = {part}")
                written = True
            if not written:
                lines.append(f"        {carry}[...] = 0.0")
        return lines


def _stack_rows(w, matrix: str) -> list[int]:
    """The rows of each weight in the stacked matrix named ``matrix``."""
    for stacked_name, rows in w.stacks.values():
        if stacked_name == matrix:
            return [w.graph[m.name].shape[0] for m in rows]
    raise AssertionError(matrix)
