"""Derivations: ``dL/d(node)`` worked out path by path, kept as records for the printers.

One computation gives both the steps and the result: the path terms recorded in the steps are the
very expressions summed into :attr:`Derivation.expr`.
"""
from __future__ import annotations

import copy
from functools import cached_property

import numpy as np
import sympy as sp

from .engine.paths import (DEFAULT_FACTOR_LIMIT, DEFAULT_PATH_LIMIT, PathLimitError, PathTerm, descendants,
                           enumerate_paths, path_term, path_totals, truncation_cuts)
from .display import Displayable, render
from .engine.rules import RULES, TermKind
from .engine.truncation import dropped_by_source, path_is_cut, windows
from .errors import RnnsymError
from .matrix_expr import (adjoint_matrix, adjoint_symbol, applied_matrix, jacobian_product, matrix_dims, matrix_sum,
                          path_matrix, share_scalar)
from .program.build import view_shares
from .progress import progress
from .records import (Applied, Chain, ComponentOf, Delta, Elided, Equation, JacobianItem, Partial, Product, Step,
                      Sum, Total, Update)

# The "expanded in inputs and parameters" step is shown for small graphs only: the expansion of a
# shared weight's gradient grows like T**3 and stops being readable long before that hurts.
EXPANDED_STEP_MAX_NODES = 40


