"""The layers' types: node kinds and parameter roles are enums set by the constructors (never
guessed from a name), and a network's recurrence is a declared field."""
import pytest
import sympy as sp

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.graph import Graph, NodeKind, ParamRole
from rnnsym.network import Network, Recurrence

R = ParamRole


# ---- node kinds ---------------------------------------------------------------------------------
def test_graph_add_refuses_an_unknown_node_kind_naming_the_allowed_ones():
    graph = Graph()
    with pytest.raises(RnnsymError, match=r"unknown node kind 'hiden'; allowed: input, param, .*loss_term, loss"):
        graph.add("h1", "hiden")


def test_node_kinds_are_enum_members_that_still_read_and_compare_as_their_text():
    net = rs.seed_rnn(steps=2)
    node = net.graph["o1"]
    assert node.kind is NodeKind.HIDDEN
    assert node.kind == "hidden" and node.kind in ("hidden", "output")
    assert f"{node.kind}" == "hidden" and str(node.kind) == "hidden"
    assert [n.name for n in net.graph.of_kind(NodeKind.PARAM)] == list(net.param_names)


def test_only_a_parameter_takes_a_parameter_role():
    graph = Graph()
    with pytest.raises(RnnsymError, match="node 'x1' is of kind input, not a parameter: it takes no param_role"):
        graph.add("x1", "input", param_role=R.BIAS)
    graph.add("a", "param")
    assert graph["a"].param_role is R.CELL_PARAMETER  # the neutral role when none is given
    with pytest.raises(RnnsymError, match="unknown parameter role 'biass'; allowed: 'input weight', "):
        graph.add("c", "param", param_role="biass")


# ---- parameter roles, set by every constructor ----------------------------------------------------
SEED_ROLES = {"w": R.INPUT_WEIGHT, "w0": R.RECURRENT_WEIGHT, "w1": R.RECURRENT_WEIGHT, "w2": R.READOUT_WEIGHT,
              "b1": R.BIAS, "b2": R.BIAS, "b3": R.READOUT_BIAS}


@pytest.mark.parametrize("make, roles", [
    (lambda: rs.seed_rnn(steps=2), SEED_ROLES),
    (lambda: rs.seed_rnn(steps=1, shared_bias=True),
     {"w": R.INPUT_WEIGHT, "w0": R.RECURRENT_WEIGHT, "w1": R.READOUT_WEIGHT, "b": R.BIAS, "b2": R.READOUT_BIAS}),
    (lambda: rs.elman_rnn(steps=2, hidden_size=2, outputs="all", bidirectional=True),
     {"W_ih": R.INPUT_WEIGHT, "W_hh": R.RECURRENT_WEIGHT, "b_ih": R.BIAS, "b_hh": R.BIAS,
      "W_ih_reverse": R.INPUT_WEIGHT, "W_hh_reverse": R.RECURRENT_WEIGHT, "b_ih_reverse": R.BIAS,
      "b_hh_reverse": R.BIAS, "W_hy": R.READOUT_WEIGHT, "W_hy_reverse": R.READOUT_WEIGHT, "b_y": R.READOUT_BIAS}),
    (lambda: rs.lstm(steps=2), {**{f"W_i{g}": R.INPUT_WEIGHT for g in "ifgo"},
                                **{f"W_h{g}": R.RECURRENT_WEIGHT for g in "ifgo"},
                                **{f"b_{s}{g}": R.BIAS for s in "ih" for g in "ifgo"},
                                "W_hy": R.READOUT_WEIGHT, "b_y": R.READOUT_BIAS}),
    (lambda: rs.gru(steps=2), {**{f"W_i{g}": R.INPUT_WEIGHT for g in "rzn"},
                               **{f"W_h{g}": R.RECURRENT_WEIGHT for g in "rzn"},
                               **{f"b_{s}{g}": R.BIAS for s in "ih" for g in "rzn"},
                               "W_hy": R.READOUT_WEIGHT, "b_y": R.READOUT_BIAS}),
], ids=["seed", "seed-shared-bias", "elman-bidirectional", "lstm", "gru"])
def test_every_built_in_parameter_has_its_role(make, roles):
    net = make()
    assert {n: net.graph[n].param_role for n in net.param_names} == roles


