"""Random user cells, every compiled form against central differences of an independent NumPy forward.

Hand-picked cells missed issue 11's defect A (the loop form dropped the adjoint through parameter-free
nodes). Here Hypothesis composes cells from the pieces a user may write (tests/cellgen.py): one or two
states, gates, tanh, σ, relu, exp, logs of positive things, powers, products, sin, cos, sinh, cosh, atan,
parameters used twice, parameter-free gates and delay lines, scalar and vector cells, outputs "last" and
"all", BCE and MSE, and Max, Min, Abs, sign, erf, Heaviside and Piecewise (which must work, or be refused
when the cell is built, in one line naming the function).
The oracle lambdifies the cell's own expressions step by step; it never runs rnnsym's compiled code.
The long run is benchmarks/fuzz_cells.py.
"""
import numpy as np
import sympy as sp
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import cellgen


# No shrinking phase: each example compiles two forms, and shrinking a failure ran past five minutes;
# the failure message carries a full reproducer, and benchmarks/fuzz_cells.py ranks failures by size.
@settings(max_examples=200, derandomize=True, deadline=None, database=None, phases=(Phase.generate,),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_every_compiled_form_of_a_random_cell_matches_central_differences(data):
    case = cellgen.draw_case(cellgen.HypothesisChooser(data), extended=True)
    outcome = cellgen.check_case(case)
    assume(outcome.status != "skipped")  # only draws whose loss is not finite
    assert outcome.status in ("ok", "refused"), (
        "\n".join(f"{kind}: {detail}" for kind, detail in outcome.failures)
        + "\n\nReproducer:\n" + cellgen.reproducer(case, outcome))


# ---- the oracle itself, on cells whose gradient is known in closed form ---------------------------
def _case(**changes):
    h, x, a = sp.symbols("h x a")
    fields = dict(states=(h,), updates=(sp.tanh(a * x),), input=x, gates={}, params=(a,), shapes={}, steps=1,
                  outputs="last", loss="mse", output_activation="identity", output_size=1, step_reduction="mean",
                  bidirectional=False, batch=1, seed=0)
    fields.update(changes)
    return cellgen.Case(**fields)


def test_the_oracle_gives_the_closed_form_gradient_of_a_one_step_cell():
    case = _case()
    params, X, Y = case.point()
    a, W, b = (float(params[k]) for k in ("a", "W_hy", "b_y"))
    x, y = X[0, 0], Y[0, 0]
    h = np.tanh(a * x)
    residual = 2 * (W * h + b - y)
    expected = {"a": residual * W * (1 - h**2) * x, "W_hy": residual * h, "b_y": residual}
    got = cellgen.Oracle(case).gradient(params, X, Y)
    for name, value in expected.items():
        assert abs(got[name] - value) <= 1e-9 * max(1, abs(value)), name


def test_the_oracle_notices_a_stencil_that_crosses_a_kink():
    # relu(a·x) with a·x a hair above 0: a step of 1e-4 in a would cross the kink, and the difference
    # quotient would be half the slope; the oracle shrinks its step and gets the slope.
    h, x, a = sp.symbols("h x a")
    case = _case(updates=(cellgen.relu(a * x),))
    params, X, Y = case.point()
    X[0, 0] = 1.0
    params["a"] = np.array(3e-5)
    got = cellgen.Oracle(case).gradient(params, X, Y)["a"]
    W, b, y = float(params["W_hy"]), float(params["b_y"]), Y[0, 0]
    assert abs(got - 2 * (W * 3e-5 + b - y) * W) <= 1e-6
