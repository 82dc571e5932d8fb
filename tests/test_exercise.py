"""``rnnsym exercise``: a worksheet with round numbers, its answer key and the grader. The key's
values are checked against an independent computation written here (a forward pass by hand,
SymPy's diff, the compiled gradient); the grader's hints against mistakes made on purpose."""
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

import rnnsym as rs
from rnnsym.cli.main import main
from rnnsym.learn.exercise import Question, key_html, sheet_html

FILES = {"worksheet.html", "worksheet.md", "answer-key.html", "answer-key.md", "key.json",
         "answers-template.json", ".rnnsym-site"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ex") / "sheet"
    result = run("exercise", "--net", "seed", "--steps", 3, "--seed", 7, "--out", folder)
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def key(sheet):
    return json.loads((sheet / "key.json").read_text(encoding="utf-8"))


def answers_file(tmp_path, answers: dict, name="answers.json"):
    path = tmp_path / name
    path.write_text(json.dumps(answers), encoding="utf-8")
    return path


def right_answers(key) -> dict:
    return {q["id"]: q["value"] for q in key["questions"]}


def test_the_folder_holds_the_worksheet_the_key_and_a_template_of_every_question_id(sheet, key):
    assert {p.name for p in sheet.iterdir()} == FILES
    template = json.loads((sheet / "answers-template.json").read_text(encoding="utf-8"))
    assert template == {q["id"]: None for q in key["questions"]}
    kinds = [q["kind"] for q in key["questions"]]
    assert kinds.count("forward") == 5 and kinds.count("gradient") == 2 and kinds.count("update") == 1
    assert "local:o2/o1" in template and "grad:w" in template


def test_the_numbers_are_round_one_or_two_decimals(key):
    point = key["point"]
    for v in [*point["params"].values(), *point["x"], point["y"]]:
        assert round(v, 2) == v and v != 0 or v == point["y"]


def test_the_keys_own_answers_grade_full_marks_with_exit_status_0(sheet, key, tmp_path):
    result = run("exercise", "check", sheet, answers_file(tmp_path, right_answers(key)))
    assert result.exit_code == 0, result.output
    assert f"Score: {len(key['questions'])}/{len(key['questions'])} right." in result.output
    assert "relative 0.01 or an absolute 0.001" in result.output


def test_one_minus_o_for_one_minus_o_squared_is_caught_as_the_first_wrong_step_with_that_hint(sheet, key, tmp_path):
    answers = right_answers(key)
    w1, o2 = key["point"]["params"]["w1"], answers["o2"]
    answers["local:o2/o1"] = round(w1 * (1 - o2), 4)  # tanh′ taken as 1 − o2: the classic slip
    answers["grad:w"] = 0.5  # a later step wrong too: the first one is named
    result = run("exercise", "check", sheet, answers_file(tmp_path, answers))
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("First wrong step"))
    assert "∂o₂/∂o₁ should be" in line and f"you wrote {answers['local:o2/o1']:.4g}" in line
    assert line.endswith("did you use 1 − o₂ instead of 1 − o₂²?")
    assert "Also wrong or not answered: grad:w." in result.output
    assert f"Score: {len(answers) - 2}/{len(answers)} right." in result.output


def test_one_path_for_a_shared_weight_and_a_flipped_update_get_their_hints(sheet, key, tmp_path):
    fixed = right_answers(key)
    w_paths = fixed["local:L/o4"] * fixed["local:o4/o3"] * fixed["local:o3/w"]  # the path through layer 3 only
    result = run("exercise", "check", "--format", "json", sheet, answers_file(tmp_path, {**fixed, "grad:w": w_paths}))
    assert result.exit_code == 1
    grade = json.loads(result.output)
    assert "only the path through layer 3" in grade["first_wrong"] and "all 3 paths" in grade["first_wrong"]
    update = next(q for q in key["questions"] if q["kind"] == "update")
    g = fixed["grad:" + update["id"].split(":")[1]]
    old = key["point"]["params"][update["id"].split(":")[1]]
    result = run("exercise", "check", sheet, answers_file(tmp_path, {**fixed, update["id"]: old + key["eta"] * g}))
    assert result.exit_code == 1 and "instead of subtracting it" in result.output


