"""Derivations against the article's formulas and against SymPy's own diff of the nested loss."""
import random

import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.records import Partial, as_expr

o1, o2, o3, o4, o5, Y = sp.symbols("o1 o2 o3 o4 o5 Y")
w, w1, w2, w3, w4, x1, x2, x3, x4 = sp.symbols("w w1 w2 w3 w4 x1 x2 x3 x4")

# The article's formulas (T = 4), as node paths, loss first.
ARTICLE_PATHS = [
    ("w4", [("L", "o5", "w4")]),  # dL/dw4 = (dL/do5)(do5/dw4)
    ("w3", [("L", "o5", "o4", "w3")]),  # dL/dw3 = (dL/do5)(do5/do4)(do4/dw3)
    ("w2", [("L", "o5", "o4", "o3", "w2")]),  # dL/dw2 = (dL/do5)(do5/do4)(do4/do3)(do3/dw2)
    ("w", [  # the shared w: through layer 4, then layer 3, and so on
        ("L", "o5", "o4", "w"),
        ("L", "o5", "o4", "o3", "w"),
        ("L", "o5", "o4", "o3", "o2", "w"),
        ("L", "o5", "o4", "o3", "o2", "o1", "w"),
    ]),
]


@pytest.mark.parametrize("param,paths", ARTICLE_PATHS)
def test_article_formulas_as_paths(seed4, param, paths):
    assert seed4.derive(param).paths == paths


@pytest.mark.parametrize("param,paths", ARTICLE_PATHS)
def test_article_formulas_as_factor_products(seed4, param, paths):
    d = seed4.derive(param)
    for path, term in zip(paths, d.terms):
        product = sp.Mul(*[seed4.local(a, b) for a, b in zip(path, path[1:])])
        assert sp.simplify(term - product) == 0
    chain = d.steps[0]
    assert chain.kind == "chain_rule"
    written = [eq.lhs.partials for eq in chain.equations[1:]] or [chain.equations[0].rhs[0].partials]
    assert written == [tuple(Partial(a, b) for a, b in zip(p, p[1:])) for p in paths]


# The simplified terms, written out by hand: sigmoid with BCE leaves o5 - Y.
SIMPLIFIED = [
    ("w4", [(o5 - Y) * o4]),
    ("w3", [(o5 - Y) * w4 * (1 - o4**2) * o3]),
    ("b5", [o5 - Y]),
    ("w", [
        (o5 - Y) * w4 * (1 - o4**2) * x4,
        (o5 - Y) * w4 * (1 - o4**2) * w3 * (1 - o3**2) * x3,
        (o5 - Y) * w4 * (1 - o4**2) * w3 * (1 - o3**2) * w2 * (1 - o2**2) * x2,
        (o5 - Y) * w4 * (1 - o4**2) * w3 * (1 - o3**2) * w2 * (1 - o2**2) * w1 * (1 - o1**2) * x1,
    ]),
    ("o2", [(o5 - Y) * w4 * (1 - o4**2) * w3 * (1 - o3**2) * w2]),
    ("x2", [(o5 - Y) * w4 * (1 - o4**2) * w3 * (1 - o3**2) * w2 * (1 - o2**2) * w]),
]


@pytest.mark.parametrize("name,terms", SIMPLIFIED)
def test_terms_simplify_to_hand_written_forms(seed4, name, terms):
    d = seed4.derive(name)
    assert len(d.terms) == len(terms)
    for ours, expected in zip(d.terms, terms):
        assert sp.expand(ours - expected) == 0


def test_shared_weight_total_is_the_sum_of_its_terms(seed4):
    d = seed4.derive("w")
    assert d.expr == sp.Add(*d.terms)
    total = [s for s in d.steps if s.kind == "total"]
    assert len(total) == 1 and "not any single one" in d.steps[0].note
    assert [as_expr(t) for t in total[0].equations[0].rhs[0].terms] == d.terms
    assert "sum" in total[0].title


def test_w0_is_zero_because_o0_is_zero(seed4):
    d = seed4.derive("w0")
    assert d.expr == 0 and d.expanded == 0
    (zero,) = [s for s in d.steps if s.kind == "zero"]
    assert "o0 = 0" in zero.note
    (eq,) = zero.equations
    assert eq.lhs == Partial("o1", "w0") and eq.rhs[-1] == 0
    assert "o₀ = 0" in d.text()  # prose names are written as the equations write them


def test_steps_and_result_come_from_one_computation(seed4):
    for name in seed4.param_names + ("o2", "x2"):
        d = seed4.derive(name)
        path_terms = [s for s in d.steps if s.kind == "path_terms"][0]
        finals = [as_expr(eq.rhs[-1]) for eq in path_terms.equations]
        assert sp.Add(*finals) == d.expr
        expanded = [s for s in d.steps if s.kind == "expanded"][0]
        assert expanded.equations[0].rhs[0] == d.expanded


