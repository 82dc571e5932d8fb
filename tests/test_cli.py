"""The command line, run as a user runs it: a subprocess, output and exit status."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest


def rnnsym(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rnnsym", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_derive_one_parameter_as_text():
    run = rnnsym("derive", "w3")
    assert run.returncode == 0, run.stderr
    assert "dL/dw₃ = (∂L/∂o₅)(∂o₅/∂o₄)(∂o₄/∂w₃)" in run.stdout
    assert "Result: dL/dw₃ = (o₅ − Y)·w₄·o₃·(1 − o₄²)" in run.stdout


def test_derive_everything_then_check():
    run = rnnsym("derive", "--check")
    assert run.returncode == 0, run.stderr
    for name in ("w", "w0", "w4", "b5"):
        assert f"Result: dL/d{name}".translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")) in run.stdout
    assert "OK: max relative error" in run.stdout


def test_derive_json_and_node_and_input():
    run = rnnsym("derive", "o2", "x2", "--steps", "3", "--format", "json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["network"]["steps"] == 3
    assert [d["target"] for d in data["derivations"]] == ["o2", "x2"]
    assert data["derivations"][1]["paths"] == [["L", "o4", "o3", "o2", "x2"]]


def test_derive_json_for_vector_networks_and_past_the_path_limit():
    # A vector network's gradient is a sum of Jacobian products; past the limit, the recursive view's.
    for args, count in ((["W_hh", "--net", "elman", "--hidden-size", "2", "--steps", "3"], 3),
                        (["W_ii", "--net", "lstm", "--hidden-size", "2", "--steps", "20"], 11209883884350)):
        run = rnnsym("derive", *args, "--format", "json")
        assert run.returncode == 0, run.stderr
        d = json.loads(run.stdout)["derivations"][0]
        assert d["path_count"] == count and d["expr_text"] and d["expr_latex"]
        assert (d["paths"] is None) == (count > 2000)


def test_derive_latex_mathml_markdown():
    latex = rnnsym("derive", "w4", "--format", "latex")
    assert latex.stdout.startswith(r"\begin{aligned}&\text{1. Chain rule along the only path} \\ "
                                   r"\frac{d L}{d w_{4}} &= \frac{\partial L}{\partial o_{5}}")
    mathml = rnnsym("derive", "w4", "--format", "mathml")
    ET.fromstring(mathml.stdout)
    md = rnnsym("derive", "w4", "--format", "markdown")
    assert md.stdout.startswith("# rnnsym derivations: the article's simple RNN") and "$$" in md.stdout


def test_derive_options_change_the_network():
    run = rnnsym("derive", "w2", "--steps", "2", "--activation", "relu", "--loss", "mse",
                 "--output-activation", "identity")
    assert run.returncode == 0, run.stderr
    assert "relu" in run.stdout and "Result: dL/dw₂ = 2·(o₃ − Y)·o₂" in run.stdout


def test_out_file_is_written(tmp_path):
    target = tmp_path / "sub" / "w3.md"
    run = rnnsym("derive", "w3", "--format", "markdown", "--out", str(target))
    assert run.returncode == 0, run.stderr
    assert target.read_text(encoding="utf-8").startswith("# rnnsym derivations")
    assert [p.name for p in target.parent.iterdir()] == ["w3.md"]  # no temporary file left


def test_check_table_and_json():
    run = rnnsym("check", "--steps", "5", "--activation", "sigmoid")
    assert run.returncode == 0, run.stderr
    assert "rel. error" in run.stdout and "OK" in run.stdout
    data = json.loads(rnnsym("check", "--format", "json").stdout)
    assert data["ok"] and len(data["rows"]) == 11


@pytest.mark.parametrize("args,message", [
    (["derive", "w9"], "rnnsym: error: unknown parameter, node or input 'w9'; parameters: w, w0, w1, w2, w3, w4, b1, b2, b3, b4, b5"),
    (["derive", "--steps", "0"], "Invalid value for '--steps'"),
    (["derive", "--steps", "abc"], "Invalid value for '--steps'"),
    (["derive", "--activation", "softsign"], "'softsign' is not one of 'tanh', 'sigmoid', 'relu', 'identity'"),
    (["derive", "--format", "pdf"], "'pdf' is not one of"),
    (["derive", "--loss", "bce", "--output-activation", "tanh"], "rnnsym: error: loss 'bce' needs outputs in (0, 1)"),
    (["check", "--tolerance", "-1"], "Invalid value for '--tolerance'"),
])
def test_bad_input_exits_2_with_one_clear_line(args, message):
    run = rnnsym(*args)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    run = rnnsym("derive", "w9", "--out", str(target))
    assert run.returncode == 2 and target.read_text() == "previous"


def test_help_for_every_command():
    for args in (["--help"], ["derive", "--help"], ["check", "--help"]):
        run = rnnsym(*args)
        assert run.returncode == 0 and "Usage:" in run.stdout


def test_derive_and_check_the_general_cells():
    run = rnnsym("derive", "W_hh", "--net", "elman", "--hidden-size", "2", "--input-size", "3", "--steps", "3")
    assert run.returncode == 0, run.stderr
    assert "dL/dW_hh = diag(1 − h₁²)·δh₁·h₀ᵀ + diag(1 − h₂²)·δh₂·h₁ᵀ + diag(1 − h₃²)·δh₃·h₂ᵀ" in run.stdout
    run = rnnsym("derive", "W_hf", "--net", "lstm", "--steps", "10", "--check")
    assert run.returncode == 0, run.stderr
    assert "chain-rule paths: too many to list" in run.stdout and "OK: max relative error" in run.stdout
    run = rnnsym("check", "--net", "gru", "--outputs", "all", "--hidden-size", "2", "--format", "json")
    assert run.returncode == 0 and json.loads(run.stdout)["ok"]
    run = rnnsym("check", "--net", "elman", "--truncate", "2", "--steps", "5")
    assert run.returncode == 0 and "truncated BPTT (k = 2) against the full gradient" in run.stdout


@pytest.mark.parametrize("args,message", [
    (["derive", "--net", "seed", "--hidden-size", "3"], "rnnsym: error: option hidden_size applies to the elman, lstm, gru, seq2seq network(s), not to seed"),
    (["check", "--net", "elman", "--hidden-size", "0"], "Invalid value for '--hidden-size'"),
    (["check", "--net", "elman", "--truncate", "0"], "Invalid value for '--truncate'"),
    (["check", "--net", "rnn"], "'rnn' is not one of 'seed', 'elman', 'lstm', 'gru'"),
    (["check", "--net", "elman", "--bidirectional", "--outputs", "all", "--truncate", "2"],
     "rnnsym: error: truncate is not supported with bidirectional=True"),
])
def test_bad_cell_options_exit_2(args, message):
    run = rnnsym(*args)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_a_user_cell_from_a_python_file(tmp_path):
    (tmp_path / "mycell.py").write_text(
        "import sympy as sp\nimport rnnsym as rs\n"
        "h, x, a, u = sp.symbols('h x a u')\n"
        "gated = rs.Cell(state=h, input=x, update=sp.tanh(a * x + u * h), params=[a, u])\n")
    run = rnnsym("derive", "u", "--cell", f"{tmp_path / 'mycell.py'}:gated", "--steps", "3", "--check")
    assert run.returncode == 0, run.stderr
    assert "dL/du" in run.stdout and "OK: max relative error" in run.stdout
    run = rnnsym("check", "--cell", f"{tmp_path / 'mycell.py'}:nothing")
    assert run.returncode == 2 and "'nothing' in" in run.stderr and "is not an rnnsym.Cell" in run.stderr
    run = rnnsym("check", "--cell", "missing.py:cell")
    assert run.returncode == 2 and "--cell file 'missing.py' does not exist" in run.stderr


ESCAPING_CELLS = (
    "import sympy as sp\nimport rnnsym as rs\n"
    "h, x, a, u = sp.symbols('h x a u')\n"
    "ESC = rs.Cell(state=h, input=x, params=[a, u], update=sp.tanh(a * x + u * h), name='../../escape')\n"
    "EMPTY = rs.Cell(state=h, input=x, params=[a, u], update=sp.tanh(a * x + u * h), name='')\n")


@pytest.mark.parametrize("cell, stem", [("ESC", "escape-T2"), ("EMPTY", "network-T2")])
def test_a_network_name_never_becomes_a_path(tmp_path, cell, stem):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "esc.py").write_text(ESCAPING_CELLS)
    run = rnnsym("docs", "--cell", f"esc.py:{cell}", "--format", "markdown", "--out", "md", "-T", "2", "--no-check",
                 cwd=work)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"wrote {work / 'md' / stem}.md\n"
    everything = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert [p for p in everything if not p.startswith("a/b/md/") and p not in ("a", "a/b", "a/b/md", "a/b/esc.py")] == []
    assert sorted(p.name for p in (work / "md").iterdir()) == [
        ".rnnsym-site", f"{stem}-W_hy.svg", f"{stem}-a.svg", f"{stem}-b_y.svg", f"{stem}-u.svg", f"{stem}.md",
        f"{stem}.svg"]


def test_rebuilding_a_site_keeps_the_files_rnnsym_did_not_write(tmp_path):
    site = tmp_path / "site"
    build = ["docs", "--format", "markdown", "--no-check", "--out", str(site)]
    assert rnnsym(*build, "-T", "2").returncode == 0
    (site / "notes.txt").write_text("my notes")
    (site / ".git").mkdir()
    (site / ".git" / "HEAD").write_text("ref")
    run = rnnsym(*build, "-T", "3")
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in site.iterdir())
    assert "notes.txt" in names and (site / ".git" / "HEAD").read_text() == "ref"
    assert "seed-T3.md" in names and "seed-T2.md" not in names  # the old site's own files are replaced
    # A file of the user's that the new site would overwrite: refused, and nothing changes, unless --force.
    (site / "seed-T4.md").write_text("mine")
    run = rnnsym(*build, "-T", "4")
    assert run.returncode == 2 and "holds 'seed-T4.md', not written by rnnsym" in run.stderr
    assert (site / "seed-T4.md").read_text() == "mine" and (site / "seed-T3.md").exists()
    assert rnnsym(*build, "-T", "4", "--force").returncode == 0
    assert (site / "seed-T4.md").read_text() != "mine" and (site / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize("option", [["--hidden-size", "3"], ["--input-size", "2"], ["--activation", "relu"],
                                    ["--activation", "tanh"], ["--shared-bias"], ["--net", "elman"]])
def test_a_cell_refuses_the_options_of_the_built_in_networks(tmp_path, option):
    (tmp_path / "esc.py").write_text(ESCAPING_CELLS)
    run = rnnsym("check", "--cell", "esc.py:ESC", *option, cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == (f"rnnsym: error: {option[0]} does not apply to --cell: the cell defines its own update, "
                          "sizes and biases; drop it (--steps, --output-size, --outputs, --output-activation, --loss, "
                          "--truncate and --bidirectional do apply)\n")


def test_messages_about_many_names_give_a_count_not_the_whole_list():
    run = rnnsym("derive", "zz", "--steps", "1000")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and len(run.stderr) < 400
    assert "parameters: w, w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, …, b1001 (2003 in all)" in run.stderr
    import rnnsym as rs
    from rnnsym.numeric.compiled import check_params

    with pytest.raises(rs.RnnsymError) as caught:  # what every compiled function says of params
        check_params(rs.seed_rnn(steps=1000), {"w": 0.1})
    assert len(str(caught.value)) < 400 and "missing w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, …, b1001 " \
        "(2002 in all)" in str(caught.value)
