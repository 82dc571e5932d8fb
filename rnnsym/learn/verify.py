"""Is a learner's formula for ``dL/dθ`` right, and if not, why — in the derivation's own words.

The formula is read (rnnsym.learn.parse), its derivative factors are given their meaning (local
partials along a chain, as the article and the path view write them; total derivatives elsewhere),
and it is compared with the derivation three ways:

1. numerically, at random points of the inputs, parameters and target (the verdict);
2. symbolically, expanded in node symbols (a confirmation where the expansion stays small);
3. as a combination of the derivation's path terms, and of path terms with one factor changed the
   way learners get it wrong (a wrong activation derivative, a wrong weight or index, a dropped
   factor): the combination that reproduces the formula *is* the diagnosis — which paths it
   matches, which are missing, which carry a mistake, a sign or a count.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .. import functions
from ..derivation import _path_label, in_chain_order
from ..engine.paths import PathLimitError, ancestors, descendants
from ..errors import RnnsymError
from ..printing.text import expr_text
from ..records import Product
from .parse import Formula, parse_formula

POINTS = 48  # random points of the numeric check (more when there are many paths)
TOLERANCE = 1e-8  # largest relative difference that counts as equal (float64, a few hundred flops)
MAX_MISTAKES = 3  # the most single-factor mistakes the diagnosis looks for at once
MAX_CANDIDATES = 40_000  # mutated path terms tried; past that only matched/missing paths are told
MAX_EXPANSION = 20_000  # terms the symbolic check may expand into


@dataclass(frozen=True)
class PathFinding:
    """What the formula does with one path of the gradient."""

    path: tuple[str, ...]
    label: str  # "through layer 4 (o4)", the derivation's words
    status: str  # matched, missing, mistake, sign, count, zero (a constant 0 on the path), unmatched
    detail: str = ""
    term: str = ""  # the path's correct term, as text


@dataclass(frozen=True)
class Verdict:
    """The answer to ``net.verify(text)``: ``ok``, and when not, the diagnosis.

    >>> v = rnnsym.seed_rnn(steps=4).verify("dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3")
    >>> v.ok
    True
    """

    ok: bool
    target: str
    formula: str  # the formula as read, in rnnsym's text notation
    paths: tuple[PathFinding, ...]
    findings: tuple[str, ...]  # the diagnosis, sentence by sentence
    notes: tuple[str, ...]  # how the formula was read
    symbolic: bool | None  # equal after expanding in node symbols; None when not tried or too big
    max_rel_error: float
    points: int
    gradient: str = ""  # the correct dL/d(target), as text
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def matched(self) -> list[tuple[str, ...]]:
        return [p.path for p in self.paths if p.status == "matched"]

    @property
    def missing(self) -> list[tuple[str, ...]]:
        return [p.path for p in self.paths if p.status == "missing"]

    def text(self) -> str:
        lines = [f"Your formula: dL/d{self.target} = {self.formula}"]
        lines += [f"  ({n})" for n in self.notes]
        if self.ok:
            how = ("symbolically (expanded in node symbols) and " if self.symbolic else "")
            lines.append(f"Right: it equals dL/d{self.target}, {how}numerically at {self.points} random points "
                         f"(largest relative difference {self.max_rel_error:.1e}).")
            if self.symbolic is None:
                lines.append("  (too large to expand symbolically; the numeric check decides)")
            return "\n".join(lines)
        lines.append(f"Wrong: it differs from dL/d{self.target} at random points (largest relative difference "
                     f"{_percent(self.max_rel_error)}).")
        lines += [f"- {f}" for f in self.findings]
        if self.paths:
            lines.append(f"The paths of dL/d{self.target}:")
            width = max(len(p.status) for p in self.paths)
            for p in self.paths:
                detail = f" — {p.detail}" if p.detail else ""
                lines.append(f"  {p.status:<{width}}  {p.label}: {p.term}{detail}")
        lines.append(f"dL/d{self.target} = {self.gradient}")
        return "\n".join(lines)

    __str__ = text

    def to_dict(self) -> dict:
        return {"ok": self.ok, "target": self.target, "formula": self.formula,
                "paths": [{"path": list(p.path), "label": p.label, "status": p.status, "detail": p.detail,
                           "term": p.term} for p in self.paths],
                "findings": list(self.findings), "notes": list(self.notes), "symbolic": self.symbolic,
                "max_rel_error": self.max_rel_error, "points": self.points, "gradient": self.gradient}


def verify(network, text: str, wrt=None, *, seed: int = 0) -> Verdict:
    """Check a hand-derived ``dL/d(wrt)`` (see :meth:`rnnsym.Network.verify`)."""
    if not network.is_scalar:  # δ equations and weight gradients in matrix notation
        return verify_vector(network, text, wrt, seed=seed)
    formula = parse_formula(text, network)
    target = _target(network, formula, wrt)
    derivation = network.derive(target)
    try:
        terms = derivation.path_terms if derivation.path_terms is not None else derivation.terms
    except PathLimitError as exc:
        raise RnnsymError(f"verify needs the path view of dL/d{target}: {exc}") from None
    return _Check(network, formula, target, derivation, terms, seed).verdict()


def _target(network, formula: Formula, wrt) -> str:
    given = network.resolve(wrt, "parameter, node or input") if wrt is not None else None
    if formula.wrt and given and formula.wrt != given:
        raise RnnsymError(f"the formula's left side is dL/d{formula.wrt} but wrt={given!r} was given")
    name = formula.wrt or given
    if name is None:
        raise RnnsymError("say which derivative the formula is: write it as dL/dNAME = … (or give wrt=NAME)")
    if name == network.loss_name:
        raise RnnsymError("dL/dL is 1; name a parameter, node or input: dL/dw3 = …")
    return name


# ---- random points ---------------------------------------------------------------------------------
_NUMPY = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0),
          "erf": np.vectorize(math.erf, otypes=[float])}


class _Points:
    """Every node's value at random points of the inputs, parameters and target, and expressions in
    node symbols evaluated there (lambdify with dummy names: no name reaches the generated source)."""

    def __init__(self, network, count: int, seed: int):
        graph = network.graph
        rng = np.random.default_rng(seed)
        self.count = count
        self.constants = graph.constants()
        self.values: dict[sp.Symbol, np.ndarray] = {}
        for node in graph.nodes.values():
            if node.kind in ("param", "input"):
                self.values[node.symbol] = rng.uniform(-1.2, 1.2, count)
            elif node.kind == "target":
                self.values[node.symbol] = rng.uniform(0.1, 0.9, count)
            elif node.kind == "constant":
                self.values[node.symbol] = np.full(count, float(node.value))
            else:
                self.values[node.symbol] = self(node.expr)
        self._compiled: dict = {}

    def function(self, expr: sp.Expr):
        """(f, symbols): f evaluates ``expr`` from its symbols' value arrays."""
        expr = sp.sympify(expr).xreplace(self.constants)
        key = expr
        cache = self.__dict__.setdefault("_compiled", {})
        if key not in cache:
            symbols = sorted(expr.free_symbols, key=lambda s: s.name)
            cache[key] = (sp.lambdify(symbols, expr, modules=[_NUMPY, "numpy"], dummify=True), symbols)
        return cache[key]

    def __call__(self, expr: sp.Expr, swap: dict | None = None) -> np.ndarray:
        f, symbols = self.function(expr)
        swap = swap or {}
        with np.errstate(all="ignore"):
            out = f(*[self.values[swap.get(s, s)] for s in symbols])
        return np.broadcast_to(np.asarray(out, dtype=float), (self.count,)).copy()


