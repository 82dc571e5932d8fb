"""Long sequences: a derivation works out and prints only what its target needs, and elides the
middle of a long recursive view unless asked for all of it."""
import itertools

import pytest
import sympy as sp
from click.testing import CliRunner

import rnnsym as rs
from rnnsym import functions
from rnnsym.cli.main import main
from rnnsym.engine.paths import _has_denominator, enumerate_paths, path_term
from rnnsym.records import Elided


def _recursive(d):
    (step,) = [s for s in d.steps if s.kind == "recursive"]
    return step


@pytest.fixture(scope="module")
def seed1000():
    return rs.seed_rnn(steps=1000)


def test_the_recursive_view_of_w3_at_T_1000_has_a_screenful_of_records_not_one_per_step(seed1000):
    d = seed1000.derive("w3")
    equations = _recursive(d).equations
    assert len(equations) == 4 + 1 + 3 + 1  # first four, the gap, last three, dL/dw3
    (gap,) = [eq for eq in equations if isinstance(eq.lhs, Elided)]
    assert gap.lhs == Elided(991, rs.records.Delta("o997"), rs.records.Delta("o7"))
    assert d.elided


def test_the_elided_view_prints_its_ends_and_how_many_equations_it_leaves_out(seed1000):
    text = seed1000.derive("w3").text()
    start = text.index("Recursive view")
    assert text[start:text.index("    Note", start)] == (
        "Recursive view (what the compiled code runs)\n"
        "    δo₁₀₀₁ = (1 − Y)/(1 − o₁₀₀₁) − Y/o₁₀₀₁\n"
        "    δo₁₀₀₀ = δo₁₀₀₁·o₁₀₀₁·w₁₀₀₀·(1 − o₁₀₀₁)\n"
        "    δo₉₉₉ = δo₁₀₀₀·w₉₉₉·(1 − o₁₀₀₀²)\n"
        "    δo₉₉₈ = δo₉₉₉·w₉₉₈·(1 − o₉₉₉²)\n"
        "    δo₉₉₇ … δo₇    (991 equations of the same form not shown; --full or full=True lists them)\n"
        "    δo₆ = δo₇·w₆·(1 − o₇²)\n"
        "    δo₅ = δo₆·w₅·(1 − o₆²)\n"
        "    δo₄ = δo₅·w₄·(1 − o₅²)\n"
        "    dL/dw₃ = δo₄·o₃·(1 − o₄²)\n")
    assert text.endswith("Result: dL/dw₃ = (o₁₀₀₁ − Y)·w₁₀₀₀·w₉₉₉·(1 − o₁₀₀₀²)" + text.split("w₉₉₉·(1 − o₁₀₀₀²)")[-1])


def test_a_derivation_works_out_only_the_local_jacobians_it_shows():
    net = rs.seed_rnn(steps=1000)
    net.derive("w3")
    assert len(net.__dict__.get("_jacobians", {})) < 12  # one per equation shown, not one per step


def test_full_lists_every_equation_and_agrees_with_the_elided_ends():
    net = rs.seed_rnn(steps=60)
    d = net.derive("w3")
    full = d.full()
    shown, every = _recursive(d).equations, _recursive(full).equations
    assert len(every) == 59 and not full.elided and full.full() is full
    assert shown[:4] == every[:4] and shown[-4:] == every[-4:]
    assert d.recursive == every  # the attribute has every equation, worked out when asked for
    text = d.text(full=True)
    assert sum(line.startswith("    δo") for line in text.splitlines()) == 58
    assert "not shown" not in text and "not shown" in d.text()


def test_a_shared_weight_at_T_300_elides_both_the_view_and_the_sum_of_its_shares():
    d = rs.seed_rnn(steps=300).derive("w")
    assert d.steps[0].kind == "path_count"  # 45,750 factors: past the path view's limit
    total = _recursive(d).equations[-1]
    assert len(total.rhs[0].terms) == 3 + 1 + 2
    assert d.text().count("\n") < 30
    assert ("dL/dw = δo₁·x₁·(1 − o₁²) + δo₂·x₂·(1 − o₂²) + δo₃·x₃·(1 − o₃²) + "
            "… (295 terms not shown: δo₄ … δo₂₉₈) … + δo₂₉₉·x₂₉₉·(1 − o₂₉₉²) + δo₃₀₀·x₃₀₀·(1 − o₃₀₀²)") in d.text()