def test_the_same_seed_gives_the_same_files_byte_for_byte_and_another_seed_other_numbers(sheet, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    assert run("exercise", "--steps", 3, "--seed", 7, "--out", again).exit_code == 0
    assert run("exercise", "--steps", 3, "--seed", 8, "--out", other).exit_code == 0
    for name in FILES:
        assert (again / name).read_bytes() == (sheet / name).read_bytes(), name
    assert (other / "worksheet.md").read_bytes() != (sheet / "worksheet.md").read_bytes()
    assert (other / "key.json").read_bytes() != (sheet / "key.json").read_bytes()


def test_the_key_equals_a_forward_pass_by_hand_sympys_diff_and_the_compiled_gradient(key):
    net = rs.seed_rnn(steps=3)
    p, x, y = key["point"]["params"], key["point"]["x"], key["point"]["y"]
    answers = right_answers(key)
    o = [0.0]
    for t in range(1, 4):
        o.append(np.tanh(p[f"w{t - 1}"] * o[-1] + p["w"] * x[t - 1] + p[f"b{t}"]))
    o4 = 1 / (1 + np.exp(-(p["w3"] * o[3] + p["b4"])))
    hand = {"o1": o[1], "o2": o[2], "o3": o[3], "o4": o4, "L": -y * np.log(o4) - (1 - y) * np.log(1 - o4)}
    for name, value in hand.items():
        assert answers[name] == pytest.approx(value, rel=1e-12), name
    graph = net.graph
    at = {graph[n].symbol: v for n, v in {**p, **{f"x{t}": x[t - 1] for t in (1, 2, 3)}, "Y": y, "o0": 0.0,
                                          **hand}.items()}
    for qid, value in answers.items():
        if qid.startswith("local:"):
            of, wrt = qid[len("local:"):].split("/")
            assert value == pytest.approx(float(sp.diff(graph[of].expr, graph[wrt].symbol).xreplace(at)), rel=1e-10)
    nested = net.expansions[graph["L"].symbol]
    point = {graph[n].symbol: v for n, v in {**p, **{f"x{t}": x[t - 1] for t in (1, 2, 3)}, "Y": y}.items()}
    _, grads = net.compile().value_and_grad(p, np.array([x]), np.array([y]))
    for name in ("w", "w2"):
        symbolic = float(sp.diff(nested, graph[name].symbol).xreplace(point).evalf(30))
        assert answers[f"grad:{name}"] == pytest.approx(symbolic, rel=1e-10)
        assert answers[f"grad:{name}"] == pytest.approx(float(grads[name]), rel=1e-10)
    update = next(q["id"] for q in key["questions"] if q["kind"] == "update").split(":")[1]
    assert answers[f"update:{update}"] == pytest.approx(p[update] - key["eta"] * float(grads[update]), rel=1e-12)


def test_the_answer_key_holds_the_worked_solution_and_the_worksheet_does_not(sheet, key):
    solution = (sheet / "answer-key.md").read_text(encoding="utf-8")
    questions = (sheet / "worksheet.md").read_text(encoding="utf-8")
    assert "## Worked solution" in solution and "Forward pass, node by node" in solution
    assert "Finite-difference check" in solution
    assert "Worked solution" not in questions and "should be" not in questions
    assert "relative 0.01 or an absolute 0.001" in questions  # the tolerance is stated on the sheet


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_the_html_has_a_print_stylesheet_and_escapes_every_text(sheet):
    for name in ("worksheet.html", "answer-key.html"):
        assert "@media print" in (sheet / name).read_text(encoding="utf-8")
    hostile = Question("<b>id</b>", "local", "∂o1/<script>alert(1)</script>", 0.5, 0.01, 0.001, [])
    net = rs.seed_rnn(steps=1)
    point = ({n: 0.5 for n in net.param_names}, [0.5], 1.0)
    for page in (sheet_html(net, [hostile], point, 0.1, "<img src=x onerror=alert(1)>"),
                 key_html([hostile], [], "<img src=x onerror=alert(1)>")):
        parser = _Tags()
        parser.feed(page)
        assert "script" not in parser.tags and "img" not in parser.tags and "b" not in parser.tags
        assert "&lt;script&gt;" in page


@pytest.mark.parametrize("case", ["no folder", "no key", "bad json", "unknown id", "a string", "a boolean",
                                  "a list", "not a key"])
def test_unreadable_answers_or_keys_exit_2_with_one_line(sheet, tmp_path, case):
    folder, answers = sheet, answers_file(tmp_path, {"o1": 0.5})
    if case == "no folder":
        folder = tmp_path / "missing"
    elif case == "no key":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "bad json":
        answers.write_text("{", encoding="utf-8")
    elif case == "unknown id":
        answers = answers_file(tmp_path, {"o9": 1})
    elif case == "a string":
        answers = answers_file(tmp_path, {"o1": "0.5"})
    elif case == "a boolean":
        answers = answers_file(tmp_path, {"o1": True})
    elif case == "a list":
        answers = answers_file(tmp_path, [0.5])
    elif case == "not a key":
        folder = tmp_path / "fake"
        folder.mkdir()
        (folder / "key.json").write_text('{"questions": 3}', encoding="utf-8")
    result = run("exercise", "check", folder, answers)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("rnnsym: error: ")


@pytest.mark.parametrize("args", [["--net", "elman"], ["--net", "lstm"], ["--steps", 9], []])
def test_a_network_without_named_factors_too_many_steps_or_no_out_is_refused_in_one_line(tmp_path, args):
    out = [] if not args else ["--out", tmp_path / "s"]
    result = run("exercise", *args, *out)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "s").exists()


def test_a_folder_rnnsym_did_not_write_is_never_replaced_and_ones_own_files_are_kept(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine", encoding="utf-8")
    result = run("exercise", "--out", mine)
    assert result.exit_code == 2 and "not written by rnnsym" in result.output
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    sheet = tmp_path / "sheet"
    assert run("exercise", "--out", sheet).exit_code == 0
    (sheet / "notes.txt").write_text("mine", encoding="utf-8")
    assert run("exercise", "--seed", 3, "--out", sheet).exit_code == 0
    assert (sheet / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert json.loads((sheet / ".rnnsym-site").read_text(encoding="utf-8"))["seed"] == 3


def test_other_activations_and_losses_of_the_seed_network_make_worksheets_whose_key_grades_full(tmp_path):
    out = tmp_path / "relu"
    assert run("exercise", "--activation", "sigmoid", "--loss", "mse", "--steps", 2, "--out", out).exit_code == 0
    key = json.loads((out / "key.json").read_text(encoding="utf-8"))
    result = run("exercise", "check", out, answers_file(tmp_path, right_answers(key)))
    assert result.exit_code == 0, result.output
