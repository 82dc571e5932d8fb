"""A vector network's derivation as SymPy matrix expressions.

Node values become ``MatrixSymbol``s with the network's shapes (a vector of n components is an
n×1 column, a weight keeps its rows and columns; the batch is not part of the symbolic shape), each
adjoint ``δn`` a ``MatrixSymbol`` named ``delta_n`` of n's shape, and the backward rules of
:mod:`rnnsym.engine.rules` SymPy's matrix operations:

=====================  ======================================================
``diag(f)·x``          ``MatMul(DiagMatrix(F), x)``
``Wᵀ·x``               ``MatMul(Transpose(W), x)``
``x·vᵀ``               ``MatMul(x, Transpose(v))``
``Σ x``                ``MatMul(OneMatrix(1, n), x)``
``(diag(o) − o·oᵀ)·x`` ``MatMul(MatAdd(DiagMatrix(o), -o·oᵀ), x)``
a sum of shares        ``MatAdd`` (built unevaluated: the terms keep their order)
``H·x`` (scores)       ``MatMul(H, x)``
``Hᵀ·x`` (a context)   ``MatMul(Transpose(H), x)``
``x·vᵀ`` (a stack's)   ``MatMul(x, Transpose(v))``
``[δH]_i``             ``Transpose(δH[i, :])`` (a ``MatrixSlice``: row i as a column)
=====================  ======================================================

Attention's stacks (``H_enc``, the additive score's ``U_t``) are nodes of shape (S, n), so their
values and adjoints are S×n ``MatrixSymbol``s like any other node's, one example's matrix.

An elementwise factor such as tanh's derivative ``1 − h₂²`` (a scalar SymPy expression in node
symbols, each standing for every component of its vector) is an :class:`Elementwise`: a ``Lambda``
of scalars applied entry by entry to matrix operands, ``Elementwise(Lambda(e0, 1 - e0**2), h2)``.
SymPy's ``HadamardPower`` and ``ElementwiseApplyFunction`` have no NumPy printing (lambdify refuses
them), and one class holds any factor the engine writes (``o·(1 − tanh(c)²)``, ``(1 − Y)/(1 − y)``)
whole, so rnnsym's printers write it back exactly as the step views do. A constant factor is
``c·OneMatrix``.

For a scalar network the same conversion gives plain SymPy expressions (δn a ``Symbol`` named
``delta_n``), so ``result`` has one type, an expression, whatever the network.
"""
from __future__ import annotations

import sympy as sp
from sympy.core.parameters import distribute
from sympy.matrices.expressions import (DiagMatrix, MatAdd, MatMul, MatrixExpr, MatrixSymbol, OneMatrix, Transpose,
                                        ZeroMatrix)

from .engine.rules import (Adjoint, Coupled, Diag, ExampleOuter, Outer, Part, RowOf, Summed, TransposeTimes, kind_of,
                           share)
from .errors import RnnsymError
from .functions import MatVec, Mix, Scores

ADJOINT_PREFIX = "delta_"  # what rnnsym's printers write as δ (as in the component view)