class Derivation(Displayable):
    """``dL/d(target)`` for one parameter, node or input of a network, step by step.

    >>> d = rnnsym.seed_rnn(steps=4).derive("w3")
    >>> d.paths
    [('L', 'o5', 'o4', 'w3')]
    >>> print(d.text())  # doctest: +SKIP
    """

    def __init__(self, network, target: str, path_terms: list[PathTerm] | None, steps: tuple[Step, ...],
                 recursive: tuple[Equation, ...] = (), path_count: int | None = None, path_limit: int = 0,
                 cuts=frozenset()):
        self.network = network
        self.target = target
        self.path_terms = path_terms  # None when there are more paths than the limit
        self.steps = steps  # a recursive view longer than a screenful shows its ends (see full())
        self._shown = recursive  # the recursive view as the steps show it, possibly elided
        self.path_count = len(path_terms) if path_count is None else path_count
        self._path_limit = path_limit
        self._cuts = cuts  # truncation's cut edges, to work out the full recursive view on demand
        self._full = None
        self.jacobian = False  # d(of)/d(wrt) of a vector node (rnnsym.queries): terms are Jacobians
        self.windows = None  # truncation's window length where each loss term has its own recursion

    # ---- the contract's members -----------------------------------------------------------------
    def _path_view(self) -> list[PathTerm]:
        if self.path_terms is None:
            raise PathLimitError(
                f"{_paths(self.path_count)} lead to {self.target!r}, more than the limit of "
                f"{self._path_limit} paths or {DEFAULT_FACTOR_LIMIT} factors; use the recursive view "
                "(Derivation.recursive) or truncate the sequence")
        return self.path_terms

    @property
    def paths(self) -> list[tuple[str, ...]]:
        """Node names along each chain-rule path, loss first and the target last."""
        return [t.path for t in self._path_view()]

    @property
    def terms(self) -> list:
        """One term per path: the product of its local factors, in node symbols. A SymPy expression
        for scalar networks; for vector networks a SymPy matrix expression of the target's shape, the
        loss's gradient carried back along the path (``diag(1 − h₂²)·W_hyᵀ·diag(y·(1 − y))·f·h₁ᵀ``;
        the step views keep the path's Jacobians as records, see :mod:`rnnsym.matrix_expr`)."""
        path_terms = self._path_view()
        if self.scalar:
            return [t.value for t in path_terms]
        if "_matrix_terms" not in self.__dict__:  # made once: a path's product is rebuilt from its Jacobians
            term = jacobian_product if self.jacobian else path_matrix
            self._matrix_terms = [term(self.network, t.path) for t in path_terms]
        return list(self._matrix_terms)

    @property
    def scalar(self) -> bool:
        return self.network.is_scalar

    @property
    def elided(self) -> bool:
        """Whether the steps leave out the middle of a long recursive view (``full()`` has it all)."""
        return any(isinstance(eq.lhs, Elided) or isinstance(eq.rhs[0], Sum)
                   and any(isinstance(t, Elided) for t in eq.rhs[0].terms) for eq in self._shown)

    @cached_property
    def recursive(self) -> tuple[Equation, ...]:
        """Every adjoint equation ``δn = Σ ...`` from the loss down, then ``dL/d(target)``. Worked out
        when first asked for: at T = 100000 these are 100000 equations, of which the steps show the ends."""
        return self.full()._shown

    def full(self) -> "Derivation":
        """This derivation with nothing elided: the recursive view with every equation and every term
        (what ``text(full=True)`` and ``rnnsym derive --full`` print). Itself when nothing was left out."""
        if not self.elided:
            return self
        if self._full is None:
            steps, equations, _ = _recursive_steps(self.network, self.target, self._cuts, full=True)
            replacement = {s.kind: s for s in steps}
            twin = copy.copy(self)
            twin.__dict__.pop("recursive", None)
            twin.steps = tuple(replacement.get(s.kind, s) for s in self.steps)
            twin._shown, twin._full = equations, None
            self._full = twin
        return self._full

    @cached_property
    def expr(self):
        """The total derivative in node symbols: the sum of the path terms (a SymPy expression; for a
        vector network a SymPy matrix expression of the target's shape, its terms in path order)."""
        terms = self.terms
        return sp.Add(*terms) if self.scalar else matrix_sum(terms, self._dims)

    @property
    def _dims(self) -> tuple[int, int]:
        graph = self.network.graph
        rows = graph[self.network.loss_name].shape if self.jacobian else ()
        column = matrix_dims(graph[self.target].shape)
        return (matrix_dims(rows)[0], column[0]) if self.jacobian else column

    @cached_property
    def expanded(self) -> sp.Expr:
        """The total derivative in inputs, target and parameters only (scalar networks)."""
        if not self.scalar:
            raise RnnsymError("the expansion in inputs and parameters is given for scalar networks only; "
                              "vector networks use the recursive view")
        return self.expr.xreplace(self.network.expansions)

    @property
    def shown_result(self):
        """The result as the printers show it: each path's term with its factors in chain order
        (records: SymPy would re-sort them), or the recursive view's last equation, whose long sums
        leave their middle out; :attr:`result` is its SymPy value."""
        if self.path_terms is None or not self.scalar:
            return self._shown[-1].rhs[-1] if self._shown else sp.S.Zero
        shown = tuple(in_chain_order(t.value, t.factors) for t in self.path_terms if t.value != 0)
        return shown[0] if len(shown) == 1 else Sum(shown) if shown else sp.S.Zero

    @cached_property
    def result(self):
        """The gradient as a SymPy expression (a matrix expression for vector networks). Within the
        path view's limit of a scalar network, :attr:`expr`; otherwise the recursive view's last
        equation, in node symbols and adjoints ``δn`` (``delta_n``, defined by :attr:`adjoints`):
        ``dL/dW_hh = diag(1 − h₁²)·δh₁·h₀ᵀ + diag(1 − h₂²)·δh₂·h₁ᵀ``. With a window per loss term
        each window's δ are its own, so there it is the windows' shares with every δ written out."""
        if self.jacobian or (self.scalar and self.path_terms is not None):
            return self.expr
        if self.windows is not None:
            return self._windowed_result()
        (last,) = self.full()._shown[-1:]
        return self._value(last.rhs[-1], self.target, self._adjoint)

    @cached_property
    def adjoints(self) -> dict:
        """Each adjoint of the recursive view, from the loss down, as the SymPy expression that defines
        it: ``{δh₂: W_hyᵀ·diag(y·(1 − y))·δy, …}`` (MatrixSymbols ``delta_h2`` of the node's shape for
        vector networks, Symbols for scalar ones); each is in node symbols and the δ of later nodes,
        so evaluating them in order gives every δ that :attr:`result` reads."""
        if self.jacobian or self.windows is not None:
            raise RnnsymError("adjoints are given for the loss's single recursive view; a Jacobian between two "
                              "vector nodes has none, and with a window per loss term each window has its own")
        return {self._adjoint(eq.lhs.node): self._value(eq.rhs[0], eq.lhs.node, self._adjoint)
                for eq in self.full()._shown[:-1]}

    def _adjoint(self, name: str):
        return adjoint_symbol(name) if self.scalar else adjoint_matrix(self.network.graph, name)

    def _value(self, item, parent: str, adjoints):
        """A right-hand side of the recursive view (shares into ``parent``) as a SymPy expression."""
        items = item.terms if isinstance(item, Sum) else (item,)
        if any(not isinstance(a, Applied) for a in items):  # 0 (no share) or 1 (dL/dL)
            return item if self.scalar else matrix_sum([] if item == 0 else [item], matrix_dims(
                self.network.graph[parent].shape))
        if self.scalar:
            return sp.Add(*(share_scalar(a.share, adjoints) for a in items))
        graph = self.network.graph
        return matrix_sum([applied_matrix(graph, a, parent, adjoints) for a in items], matrix_dims(graph[parent].shape))

    def _windowed_result(self):
        """The windows' shares summed, each window's δ substituted by its definition (k steps: short)."""
        shares = []
        for deltas, last in _window_views(self.network, self.target, self.windows):
            closed: dict = {}
            for eq in deltas:
                closed[eq.lhs.node] = self._value(eq.rhs[0], eq.lhs.node, closed.__getitem__)
            shares.append(self._value(last.rhs[-1], self.target, closed.__getitem__))
        if self.scalar:
            return sp.Add(*shares)
        return matrix_sum(shares, matrix_dims(self.network.graph[self.target].shape))

    @property
    def kind(self) -> str:
        return self.network.graph[self.target].kind

    def __repr__(self) -> str:
        return f"<Derivation dL/d{self.target}: {self.path_count} path(s)>"

    def evaluate(self, params, x, y) -> list[float]:
        """Each path term's value, averaged over the batch as the loss is.

        For a shared weight the values show each path's share; only their sum is the gradient.
        """
        from .numeric.emit import expression_function

        if not self.scalar:
            raise RnnsymError("per-path values are given for scalar networks; a vector network's path "
                              "terms are Jacobian products (use the recursive view)")
        compiled = self.network.compile(form="unrolled")  # node values from the program's own trace
        if not hasattr(self, "_term_function"):
            self._term_function = expression_function(compiled.program, self.network.graph, self.terms)
        values = compiled.trace(params, x, y)
        batch = np.shape(x)[0]
        return [float(np.sum(np.broadcast_to(v, (batch,))) / batch) for v in self._term_function(values)]

    def with_numbers(self, params=None, x=None, y=None, *, eta: float = 0.1, seed: int = 0):
        """A worked example at one point (rnnsym.worked): the forward pass, every local factor, every
        path term, their sum, a finite-difference check and one update ``θ ← θ − η·dL/dθ``, with
        numbers; printed like a derivation. What is not given is drawn at random with ``seed``.

        >>> rnnsym.seed_rnn(steps=4).derive("w3").with_numbers(seed=0).gradient  # doctest: +SKIP
        """
        from .worked import worked_example

        return worked_example(self, params, x, y, eta=eta, seed=seed)

    def lambdify(self):
        """:attr:`expr` as a NumPy function of named arguments: the parameters, inputs and target it
        depends on (``f.arguments`` lists them), each a number or an array over the batch; it returns
        one value per example. Every node the expression reads is computed once from its own
        expression, so this stays linear where :attr:`expanded` grows with nesting (scalar networks).

        >>> d = rnnsym.seed_rnn(steps=2).derive("w1")
        >>> f = d.lambdify()
        >>> f.arguments
        ('x1', 'x2', 'w', 'w1', 'w2', 'b1', 'b2', 'b3', 'Y')
        """
        from .queries import expression_function

        if not self.scalar:
            raise RnnsymError("lambdify() is given for scalar networks; a vector network's derivation is a "
                              "product of Jacobian records (compile() evaluates its gradient)")
        if "_lambdified" not in self.__dict__:  # one NumPy function per derivation, made when first asked for
            self._lambdified = expression_function(self.network, self.expr)
        return self._lambdified

    # ---- renderings (printers, through rnnsym.display): a recursive view longer than a screenful ----
    # shows its ends unless full=True
    def text(self, full: bool = False) -> str:
        return render(self.full() if full else self, "text")

    __str__ = text

    def latex(self, full: bool = False) -> str:
        return render(self.full() if full else self, "latex")

    def mathml(self, full: bool = False) -> str:
        return render(self.full() if full else self, "mathml")

    def markdown(self, full: bool = False) -> str:
        return render(self.full() if full else self, "markdown")

    def to_dict(self, full: bool = False) -> dict:
        return render(self.full() if full else self, "data")