# ---- the check -------------------------------------------------------------------------------------
class _Check:
    def __init__(self, network, formula: Formula, target: str, derivation, terms, seed: int):
        self.network, self.graph = network, network.graph
        self.formula, self.target, self.derivation, self.terms = formula, target, derivation, terms
        self.points = _Points(network, max(POINTS, 4 * len(terms) + 16), seed)
        self.findings: list[str] = []
        self.notes: list[str] = list(formula.notes)

    def verdict(self) -> Verdict:
        chains, ends = self._chains()
        primary = self._reading(chains)
        expr = self._fold(primary)
        gradient = self.derivation.expr
        mine, truth = self.points(expr), self.points(gradient)
        error = _relative_error(mine, truth)
        ok = error < TOLERANCE
        symbolic = _symbolically_equal(expr, gradient) if ok else None
        for chain_end, factor in ends:
            self.findings.insert(0, _wrong_end(self.target, chain_end, factor))
        paths: tuple[PathFinding, ...] = ()
        if not ok:
            if not np.all(np.isfinite(mine)):
                self.findings.append("the formula cannot be evaluated at every random point (a logarithm of a "
                                     "negative number, a division by zero): it is not the gradient")
            else:
                paths = self._diagnose(self.points(self._repaired))
            self._alternative(chains, truth)
        return Verdict(ok=ok, target=self.target, formula=self._shown(), paths=paths,
                       findings=tuple(dict.fromkeys(self.findings)), notes=tuple(dict.fromkeys(self.notes)),
                       symbolic=symbolic, max_rel_error=error, points=self.points.count,
                       gradient=" + ".join(_term_text(t) for t in self.terms if t.value != 0) or "0")

    def _shown(self) -> str:
        """The right side as the learner wrote it (SymPy would re-sort a chain's factors), on one line."""
        text = " ".join(self.formula.source.split("=")[-1].split())
        return text if len(text) <= 200 else text[:197] + "…"

    # -- what each derivative factor means --
    def _chains(self):
        """The factors that stand in a chain ``(dL/do5)(do5/do4)(do4/dw)`` of edges from the loss,
        as the article writes a path, and the chains that end somewhere other than the target."""
        factors = self.formula.factors
        if not factors:
            return set(), []
        rhs = self.formula.rhs
        if _expansion_size(rhs) > MAX_EXPANSION:
            return set(), []
        in_chain, mixed, ends = set(), set(), []
        for term in sp.Add.make_args(sp.expand(rhs)):
            parts = [p for p in sp.Mul.make_args(term) if not p.is_Number]
            chain = self._as_chain(parts)
            if chain is None:
                mixed.update(p for p in parts if p in factors)
                continue
            in_chain.update(chain)
            last = factors[chain[-1]]
            if last.wrt != self.target:
                ends.append((last.wrt, last))
        return in_chain - mixed, list(dict.fromkeys(ends))

    def _as_chain(self, parts) -> list | None:
        factors, graph = self.formula.factors, self.graph
        if not parts or any(p not in factors for p in parts):
            return None
        by_top = {factors[p].of: p for p in parts}
        if len(by_top) != len(parts) or graph.loss.name not in by_top:
            return None
        chain, node = [], graph.loss.name
        while node in by_top:
            p = by_top.pop(node)
            if factors[p].wrt not in graph.parents(factors[p].of):
                return None
            chain.append(p)
            node = factors[p].wrt
        return chain if not by_top else None

    def _reading(self, chains: set, flip=frozenset()) -> sp.Expr:
        values = {}
        for dummy, f in self.formula.factors.items():
            local = self._is_local(dummy, f, chains) != (dummy in flip)
            values[dummy] = (self.network.local(f.of, f.wrt) if local else _total(self.network, f.of, f.wrt))
        return self.formula.rhs.xreplace(values)

    def _is_local(self, dummy, f, chains) -> bool:
        if f.wrt not in self.graph.parents(f.of):
            return False  # ∂L/∂o4 and dL/do4: the adjoint, the only reading that is not 0
        return f.partial or dummy in chains

    def _alternative(self, chains, truth) -> None:
        """Where reading the derivative factors the other way (total for local, local for total) makes
        the formula right, say so: the learner's notation, not their algebra, is what differs."""
        flippable = {d for d, f in self.formula.factors.items()
                     if f.wrt in self.graph.parents(f.of) and _differs(self.network, f)}
        if not flippable:
            return
        local = {d for d in flippable if self._is_local(d, self.formula.factors[d], chains)}
        ordered = sorted(flippable, key=lambda d: self.formula.factors[d].text())
        for flip in [*({d} for d in ordered[:10]), set(ordered)]:  # one factor read the other way, or all
            if _relative_error(self.points(self._fold(self._reading(chains, flip=flip))), truth) < TOLERANCE:
                break
        else:
            return
        for d in sorted(flip, key=lambda d: self.formula.factors[d].text()):
            f = self.formula.factors[d]
            if d in local:
                self.findings.append(
                    f"{f.text()} here is the local partial ∂{f.of}/∂{f.wrt}, which holds {f.of}'s other inputs fixed "
                    f"(the path view's factor); the formula would be right with the total derivative d{f.of}/d{f.wrt} "
                    f"instead — {_total_words(self.network, f)} — a local partial where a total derivative belongs")
            else:
                self.findings.append(
                    f"{f.text()} here is read as the total derivative; the formula would be right with the local "
                    f"partial ∂{f.of}/∂{f.wrt} instead: a total derivative where a local partial belongs counts the "
                    "longer paths again")

    # -- node definitions written out --
    def _fold(self, expr: sp.Expr) -> sp.Expr:
        """``tanh(b4 + o3*w3 + w*x4)`` written out is ``o4``; one that leaves a term out or has a wrong
        name is reported (a missing bias) and then read as the node, so the rest can be diagnosed."""
        computed = [n for n in self.graph.nodes.values() if n.expr is not None and n.kind in ("hidden", "output")]
        exact = {n.expr: n.symbol for n in computed}

        def fold(e):
            if e.is_Atom:
                return e
            args = tuple(fold(a) for a in e.args)
            e = e.func(*args) if args != e.args else e
            if e in exact:
                return exact[e]
            if isinstance(e, sp.Function) and len(e.args) == 1:
                for n in computed:
                    if n.expr.func == e.func:
                        words = _near_miss(self.graph, n, e.args[0])
                        if words:
                            self.findings.append(words)
                            return _Mistaken(n.symbol, e)
            return e

        folded = fold(expr)
        mistaken = folded.atoms(_Mistaken)
        self._repaired = folded.xreplace({m: m.args[0] for m in mistaken})  # as if the node were right
        return folded.xreplace({m: m.args[1] for m in mistaken})

    # -- the diagnosis --
    def _diagnose(self, mine: np.ndarray) -> tuple[PathFinding, ...]:
        terms = self.terms
        factor_values = [[self.points(f) for f in t.factors] for t in terms]
        columns = [np.prod(v, axis=0) if v else np.ones(self.points.count) for v in factor_values]
        live = [i for i, c in enumerate(columns) if np.any(c != 0)]
        basis = np.column_stack([columns[i] for i in live]) if live else np.zeros((self.points.count, 0))
        scale = max(np.linalg.norm(mine), max((np.linalg.norm(c) for c in columns), default=0.0), 1e-300)
        chosen, coefficients, residual = _fit(basis, [], mine, scale)
        if residual > TOLERANCE:
            candidates = list(self._mistakes(terms, factor_values))
            chosen, coefficients, residual = _pursue(basis, candidates, mine, scale)
        if residual > TOLERANCE:
            self.findings.append(
                f"the formula is not a sum of the paths of dL/d{self.target}, nor of paths with one factor changed: "
                f"compare it with the path terms below, factor by factor")
            return tuple(PathFinding(t.path, _path_label(self.graph, t.path), "unmatched", "",
                                     _term_text(t)) for t in terms)
        return self._findings(terms, live, coefficients, chosen)

    def _mistakes(self, terms, factor_values):
        """(path index, words, values) for each path term with one factor changed as learners change it."""
        swaps = [n.symbol for n in self.graph.nodes.values()
                 if n.kind in ("param", "input", "hidden", "output", "constant", "target")]
        budget = MAX_CANDIDATES
        for index, term in enumerate(terms):
            values = factor_values[index]
            for k, factor in enumerate(term.factors):
                child, parent = term.path[k], term.path[k + 1]
                rest = np.prod([v for j, v in enumerate(values) if j != k], axis=0) if len(values) > 1 else 1.0
                where = f"∂{child}/∂{parent}"
                for words, wrong in _wrong_factors(self.graph, child, parent, factor):
                    budget -= 1
                    yield index, _Words(where, factor, wrong, words), rest * self.points(wrong)
                for s in sorted(factor.free_symbols, key=lambda s: s.name):
                    for other in swaps:
                        if other == s or budget <= 0:
                            continue
                        budget -= 1
                        yield (index, _Words(where, factor, {s: other}, f"{other} where {s} belongs"),
                               rest * self.points(factor, swap={s: other}))

    def _findings(self, terms, live, coefficients, chosen) -> tuple[PathFinding, ...]:
        base = {i: coefficients[j] for j, i in enumerate(live)}
        mistakes: dict[int, list] = {}
        for (index, words, _), c in zip(chosen, coefficients[len(live):]):
            mistakes.setdefault(index, []).append((str(words), c))
        out = []
        for i, t in enumerate(terms):
            label = _path_label(self.graph, t.path)
            term = _term_text(t)
            c = _round(base.get(i, 1.0 if t.value == 0 else 0.0))
            if t.value == 0:  # o0 = 0: a path whose term vanishes is matched by anything
                out.append(PathFinding(t.path, label, "zero", "its term is 0, whatever the formula says", term))
                continue
            if i in mistakes:
                words = "; ".join(w + _times(m) for w, m in mistakes[i])
                extra = f" (and the path itself{_times(c)})" if c != 0 else ""
                out.append(PathFinding(t.path, label, "mistake", words + extra, term))
            elif c == 1:
                out.append(PathFinding(t.path, label, "matched", "", term))
            elif c == 0:
                out.append(PathFinding(t.path, label, "missing", "", term))
            elif c == -1:
                out.append(PathFinding(t.path, label, "sign", "the formula has it with the opposite sign", term))
            else:
                out.append(PathFinding(t.path, label, "count", _count_words(c), term))
        self._summarise(out)
        return tuple(out)

    def _summarise(self, paths: list[PathFinding]) -> None:
        present = [p for p in paths if p.status not in ("missing", "zero")]
        missing = [p for p in paths if p.status == "missing"]
        live = [p for p in paths if p.status != "zero"]
        if live and all(p.status == "sign" for p in live):
            self.findings.append("a sign error: the formula is the gradient with the opposite sign "
                                 "(o − Y and Y − o are easy to swap)")
            return
        if missing:
            have = " and ".join(p.label for p in present) or "none of the paths"
            also = _joined([p.label for p in missing])
            self.findings.append(
                f"your formula is {'the path' if len(present) == 1 else 'the paths' if present else ''} {have}; "
                f"dL/d{self.target} also has the path{'s' if len(missing) > 1 else ''} {also}: it is the sum of "
                f"all {len(live)} path terms")
            self._local_hint(present, missing)
        for p in paths:
            if p.status == "mistake":
                self.findings.append(f"the path {p.label}: {p.detail}")
            elif p.status == "sign":
                self.findings.append(f"the path {p.label} has the wrong sign")
            elif p.status == "count":
                self.findings.append(f"the path {p.label} is {p.detail}")

    def _local_hint(self, present, missing) -> None:
        """A formula that keeps a path and drops the longer ones through the same node treats that
        node's other input as a constant of the target: the local partial in place of the total."""
        for p in sorted(present, key=lambda p: -len(p.path)):
            if len(p.path) < 3:
                continue
            child = p.path[-2]
            deeper = [m for m in missing if child in m.path[:-1] and len(m.path) > len(p.path)]
            if deeper:
                held = sorted({m.path[m.path.index(child) + 1] for m in deeper})
                others = " and ".join(held)
                self.findings.append(
                    f"in ∂{child}/∂{self.target} your formula treats {others} as a constant of {self.target}, but "
                    f"{others} depend{'s' if len(held) == 1 else ''} on {self.target} too: the total derivative "
                    f"d{child}/d{self.target} = ∂{child}/∂{self.target} + "
                    + " + ".join(f"∂{child}/∂{h}·d{h}/d{self.target}" for h in held)
                    + " brings in the longer paths")
                return


