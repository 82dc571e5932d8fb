"""``rnnsym exercise``: a BPTT worksheet with round numbers, its answer key, and a grader.

:func:`write_exercise` writes a folder: ``worksheet.html`` / ``worksheet.md`` (the network, the
numbers, the questions), ``answer-key.html`` / ``answer-key.md`` (every answer and the worked
solution of :meth:`Derivation.with_numbers`), ``key.json`` (each question's id, exact value,
tolerance and the values that common mistakes give) and ``answers-template.json`` (id -> null).
:func:`check_answers` grades a student's answers against ``key.json`` and points at the first
wrong step, with a hint when a common mistake gives the value written.

Every number of the key comes from the worked example (item 1); this module only computes the
values of *wrong* formulas (1 − o for 1 − o², one path of a shared weight, …) to recognise them.
The folder is written as ``rnnsym docs`` writes a site (rnnsym.docs.site): whole or not at all,
and only over a folder that is empty or that rnnsym wrote.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import sympy as sp

from .. import functions
from ..errors import RnnsymError
from ..printing.text import expr_text, text_name
from ..worked import number_text, random_point

SUPPORTED = ("seed",)  # scalar networks: with_numbers gives named local factors and path terms
MAX_STEPS = 6  # a worksheet done by hand
RELATIVE, ABSOLUTE = 1e-2, 1e-3  # an answer is right within either
UPDATE_ABSOLUTE = 1e-4  # the new weight differs from the old by η·g, often < 1e-2 of it: absolute only
ATTEMPTS = 60  # points drawn in turn until one makes a good worksheet
KEY, TEMPLATE = "key.json", "answers-template.json"
SHEET, ANSWER_KEY = "worksheet", "answer-key"
KEY_FORMAT = "rnnsym-exercise-key"
TOLERANCE_WORDS = (f"an answer counts as right within a relative {RELATIVE:g} or an absolute {ABSOLUTE:g} of the "
                   f"exact value (whichever is looser); the updated weight within an absolute {UPDATE_ABSOLUTE:g}")


@dataclass
class Question:
    id: str  # ASCII, for answers.json: o2, local:o2/o1, grad:w, update:w
    kind: str  # forward, local, gradient, update
    text: str  # what is asked, in Unicode (∂o₂/∂o₁)
    value: float
    relative: float
    absolute: float
    hints: list  # [(value, words)]: what a common mistake gives, and a question naming it

    def right(self, answer: float) -> bool:
        return _close(answer, self.value, self.relative, self.absolute)

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "question": self.text, "value": self.value,
                "tolerance": {"relative": self.relative, "absolute": self.absolute},
                "hints": [{"value": v, "words": w} for v, w in self.hints]}


def _close(a: float, b: float, relative: float, absolute: float) -> bool:
    return abs(a - b) <= max(relative * abs(b), absolute)


# ---- the network and the point ----------------------------------------------------------------------
def exercise_network(net_name: str = "seed", steps: int = 3, **options):
    """The network of a worksheet: the seed network (a scalar Elman RNN) and its options."""
    from ..networks import make_network

    if net_name not in SUPPORTED:
        raise RnnsymError(f"rnnsym exercise supports --net seed (the scalar RNN, with --activation, --loss, "
                          f"--output-activation, --shared-bias); got {net_name!r}, whose worked example has no "
                          "named local factors")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise RnnsymError(f"an exercise has 1 to {MAX_STEPS} steps (it is done by hand); got --steps {steps!r}")
    return make_network(net_name, steps, **options)


def _round_point(network, rng):
    """Parameters and inputs of one or two decimals (±0.10 … ±0.95 in steps of 0.05), and a target
    (0 or 1 for a cross-entropy, else 0.1 … 0.9)."""
    def draw() -> float:
        return float(rng.choice([-1, 1]) * rng.integers(2, 20) * 5) / 100

    params = {name: draw() for name in network.param_names}
    x = [draw() for _ in range(network.steps)]
    _, _, drawn_y = random_point(network, 0)  # the target's kind (a class or a number)
    if network.options.get("loss") == "bce":
        y = float(rng.integers(0, 2))
    elif np.issubdtype(np.asarray(drawn_y).dtype, np.integer):
        y = int(rng.integers(0, 2))
    else:
        y = float(rng.integers(1, 10)) / 10
    return params, x, y


def gradient_targets(network) -> tuple[str, ...]:
    """The parameters asked for: the shared input weight w (every path), and the recurrent weight
    into the last layer (one path; the output weight when there is one step)."""
    T = network.steps
    second = f"w{T - 1}" if T >= 2 else f"w{T}"
    return tuple(n for n in ("w", second) if n in network.param_names)


def build_exercise(network, seed: int = 0, eta: float = 0.1):
    """(questions, worked examples, point) for the worksheet of ``seed``: points are drawn in turn
    (from ``seed``) until one gives clear questions (no answer near 0, every local factor and the
    update distinguishable from its common mistakes); past :data:`ATTEMPTS`, the last one drawn."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise RnnsymError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    derivations = [network.derive(n) for n in gradient_targets(network)]
    for attempt in range(ATTEMPTS):
        params, x, y = _round_point(network, rng)
        worked = [d.with_numbers(params, x, y, eta=eta, seed=int(seed)) for d in derivations]
        questions = _questions(network, worked, eta)
        if _clear(questions) or attempt == ATTEMPTS - 1:
            return questions, worked, (params, x, y)
    raise AssertionError("unreachable")