def _path_label(graph, path: tuple[str, ...]) -> str:
    if len(path) < 2:
        return ""
    via = graph[path[-2]]
    if via.kind == "hidden" and via.step is not None:
        return f"through {'layer' if graph.loss.name == 'L' and 'o0' in graph else 'step'} {via.step} ({via.name})"
    if via.kind == "output":
        return f"through the output layer ({via.name})"
    return f"through {via.name}"


def in_chain_order(expr: sp.Expr, factors) -> sp.Expr | Product:
    """A simplified path term with its factors in chain order, as the article writes them:
    ``(o5 - Y)·w4·(1 - o4²)·o3`` rather than SymPy's ``o3·w4·(1 - o4²)·(o5 - Y)``.

    Only plain products are reordered; a quotient or a negative coefficient stays as SymPy has it.
    """
    if not expr.is_Mul or any(a.is_Pow and a.exp.is_negative or a.is_Number and a.is_negative for a in expr.args):
        return expr

    introduced: dict[sp.Symbol, int] = {}  # symbol -> index of the first factor that has it
    for index, factor in enumerate(factors):
        for symbol in factor.free_symbols:
            introduced.setdefault(symbol, index)

    def first_factor(arg):
        return min((introduced.get(s, len(factors)) for s in arg.free_symbols), default=len(factors))

    return Product(tuple(sorted(expr.args, key=lambda a: (not a.is_Number, first_factor(a)))), grouped=False)