@dataclass(frozen=True)
class _Words:
    """A mistake's description, written only for the mistakes that are reported (thousands are tried)."""

    where: str
    factor: sp.Expr
    wrong: object  # the wrong factor, or the renaming that makes it
    why: str

    def __str__(self) -> str:
        wrong = self.factor.xreplace(self.wrong) if isinstance(self.wrong, dict) else self.wrong
        return f"{self.where} is {_t(self.factor)}; the formula has {_t(wrong)} ({self.why})"


class _Mistaken(sp.Function):
    """A written-out node with a mistake, kept apart so the symbolic check sees it (args: node, as written)."""


# ---- helpers -------------------------------------------------------------------------------------
def _t(expr) -> str:
    return expr_text(expr)


def _term_text(term) -> str:
    """A path term with its factors in chain order, as the derivation shows it: (o₅ − Y)·w₄·(1 − o₄²)·o₃."""
    shown = in_chain_order(term.value, term.factors)
    if isinstance(shown, Product):
        return "·".join(f"({expr_text(a)})" if a.is_Add else expr_text(a) for a in shown.factors)
    return expr_text(shown)


def _relative_error(mine: np.ndarray, truth: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(mine)):
            return math.inf
        scale = max(float(np.max(np.abs(truth))), 1e-12)
        return float(np.max(np.abs(mine - truth)) / scale)


def _percent(error: float) -> str:
    return "not a number" if not math.isfinite(error) else f"{error:.3g}" if error < 0.01 else f"{100 * error:.3g}%"


def _round(c: float) -> float:
    r = round(c)
    return float(r) if abs(c - r) < 1e-6 else float(c)


def _times(c: float) -> str:
    c = _round(c)
    return "" if c == 1 else " with the opposite sign" if c == -1 else f", {c:g} times"


def _count_words(c: float) -> str:
    if c == int(c) and c > 1:
        return (f"counted {int(c)} times: a factor taken as a total derivative (which already holds the longer "
                "paths) where a local partial belongs counts them again")
    return f"multiplied by {c:.6g}: a constant factor is wrong"