class Elementwise(MatrixExpr):
    """``f(A, B, …)`` taken entry by entry: ``f`` a ``Lambda`` of scalars, the operands matrix
    expressions of one shape. ``Elementwise(Lambda((e0, e1), e0*(1 - e1)), y, y)`` is ``y ∘ (1 − y)``."""

    def __new__(cls, function, *operands):
        function = sp.sympify(function)
        operands = tuple(sp.sympify(o) for o in operands)
        if not isinstance(function, sp.Lambda) or len(function.variables) != len(operands) or not operands:
            raise RnnsymError("Elementwise needs a Lambda of as many scalars as it has matrix operands (at least one)")
        if len({o.shape for o in operands}) != 1:
            raise RnnsymError(f"Elementwise operands must have one shape, got {', '.join(str(o.shape) for o in operands)}")
        if all(isinstance(o, sp.MatrixBase) for o in operands):  # explicit matrices (subs): the values, at
            return cls._values(function, operands)  # once (DiagMatrix.doit does not doit its vector)
        return sp.Basic.__new__(cls, function, *operands)

    @staticmethod
    def _values(function, operands):
        rows, cols = operands[0].shape
        return sp.ImmutableMatrix(rows, cols, lambda i, j: function(*(o[i, j] for o in operands)))

    @property
    def function(self) -> sp.Lambda:
        return self.args[0]

    @property
    def operands(self) -> tuple:
        return self.args[1:]

    @property
    def shape(self):
        return self.operands[0].shape

    def _entry(self, i, j, **kwargs):
        return self.function(*(o._entry(i, j, **kwargs) for o in self.operands))

    def doit(self, **hints):
        operands = [o.doit(**hints) if hints.get("deep", True) else o for o in self.operands]
        return type(self)(self.function, *operands)  # explicit operands give the values (__new__)

    def _eval_transpose(self):
        return type(self)(self.function, *(Transpose(o) for o in self.operands))

    def scalar(self) -> sp.Expr:
        """The factor in node symbols, as the step views write it (``1 - h2**2``); an operand that
        is not a node's symbol stays the matrix expression it is."""
        with distribute(False):  # 2*(y - Y) stays as written, not 2*y - 2*Y
            return self.function(*(scalar_form(o) for o in self.operands))

    # ---- SymPy's printers (a printer's own _print_Elementwise, as rnnsym's have, is asked first) -----
    def _own(self, printer):
        return getattr(printer, "_print_Elementwise", None)

    def _sympystr(self, printer):
        if self._own(printer):
            return self._own(printer)(self)
        body = printer._print(self.function.expr)
        variables = ", ".join(printer._print(v) for v in self.function.variables)
        return f"Elementwise(({variables}) -> {body}, {', '.join(printer._print(o) for o in self.operands)})"

    def _latex(self, printer):
        if self._own(printer):
            return self._own(printer)(self)
        return r"\left(%s\right)_{\circ}" % printer._print(self.scalar())

    def _array_code(self, printer):
        # (lambda e0, e1: body)(A, B): the array library applies the body's functions entry by entry
        variables = ", ".join(printer._print(v) for v in self.function.variables)
        operands = ", ".join(printer._print(o) for o in self.operands)
        return f"(lambda {variables}: ({printer._print(self.function.expr)}))({operands})"

    _numpycode = _cupycode = _jaxcode = _torchcode = _array_code


class StackRow(Transpose):
    """``[δH]_i``: row i of a stack's adjoint as a column, the share of the state stacked there.

    SymPy's own ``Transpose(δH[i, :])`` (a ``MatrixSlice``), so lambdify, ``subs`` and ``doit``
    treat it as one; only rnnsym's printers (those that print :class:`Elementwise`) write it as the
    recursive view does, ``[δH]₂``, where SymPy writes ``δH[1:2, :]ᵀ``."""

    def doit(self, **hints):
        # SymPy leaves a MatrixSlice of an explicit matrix unevaluated: after subs, take the row
        parent = self.arg.parent.doit(**hints) if hints.get("deep", True) else self.arg.parent
        row = int(self.arg.rowslice[0])
        if isinstance(parent, sp.MatrixBase):
            return sp.ImmutableMatrix(parent[row, :]).T
        return type(self)(parent[row, :])

    def _row(self, printer):
        if getattr(printer, "_print_Elementwise", None) is None:
            return None
        rows = self.arg.rowslice
        return printer._print(self.arg.parent), int(rows[0]) + 1

    def _sympystr(self, printer):
        own = self._row(printer)
        if own is None:
            return printer._print_Transpose(self)
        return f"[{own[0]}]{str(own[1]).translate(str.maketrans('0123456789', '₀₁₂₃₄₅₆₇₈₉'))}"

    def _latex(self, printer):
        own = self._row(printer)
        if own is None:
            return printer._print_Transpose(self)
        return r"\left[%s\right]_{%d}" % own


class JoinedPart(sp.MatrixSlice):
    """``[δc]_(a+1…b)``: components a … b − 1 of a joined vector's adjoint (a bidirectional stack's
    layer input ``[h_fwd; h_bwd]``), the share of the part joined there. SymPy's ``MatrixSlice``,
    evaluated by ``doit`` once an explicit matrix is substituted; rnnsym's printers write it as the
    recursive view does."""

    def doit(self, **hints):
        parent = self.parent.doit(**hints) if hints.get("deep", True) else self.parent
        start, stop = int(self.rowslice[0]), int(self.rowslice[1])
        if isinstance(parent, sp.MatrixBase):
            return sp.ImmutableMatrix(parent[start:stop, :])
        return type(self)(parent, (start, stop), (0, 1))

    def _span(self, printer):
        if getattr(printer, "_print_Elementwise", None) is None:
            return None
        return printer._print(self.parent), int(self.rowslice[0]) + 1, int(self.rowslice[1])

    def _sympystr(self, printer):
        own = self._span(printer)
        return printer._print_MatrixSlice(self) if own is None else "[%s]_(%d…%d)" % own

    def _latex(self, printer):
        own = self._span(printer)
        return printer._print_MatrixSlice(self) if own is None else r"\left[%s\right]_{%d:%d}" % own