# A view longer than a screenful shows its first and last equations and says how many it leaves
# out (Derivation.full() has them all); a sum of more terms than that shows its ends the same way.
SCREENFUL = 24
SHOWN_FIRST, SHOWN_LAST = 4, 3
SUM_SHOWN_FIRST, SUM_SHOWN_LAST = 3, 2


def recursive_view(network, target: str, cuts=frozenset(), full: bool = True
                   ) -> tuple[tuple[Equation, ...], list[tuple[str, str]]]:
    """The adjoint equations from the loss down to ``target``: ``δn = Σ_children J(c, n)ᵀ δc``.

    Linear in the number of nodes whatever the number of paths. Returns the equations (each δ,
    then ``dL/d(target)``) and the edges that truncation dropped. With ``full=False`` a view
    longer than :data:`SCREENFUL` equations (or a sum of more terms) keeps its ends and puts an
    :class:`Elided` record in the middle; only the equations shown are worked out, so a view of
    T = 100000 steps costs as much as one of 10.
    """
    graph = network.graph
    loss = graph.loss.name
    relevant = descendants(graph, target)
    scalar = network.is_scalar


    # Nodes that still reach the loss once truncation has cut its edges; the others get no adjoint.
    alive = {loss}
    for name in reversed(list(graph.nodes)):
        if any(c in alive and (c, name) not in cuts for c in graph.children(name)):
            alive.add(name)

    def sources(n: str) -> list[str]:
        """The children whose adjoints flow into n's."""
        return [c for c in graph.children(n) if c in relevant and c in alive and (c, n) not in cuts]

    def shares(n: str, children) -> list:  # the program's shares (rnnsym.program), printed as records
        return [Applied(s.term, None if s.child == loss else s.child, s.kind, scalar=scalar)
                for s in view_shares(network, n, children)]

    def rhs(n: str):
        children = sources(n)
        if not full and len(children) > SCREENFUL:
            middle = children[SUM_SHOWN_FIRST:-SUM_SHOWN_LAST]
            items = (shares(n, children[:SUM_SHOWN_FIRST])
                     + [Elided(len(middle), Delta(middle[0]), Delta(middle[-1]), unit="terms")]
                     + shares(n, children[-SUM_SHOWN_LAST:]))
        else:
            items = shares(n, children)
        return items[0] if len(items) == 1 else Sum(tuple(items)) if items else sp.S.Zero

    order = [name for name in reversed(list(graph.nodes))
             if name in relevant and name in alive and name not in (target, loss) and graph[name].expr is not None]
    if not full and len(order) > SCREENFUL:
        middle = order[SHOWN_FIRST:-SHOWN_LAST]
        gap = Equation(Elided(len(middle), Delta(middle[0]), Delta(middle[-1])), ())
        order = [*order[:SHOWN_FIRST], gap, *order[-SHOWN_LAST:]]
    equations = [name if isinstance(name, Equation) else Equation(Delta(name), (rhs(name),))
                 for name in progress(order, "recursive view", "equation")]
    dropped = sorted((c, p) for c, p in cuts if c in relevant and c in alive)
    # The loss's own adjoint is 1 by definition (δL = ∂L/∂L): it has no children to sum over.
    equations.append(Equation(Total(loss, target), (sp.S.One if target == loss else rhs(target),)))
    return tuple(equations), dropped