def _joined(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _fit(basis: np.ndarray, chosen: list, target: np.ndarray, scale: float):
    matrix = np.column_stack([basis, *[c[2] for c in chosen]]) if chosen else basis
    if matrix.shape[1] == 0:
        return chosen, np.zeros(0), float(np.linalg.norm(target) / scale)
    coefficients, *_ = np.linalg.lstsq(matrix, target, rcond=None)
    residual = float(np.linalg.norm(target - matrix @ coefficients) / scale)
    return chosen, coefficients, residual


def _pursue(basis: np.ndarray, candidates: list, target: np.ndarray, scale: float):
    """Greedy: add the changed path term that explains most of what the paths leave over, up to
    :data:`MAX_MISTAKES` of them, until the formula is reproduced exactly."""
    chosen: list = []
    candidates = [c for c in candidates if np.all(np.isfinite(c[2])) and np.any(c[2] != 0)]
    best = _fit(basis, chosen, target, scale)
    for _ in range(MAX_MISTAKES):
        trial = min((_fit(basis, chosen + [c], target, scale) for c in candidates), key=_plainest, default=None)
        if trial is None or trial[2] >= best[2] * (1 - 1e-9):
            break
        best = trial
        chosen = list(trial[0])
        if best[2] < TOLERANCE:
            break
    return best


def _plainest(fit) -> tuple:
    """Exact fits first, and among them the one that reads most simply: each path taken 0 or 1 times
    (o4·(1 − o4) is one mistaken factor, not the path minus another mistaken one)."""
    _, coefficients, residual = fit
    messy = sum(1 for c in coefficients if abs(c - round(c)) > 1e-6 or round(c) not in (0, 1))
    return (0.0, messy) if residual < TOLERANCE else (residual, messy)


_WRONG_RULES = {
    sp.tanh: lambda y: [("tanh′ is 1 − y², not 1 − y", 1 - y), ("σ′'s y·(1 − y) used for tanh", y * (1 - y)),
                        ("the derivative of tanh left out", sp.S.One)],
    functions.sigmoid: lambda y: [("σ′ is y·(1 − y), not 1 − y", 1 - y), ("σ′ is y·(1 − y), not y", y),
                                  ("tanh′'s 1 − y² used for σ", 1 - y**2),
                                  ("the derivative of σ left out", sp.S.One)],
    functions.relu: lambda y: [("the derivative of relu left out", sp.S.One)],
    sp.exp: lambda y: [("the derivative of exp left out", sp.S.One)],
}


def _wrong_factors(graph, child: str, parent: str, factor: sp.Expr):
    """(words, wrong factor) for the activation-derivative mistakes of ``∂child/∂parent``."""
    node = graph[child]
    expr, y, z_of = node.expr, node.symbol, graph[parent].symbol
    if expr is not None and expr.func in _WRONG_RULES and len(expr.args) == 1:
        inner = sp.diff(expr.args[0], z_of)
        for words, rule in _WRONG_RULES[expr.func](y):
            yield words.replace("y", child), rule * inner
    if node.kind == "loss" and graph[parent].kind == "output":
        target = [n.symbol for n in graph.of_kind("target")]
        if target:
            yield (f"o − Y is ∂L/∂z, the gradient before the output's activation; ∂L/∂{parent} is not",
                   z_of - target[-1])
    yield f"∂{child}/∂{parent} left out", sp.S.One


def _near_miss(graph, node, argument: sp.Expr) -> str | None:
    """Words for ``f(argument)`` that is ``node`` with one term left out or one name wrong."""
    z = node.expr.args[0]
    for term in sp.Add.make_args(z):
        if sp.expand(z - term - argument) == 0:
            kind = "its bias" if term.is_Symbol and graph[term.name].param_role is not None and \
                graph[term.name].param_role.is_bias else "the term"
            return (f"{expr_text(node.expr.func(argument))} is {node.name} without {kind} {expr_text(term)} "
                    f"({node.name} = {expr_text(node.expr)})")
    mine, theirs = argument.free_symbols, z.free_symbols
    if len(mine - theirs) == 1 and len(theirs - mine) == 1:
        (wrong,), (right,) = mine - theirs, theirs - mine
        if sp.expand(z.xreplace({right: wrong}) - argument) == 0:
            return (f"{expr_text(node.expr.func(argument))} has {wrong} where {node.name} has {right} "
                    f"({node.name} = {expr_text(node.expr)})")
    return None


def _total(network, of: str, wrt: str) -> sp.Expr:
    """The total derivative d(of)/d(wrt) in node symbols: the sum over every path from ``wrt`` up to
    ``of`` of the local partials' product (for the loss, the derivation's own sum)."""
    if of == wrt:
        return sp.S.One
    if of == network.loss_name:
        return network.derive(wrt).expr
    graph = network.graph
    between = descendants(graph, wrt) & ancestors(graph, of)
    totals = {wrt: sp.S.One}
    for name in graph.nodes:
        if name in between and name != wrt:
            totals[name] = sp.Add(*[network.local(name, p) * totals[p] for p in graph.parents(name) if p in totals])
    return totals.get(of, sp.S.Zero)


def _differs(network, f) -> bool:
    """Whether d(of)/d(wrt) and ∂(of)/∂(wrt) differ: ``wrt`` also reaches ``of`` through another node."""
    graph = network.graph
    return any(p != f.wrt and f.wrt in ancestors(graph, p) for p in graph.parents(f.of))


def _total_words(network, f) -> str:
    graph = network.graph
    others = [p for p in graph.parents(f.of) if p != f.wrt and f.wrt in ancestors(graph, p)]
    rest = " + ".join(f"∂{f.of}/∂{o}·d{o}/d{f.wrt}" for o in others)
    return f"d{f.of}/d{f.wrt} = ∂{f.of}/∂{f.wrt}" + (f" + {rest}" if rest else "")


def _wrong_end(target: str, end: str, factor) -> str:
    return (f"your chain ends with {factor.text()}: it is a path of dL/d{end}, not of dL/d{target} "
            f"(a wrong weight: dL/d{target}'s paths end in a factor ∂·/∂{target})")


def _expansion_size(expr: sp.Expr) -> int:
    """How many terms ``sp.expand(expr)`` would make, at most (without making them)."""
    if expr.is_Add:
        return sum(_expansion_size(a) for a in expr.args)
    if expr.is_Mul:
        size = 1
        for a in expr.args:
            size *= _expansion_size(a)
            if size > 10 * MAX_EXPANSION:
                return size
        return size
    if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
        return _expansion_size(expr.base) ** min(int(expr.exp), 8)
    return 1


def _symbolically_equal(a: sp.Expr, b: sp.Expr) -> bool | None:
    difference = a - b
    if _expansion_size(difference) > MAX_EXPANSION:
        return None
    if sp.expand(difference) == 0:
        return True
    return sp.cancel(sp.together(difference)) == 0 or None


# ---- vector networks: δ equations and weight gradients in matrix notation ----------------------------
# The formula is read as a tuple tree (rnnsym.learn.parse.parse_matrix_formula) and evaluated on arrays at
# random points: one draw of the parameters and VECTOR_POINTS examples of inputs and targets. The truth is
# the compiled unrolled code's own adjoints (δ of every hidden node) and per-example gradients; the
# diagnosis fits the formula with the shares of the node's children (the rule table's terms, as the
# recursive view prints them) and with those shares changed the way learners change them.
VECTOR_POINTS = 24


class _Shape(Exception):
    """Shapes that do not fit: the formula is wrong (not unreadable); the message says where."""


class _Absent(Exception):
    """A step-indexed name with no node at this step (h_(t+1) at the last step): the Σ_t skips it."""


@dataclass(frozen=True)
class VectorVerdict(Verdict):
    """``net.verify(text)``'s answer for a vector network's δ equation or weight gradient."""

    lhs: str = ""  # δh₂ or dL/dW_hh, as the derivation writes it

    def text(self) -> str:
        lines = [f"Your formula: {self.lhs} = {self.formula}"]
        lines += [f"  ({n})" for n in self.notes]
        if self.ok:
            how = "symbolically (component by component, in node and δ symbols) and " if self.symbolic else ""
            lines.append(f"Right: it equals {self.lhs}, {how}numerically at {self.points} random points against "
                         f"rnnsym's compiled adjoints (largest relative difference {self.max_rel_error:.1e}).")
            return "\n".join(lines)
        lines.append(f"Wrong: it differs from {self.lhs} at random points (largest relative difference "
                     f"{_percent(self.max_rel_error)}).")
        lines += [f"- {f}" for f in self.findings]
        lines.append(f"{self.lhs} = {self.gradient}")
        return "\n".join(lines)

    __str__ = text

    def to_dict(self) -> dict:
        return {**super().to_dict(), "lhs": self.lhs}


def verify_vector(network, text: str, wrt=None, *, seed: int = 0) -> VectorVerdict:
    """Check a hand-derived δ equation (``δh2 = W_hh^T diag(1 - h3^2) δh3``) or weight gradient
    (``dL/dW_hh = Σ_t diag(1 - h_t^2) δh_t h_(t-1)^T``) of a vector network."""
    from .parse import parse_matrix_formula

    formula = parse_matrix_formula(text, network)
    if wrt is not None:
        given = network.resolve(wrt, "parameter, node or input")
        if given != formula.name:
            raise RnnsymError(f"the formula's left side is about {formula.name} but wrt={given!r} was given")
    node = network.graph[formula.name]
    if node.kind == "loss" or (formula.kind == "delta" and node.kind in ("param", "input", "target", "constant")):
        raise RnnsymError(f"δ{formula.name} is not a δ equation rnnsym checks; write δNAME = … for a hidden node "
                          "or output, or dL/dNAME = … for a parameter")
    return _VectorCheck(network, formula, seed).verdict()


class _VectorCheck:
    def __init__(self, network, formula, seed: int):
        from ..program.build import view_shares

        self.network, self.graph, self.formula = network, network.graph, formula
        self.name = formula.name
        self.notes: list[str] = []
        self.findings: list[str] = []
        self._in_diag = 0
        self.count = VECTOR_POINTS
        self._values(seed)
        loss = self.graph.loss.name
        children = [c for c in self.graph.children(self.name) if c == loss or c in self.deltas]
        self.shares = [s for s in view_shares(network, self.name, children)]
        if any(s.term.softmax is not None for s in self.shares):
            raise RnnsymError("verify does not check δ equations through a softmax yet; see them with 'rnnsym derive'")

    # -- the point: node values, adjoints and per-example gradients from the compiled code --
    def _values(self, seed: int) -> None:
        graph, network = self.graph, self.network
        rng = np.random.default_rng(seed)
        P = self.count
        params = {p: rng.uniform(-1.0, 1.0, graph[p].shape) for p in network.param_names}
        inputs = [n for n in graph.nodes.values() if n.kind == "input"]
        size = max(int(np.prod(inputs[0].shape)) if inputs[0].shape else 1, 1)
        x = rng.uniform(-1.2, 1.2, (P, network.steps, size))
        targets = [n for n in graph.nodes.values() if n.kind == "target"]
        width = int(np.prod(targets[0].shape)) if targets[0].shape else 1
        y = rng.uniform(0.1, 0.9, (P, len(targets), width) if len(targets) > 1 else (P, width))
        if network.options.get("loss") == "cross_entropy":  # probability rows, as cross-entropy wants
            y = y / y.sum(axis=-1, keepdims=True)
        compiled = network.compile(form="unrolled")
        trace = compiled.trace(params, x, y)
        adjoints, _ = compiled.adjoints(params, x, y)
        self.values: dict[str, np.ndarray] = {}
        for name, node in graph.nodes.items():
            if name in trace:
                value = np.asarray(trace[name], dtype=float)
                if name in params:
                    value = np.broadcast_to(value, (P, *np.shape(value)))
                self.values[name] = _column(value, P)
        self.deltas = {name: _column(np.asarray(a, dtype=float) * P, P) for name, a in adjoints.items()}
        self._outputs_and_losses()
        self.gradients: dict[str, np.ndarray] = {}
        if graph[self.formula.name].kind == "param":
            name = self.formula.name
            self.gradients[name] = np.stack(
                [_column(np.asarray(compiled.value_and_grad(params, x[k:k + 1], y[k:k + 1])[1][name])[None], 1)[0]
                 for k in range(P)])

    def _outputs_and_losses(self) -> None:
        """δ of the outputs and loss terms (the compiled code fuses them away): from the rule table's
        shares of their children, the loss's δ being 1."""
        from ..program.build import view_shares

        graph, loss = self.graph, self.graph.loss.name
        self.deltas[loss] = np.ones((self.count, 1, 1))
        for name in reversed(list(graph.nodes)):
            node = graph[name]
            if name in self.deltas or node.kind not in ("output", "loss_term"):
                continue
            children = [c for c in graph.children(name) if c in self.deltas]
            self.deltas[name] = sum(self._share(s) for s in view_shares(self.network, name, children))

    # -- evaluating the rule table's shares, and the learner's tree --
    def _sym(self, expr) -> np.ndarray:
        return _evaluate_sympy(expr, self.values, self.count)

    def _share(self, share, factor=None, delta=None, transpose=True, outer=None) -> np.ndarray:
        from ..engine.rules import TermKind

        term = share.term
        f = self._sym(term.factor if factor is None else factor)
        d = self.deltas[share.child] if delta is None else delta
        carried = _carried(f, d)
        if share.kind == TermKind.THROUGH_MATRIX:
            m = self.values[term.matrix.name]
            return np.swapaxes(m, -1, -2) @ carried if transpose else m @ carried
        if share.kind == TermKind.WEIGHT and term.outer is not None:
            v = self.values[term.outer.name] if outer is None else outer
            return carried @ np.swapaxes(v, -1, -2)
        if share.kind == TermKind.SUMMED:
            return carried.sum(axis=(-2, -1), keepdims=True)
        return carried

    def _truth(self) -> np.ndarray:
        if self.formula.kind == "total":
            return self.gradients[self.name]
        if self.name in self.deltas:
            return self.deltas[self.name]
        return sum(self._share(s) for s in self.shares)

    def verdict(self) -> VectorVerdict:
        truth = self._truth()
        try:
            mine = _broadcast(self._eval(self.formula.rhs, None), truth.shape)
        except _Shape as exc:
            self.findings.append(str(exc))
            return self._done(False, math.inf)
        if mine.shape != truth.shape:
            self._shape_findings(mine, truth)
            return self._done(False, math.inf)
        error = _relative_error(mine.ravel(), truth.ravel())
        if error >= TOLERANCE:
            self._diagnose(mine, truth)
        ok = error < TOLERANCE
        return self._done(ok, error, _Symbolic(self).equal() if ok else None)

    def _done(self, ok: bool, error: float, symbolic: bool | None = None) -> VectorVerdict:
        from ..printing.text import TextPrinter
        from ..records import Applied

        printer = TextPrinter()
        loss = self.graph.loss.name
        shown = [printer.doprint(Applied(s.term, None if s.child == loss else s.child, s.kind, scalar=False))
                 for s in self.shares]
        lhs = (f"dL/d{self.name}" if self.formula.kind == "total" else f"δ{_sub(self.name)}")
        text = " ".join(self.formula.source.split("=", 1)[-1].split())
        return VectorVerdict(ok=ok, target=self.name, formula=text if len(text) <= 200 else text[:197] + "…",
                             paths=(), findings=tuple(dict.fromkeys(self.findings)),
                             notes=tuple(dict.fromkeys(self.notes)), symbolic=symbolic, max_rel_error=error,
                             points=self.count, gradient=" + ".join(shown) or "0", lhs=lhs)

    def _eval(self, tree: tuple, t: int | None) -> np.ndarray:
        kind = tree[0]
        P = self.count
        if kind == "num":
            return np.full((P, 1, 1), tree[1])
        if kind in ("node", "delta"):
            return self._named(tree[1], kind == "delta")
        if kind == "at":
            _, base, offset, is_delta = tree
            if t is None:
                raise RnnsymError(f"{base}_t stands outside a Σ_t: write the step (h2) or sum over t (Σ_t …)")
            name = f"{base}{t + offset}"
            if name not in self.graph or (is_delta and self.graph[name].kind not in ("hidden", "output")):
                raise _Absent(name)
            return self._named(name, is_delta)
        if kind == "sum_t":
            if t is not None:
                raise RnnsymError("a Σ_t inside another Σ_t: write one sum over the steps")
            total, used = None, []
            for step in range(0, self.network.steps + 2):
                try:
                    value = self._eval(tree[1], step)
                except _Absent:
                    continue
                used.append(step)
                total = value if total is None else _add(total, value, tree)
            if total is None:
                raise RnnsymError("the Σ_t has no step at which all of its names exist")
            self.notes.append(f"the Σ_t is read over the steps t = {used[0]} … {used[-1]} at which its names exist")
            return total
        if kind == "T":
            return np.swapaxes(self._eval(tree[1], t), -1, -2)
        if kind == "diag":
            self._in_diag += 1
            try:
                v = self._eval(tree[1], t)
            finally:
                self._in_diag -= 1
            if v.shape[-1] != 1:
                raise _Shape(f"diag({_tree_text(tree[1])}) needs a vector; {_tree_text(tree[1])} is "
                             f"{v.shape[-2]}×{v.shape[-1]}")
            return v[..., 0][..., :, None] * np.eye(v.shape[-2])[None]
        if kind == "neg":
            return -self._eval(tree[1], t)
        if kind == "pow":
            with np.errstate(all="ignore"):
                return self._eval(tree[1], t) ** tree[2]
        if kind == "fn":
            with np.errstate(all="ignore"):
                return _ELEMENTWISE[tree[1]](self._eval(tree[2], t))
        a, b = self._eval(tree[1], t), self._eval(tree[2], t)
        if kind == "add":
            return _add(a, b, tree)
        if kind == "sub":
            return _add(a, -b, tree)
        if kind == "mul":
            return self._product(a, b, tree)
        if kind in ("had", "div"):
            if a.shape != b.shape and not (_scalar(a) or _scalar(b)):
                raise _Shape(f"{_tree_text(tree[1])} ({_dims(a)}) and {_tree_text(tree[2])} ({_dims(b)}) have "
                             "different shapes: an elementwise operation needs the same shape")
            with np.errstate(all="ignore"):
                return a * b if kind == "had" else a / b
        raise RnnsymError(f"cannot evaluate {kind!r}")  # pragma: no cover - the parser admits only the above

    def _named(self, name: str, delta: bool) -> np.ndarray:
        if not delta:
            if name == self.graph.loss.name:
                raise RnnsymError(f"the loss {name} itself stands in the formula; write its adjoint's shares instead")
            return self.values[name]
        if name not in self.deltas and self.graph[name].kind in ("hidden", "output") and name in self.values:
            return np.zeros_like(self.values[name])  # a δ the compiled code prunes: it is 0 (c0·δc1 with c0 = 0)
        if name not in self.deltas:
            raise RnnsymError(f"δ{name} is not an adjoint rnnsym has: {name} is a {self.graph[name].kind} that does "
                              "not lead to the loss through hidden nodes")
        return self.deltas[name]

    def _product(self, a, b, tree) -> np.ndarray:
        if _scalar(a) or _scalar(b):
            return a * b
        if a.shape[-1] == b.shape[-2]:
            return a @ b
        if a.shape == b.shape and a.shape[-1] == 1:
            if self._in_diag:  # diag(y·(1 − y)): elementwise, as the derivation writes it
                return a * b
            self.notes.append(f"read {_tree_text(tree[1])}·{_tree_text(tree[2])}, a product of two vectors, as "
                              "elementwise (⊙)")
            return a * b
        raise _Shape(f"the product {_tree_text(tree[1])} ({_dims(a)}) · {_tree_text(tree[2])} ({_dims(b)}) does not "
                     "fit: a matrix product needs the left's columns to equal the right's rows")

    # -- the diagnosis --
    def _shape_findings(self, mine, truth) -> None:
        lhs = f"dL/d{self.name}" if self.formula.kind == "total" else f"δ{_sub(self.name)}"
        if mine.shape == np.swapaxes(truth, -1, -2).shape:
            what = "a row where a column belongs" if truth.shape[-1] == 1 else "the transpose of what it should be"
            self.findings.append(f"the formula is {_dims(mine)} but {lhs} is {_dims(truth)}: {what} (a missing or "
                                 "extra transpose)")
        else:
            self.findings.append(f"the formula is {_dims(mine)} but {lhs} is {_dims(truth)}")

    def _diagnose(self, mine, truth) -> None:
        lhs = f"dL/d{self.name}" if self.formula.kind == "total" else f"δ{_sub(self.name)}"
        if not np.all(np.isfinite(mine)):
            self.findings.append("the formula cannot be evaluated at every random point: it is not " + lhs)
            return
        basis = np.column_stack([self._share(s).ravel() for s in self.shares]) if self.shares \
            else np.zeros((mine.size, 0))
        target = mine.ravel()
        scale = max(float(np.max(np.abs(truth))), 1e-300)
        chosen, coefficients, residual = _fit(basis, [], target, scale)
        if residual > TOLERANCE:
            chosen, coefficients, residual = _pursue(basis, list(self._mistakes()), target, scale)
        if residual > TOLERANCE:
            self.findings.append(f"the formula is not a sum of the shares of {lhs}, nor of shares with one thing "
                                 "changed: compare it with the shares below, factor by factor")
            return
        texts = self._share_texts()
        mistaken = {index for (index, _, _), c in zip(chosen, coefficients[len(self.shares):]) if abs(c) > 1e-6}
        missing = []
        for i, share in enumerate(self.shares):
            c = _round(coefficients[i])
            if i in mistaken:
                continue
            if c == 0:
                missing.append(i)
            elif c == -1:
                self.findings.append(f"the share from {_sub(share.child)}, {texts[i]}, has the wrong sign")
            elif c != 1:
                self.findings.append(f"the share from {_sub(share.child)}, {texts[i]}, is multiplied by {c:g}")
        for (index, words, _), c in zip(chosen, coefficients[len(self.shares):]):
            if abs(c) > 1e-6:
                self.findings.append(f"the share from {_sub(self.shares[index].child)} ({texts[index]}): {words}")
        for i in missing:
            child = self.shares[i].child
            source = "the loss" if child == self.graph.loss.name else _sub(child)
            self.findings.append(f"a missing term: {lhs} also gets {texts[i]} from {source}")
        self._recursion_hint(missing)

    def _recursion_hint(self, missing) -> None:
        """δ of a step's node that leaves out the next step's share ignores the recursion; keeping only
        the output's share is the d2l-style δh_t = W_hyᵀ·δy_t, right only at the last step."""
        if self.formula.kind != "delta":
            return
        step = _step(self.name)
        later = [self.shares[i].child for i in missing
                 if step is not None and (_step(self.shares[i].child) or 0) > step]
        if not later:
            return
        nxt = list(dict.fromkeys(later))
        kept = {self.graph[s.child].kind for i, s in enumerate(self.shares) if i not in missing}
        d2l = (" (δh_t = W_hyᵀ·δy_t alone, the formula that forgets the recursion, holds only at the last step)"
               if "output" in kept else "")
        self.findings.append(f"the formula ignores the recursion: {_sub(self.name)} also feeds "
                             f"{' and '.join(_sub(c) for c in nxt)} at the next step, so δ{_sub(self.name)} is built "
                             f"from {' and '.join('δ' + _sub(c) for c in nxt)} too{d2l}")

    def _share_texts(self) -> list[str]:
        from ..printing.text import TextPrinter
        from ..records import Applied

        loss = self.graph.loss.name
        return [TextPrinter().doprint(Applied(s.term, None if s.child == loss else s.child, s.kind, scalar=False))
                for s in self.shares]

    def _mistakes(self):
        """(share index, words, values) for each share with one thing changed as learners change it."""
        from ..engine.rules import TermKind

        for index, share in enumerate(self.shares):
            term = share.term
            f = term.factor
            if share.kind == TermKind.THROUGH_MATRIX and self.values[term.matrix.name].shape[-1] == \
                    self.values[term.matrix.name].shape[-2]:
                w = term.matrix.name
                yield index, (f"a missing transpose: {w} where {w}ᵀ belongs (an adjoint goes back through "
                              f"{w}·v as {w}ᵀ·δ)"), self._share(share, transpose=False).ravel()
            if f != 1:
                yield index, f"a missing diag({_t(f)}): the local derivative's factor is left out", \
                    self._share(share, factor=sp.S.One).ravel()
            for wrong, why in _wrong_derivatives(f):
                yield index, (f"the wrong activation derivative: diag({_t(wrong)}) where diag({_t(f)}) belongs "
                              f"({why})"), self._share(share, factor=wrong).ravel()
            for old, new in self._shifts(f.free_symbols | ({term.outer} if term.outer is not None else set())):
                values = self._share(share, factor=f.xreplace({old: new}),
                                     outer=self.values[new.name] if term.outer == old else None)
                yield index, (f"a wrong step index: {_sub(new.name)} where {_sub(old.name)} belongs"), values.ravel()
            if share.child in self.deltas:
                for other in self._shifted_names(share.child):
                    if other in self.deltas:
                        yield index, (f"a wrong step index: δ{_sub(other)} where δ{_sub(share.child)} belongs"), \
                            self._share(share, delta=self.deltas[other]).ravel()

    def _shifted_names(self, name: str) -> list[str]:
        m = re.fullmatch(r"(.*?)(\d+)", name)
        if not m:
            return []
        return [f"{m.group(1)}{int(m.group(2)) + k}" for k in (-1, 1) if f"{m.group(1)}{int(m.group(2)) + k}" in self.graph]

    def _shifts(self, symbols):
        for s in sorted(symbols, key=lambda s: s.name):
            if s.name not in self.graph:
                continue
            for other in self._shifted_names(s.name):
                if other in self.values:
                    yield s, self.graph[other].symbol


def _wrong_derivatives(f: sp.Expr):
    """(wrong factor, why) for activation derivatives written wrong: 1 − h for 1 − h², σ′ halves."""
    seen = set()
    for sub in sp.preorder_traversal(f):
        if sub.is_Pow and sub.exp == 2:
            wrong = f.xreplace({sub: sub.base})
            if wrong not in seen:
                seen.add(wrong)
                yield wrong, f"tanh′ is 1 − tanh², so 1 − {_t(sub.base)}² belongs, not 1 − {_t(sub.base)}"
        if sub.is_Mul and len(sub.args) == 2:
            a, b = sub.args
            for s, other in ((a, b), (b, a)):
                if s.is_Symbol and sp.expand(other - (1 - s)) == 0:
                    for wrong_part in (other, s, 1 - s**2):
                        wrong = f.xreplace({sub: wrong_part})
                        if wrong not in seen:
                            seen.add(wrong)
                            yield wrong, f"σ′ is {_t(s)}·(1 − {_t(s)})"


_ELEMENTWISE = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0),
                "exp": np.exp, "log": np.log}