def test_the_role_text_people_read_is_unchanged():
    net = rs.seed_rnn(steps=2)
    assert net.graph["w0"].role == "recurrent weight carrying o0 into layer 1"
    assert rs.lstm(steps=1).graph["W_hf"].role == "hidden-to-hidden (recurrent) weight, forget gate"


def _beta_cell(**extra):
    h, x, a, u, beta, b = sp.symbols("h x a u beta b")
    return rs.Cell(state=h, input=x, update=sp.tanh(a * x + u * h + beta + b), params=[a, u, beta, b], **extra)


def test_a_user_cell_parameter_is_a_cell_parameter_whatever_its_name():
    net = rs.unroll(_beta_cell(), steps=2)
    roles = {n: net.graph[n].param_role for n in net.param_names}
    assert roles == {"a": R.CELL_PARAMETER, "u": R.CELL_PARAMETER, "beta": R.CELL_PARAMETER,
                     "b": R.CELL_PARAMETER, "W_hy": R.READOUT_WEIGHT, "b_y": R.READOUT_BIAS}


def test_a_user_cell_declares_roles_by_enum_or_text():
    h, x, a, u, beta, b = sp.symbols("h x a u beta b")
    net = rs.unroll(_beta_cell(roles={u: R.RECURRENT_WEIGHT, b: "bias"}), steps=2)
    assert net.graph["u"].param_role is R.RECURRENT_WEIGHT and net.graph["b"].param_role is R.BIAS
    assert net.graph["beta"].param_role is R.CELL_PARAMETER


@pytest.mark.parametrize("roles, message", [
    ({sp.Symbol("h"): "bias"}, r"roles names h, which is not a parameter of the cell; parameters: a, u, beta, b"),
    ({sp.Symbol("b"): "readout bias"}, r"b cannot have role 'readout bias': the readout W_hy, b_y is added by unroll"),
    ({sp.Symbol("b"): "offset"}, r"unknown parameter role 'offset'; allowed: 'input weight', 'recurrent weight'"),
])
def test_a_bad_cell_role_is_a_one_line_error(roles, message):
    with pytest.raises(RnnsymError, match=message):
        _beta_cell(roles=roles)


# ---- the recurrence is a field ----------------------------------------------------------------
def test_recurrence_is_a_declared_field_none_for_the_seed_network():
    assert rs.seed_rnn(steps=2).recurrence is None
    assert Network(Graph(), name="bare", steps=1, options={}, title="a bare network").recurrence is None
    assert rs.lstm(steps=2).recurrence == Recurrence(("h", "c"), ("i", "f", "g", "o"), "x",
                                                     tuple(rs.lstm(steps=1).param_names[:-2]))


# ---- layers: the core never imports the presentation side -------------------------------------------
LOWER = ["rnnsym.graph", "rnnsym.functions", "rnnsym.records", "rnnsym.engine", "rnnsym.engine.local",
         "rnnsym.engine.paths", "rnnsym.engine.truncation", "rnnsym.engine.rules", "rnnsym.derivation",
         "rnnsym.network", "rnnsym.networks", "rnnsym.numeric", "rnnsym.numeric.emit", "rnnsym.numeric.lines", "rnnsym.program", "rnnsym.program.build", "rnnsym.program.passes", "rnnsym.program.ir", "rnnsym.program.step", "rnnsym.numeric.loop",
         "rnnsym.numeric.compiled", "rnnsym.numeric.gradcheck", "rnnsym.display", "rnnsym.program.memory",
         "rnnsym.backends", "rnnsym.backends.scan", "rnnsym.backends.scan_backward", "rnnsym.backends.printer",
         "rnnsym.backends.compiled",
         "rnnsym.backends.runtimes"]