def _clear(questions: list[Question]) -> bool:
    for q in questions:
        if abs(q.value) < 10 * ABSOLUTE:
            return False
        if q.kind in ("local", "update") and q.hints and any(q.right(v) for v, _ in q.hints[:2]):
            return False
    return True


# ---- the questions ----------------------------------------------------------------------------------
def _questions(network, worked: list, eta: float) -> list[Question]:
    graph = network.graph
    first = worked[0].numbers
    at = {graph[n].symbol: sp.Float(v) for n, v in {**first["point"], **first["forward"]}.items()
          if n in graph and np.ndim(v) == 0}
    x = np.ravel(first["point"]["x"])
    for node in graph.nodes.values():
        if node.kind == "constant":
            at[node.symbol] = sp.Float(float(node.value))
        elif node.kind == "input":
            at[node.symbol] = sp.Float(float(x[node.step - 1]))
        elif node.kind == "target":
            at[node.symbol] = sp.Float(float(first["point"]["y"]))

    def value(expr) -> float:
        return float(sp.sympify(expr).xreplace(at).evalf())

    out = [_forward_question(graph, name, v, value) for name, v in first["forward"].items()]
    factors = {}
    for w in worked:
        for f in w.numbers["local_factors"]:
            factors.setdefault((f["of"], f["wrt"]), f["value"])
    locals_ = {key: _local_question(graph, network, key, v, value) for key, v in factors.items()}
    out += locals_.values()
    for w in worked:
        out.append(_gradient_question(w, locals_))
    update = max(worked, key=lambda w: abs(w.numbers["gradient"]))
    out.append(_update_question(update, eta))
    return out


def _forward_question(graph, name: str, v: float, value) -> Question:
    node = graph[name]
    hints = [(-v, "did you flip the sign?")]
    expr = node.expr
    if isinstance(expr, sp.Function) and len(expr.args) == 1:
        z, f = expr.args[0], expr.func
        hints.append((value(z), f"did you leave out {_function_name(f)}? {number_text(value(z))} is the sum "
                                f"inside it, {expr_text(z)}"))
        for term in sp.Add.make_args(z):
            if term.is_Symbol and graph[term.name].kind == "param":
                hints.append((value(f(z - term)), f"did you leave out the bias {text_name(term.name)}?"))
    return Question(name, "forward", f"{text_name(name)} = {expr_text(expr)}", float(v), RELATIVE, ABSOLUTE,
                    _distinct(hints, v))


def _function_name(f) -> str:
    return {functions.sigmoid: "σ"}.get(f, getattr(f, "__name__", str(f)))


