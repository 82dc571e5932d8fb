"""The LaTeX document (rnnsym derive/docs --format tex): it compiles with pdflatex, has a section per
parameter with the step titles, breaks long rows, and escapes every name."""
import os
import re
import shutil
import subprocess

import pytest
import sympy as sp
from click.testing import CliRunner

import rnnsym as rs
from rnnsym.cli.main import main
from rnnsym.printing.document import break_math, latex_document, tex_prose, tex_text, tex_unicode, tex_width

needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex is not installed (apt-get install texlive-latex-base); CI has it")


def compile_tex(path) -> str:
    """Compile ``path`` with pdflatex beside it; return the log. Fails on an error, and when TeX
    would have to make a bitmap font (a font texlive-latex-base has no Type 1 outline for)."""
    folder = os.path.dirname(os.path.abspath(path))
    env = dict(os.environ, TEXMFVAR=os.path.join(folder, "texmf-var"))  # no cached fonts from earlier runs
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", os.path.basename(path)],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    log = open(os.path.splitext(path)[0] + ".log", encoding="latin-1").read()
    assert run.returncode == 0, log[-3000:]
    assert "mktexpk" not in run.stdout + run.stderr, "the document needs a METAFONT bitmap font"
    return log


def overfull(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


def write(tmp_path, tex: str, name: str = "doc.tex"):
    path = tmp_path / name
    path.write_text(tex, encoding="utf-8")
    return path


@needs_pdflatex
def test_the_seed_networks_document_compiles_and_no_row_runs_off_the_page(tmp_path):
    net = rs.seed_rnn(steps=4)
    log = compile_tex(write(tmp_path, latex_document(net, [net.derive(n) for n in net.param_names])))
    assert "Output written" in log
    # the expanded gradient of w alone is thousands of characters on one line unless broken
    assert max(overfull(log), default=0.0) < 10.0, overfull(log)


@needs_pdflatex
def test_an_lstm_with_vectors_compiles(tmp_path):
    net = rs.lstm(steps=2, input_size=2, hidden_size=2)
    derivations = [net.derive(n) for n in ("W_hi", "W_hf", "b_y")]
    log = compile_tex(write(tmp_path, latex_document(net, derivations)))
    assert max(overfull(log), default=0.0) < 10.0, overfull(log)


def test_the_document_has_one_section_per_parameter_and_every_step_title():
    net = rs.seed_rnn(steps=3)
    derivations = [net.derive(n) for n in net.param_names]
    tex = latex_document(net, derivations)
    assert tex.count("\\section{") == len(net.param_names)
    names = set(net.graph.nodes)
    for d in derivations:
        assert f"\\section{{$dL/d{sp.latex(sp.Symbol(d.target))}$" in tex
        for i, step in enumerate(d.steps, 1):
            assert f"\\subsection*{{{i}.~{tex_prose(step.title, names)}}}" in tex
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert "\\usepackage{amsmath}" in tex and "\\usepackage[utf8]{inputenc}" in tex


def hostile_network():
    h, x, a, u, lam, z = sp.symbols("h_t__c x_ a__b_c 数 λ é")
    cell = rs.Cell(state=h, input=x, update=sp.tanh(a * x + u * h + lam * z), params=[a, u, lam, z],
                   name="evil\\cell %$&#_{}~^<>|")
    title = "T \\input{/etc/passwd} $x$ 100% & {oops} ~ ^ _ # \\end{document}"
    return rs.unroll(cell, steps=2, title=title, param_roles={"λ": "bias \\relax & % $ }"})


def test_user_text_never_reaches_the_document_unescaped():
    net = hostile_network()
    tex = latex_document(net, [net.derive(n) for n in net.param_names])
    assert "\\input{" not in tex and "\\relax" not in tex
    assert tex.count("\\end{document}") == 1
    assert tex.isascii()  # every Unicode name and symbol written as LaTeX
    assert "U+6570" in tex  # 数: no glyph in pdflatex's fonts, shown by its code point


@needs_pdflatex
def test_a_document_with_hostile_names_compiles(tmp_path):
    net = hostile_network()
    log = compile_tex(write(tmp_path, latex_document(net, [net.derive(n) for n in net.param_names])))
    assert "Output written" in log


def test_text_escapes_every_latex_special_character():
    escaped = tex_text("#$%&_{}~^\\<>|")
    assert re.search(r"(?<!\\)[#%&_{}]", escaped.replace("\\ensuremath{\\$}", "").replace("{}", "")) is None
    assert tex_unicode("∂L/∂o₅ = δ·η − σ′") .isascii()


def test_a_long_sum_is_broken_into_rows_that_fit_with_brackets_balanced_on_each_row():
    terms = " + ".join(r"\left(1 - \tanh^{2}\left(b_{%d} + w x_{%d} \right)\right) w_{%d}" % (k, k, k)
                       for k in range(1, 13))
    rows = break_math(r"\left(%s\right)" % terms, 40.0, 40.0)
    assert len(rows) > 2
    for text, kind in rows:
        assert tex_width(text) <= 40.0
        assert len(re.findall(r"\\left(?![a-z])", text)) == len(re.findall(r"\\right(?![a-z])", text))
    # the breaks are at the sum's plus signs, not inside a factor
    assert all(text.lstrip("\\left. ").startswith("{}+") for text, _ in rows[1:])


@needs_pdflatex
def test_rnnsym_derive_format_tex_writes_a_document_that_compiles(tmp_path):
    out = tmp_path / "f.tex"
    result = CliRunner().invoke(main, ["derive", "w3", "--format", "tex", "-o", str(out), "--check"])
    assert result.exit_code == 0, result.output
    tex = out.read_text(encoding="utf-8")
    assert tex.count("\\section{") == 1 and "Gradient check" in tex
    compile_tex(out)


@needs_pdflatex
def test_rnnsym_docs_format_tex_writes_a_document_that_compiles(tmp_path):
    result = CliRunner().invoke(main, ["docs", "--format", "tex", "--out", str(tmp_path / "d"), "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("derivations.tex")
    tex = (tmp_path / "d" / "derivations.tex").read_text(encoding="utf-8")
    assert tex.count("\\section{") == len(rs.seed_rnn(steps=2).param_names)
    compile_tex(tmp_path / "d" / "derivations.tex")