def _evaluate_sympy(expr, values: dict, count: int) -> np.ndarray:
    """A rule table factor (elementwise in vector node symbols, MatVec for W·v) on the point's arrays."""
    expr = sp.sympify(expr)
    if expr.is_Symbol:
        return values[expr.name]
    if expr.is_Number:
        return np.full((count, 1, 1), float(expr))
    args = [_evaluate_sympy(a, values, count) for a in expr.args]
    with np.errstate(all="ignore"):
        if expr.is_Add:
            return sum(args[1:], args[0])
        if expr.is_Mul:
            out = args[0]
            for a in args[1:]:
                out = out * a
            return out
        if expr.is_Pow:
            return args[0] ** args[1]
        name = type(expr).__name__
        if name == "MatVec":
            return args[0] @ args[1]
        if name in ("tanh", "exp", "log"):
            return getattr(np, name)(args[0])
        if name == "sigmoid":
            return 1 / (1 + np.exp(-args[0]))
        if name == "relu":
            return np.maximum(args[0], 0)
        if name == "Heaviside":
            return np.heaviside(args[0], 0.0)
    raise RnnsymError(f"verify cannot evaluate {type(expr).__name__} in a vector network's local derivatives yet")


def _column(value: np.ndarray, count: int) -> np.ndarray:
    """(count, ...) as (count, rows, columns): a vector as a column, a number as 1×1."""
    value = np.asarray(value, dtype=float)
    if value.ndim == 1:
        return value.reshape(count, 1, 1)
    if value.ndim == 2:
        return value[:, :, None]
    return value