def scalar_form(m) -> sp.Expr | None:
    """An elementwise matrix expression back in node symbols: ``h2`` for the MatrixSymbol ``h2``,
    the factor of an :class:`Elementwise`, ``c`` for ``c·OneMatrix``; ``MatVec(W, v)`` for ``W·v``.
    None for anything else (a product of matrices, a transpose)."""
    if isinstance(m, MatrixSymbol):
        return sp.Symbol(m.name)
    if isinstance(m, Elementwise):
        return m.scalar()
    if isinstance(m, MatMul):
        scalars = [a for a in m.args if not isinstance(a, MatrixExpr)]
        matrices = [a for a in m.args if isinstance(a, MatrixExpr)]
        if len(matrices) == 1 and isinstance(matrices[0], OneMatrix):
            return sp.Mul(*scalars)
        if not scalars and len(matrices) == 2 and all(isinstance(a, MatrixSymbol) for a in matrices):
            return MatVec(sp.Symbol(matrices[0].name), sp.Symbol(matrices[1].name))
    return None


# ---- symbols ------------------------------------------------------------------------------------------
def matrix_dims(shape: tuple) -> tuple[int, int]:
    """A node's shape as a matrix's: a vector is a column, a number 1×1."""
    return (1, 1) if not shape else (shape[0], 1) if len(shape) == 1 else tuple(shape)


def node_matrix(graph, name: str):
    """The node's value: a ``MatrixSymbol`` of its shape (a ``Symbol`` in a scalar network)."""
    return MatrixSymbol(name, *matrix_dims(graph[name].shape))


def adjoint_matrix(graph, name: str):
    """``δname``: a ``MatrixSymbol`` named ``delta_<name>``, the node's shape."""
    return MatrixSymbol(ADJOINT_PREFIX + name, *matrix_dims(graph[name].shape))


def elementwise(graph, expr: sp.Expr, shape: tuple):
    """A scalar expression in node symbols (each vector node's symbol standing for each of its
    components) as a matrix expression of ``shape``: the node's MatrixSymbol for a lone symbol,
    ``c·OneMatrix`` for a constant, an :class:`Elementwise` otherwise."""
    dims = matrix_dims(shape)
    expr = sp.sympify(expr)
    products = sorted(expr.atoms(MatVec), key=sp.default_sort_key)
    stand_ins = {p: sp.Dummy(f"e{i}") for i, p in enumerate(products)}
    with distribute(False):  # renaming must not rewrite: 2*(y - Y) stays 2*(y - Y)
        flat = expr.xreplace(stand_ins)
    vectors = sorted((s for s in flat.free_symbols if s.name in graph and graph[s.name].shape != ()),
                     key=sp.default_sort_key)
    operands = {stand_ins[p]: MatMul(node_matrix(graph, p.args[0].name), node_matrix(graph, p.args[1].name))
                for p in products}
    operands.update({s: node_matrix(graph, s.name) for s in vectors})
    if not operands:
        return MatMul(expr, OneMatrix(*dims))
    if flat in operands:  # a lone node (or W·v): its own matrix
        return operands[flat]
    wrong = [str(o) for o in operands.values() if o.shape != dims]
    if wrong:
        raise RnnsymError(f"{', '.join(wrong)} in {expr} do not have the shape {dims} of the factor they are in")
    variables = [sp.Dummy(f"e{i}") for i in range(len(operands))]
    with distribute(False):
        body = flat.xreplace(dict(zip(operands, variables)))
    return Elementwise(sp.Lambda(tuple(variables), body), *operands.values())


# ---- shares: the rule table's operations as matrix operations -------------------------------------------
def _factors(m) -> tuple:
    """``m``'s factors for a flat MatMul (a nested one is a product of products)."""
    return m.args if isinstance(m, MatMul) else (m,)