PRESENTATION = ("rnnsym.printing", "rnnsym.docs", "rnnsym.training", "rnnsym.cli", "rnnsym.flow")

# rnnsym/__init__.py imports everything for users, so the package is stood in for by a bare module
# with the same __path__: only what ``module`` itself imports is loaded.
PROBE = """
import importlib, importlib.util, json, sys, types
package = types.ModuleType("rnnsym")
package.__path__ = list(importlib.util.find_spec("rnnsym").submodule_search_locations)  # found, not run
sys.modules["rnnsym"] = package
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(n for n in sys.modules if n.startswith(tuple(sys.argv[2].split(","))))))
"""


@pytest.mark.parametrize("module", LOWER)
def test_a_lower_layer_module_imports_no_printer_docs_or_training(module):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PROBE, module, ",".join(PRESENTATION)],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_probe_sees_a_presentation_import():
    # The probe above can fail: a printer module is found when it is imported.
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PROBE, "rnnsym.printing.text", ",".join(PRESENTATION)],
                         capture_output=True, text=True, check=True)
    assert "rnnsym.printing.text" in json.loads(out.stdout)


def test_notebook_display_goes_through_the_one_display_hook():
    from rnnsym.derivation import Derivation
    from rnnsym.display import Displayable, render

    assert issubclass(Network, Displayable) and issubclass(Derivation, Displayable)
    for cls in (Network, Derivation):  # no class defines its own notebook hooks
        assert not {"_repr_html_", "_repr_svg_", "_repr_latex_"} & set(vars(cls))
    net = rs.seed_rnn(steps=2)
    d = net.derive("w1")
    assert net._repr_svg_().startswith("<svg") and "<" in net._repr_html_() and net._repr_latex_() is None
    assert d._repr_latex_() == "$\\displaystyle " + d.latex() + "$" and d._repr_svg_() is None
    assert d._repr_html_() == render(d, "html") and d.text() == render(d, "text")
    with pytest.raises(RnnsymError, match="no 'svg' rendering for a Derivation; it has: data, html, latex, "):
        render(d, "svg")


CORE = ["graph.py", "functions.py", "records.py", "derivation.py", "network.py", "errors.py", "progress.py",
        "display.py", "engine", "numeric", "networks", "program", "backends"]


def _imports(path):
    """Every rnnsym module ``path`` imports, at module level or inside a function, resolved."""
    import ast
    from pathlib import Path

    package = path.parent.relative_to(RNNSYM.parent).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - (node.level - 1)]) if node.level else []
            found.add(".".join(base + ([node.module] if node.module else [])))
            found.update(".".join(base + [a.name]) for a in node.names if not node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {name for name in found if name.startswith("rnnsym")}


RNNSYM = __import__("pathlib").Path(rs.__file__).parent


@pytest.mark.parametrize("part", CORE)
def test_the_core_never_reaches_up_even_inside_a_function(part):
    # Stronger than the fresh-interpreter probe: a lazy import inside a method is a cycle too
    # (derivation -> printing/html -> docs/svg -> derivation; network -> flow -> networks -> network).
    paths = [RNNSYM / part] if part.endswith(".py") else sorted((RNNSYM / part).rglob("*.py"))
    upward = {str(p.relative_to(RNNSYM)): sorted(n for n in _imports(p) if n.startswith(PRESENTATION))
              for p in paths}
    assert {p: names for p, names in upward.items() if names} == {}


def test_numeric_has_no_function_over_60_lines_and_no_class_over_200():
    # The one-backward-program issue's size target for the emitters, kept.
    import ast
    from pathlib import Path

    numeric = Path(__file__).resolve().parents[1] / "rnnsym" / "numeric"
    too_long = []
    for path in sorted(numeric.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            lines = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if (isinstance(node, ast.ClassDef) and lines > 200) or (isinstance(node, ast.FunctionDef) and lines > 60):
                too_long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not too_long, too_long