def _carried(f: np.ndarray, d: np.ndarray) -> np.ndarray:
    """diag(f)·δ, the value a share carries: elementwise."""
    return f * d


def _scalar(a: np.ndarray) -> bool:
    return a.shape[-2:] == (1, 1)


def _broadcast(a: np.ndarray, shape: tuple) -> np.ndarray:
    """A number (``dL/dW = 0``) where a vector or matrix belongs: the same number in every entry."""
    return np.broadcast_to(a, shape) if _scalar(a) and len(shape) == 3 and a.shape[0] == shape[0] else a


def _add(a: np.ndarray, b: np.ndarray, tree) -> np.ndarray:
    if a.shape == b.shape or _scalar(a) or _scalar(b):
        return a + b
    raise _Shape(f"{_tree_text(tree[1])} ({_dims(a)}) and {_tree_text(tree[2])} ({_dims(b)}) are added but have "
                 "different shapes")


def _dims(a: np.ndarray) -> str:
    return f"{a.shape[-2]}×{a.shape[-1]}"


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _sub(name: str) -> str:
    """h2 as the derivation writes it, h₂ (a trailing step number as a subscript)."""
    m = re.fullmatch(r"(.*?[A-Za-z_])(\d+)", name)
    return m.group(1) + m.group(2).translate(_SUBSCRIPTS) if m else name