# (wrong derivative in y, words): the activation-derivative mistakes of ∂child/∂parent (as verify's)
def _wrong_rules(f, y: str):
    ys = sp.Symbol(y)
    if f is sp.tanh:
        right = f"1 − {y}²"
        return [(1 - ys, f"did you use 1 − {y} instead of 1 − {y}²?"),
                (ys * (1 - ys), f"did you use σ′ = {y}·(1 − {y}) instead of tanh′ = {right}?"),
                (sp.S.One, f"did you leave out tanh′ = {right}?")]
    if f is functions.sigmoid:
        right = f"{y}·(1 − {y})"
        return [(1 - ys, f"did you use 1 − {y} instead of σ′ = {right}?"),
                (ys, f"did you use {y} instead of σ′ = {right}?"),
                (1 - ys**2, f"did you use tanh′ = 1 − {y}² instead of σ′ = {right}?"),
                (sp.S.One, f"did you leave out σ′ = {right}?")]
    if f is functions.relu:
        return [(sp.S.One, "did you leave out relu′ (1 where the sum is positive, else 0)?")]
    return []


def _local_question(graph, network, key, v: float, value) -> Question:
    child, parent = key
    node, z_of = graph[child], graph[parent].symbol
    hints = [(-v, "did you flip the sign?")]
    expr = node.expr
    if isinstance(expr, sp.Function) and len(expr.args) == 1:
        inner = sp.diff(expr.args[0], z_of)
        y = text_name(child)
        for wrong, words in _wrong_rules(expr.func, y):
            hints.append((value(wrong.xreplace({sp.Symbol(y): node.symbol}) * inner), words))
        if inner != 1:
            hints.append((value(network.local(child, parent) / inner),
                          f"did you leave out the factor {expr_text(inner)} (∂ of the sum inside "
                          f"{_function_name(expr.func)} with respect to {text_name(parent)})?"))
    if node.kind == "loss" and graph[parent].kind == "output":
        for target in graph.of_kind("target"):
            hints.append((value(z_of - target.symbol), f"did you use {text_name(parent)} − Y? That is ∂L/∂z, "
                                                       f"the gradient before the output's activation, not ∂L/∂{text_name(parent)}"))
    text = f"∂{text_name(child)}/∂{text_name(parent)}"
    return Question(f"local:{child}/{parent}", "local", text, float(v), RELATIVE, ABSOLUTE, _distinct(hints, v))


def _gradient_question(worked, locals_: dict) -> Question:
    from ..worked import _label

    numbers, target = worked.numbers, worked.target
    g = float(numbers["gradient"])
    terms = numbers["path_terms"]
    hints = [(-g, "did you flip the sign?")]
    paths = len(terms)
    if paths > 1:
        for t in terms:
            hints.append((t["value"], f"did you keep only the path {_label(worked, t['path'])}? {text_name(target)} "
                                      f"is used at every step, so dL/d{text_name(target)} adds the terms of all "
                                      f"{paths} paths"))
        for t in terms:
            hints.append((g - t["value"], f"did you leave out the path {_label(worked, t['path'])}?"))
    # one local factor wrong, everywhere it appears: the gradient that the factor's mistake gives
    for t in terms:
        for edge in zip(t["path"], t["path"][1:]):
            q = locals_[edge]
            for wrong, words in q.hints:
                if q.value == 0:
                    continue
                changed = sum(_with_factor(u, edge, q.value, wrong) for u in terms)
                hints.append((changed, f"in ∂{text_name(edge[0])}/∂{text_name(edge[1])}: {words}"))
    return Question(f"grad:{target}", "gradient", f"dL/d{text_name(target)}", g, RELATIVE, ABSOLUTE,
                    _distinct(hints, g))


def _with_factor(term: dict, edge, right: float, wrong: float) -> float:
    count = sum(1 for e in zip(term["path"], term["path"][1:]) if e == edge)
    return term["value"] * (wrong / right) ** count


def _update_question(worked, eta: float) -> Question:
    update, target = worked.numbers["update"], worked.target
    old, new, g = float(update["old"]), float(update["new"]), float(worked.numbers["gradient"])
    name = text_name(target)
    hints = [(old, f"did you keep the old {name}? The step is {name} − η·dL/d{name}"),
             (old + eta * g, f"did you add η·dL/d{name} instead of subtracting it? The step goes against the gradient"),
             (old - g, "did you leave out η?")]
    text = f"{name} after one gradient-descent step, {name} − η·dL/d{name}, with η = {number_text(eta)}"
    return Question(f"update:{target}", "update", text, new, 0.0, UPDATE_ABSOLUTE,
                    _distinct(hints, new, 0.0, UPDATE_ABSOLUTE))


