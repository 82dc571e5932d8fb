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
    if not network.is_scalar:
        raise RnnsymError(
            f"verify checks formulas for scalar networks (the seed network, scalar cells); this {network.name} "
            "network has vector or matrix nodes, whose δ equations it does not read yet — see them with "
            "'rnnsym derive'")
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