def _step(name: str) -> int | None:
    m = re.fullmatch(r"(.*?[A-Za-z_])(\d+)", name)
    return int(m.group(2)) if m else None


def _tree_text(tree: tuple) -> str:
    kind = tree[0]
    if kind == "num":
        return f"{tree[1]:g}"
    if kind in ("node", "delta"):
        return ("δ" if kind == "delta" else "") + _sub(tree[1])
    if kind == "at":
        offset = "t" if tree[2] == 0 else f"(t{tree[2]:+d})"
        return ("δ" if tree[3] else "") + f"{tree[1]}_{offset}"
    if kind == "T":
        return _tree_text(tree[1]) + "ᵀ"
    if kind == "diag":
        return f"diag({_tree_text(tree[1])})"
    if kind == "sum_t":
        return f"Σ_t ({_tree_text(tree[1])})"
    if kind == "neg":
        return f"−{_tree_text(tree[1])}"
    if kind == "pow":
        return f"{_tree_text(tree[1])}^{tree[2]}"
    if kind == "fn":
        return f"{tree[1]}({_tree_text(tree[2])})"
    symbol = {"add": " + ", "sub": " − ", "mul": "·", "had": " ⊙ ", "div": "/"}[kind]
    return f"({_tree_text(tree[1])}{symbol}{_tree_text(tree[2])})"