_I, _J = sp.symbols("i j", integer=True)


def component_view(network, equations) -> tuple[Equation, ...]:
    """The vector recursive view written component by component:
    ``δh₂[j] = Σ_i W_hh[i, j]·(1 − h₃[i]²)·δh₃[i]``; ``dL/dW_hh[i, j] = Σ_t (1 − h_t[i]²)·δh_t[i]·h_(t−1)[j]``.
    Softmax couplings and attention's shares have no short component form and are left out of this view."""
    graph = network.graph

    def indexed(expr, index):
        vectors = {s: sp.IndexedBase(s.name)[index] for s in expr.free_symbols
                   if s.name in graph and graph[s.name].shape != ()}
        return expr.xreplace(vectors)

    def delta(node, index):
        return sp.IndexedBase(sp.Symbol(f"delta_{node}"))[index] if node is not None else sp.S.One

    def size(a):
        return lambda matrix: graph[matrix.name].shape[0] if matrix is not None else (
            graph[a.delta].shape[0] if a.delta else 1)

    out = []
    for eq in equations:
        if isinstance(eq.lhs, Elided):  # the gap of an elided view stays where it is
            out.append(eq)
            continue
        items = eq.rhs[0].terms if isinstance(eq.rhs[0], Sum) else (eq.rhs[0],)
        applied = [a for a in items if not isinstance(a, Elided)]
        if any(not isinstance(a, Applied) or a.term.softmax is not None or RULES[a.kind].component is None
               for a in applied):
            continue
        outer = any(a.kind is TermKind.WEIGHT for a in applied)
        own = _I if outer else _J  # a weight's gradient is indexed [i, j], a vector's [j]
        terms = []
        for a in items:
            if isinstance(a, Elided):
                terms.append(a)
                continue
            x_at = lambda i, a=a: indexed(a.term.factor, i) * delta(a.delta, i)  # noqa: E731
            terms.append(RULES[a.kind].component(a.term, x_at, size(a), own))
        shape = graph[eq.lhs.node].shape if isinstance(eq.lhs, Delta) else graph[eq.lhs.wrt].shape
        index = {0: None, 1: "j", 2: "i, j"}[len(shape)] if not outer else "i, j"
        lhs = ComponentOf(eq.lhs, index) if index else eq.lhs
        out.append(Equation(lhs, (Sum(tuple(terms)) if len(terms) > 1 else terms[0],)))
    return tuple(out)


def _recursive_steps(network, target: str, cuts, full: bool):
    """The recursive view's step (and, for vectors, its component form), its equations and the
    edges truncation dropped; elided past a screenful unless ``full``."""
    recursive, dropped = recursive_view(network, target, cuts, full=full)
    recursive_step = Step(
        "recursive", "Recursive view (what the compiled code runs)", recursive,
        note="δn = ∂L/∂n is the gradient at node n with everything downstream already summed; each "
             "adjoint is built from its children's, so the work is linear in the sequence length"
             + (" (column vectors: Wᵀ carries an adjoint back through W·v, and a weight collects "
                "δ·vᵀ)." if not network.is_scalar else "."),
    )
    if not network.is_scalar:
        components = component_view(network, recursive)
        recursive_step = (recursive_step, Step(
            "components", "The same, component by component", components,
            note="j indexes the components of the node on the left, whose gradient is computed; i those "
                 "of the later node it feeds, whose δ is carried back, and Σ_i sums over them (the rows "
                 "of W). In dL/dW[i, j], i is W's row (a component of the node W feeds) and j its column "
                 "(a component of the vector W multiplies).",
        ))
    else:
        recursive_step = (recursive_step,)
    return recursive_step, recursive, dropped