def _distinct(hints: list, right: float, relative: float = RELATIVE, absolute: float = ABSOLUTE) -> list:
    """The hints whose values a grader can tell from the right one (and from an earlier hint)."""
    out = []
    for v, words in hints:
        v = float(v)
        if not math.isfinite(v) or _close(v, right, relative, absolute):
            continue
        if any(_close(v, u, relative, absolute) for u, _ in out):
            continue
        out.append((v, words))
    return out


# ---- the files --------------------------------------------------------------------------------------
def write_exercise(network, out, *, seed: int = 0, eta: float = 0.1) -> Path:
    """Write the worksheet of ``network`` at the point of ``seed`` into the folder ``out`` (see the
    module's docstring); the same arguments give the same files, byte for byte."""
    from .. import __version__
    from ..docs.site import write_marked_folder

    questions, worked, point = build_exercise(network, seed, eta)
    title = f"BPTT exercise: the {network.name} network, T = {network.steps} (seed {seed})"
    files = {
        f"{SHEET}.md": sheet_markdown(network, questions, point, eta, title),
        f"{SHEET}.html": sheet_html(network, questions, point, eta, title),
        f"{ANSWER_KEY}.md": key_markdown(questions, worked, title),
        f"{ANSWER_KEY}.html": key_html(questions, worked, title),
        KEY: json.dumps(key_dict(network, questions, seed, eta, point), indent=1, ensure_ascii=False) + "\n",
        TEMPLATE: json.dumps({q.id: None for q in questions}, indent=1) + "\n",
    }
    marker = {"generator": "rnnsym", "version": __version__, "format": "exercise", "network": network.name,
              "steps": network.steps, "options": network.options, "seed": int(seed)}

    def fill(folder) -> None:
        for name, text in files.items():
            folder.write(name, text)
    return write_marked_folder(out, fill, marker, force=None)  # never replaces a folder rnnsym did not write


def key_dict(network, questions: list[Question], seed: int, eta: float, point) -> dict:
    params, x, y = point
    return {"format": KEY_FORMAT, "network": network.name, "steps": network.steps, "options": network.options,
            "seed": int(seed), "eta": float(eta), "point": {"params": params, "x": x, "y": y},
            "tolerance": TOLERANCE_WORDS,
            "questions": [q.to_dict() for q in questions]}


_SECTIONS = (("forward", "Forward pass", "Each node's value, from the numbers above."),
             ("local", "Local factors",
              "∂: a local partial, the node's other inputs held fixed (a number at this point)."),
             ("gradient", "Gradients",
              "d: the total derivative, every path from the loss down to the parameter."),
             ("update", "One gradient-descent step", ""))


def _numbers_rows(network, point) -> list[tuple[str, str]]:
    params, x, y = point
    rows = [(text_name(n), number_text(v)) for n, v in params.items()]
    rows += [(text_name(f"x{t}"), number_text(v)) for t, v in enumerate(x, 1)]
    rows.append(("Y", number_text(y)))
    return rows


def _node_rows(network) -> list[str]:
    graph = network.graph
    rows = [f"{text_name(n.name)} = {number_text(n.value)} ({n.role})" for n in graph.nodes.values()
            if n.kind == "constant"]
    rows += [f"{text_name(n.name)} = {expr_text(n.expr)}" for n in graph.nodes.values() if n.expr is not None]
    return rows


def _how(eta: float) -> list[str]:
    return [f"Learning rate η = {number_text(eta)}. Work to at least 4 significant digits.",
            f"Grading: {TOLERANCE_WORDS}.",
            f"Write your answers into a copy of {TEMPLATE} (each null replaced by a number), then run "
            "rnnsym exercise check FOLDER answers.json."]


def sheet_markdown(network, questions, point, eta, title) -> str:
    out = [f"# {title}", "", "## The network", "", "```"] + _node_rows(network) + ["```", "", "## The numbers", "",
                                                                                     "| name | value |", "|---|---|"]
    out += [f"| {n} | {v} |" for n, v in _numbers_rows(network, point)]
    out += ["", "## How to answer", ""] + [f"- {line}" for line in _how(eta)] + ["", "## Questions", ""]
    number = 0
    for kind, heading, words in _SECTIONS:
        out += [f"### {heading}", ""] + ([words, ""] if words else [])
        for q in questions:
            if q.kind == kind:
                number += 1
                out.append(f"{number}. {_ask(q)} = ______ (`{q.id}`)")
        out.append("")
    return "\n".join(out)