def test_one_long_path_past_the_factor_limit_is_too_long_to_list_not_too_many():
    d = rs.seed_rnn(steps=10100).derive("w3")
    assert d.path_count == 1 and d.steps[0].title == "1 chain-rule path of 10099 factors in all: too long to list"
    with pytest.raises(rs.RnnsymError, match="^1 chain-rule path lead"):
        d.paths


@pytest.mark.parametrize("fmt", ["latex", "mathml", "markdown"])
def test_every_format_elides_with_a_count_and_full_shows_all(fmt):
    d = rs.seed_rnn(steps=30).derive("w3")
    short, full = (getattr(d, fmt)(**kw).replace("&#x000A0;", " ") for kw in ({}, {"full": True}))
    assert "21 equations of the same form not shown" in short and "not shown" not in full
    assert len(full) > len(short)


def test_a_vector_networks_component_view_keeps_the_gap():
    d = rs.elman_rnn(steps=30, hidden_size=2).derive("W_hh")
    kinds = {s.kind: s for s in d.steps}
    for kind in ("recursive", "components"):
        gaps = [eq for eq in kinds[kind].equations if isinstance(eq.lhs, Elided)]
        assert len(gaps) == 1 and gaps[0].lhs.count == 24
        sums = [eq.rhs[0] for eq in kinds[kind].equations if eq.rhs and isinstance(eq.rhs[0], rs.records.Sum)]
        assert any(isinstance(t, Elided) and t.count == 25 for s in sums for t in s.terms)
    assert "not shown" in d.text() and "not shown" not in d.text(full=True)


def test_derive_full_on_the_command_line_and_no_progress_bar_off_a_terminal():
    runner = CliRunner()
    short = runner.invoke(main, ["derive", "w3", "--steps", "200"])
    full = runner.invoke(main, ["derive", "w3", "--steps", "200", "--full"])
    assert short.exit_code == 0 and full.exit_code == 0, short.output + full.output
    assert "(191 equations of the same form not shown; --full or full=True lists them)" in short.stdout
    assert "    δo₁₀₀ = δo₁₀₁·w₁₀₀·(1 − o₁₀₁²)" in full.stdout and "not shown" not in full.stdout
    assert short.stderr == "" and full.stderr == ""


def test_the_loss_derived_by_itself_is_1_in_every_view():
    d = rs.seed_rnn(steps=3).derive("L")
    assert d.recursive == (rs.records.Equation(rs.records.Total("L", "L"), (sp.S.One,)),)
    text = d.text()
    assert "= 0" not in text and text.endswith("Result: dL/dL = 1")
    assert [s.kind for s in d.steps if not s.equations] == []  # no empty "nodes" or "factors" step


def _folded(graph, path, local):
    """A path's product formed one factor at a time, as path_term did before it deferred them."""
    product, fractional = sp.S.One, False
    for factor in (local(graph, a, b) for a, b in zip(path, path[1:])):
        candidate = product * factor
        if fractional or _has_denominator(factor):
            cancelled = sp.factor(sp.cancel(candidate))
            candidate = cancelled if sp.count_ops(cancelled) <= sp.count_ops(candidate) else candidate
            fractional = _has_denominator(candidate)
        product = candidate
    return product


def test_path_terms_multiplied_at_once_are_exactly_those_multiplied_one_factor_at_a_time():
    h, x, a, u = sp.symbols("h x a u")
    networks = [rs.seed_rnn(steps=4, activation=f, output_activation=g, loss=loss)
                for f, g, loss in itertools.product(["tanh", "relu", "identity"], ["sigmoid", "identity"],
                                                    ["bce", "mse"])
                if not (loss == "bce" and g == "identity")]
    networks.append(rs.unroll(rs.Cell(state=h, input=x, params=[a, u], update=a * x + u * h * h / 2),
                              steps=3, outputs="all", loss="mse"))
    for net in networks:
        for name in net.graph.nodes:
            prefixes = {}
            for path in enumerate_paths(net.graph, name):
                ours = path_term(net.graph, path, local=net._local, prefixes=prefixes).simplified
                assert sp.srepr(ours) == sp.srepr(_folded(net.graph, path, net._local)), path


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "identity"])
def test_seed_layers_built_without_evaluation_are_the_evaluated_expressions(activation):
    net = rs.seed_rnn(steps=12, activation=activation, shared_bias=activation == "relu")
    f, s = functions.activation(activation), sp.Symbol
    for t in range(1, 13):
        bias = s("b") if activation == "relu" else s(f"b{t}")
        expected = f(s("w") * s(f"x{t}") + s(f"w{t - 1}") * s(f"o{t - 1}") + bias)
        assert sp.srepr(net.graph[f"o{t}"].expr) == sp.srepr(expected)