def _windowed_recursive_steps(network, target: str, truncate: int):
    """With a window per loss term, δ depends on the loss term it comes from: one recursion per
    window (L_s alone, cut at its edge), then the gradient as the sum of the windows' shares. Past
    three windows, those between the second and the last are left out of print."""
    graph, loss = network.graph, network.graph.loss.name
    reached = descendants(graph, target)
    windows_ = [w for w in windows(network, truncate) if w.source in reached]

    def view(w):
        deltas, share = _window_view(network, target, w)
        return deltas, share.rhs[-1]

    def share_of(w):  # (∂L/∂L_s)(dL_s/dθ): L_s's share, dL_s/dθ taken inside its window
        return Product((Partial(loss, w.source), Total(w.source, target)))

    shown = windows_ if len(windows_) <= 3 else [windows_[0], windows_[1], windows_[-1]]
    steps, equations = [], []
    for w in shown:
        deltas, share = view(w)
        labelled = Equation(share_of(w), (share,))
        equations += [*deltas, labelled]
        steps.append(Step(
            "recursive", f"Recursive view of {w.source}'s window (steps {max(w.step - truncate + 1, 1)} … {w.step})",
            (*deltas, labelled),
            note=f"Here δn is the gradient of {w.source}'s part of the loss alone at node n; it is carried back "
                 f"{truncate} step(s) and no further."))
    total = [share_of(w) for w in windows_]
    if len(total) > 4:  # a few shares are listed; past that, the first two and the last
        total = [*total[:2], Elided(len(total) - 3, total[2], total[-2], unit="terms"), total[-1]]
    result = Equation(Total(loss, target), (Sum(tuple(total)) if len(total) > 1 else total[0],))
    equations.append(result)
    left_out = len(windows_) - len(shown)
    steps.append(Step(
        "recursive", "The gradient: the sum of the windows' shares", (result,),
        note=f"dL/d{target} adds the shares of all {len(windows_)} windows"
             + (f" ({left_out} window{'s' if left_out != 1 else ''} between the second and the last are the same "
                "recursion shifted in time, left out of print)" if left_out else "")
             + "; the compiled code runs it window by window."))
    return tuple(steps), tuple(equations)


def _window_view(network, target: str, w):
    """One window's recursion (L_s alone, cut at the window's edge): its δ equations and its share."""
    graph, loss = network.graph, network.graph.loss.name
    others = frozenset((loss, t.name) for t in graph.of_kind("loss_term") if t.name != w.source)
    *deltas, share = recursive_view(network, target, w.cuts | others, full=True)[0]  # k steps: short
    return deltas, share


def _window_views(network, target: str, truncate: int):
    reached = descendants(network.graph, target)
    return [_window_view(network, target, w) for w in windows(network, truncate) if w.source in reached]