def test_update_rule_for_parameters_only(seed4):
    assert seed4.derive("w3").steps[-1].kind == "update"
    assert all(s.kind != "update" for s in seed4.derive("o2").steps)


def _nested_loss(T: int):
    """The fully nested loss, built independently with sigmoid written through exp."""
    ws = sp.symbols(f"w0:{T + 1}")
    bs = sp.symbols(f"b1:{T + 2}")
    xs = sp.symbols(f"x1:{T + 1}")
    wx, target = sp.Symbol("w"), sp.Symbol("Y")
    o = sp.Integer(0)
    for t in range(T):
        o = sp.tanh(wx * xs[t] + ws[t] * o + bs[t])
    out = 1 / (1 + sp.exp(-(ws[T] * o + bs[T])))
    return -(target * sp.log(out) + (1 - target) * sp.log(1 - out))


def test_expanded_matches_sympy_diff_of_the_nested_loss(seed4):
    loss = _nested_loss(4)
    rng = random.Random(7)
    for name in seed4.param_names:
        oracle = sp.diff(loss, sp.Symbol(name))
        ours = seed4.derive(name).expanded
        for _ in range(3):
            point = {s: rng.uniform(-1, 1) for s in seed4.params + seed4.inputs}
            point[seed4.target] = rng.choice([0, 1])
            a = float(ours.subs(point).evalf())
            b = float(oracle.subs(point).evalf())
            assert a == pytest.approx(b, rel=1e-10, abs=1e-12), name


def test_derives_at_T_100_without_the_nested_expression():
    # Differentiating the nested loss dies with RecursionError at T = 40; the node view does not.
    net = rs.seed_rnn(steps=100)
    d = net.derive("w")
    assert len(d.paths) == 100
    assert net.derive("w50").paths[0][-2:] == ("o51", "w50")
    assert sp.expand(d.terms[0] - (o5 - Y).subs(o5, sp.Symbol("o101")) * sp.Symbol("w100")
                     * (1 - sp.Symbol("o100") ** 2) * sp.Symbol("x100")) == 0


def test_path_limit_shows_the_count_and_the_recursive_view_instead():
    net = rs.seed_rnn(steps=10)
    d = net.derive("w", path_limit=5)
    assert d.path_count == 10
    assert d.steps[0].kind == "path_count" and "10 paths with 75 factors in all lead from the loss to w" in d.steps[0].note
    assert [s.kind for s in d.steps][1:] == ["recursive", "update"]
    with pytest.raises(rs.RnnsymError, match="10 chain-rule paths lead to 'w'.*recursive view"):
        d.paths
    assert len(d.recursive[-1].rhs[0].terms) == 10  # dL/dw = one share per step


def test_a_path_view_of_too_many_factors_is_refused_up_front():
    # T = 300: 300 paths (under the path limit); the one through layer k has 303 − k factors,
    # 45,750 in all.
    net = rs.seed_rnn(steps=300)
    d = net.derive("w")
    assert d.path_count == 300 and d.steps[0].kind == "path_count"
    assert "45750 factors" in d.steps[0].note
    with pytest.raises(rs.RnnsymError, match="use the recursive view"):
        rs.engine.enumerate_paths(net.graph, "w")


def test_recursive_view_of_the_seed_network(seed4):
    text = seed4.derive("w3").text()
    assert "    δo₄ = δo₅·o₅·w₄·(1 − o₅)" in text
    assert "    dL/dw₃ = δo₄·o₃·(1 − o₄²)" in text


def test_derivation_of_the_loss_itself_and_of_the_target(seed4):
    assert seed4.derive("L").expr == 1
    assert sp.simplify(seed4.derive("Y").expr - (sp.log(1 - o5) - sp.log(o5))) == 0


def test_edges_of_the_same_shape_are_differentiated_once_and_renamed_exactly(monkeypatch):
    from rnnsym.engine import local as local_module

    calls = []
    real = local_module.local_jacobian
    monkeypatch.setattr(local_module, "local_jacobian", lambda g, c, p: calls.append((c, p)) or real(g, c, p))
    net = rs.seed_rnn(steps=8)
    edges = [(c, p) for c in net.graph.nodes for p in net.graph.parents(c) if net.graph[c].expr is not None]
    for child, parent in edges:
        renamed = net.jacobian(child, parent)
        direct = real(net.graph, child, parent)
        assert [sp.simplify(a.factor - b.factor) for a, b in zip(renamed.terms, direct.terms)] == [0] * len(direct.terms)
        assert [(a.matrix, a.outer) for a in renamed.terms] == [(b.matrix, b.outer) for b in direct.terms]
    # Layers 2 … 8 share one shape (o1 reads the constant o0 = 0 as a symbol too): far fewer
    # differentiations than edges.
    assert len(calls) < len(edges) / 2, (len(calls), len(edges))