def _product(*factors):
    flat = [f for m in factors for f in _factors(m)]
    return flat[0] if len(flat) == 1 else MatMul(*flat)


def matrix_sum(terms, dims: tuple[int, int]):
    """The terms' sum in the order given (MatAdd unevaluated: SymPy would sort them)."""
    terms = [t for t in terms if not isinstance(t, ZeroMatrix)]
    return terms[0] if len(terms) == 1 else MatAdd(*terms) if terms else ZeroMatrix(*dims)


def share_matrix(graph, e: sp.Expr, shape: tuple, adjoints):
    """A share (an expression of the rule table's operations, rnnsym.engine.rules) as a matrix
    expression; ``shape``: the elementwise factor's (the child's, or the parent's under a scalar
    child), ``adjoints(name)``: what ``δname`` stands for."""
    def convert(x, shape):
        if isinstance(x, Adjoint):
            return adjoints(x.name)
        if isinstance(x, Diag):
            f, inner = x.args
            carried = convert(inner, shape)
            factor = elementwise(graph, f, shape)
            if carried.shape == (1, 1) and factor.shape != (1, 1):  # a number's δ spread over a vector
                return _product(factor, carried)
            return _product(DiagMatrix(factor), carried)
        if isinstance(x, Coupled):
            o = node_matrix(graph, x.args[0].name)
            return _product(MatAdd(DiagMatrix(o), MatMul(-1, o, Transpose(o))), convert(x.args[1], shape))
        if isinstance(x, Summed):
            carried = convert(x.args[0], shape)
            return _product(OneMatrix(1, carried.shape[0]), carried)
        if isinstance(x, TransposeTimes):
            return _product(Transpose(node_matrix(graph, x.args[0].name)), convert(x.args[1], shape))
        if isinstance(x, Outer):
            return _product(convert(x.args[0], shape), Transpose(node_matrix(graph, x.args[1].name)))
        if isinstance(x, (Scores, Mix, ExampleOuter, RowOf)):
            return attention_matrix(x, lambda a: convert(a, shape))
        if isinstance(x, Part):  # a joined vector's components that are the part's
            return JoinedPart(convert(x.args[0], shape), (int(x.args[1]), int(x.args[2])), (0, 1))
        return elementwise(graph, x, shape)  # the loss's own gradient (δL = 1): the factor itself

    def attention_matrix(x, carried):
        """Attention's shares: the stack ``H`` (or ``U``) and the other operand are a node's value
        (a plain Symbol) or what is carried back (an adjoint, diag(f)·δ, a softmax's coupling)."""
        operand = lambda a: node_matrix(graph, a.name) if type(a) is sp.Symbol else carried(a)  # noqa: E731
        if isinstance(x, Scores):  # H·x: δ of the weights a in c = Hᵀ·a
            return _product(operand(x.args[0]), operand(x.args[1]))
        if isinstance(x, Mix):  # Hᵀ·x: δ of the query q in e = H·q
            return _product(Transpose(operand(x.args[0])), operand(x.args[1]))
        if isinstance(x, ExampleOuter):  # x·vᵀ: a stack's share, δe·qᵀ or α·δcᵀ
            return _product(operand(x.args[0]), Transpose(operand(x.args[1])))
        stack, i = carried(x.args[0]), int(x.args[1])  # [δH]_i: row i (from 0) as a column
        return StackRow(stack[i, :])

    return convert(e, shape)


def _factor_shape(graph, child: str, parent: str) -> tuple:
    return graph[child].shape if graph[child].shape != () else graph[parent].shape


def applied_matrix(graph, applied, parent: str, adjoints):
    """One share of the recursive view (rnnsym.records.Applied) into ``parent``'s adjoint or gradient."""
    child = applied.delta if applied.delta is not None else graph.loss.name
    return share_matrix(graph, applied.share, _factor_shape(graph, child, parent), adjoints)


def jacobian_matrix(network, child: str, parent: str, carried):
    """``∂child/∂parent`` applied backward to ``carried`` (what reaches the child; None for the loss
    itself, whose δ is 1): the sum of its terms' shares."""
    graph = network.graph
    placeholder = Adjoint(child)
    terms = []
    for term in network.jacobian(child, parent).terms:
        kind = kind_of(term, graph[parent].shape, graph[child].shape)
        e = share(term, kind, sp.S.One if carried is None else placeholder)
        if e != 0:
            terms.append(share_matrix(graph, e, _factor_shape(graph, child, parent), lambda name: carried))
    return matrix_sum(terms, matrix_dims(graph[parent].shape))