def derive(network, target: str, path_limit: int = DEFAULT_PATH_LIMIT) -> Derivation:
    """Build the :class:`Derivation` of ``dL/d(target)``; see :meth:`Network.derive`."""
    graph = network.graph
    loss = graph.loss.name
    total = Total(loss, target)
    truncate = network.options.get("truncate")
    cuts = truncation_cuts(network, truncate)
    per_loss = dropped_by_source(network, truncate) if len(graph.of_kind("loss_term")) > 1 else {}
    if per_loss:  # a window per loss term: no single recursion, one per window
        recursive_step, recursive = _windowed_recursive_steps(network, target, truncate)
        dropped = []
    else:
        recursive_step, recursive, dropped = _recursive_steps(network, target, cuts, full=False)
    update = ()
    if graph[target].kind == "param":
        update = (Step(
            "update", "Gradient-descent update",
            (Equation(graph[target].symbol, (Update(target, loss),), relation="←"),),
            note="η is the learning rate; this is the article's rule W_t = W_(t−1) − η·dL/dW_(t−1).",
        ),)
    truncation = ()
    if per_loss:
        truncation = (Step(
            "truncation", f"Truncated after {truncate} step(s) from each loss term",
            tuple(Equation(Partial(c, p), (sp.S.Zero,), label=f"dropped for {source}")
                  for source, edges in per_loss.items() for c, p in edges if c in descendants(graph, target)),
            note=f"Truncated BPTT with a loss at every step: each loss term L_s carries its gradient back "
                 f"{truncate} step(s), to step s − {truncate} + 1; for L_s these local factors are 0 (the "
                 "state before its window is a constant for it), and every path from L_s through them is "
                 "dropped. A later loss term may still pass through the same factor.",
        ),)
    elif cuts:
        truncation = (Step(
            "truncation", f"Truncated after {truncate} step(s)",
            tuple(Equation(Partial(c, p), (sp.S.Zero,), label="dropped") for c, p in dropped),
            note=f"Truncated BPTT: the backward recursion stops after {truncate} step(s), so these local "
                 "factors are treated as 0 and every path through them is dropped from the gradient.",
        ),)

    n_paths, n_factors = path_totals(graph, target)
    if n_paths > path_limit or n_factors > DEFAULT_FACTOR_LIMIT:
        # Too many paths (a shared weight, an LSTM), or few but too long (one path through T layers).
        title = (f"{n_paths} chain-rule paths: too many to list" if n_paths > path_limit else
                 f"{_paths(n_paths)} of {n_factors} factors in all: too long to list")
        steps = (Step("path_count", title,
                      note=f"{n_paths} path{'' if n_paths == 1 else 's'} with {n_factors} factors in all "
                           f"{'leads' if n_paths == 1 else 'lead'} from the loss to {target}, "
                           f"more than the limit of {path_limit} paths or {DEFAULT_FACTOR_LIMIT} factors; the "
                           "recursive view below gives the same gradient with one equation per node."),
                 *truncation, *recursive_step, *update)
        derivation = Derivation(network, target, None, steps, recursive, path_count=n_paths, path_limit=path_limit,
                                cuts=cuts)
        derivation.windows = truncate if per_loss else None
        return derivation

    cut_by = windows(network, truncate)
    paths = [p for p in enumerate_paths(graph, target, limit=path_limit) if not path_is_cut(p, cut_by)]
    if network.is_scalar:
        prefixes: dict = {}
        terms = [path_term(graph, p, local=network._local, prefixes=prefixes) for p in paths]
    else:
        terms = [_vector_path_term(network, p) for p in paths]
    steps = _path_view_steps(network, target, paths, terms)
    derivation = Derivation(network, target, terms, (), recursive, path_limit=path_limit, cuts=cuts)
    derivation.windows = truncate if per_loss else None
    if network.is_scalar and paths and len(graph.nodes) <= EXPANDED_STEP_MAX_NODES:
        steps.append(Step("expanded", "In inputs, target and parameters only",
                          (Equation(total, (derivation.expanded,)),)))
    derivation.steps = (*steps, *truncation, *recursive_step, *update)
    return derivation




def _paths(n: int) -> str:
    return f"{n} chain-rule path" + ("" if n == 1 else "s")


def _vector_path_term(network, path) -> PathTerm:
    graph = network.graph
    jacobians = tuple(JacobianItem(network.jacobian(a, b).terms, gradient=graph[a].kind in ("loss", "loss_term"))
                      for a, b in zip(path, path[1:]))
    product = Product(jacobians)
    return PathTerm(path, jacobians, product, product)