class _Symbolic:
    """The formula and the rule table's shares component by component, each node's and each δ's
    components a symbol (h3 = (h3_0, h3_1)), expanded and compared: a confirmation of a right
    formula, tried where the matrices are small (None past that, or where a step's δ is pruned)."""

    MAX_ENTRIES = 64

    def __init__(self, check: "_VectorCheck"):
        self.check, self.graph = check, check.graph

    def equal(self) -> bool | None:
        check = self.check
        if any(np.prod(v.shape[1:]) > self.MAX_ENTRIES for v in check.values.values()):
            return None
        try:
            mine = self._eval(check.formula.rhs, None)
            truth = sp.zeros(*check._truth().shape[1:])
            for share in check.shares:
                truth += self._share(share)
        except (_Absent, _Shape, KeyError, RnnsymError):
            return None
        if mine.shape == (1, 1) and truth.shape != (1, 1):
            mine = sp.ones(*truth.shape) * mine[0, 0]
        if mine.shape != truth.shape:
            return None
        if any(_expansion_size(e) > MAX_EXPANSION for e in (mine - truth)):
            return None
        return all(sp.expand(e) == 0 or sp.cancel(sp.together(e)) == 0 for e in (mine - truth)) or None

    def _value(self, name: str, delta: bool = False) -> sp.Matrix:
        shape = self.check.values[name].shape[1:] if not delta else self.check.deltas[name].shape[1:]
        if name == self.graph.loss.name and delta:
            return sp.Matrix([[1]])
        prefix = f"δ{name}" if delta else name
        if shape == (1, 1) and not delta and self.graph[name].kind in ("target",):
            return sp.Matrix([[sp.Symbol(prefix)]])
        return sp.Matrix(shape[0], shape[1], lambda i, j: sp.Symbol(f"{prefix}_{i}_{j}" if shape[1] > 1
                                                                     else f"{prefix}_{i}"))

    def _share(self, share) -> sp.Matrix:
        from ..engine.rules import TermKind

        term = share.term
        f = self._sympy(term.factor)
        d = self._value(share.child, delta=True)
        carried = _elementwise(f, d)
        if share.kind == TermKind.THROUGH_MATRIX:
            return self._value(term.matrix.name).T * carried
        if share.kind == TermKind.WEIGHT and term.outer is not None:
            return carried * self._value(term.outer.name).T
        if share.kind == TermKind.SUMMED:
            return sp.Matrix([[sum(carried)]])
        return carried

    def _sympy(self, expr) -> sp.Matrix:
        expr = sp.sympify(expr)
        if expr.is_Symbol:
            return self._value(expr.name)
        if expr.is_Number:
            return sp.Matrix([[expr]])
        args = [self._sympy(a) for a in expr.args]
        if expr.is_Add:
            out = args[0]
            for a in args[1:]:
                out = _combine(out, a, lambda x, y: x + y)
            return out
        if expr.is_Mul:
            out = args[0]
            for a in args[1:]:
                out = _elementwise(out, a)
            return out
        if expr.is_Pow:
            return _combine(args[0], args[1], lambda x, y: x ** y)
        if type(expr).__name__ == "MatVec":
            return args[0] * args[1]
        if len(args) == 1:
            return args[0].applyfunc(expr.func)
        raise RnnsymError(f"no symbolic form for {type(expr).__name__}")

    def _eval(self, tree: tuple, t: int | None) -> sp.Matrix:
        kind = tree[0]
        if kind == "num":
            return sp.Matrix([[sp.Rational(repr(tree[1])) if tree[1] != int(tree[1]) else sp.Integer(int(tree[1]))]])
        if kind in ("node", "delta"):
            return self._named(tree[1], kind == "delta")
        if kind == "at":
            name = f"{tree[1]}{t + tree[2]}"
            if name not in self.graph or (tree[3] and self.graph[name].kind not in ("hidden", "output")):
                raise _Absent(name)
            return self._named(name, tree[3])
        if kind == "sum_t":
            total = None
            for step in range(0, self.check.network.steps + 2):
                try:
                    value = self._eval(tree[1], step)
                except _Absent:
                    continue
                total = value if total is None else _combine(total, value, lambda x, y: x + y)
            return total
        if kind == "T":
            return self._eval(tree[1], t).T
        if kind == "diag":
            v = self._eval(tree[1], t)
            return sp.diag(*list(v))
        if kind == "neg":
            return -self._eval(tree[1], t)
        if kind == "pow":
            return self._eval(tree[1], t).applyfunc(lambda x: x ** tree[2])
        if kind == "fn":
            func = {"tanh": sp.tanh, "sigmoid": functions.sigmoid, "relu": functions.relu, "exp": sp.exp,
                    "log": sp.log}[tree[1]]
            return self._eval(tree[2], t).applyfunc(func)
        a, b = self._eval(tree[1], t), self._eval(tree[2], t)
        if kind == "add":
            return _combine(a, b, lambda x, y: x + y)
        if kind == "sub":
            return _combine(a, b, lambda x, y: x - y)
        if kind == "had":
            return _elementwise(a, b)
        if kind == "div":
            return _combine(a, b, lambda x, y: x / y)
        if a.shape == (1, 1) or b.shape == (1, 1):
            return _elementwise(a, b)
        if a.shape[1] == b.shape[0]:
            return a * b
        return _elementwise(a, b)

    def _named(self, name: str, delta: bool) -> sp.Matrix:
        if delta and name not in self.check.deltas:
            raise _Absent(name)  # a pruned δ: the numeric check has decided
        return self._value(name, delta)


def _combine(a: sp.Matrix, b: sp.Matrix, op) -> sp.Matrix:
    """Elementwise ``op`` with a 1×1 broadcast, as the numeric evaluation does."""
    if a.shape == (1, 1) and b.shape != (1, 1):
        a = sp.ones(*b.shape) * a[0, 0]
    if b.shape == (1, 1) and a.shape != (1, 1):
        b = sp.ones(*a.shape) * b[0, 0]
    return sp.Matrix(a.shape[0], a.shape[1], lambda i, j: op(a[i, j], b[i, j]))


def _elementwise(a: sp.Matrix, b: sp.Matrix) -> sp.Matrix:
    return _combine(a, b, lambda x, y: x * y)