def _ask(q: Question) -> str:
    return q.text.split(" = ")[0] if q.kind == "forward" else q.text


def key_markdown(questions, worked, title) -> str:
    from ..printing.markdown import derivation_markdown

    out = [f"# Answer key: {title}", "", f"Grading: {TOLERANCE_WORDS}.", "", "| # | question | id | answer |",
           "|---|---|---|---|"]
    out += [f"| {i} | {_ask(q)} | `{q.id}` | {number_text(q.value)} |" for i, q in enumerate(questions, 1)]
    out += ["", "## Worked solution", ""]
    for w in worked:
        out += [derivation_markdown(w, heading_level=3), ""]
    return "\n".join(out)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 48em; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
table { border-collapse: collapse; } td, th { border: 1px solid #999; padding: 0.2em 0.6em; }
pre { background: #f4f4f4; padding: 0.6em; }
.blank { display: inline-block; min-width: 8em; border-bottom: 1px solid #000; }
code { font-size: 0.9em; }
@media print {
  body { max-width: none; margin: 0; font-size: 11pt; }
  pre { background: none; border: 1px solid #999; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  li, tr, pre, table { break-inside: avoid; page-break-inside: avoid; }
  .no-print { display: none; }
}
"""


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def sheet_html(network, questions, point, eta, title) -> str:
    body = [f"<h1>{escape(title)}</h1>", "<h2>The network</h2>",
            "<pre>" + escape("\n".join(_node_rows(network))) + "</pre>", "<h2>The numbers</h2>",
            "<table><tr><th>name</th><th>value</th></tr>"]
    body += [f"<tr><td>{escape(n)}</td><td>{escape(v)}</td></tr>" for n, v in _numbers_rows(network, point)]
    body += ["</table>", "<h2>How to answer</h2>", "<ul>"] + [f"<li>{escape(line)}</li>" for line in _how(eta)]
    body += ["</ul>", "<h2>Questions</h2>"]
    number = 0
    for kind, heading, words in _SECTIONS:
        body.append(f"<h3>{escape(heading)}</h3>" + (f"<p>{escape(words)}</p>" if words else ""))
        items = [q for q in questions if q.kind == kind]
        body.append(f"<ol start=\"{number + 1}\">")
        for q in items:
            body.append(f"<li>{escape(_ask(q))} = <span class=\"blank\"></span> <code>{escape(q.id)}</code></li>")
        number += len(items)
        body.append("</ol>")
    return _page(title, body)


def key_html(questions, worked, title) -> str:
    from ..printing.html import derivation_html

    body = [f"<h1>{escape('Answer key: ' + title)}</h1>", f"<p>{escape('Grading: ' + TOLERANCE_WORDS)}.</p>",
            "<table><tr><th>#</th><th>question</th><th>id</th><th>answer</th></tr>"]
    body += [f"<tr><td>{i}</td><td>{escape(_ask(q))}</td><td><code>{escape(q.id)}</code></td>"
             f"<td>{escape(number_text(q.value))}</td></tr>" for i, q in enumerate(questions, 1)]
    body += ["</table>", "<h2>Worked solution</h2>"] + [derivation_html(w) for w in worked]
    return _page("Answer key: " + title, body)


# ---- grading ----------------------------------------------------------------------------------------
@dataclass
class Grade:
    """The result of :func:`check_answers`: each question right, wrong or not answered, and the
    first wrong step with a hint when a common mistake gives the value written."""
    questions: list  # Question, in the order of the worksheet
    answers: dict  # id -> number or None
    tolerance: str

    @property
    def right(self) -> list:
        return [q for q in self.questions if self.answers.get(q.id) is not None and q.right(self.answers[q.id])]

    @property
    def wrong(self) -> list:
        return [q for q in self.questions if q not in self.right]

    @property
    def ok(self) -> bool:
        return not self.wrong

    def hint(self, q: Question) -> str | None:
        answer = self.answers.get(q.id)
        if answer is None:
            return None
        for value, words in q.hints:
            if _close(answer, value, q.relative, q.absolute):
                return words
        return None

    def first_wrong(self) -> str | None:
        if self.ok:
            return None
        q = self.wrong[0]
        answer = self.answers.get(q.id)
        number = self.questions.index(q) + 1
        if answer is None:
            return f"First wrong step (question {number}, {q.id}): {_ask(q)} is not answered."
        line = (f"First wrong step (question {number}, {q.id}): {_ask(q)} should be {number_text(q.value)}; "
                f"you wrote {number_text(answer)}")
        hint = self.hint(q)
        return line + (f" — {hint}" if hint else ".")

    def text(self) -> str:
        lines = [f"Score: {len(self.right)}/{len(self.questions)} right."]
        if self.ok:
            lines.append("All right.")
        else:
            lines.append(self.first_wrong())
            rest = [q.id for q in self.wrong[1:]]
            if rest:
                lines.append(f"Also wrong or not answered: {', '.join(rest)}.")
        lines.append(f"Tolerance: {self.tolerance}.")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "score": len(self.right), "total": len(self.questions), "tolerance": self.tolerance,
                "first_wrong": self.first_wrong(),
                "results": [{"id": q.id, "value": q.value, "answer": self.answers.get(q.id),
                             "right": q in self.right, "hint": self.hint(q)} for q in self.questions]}


def check_answers(folder, answers_path) -> Grade:
    """Grade ``answers_path`` (JSON: question id -> number or null) against ``folder``/key.json.
    A missing or unreadable file, bad JSON, an unknown id or a value that is not a number is an
    RnnsymError (one line)."""
    from .numbers import read_json

    folder = Path(folder)
    if not folder.is_dir():
        raise RnnsymError(f"exercise folder {str(folder)!r} does not exist or is not a folder; give the folder "
                          "that rnnsym exercise --out wrote")
    questions, tolerance = _read_key(read_json(str(folder / KEY), "key"), folder / KEY)
    data = read_json(str(answers_path), "answers")
    if not isinstance(data, dict):
        raise RnnsymError(f"answers file {str(answers_path)!r} must hold a JSON object of question id -> number "
                          f"(as {TEMPLATE}), got a {type(data).__name__}")
    ids = [q.id for q in questions]
    for key, value in data.items():
        if key not in ids:
            raise RnnsymError(f"answers file {str(answers_path)!r} has an unknown question id {key[:60]!r}; the "
                              f"ids are those of {TEMPLATE}: {', '.join(ids[:4])}, …")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RnnsymError(f"answers file {str(answers_path)!r}: {key!r} must be a number (or null), got "
                              f"{json.dumps(value, ensure_ascii=False)[:40]}")
    return Grade(questions, {k: (None if v is None else float(v)) for k, v in data.items()}, tolerance)


def _read_key(data, path) -> tuple[list[Question], str]:
    def bad(why: str):
        raise RnnsymError(f"key file {str(path)!r} is not an rnnsym exercise key: {why}")

    def number(v, where) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            bad(f"{where} is not a number")
        return float(v)

    if not isinstance(data, dict) or data.get("format") != KEY_FORMAT:
        bad(f"no \"format\": \"{KEY_FORMAT}\"")
    items = data.get("questions")
    if not isinstance(items, list) or not items:
        bad("no list of questions")
    questions = []
    for i, q in enumerate(items):
        if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not isinstance(q.get("question"), str) \
                or not isinstance(q.get("tolerance"), dict) or not isinstance(q.get("hints", []), list):
            bad(f"question {i + 1} lacks an id, its text, a tolerance or its hints")
        hints = []
        for h in q.get("hints", []):
            if not isinstance(h, dict) or not isinstance(h.get("words"), str):
                bad(f"a hint of question {q['id']!r} has no words")
            hints.append((number(h.get("value"), f"a hint of {q['id']!r}"), h["words"]))
        questions.append(Question(q["id"], str(q.get("kind", "")), q["question"], number(q.get("value"), q["id"]),
                                  number(q["tolerance"].get("relative"), f"{q['id']!r}'s relative tolerance"),
                                  number(q["tolerance"].get("absolute"), f"{q['id']!r}'s absolute tolerance"), hints))
    tolerance = data.get("tolerance") if isinstance(data.get("tolerance"), str) else TOLERANCE_WORDS
    return questions, tolerance


__all__ = ["Grade", "Question", "build_exercise", "check_answers", "exercise_network", "write_exercise"]