def _path_view_steps(network, target, paths, terms) -> list[Step]:
    graph = network.graph
    loss = graph.loss.name
    total = Total(loss, target)
    scalar = network.is_scalar
    chains = [Chain(tuple(Partial(a, b) for a, b in zip(p, p[1:]))) for p in paths]
    steps: list[Step] = []
    if not paths:
        steps.append(Step("chain_rule", "No path", (Equation(total, (sp.S.Zero,)),),
                          note=f"The loss does not depend on {target}."))
        return steps

    # 1. The chain rule in abstract form.
    if len(paths) == 1:
        steps.append(Step("chain_rule", "Chain rule along the only path",
                          (Equation(total, (chains[0],), label=" → ".join(paths[0])),)))
    else:
        steps.append(Step(
            "chain_rule", f"Chain rule: {len(paths)} paths, one term each",
            (Equation(total, (Sum(tuple(chains)),)),)
            + tuple(Equation(c, (), label=_path_label(graph, p)) for c, p in zip(chains, paths)),
            note=f"{target} reaches the loss along {len(paths)} paths; the gradient is the sum of "
                 "all their terms, not any single one.",
            facts={"paths": len(paths)},
        ))

    # 2. What each node on the paths computes (nothing when the target is the loss itself).
    visited = {n for p in paths for n in p[:-1]}
    on_paths = [n for n in graph.nodes if n in visited]
    if on_paths:
        steps.append(Step("definitions", "The nodes on the path" + ("s" if len(paths) > 1 else ""), tuple(
            Equation(graph[n].symbol, (graph[n].expr,), label=graph[n].role) for n in reversed(on_paths)
        )))

    # 3. Each local factor, once, in path order.
    seen: dict = {}
    for term in terms:
        for (a, b), factor in zip(zip(term.path, term.path[1:]), term.factors):
            seen.setdefault(Partial(a, b), factor)
    note = ("Each factor is a local partial derivative (∂): the node's other inputs are held fixed, "
            "even those that themselves depend on the target; their dependence is another path.")
    if not scalar:
        note += (" For vectors each factor is a Jacobian: diag(f) is elementwise, W comes from a "
                 "product W·v, and [·]·vᵀ is how a weight matrix receives the gradient g: as g·vᵀ.")
    if any(t.attention for v in seen.values() for t in getattr(v, "terms", ())):
        note += (" Attention: the stack H = [h_1; …; h_S] of encoder states receives g·qᵀ from its scores "
                 "e = H·q and α·gᵀ from its weighted sum Hᵀ·α, and [·]ᵢ gives the state stacked as row i "
                 "its row of that gradient.")
    if seen:
        steps.append(Step("local_factors", "Local factors" if scalar else "Local Jacobians",
                          tuple(Equation(p, (v,)) for p, v in seen.items()), note=note))

    # 4. Each path's product, substituted and simplified.
    single = len(paths) == 1
    equations = []
    for chain, term in zip(chains, terms):
        rhs: tuple = (Product(term.factors),)
        if scalar and (len(term.factors) > 1 or term.simplified != sp.Mul(*term.factors)):
            rhs += (in_chain_order(term.simplified, term.factors),)
        if scalar and term.value != term.simplified:
            rhs += (term.value,)
        equations.append(Equation(total if single else chain, rhs, label="" if single else _path_label(graph, term.path)))
    steps.append(Step("path_terms", "Substitute the factors and multiply" if single else "Each path's term",
                      tuple(equations)))

    # 5. Terms that vanish because a constant is 0 (o0 = 0 makes dL/dw0 = 0).
    zero_terms = [t for t in terms if t.zero_because]
    if zero_terms:
        equations, reasons = [], set()
        for term in zero_terms:
            for (a, b), factor in zip(zip(term.path, term.path[1:]), term.factors):
                hit = [c for c in term.zero_because if graph[c].symbol in factor.free_symbols]
                if hit and factor.xreplace(graph.constants()) == 0:
                    equations.append(Equation(Partial(a, b), (factor, sp.S.Zero)))
                    reasons.update(hit)
        reason_text = "; ".join(f"{c} = {graph[c].value} ({graph[c].role})" for c in sorted(reasons))
        steps.append(Step("zero", "Why a term is zero", tuple(equations),
                          note=f"{reason_text}, so the factors above vanish and with them "
                               f"{'the term' if single else 'their path terms'}."))

    # 6. The total: the sum of the terms.
    if not single:
        shown = tuple(in_chain_order(t.value, t.factors) for t in terms) if scalar else tuple(t.value for t in terms)
        steps.append(Step("total", "The gradient is the sum of the path terms",
                          (Equation(total, (Sum(shown),)),),
                          note="Each term alone is one path's share; only their sum matches a "
                               "finite-difference check."))
    return steps