def path_matrix(network, path: tuple[str, ...]):
    """One path's term, ``d(path[0])/d(path[-1])`` along it, as a matrix expression: the gradient
    carried back factor by factor (``diag(f₃)·W_hyᵀ·diag(f₂)·f₁·h₁ᵀ``), the target's shape."""
    carried = None
    for child, parent in zip(path, path[1:]):
        carried = jacobian_matrix(network, child, parent, carried)
        if isinstance(carried, ZeroMatrix):
            return ZeroMatrix(*matrix_dims(network.graph[path[-1]].shape))
    return carried


# ---- scalar networks: the same shares as plain expressions ---------------------------------------------
def share_scalar(e: sp.Expr, adjoints):
    """A scalar network's share as an expression: ``diag(f)·δ`` is ``f·δ``, and so on."""
    if isinstance(e, Adjoint):
        return adjoints(e.name)
    if isinstance(e, Diag):
        return e.args[0] * share_scalar(e.args[1], adjoints)
    if isinstance(e, (Summed,)):
        return share_scalar(e.args[0], adjoints)
    if isinstance(e, TransposeTimes):
        return e.args[0] * share_scalar(e.args[1], adjoints)
    if isinstance(e, Outer):
        return share_scalar(e.args[0], adjoints) * e.args[1]
    if isinstance(e, Coupled):
        raise RnnsymError("a softmax coupling has no scalar form")
    return e


def adjoint_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(ADJOINT_PREFIX + name)


def jacobian_product(network, path: tuple[str, ...]):
    """One path's term of the Jacobian ``d(path[0])/d(path[-1])`` between two vector nodes (or a
    vector and a number): its local Jacobians multiplied in chain order, ``diag(f₁)·W·diag(f₂)``,
    each the sum of its terms (``diag(f)``, ``diag(f)·W``, a softmax's coupling first; a number
    feeding a vector is the column ``diag(f)·1``)."""
    graph = network.graph
    factors = []
    for child, parent in zip(path, path[1:]):
        child_dims, parent_dims = matrix_dims(graph[child].shape), matrix_dims(graph[parent].shape)
        terms = []
        for term in network.jacobian(child, parent).terms:
            if term.outer is not None or term.attention in ("keys", "values", "row"):
                matrix = parent if term.outer is not None or term.attention != "row" else child
                raise RnnsymError(f"d{child}/d{parent} through the matrix {matrix!r} has three indices; "
                                  "it has no matrix form")
            f = elementwise(graph, term.factor, graph[child].shape or graph[parent].shape)
            # a number's Jacobian with respect to a vector is the row fᵀ
            local = [DiagMatrix(f)] if graph[child].shape != () else [Transpose(f)]
            if term.matrix is not None:
                local.append(node_matrix(graph, term.matrix.name))
            elif term.attention == "query":  # e = H·q: ∂e/∂q = H
                local.append(node_matrix(graph, term.operand.name))
            elif term.attention == "weights":  # c = Hᵀ·a: ∂c/∂a = Hᵀ
                local.append(Transpose(node_matrix(graph, term.operand.name)))
            elif parent_dims == (1, 1) and child_dims[0] != 1:
                local.append(OneMatrix(child_dims[0], 1))
            if term.factor == 1 and graph[child].shape != () and len(local) > 1:
                local.pop(0)  # diag(1) before H, Hᵀ or W: the identity, left out as the step views leave it
            if term.softmax is not None:
                o = node_matrix(graph, term.softmax.name)
                local.insert(0, MatAdd(DiagMatrix(o), MatMul(-1, o, Transpose(o))))
                if term.factor == 1 and len(local) == 2:  # the coupling alone: diag(1) after it is the identity
                    local.pop()
            terms.append(_product(*local))
        factors.append(matrix_sum(terms, (child_dims[0], parent_dims[0])))
    if any(isinstance(f, ZeroMatrix) for f in factors):
        return ZeroMatrix(matrix_dims(graph[path[0]].shape)[0], matrix_dims(graph[path[-1]].shape)[0])
    return _product(*factors)
