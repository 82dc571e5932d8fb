"""Reading a learner's formula: plain text or LaTeX, never ``eval``.

Plain text is lexed by Python's ``tokenize`` (a lexer: it runs nothing), rewritten token by token
(``^`` for ``**``, implicit products, ``dL``/``∂L`` differentials, the network's names), parsed
by ``ast.parse`` (which builds a tree and runs nothing either) and then *walked*: only numbers,
the network's names, ``+ - * / **``, unary minus, parentheses and the functions a network may use
are admitted; anything else is refused in one line naming it. LaTeX is translated to the same
plain text by a small translator of the commands a derivation needs (``\\frac``, ``\\partial``,
subscripts, ``\\tanh``, ``\\sigma``, …) and read by the same walker.

SymPy's ``parse_expr`` is not used (it evaluates code), nor SymPy's LaTeX parsers: the ANTLR one
needs a runtime pinned to a generated grammar, and the Lark one builds SymPy objects while parsing
(``2^{10^{10}}`` or ``10^{9}!`` would be computed before anything could refuse them).
"""
from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from dataclasses import dataclass, field

import sympy as sp

from .. import functions
from ..errors import RnnsymError, listed

# Limits checked before anything is parsed: a formula a learner writes by hand is far below them.
MAX_CHARS = 20_000
MAX_DEPTH = 40  # nested brackets, and the depth of the parsed tree
MAX_TOKENS = 5_000
MAX_EXPONENT = 16  # an integer power of an expression: (a + b)**1000 would be expanded later
MAX_NUMBER = 1e15
# Functions inside functions: SymPy's assumptions on tanh(tanh(…)) cost time exponential in the
# depth (ten levels take half a minute); a formula names nodes rather than nesting their definitions.
MAX_CALL_DEPTH = 6

# The functions a formula may call, by the names people write them.
FUNCTIONS: dict[str, tuple[object, tuple[int, ...]]] = {
    "tanh": (sp.tanh, (1,)), "sigmoid": (functions.sigmoid, (1,)), "sigma": (functions.sigmoid, (1,)),
    "relu": (functions.relu, (1,)), "ReLU": (functions.relu, (1,)), "exp": (sp.exp, (1,)),
    "log": (sp.log, (1,)), "ln": (sp.log, (1,)), "sin": (sp.sin, (1,)), "cos": (sp.cos, (1,)),
    "sinh": (sp.sinh, (1,)), "cosh": (sp.cosh, (1,)), "atan": (sp.atan, (1,)), "arctan": (sp.atan, (1,)),
    "abs": (sp.Abs, (1,)), "Abs": (sp.Abs, (1,)), "sign": (sp.sign, (1,)), "Heaviside": (sp.Heaviside, (1, 2)),
    "max": (sp.Max, (2, 3, 4)), "Max": (sp.Max, (2, 3, 4)), "min": (sp.Min, (2, 3, 4)),
    "Min": (sp.Min, (2, 3, 4)), "erf": (sp.erf, (1,)),
}
ALLOWED = ("numbers, the network's names, + - * / ** (or ^), unary minus, parentheses and the functions "
           "tanh, sigmoid (σ), relu, exp, log, sin, cos, sinh, cosh, atan, abs, sign, Heaviside, max, min, erf")

_UNICODE = {"−": "-", "–": "-", "·": "*", "⋅": "*", "×": "*", "∗": "*", "²": "**2", "³": "**3",
            "σ": " sigma ", "∂": " _partial_ ", "÷": "/"}
_PARTIAL = "_partial_"


@dataclass(frozen=True)
class DerivativeFactor:
    """``dA/dB`` or ``∂A/∂B`` written in a formula: its numerator and denominator node, and whether it
    was written with ∂ (a local partial) or with d (the reading depends on where it stands)."""

    of: str
    wrt: str
    partial: bool

    def text(self) -> str:
        d = "∂" if self.partial else "d"
        return f"{d}{self.of}/{d}{self.wrt}"


@dataclass(frozen=True)
class Formula:
    """A parsed formula: ``dL/d(wrt) = rhs``. ``rhs`` is in the network's node symbols, each
    derivative factor standing as a Dummy that ``factors`` explains."""

    source: str
    wrt: str | None
    rhs: sp.Expr
    factors: dict = field(default_factory=dict)  # Dummy -> DerivativeFactor
    notes: tuple[str, ...] = ()


def parse_formula(text: str, network) -> Formula:
    """Read ``text`` (``"dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3"``, or LaTeX) against ``network``'s names.

    The left side is optional; when given it must be the loss's derivative, ``dL/dNAME``.
    Anything but numbers, names, arithmetic and the admitted functions is a one-line RnnsymError.
    """
    if not isinstance(text, str):
        raise RnnsymError(f"a formula is text, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise RnnsymError(f"the formula is {len(text)} characters long; at most {MAX_CHARS} are read")
    if not text.strip():
        raise RnnsymError("the formula is empty; write it as dL/dNAME = …, e.g. dL/dw3 = (o5 - Y)*w4*(1 - o4**2)*o3")
    plain = latex_to_plain(text) if "\\" in text else text
    _check_depth(plain)
    sides = plain.split("=")
    if len(sides) > 2 or any(not s.strip() for s in sides):
        raise RnnsymError("write the formula as one equation, dL/dNAME = …, with a single '=' and both sides")
    reader = _Reader(network)
    notes: list[str] = []
    wrt = None
    if len(sides) == 2:
        lhs = reader.read(sides[0], "left side")
        factor = reader.factors.get(lhs) if isinstance(lhs, sp.Dummy) else None
        if factor is None:
            raise RnnsymError(f"the left side must be the loss's derivative dL/dNAME, got {sides[0].strip()!r}")
        if factor.of != network.loss_name:
            raise RnnsymError(f"the left side must be the derivative of the loss {network.loss_name}, "
                              f"got {factor.text()}")
        wrt = factor.wrt
        del reader.factors[lhs]
    rhs = reader.read(sides[-1], "right side")
    notes.extend(reader.notes)
    return Formula(text, wrt, rhs, dict(reader.factors), tuple(dict.fromkeys(notes)))


def _check_depth(text: str) -> None:
    depth = 0
    for char in text:
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise RnnsymError(f"the formula nests brackets more than {MAX_DEPTH} deep; at most {MAX_DEPTH} are read")
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise RnnsymError("the formula closes a bracket it never opened")
    if depth:
        raise RnnsymError(f"the formula leaves {depth} bracket(s) open")


# ---- plain text: tokens, rewritten ----------------------------------------------------------------
class _Reader:
    """Reads one side of a formula into SymPy over a network's names, collecting derivative factors."""

    def __init__(self, network):
        self.network = network
        self.graph = network.graph
        self.factors: dict[sp.Dummy, DerivativeFactor] = {}
        self.differentials: dict[str, tuple[str, bool]] = {}
        self.notes: list[str] = []
        self._calls = 0  # functions open around the node being walked

    def read(self, text: str, where: str) -> sp.Expr:
        source = self._rewrite(text)
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            raise RnnsymError(f"cannot read the {where} {text.strip()!r}: {exc.msg}") from None
        except (MemoryError, RecursionError):
            raise RnnsymError(f"the {where} is too deeply nested to read") from None
        _check_tree(tree)
        return self._walk(tree.body)

    # -- names --
    def resolve(self, name: str) -> str | None:
        """The network's name for ``name``: itself, ``w_3`` for ``w3``, ``l`` for the loss ``L``."""
        if name in self.graph:
            return name
        joined = re.sub(r"_(\d+)$", r"\1", name)
        if joined in self.graph:
            return joined
        if name == "l" and self.network.loss_name == "L":  # the article writes dl/dw
            return "L"
        return None

    def _differential(self, name: str, partial: bool) -> str | None:
        node = self.resolve(name)
        if node is None:
            return None
        key = f"_D{len(self.differentials)}"
        self.differentials[key] = (node, partial)
        return key

    def _rewrite(self, text: str) -> str:
        for old, new in _UNICODE.items():
            text = text.replace(old, new)
        raw = _python_tokens(text)
        out: list[tuple[str, str]] = []  # (kind, text): kind in name, func, number, op, diff
        i = 0
        while i < len(raw):
            tok = raw[i]
            if tok.type == tokenize.NAME:
                nxt = raw[i + 1] if i + 1 < len(raw) else None
                marker = tok.string in ("d", _PARTIAL) and tok.string not in self.graph
                if marker and nxt is not None and nxt.type == tokenize.NAME:
                    key = self._differential(nxt.string, tok.string == _PARTIAL)
                    if key is None:
                        raise RnnsymError(f"unknown name {nxt.string!r} after {'∂' if tok.string == _PARTIAL else 'd'} "
                                          f"in the formula; {self._names()}")
                    out.append(("diff", key))
                    i += 2
                    continue
                out.append(self._name_token(tok.string))
            elif tok.type == tokenize.NUMBER:
                if not re.fullmatch(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", tok.string):
                    raise RnnsymError(f"the number {tok.string!r} is not allowed in a formula; "
                                      "write decimal numbers such as 2, 0.5 or 1e-3")
                out.append(("number", tok.string))
            elif tok.type == tokenize.OP and tok.string in ("+", "-", "*", "/", "**", "^", "(", ")", "[", "]",
                                                            "{", "}", ","):
                op = {"^": "**", "[": "(", "{": "(", "]": ")", "}": ")"}.get(tok.string, tok.string)
                out.append(("op", op))
            else:
                raise RnnsymError(f"{tok.string!r} is not allowed in a formula; allowed: {ALLOWED}")
            i += 1
        return " ".join(_with_products(out))

    def _name_token(self, name: str) -> tuple[str, str]:
        node = self.resolve(name)
        if node is not None:
            return ("name", node)
        if name in FUNCTIONS:
            return ("func", name)
        # dL, do5: a differential written in one word
        for prefix, partial in (("d", False), (_PARTIAL, True)):
            if name.startswith(prefix) and len(name) > len(prefix):
                key = self._differential(name[len(prefix):], partial)
                if key is not None:
                    return ("diff", key)
        raise RnnsymError(f"unknown name {name!r} in the formula; {self._names()}; functions: "
                          f"{listed(sorted(FUNCTIONS, key=str.lower), limit=30)}")

    def _names(self) -> str:
        return "this network's names: " + listed(self.graph.nodes, limit=30)

    # -- the tree --
    def _walk(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Div) and self._is_diff(node.left):
                return self._factor(node.left, node.right)
            if isinstance(node.op, ast.Div) and isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Mult) \
                    and self._is_diff(node.left.right):  # w3*do3/dw is w3*(do3/dw), not (w3*do3)/dw
                return self._walk(node.left.left) * self._factor(node.left.right, node.right)
            left, right = self._walk(node.left), self._walk(node.right)
            return _binary(node.op, left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self._walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return _number(node.value)
        if isinstance(node, ast.Name):
            if node.id in self.differentials:
                of, partial = self.differentials[node.id]
                raise RnnsymError(f"{'∂' if partial else 'd'}{of} stands alone; a derivative is written as a "
                                  f"fraction such as dL/d{of} or d{of}/dw")
            return self.graph[node.id].symbol
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
            func, arities = FUNCTIONS[node.func.id]
            if self._calls >= MAX_CALL_DEPTH:
                raise RnnsymError(f"the formula nests functions more than {MAX_CALL_DEPTH} deep; write a node's name "
                                  "(o3) instead of its definition (tanh(…))")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args) or len(node.args) not in arities:
                raise RnnsymError(f"{node.func.id} takes {' or '.join(map(str, arities))} argument(s) in a formula")
            self._calls += 1
            try:
                return func(*[self._walk(a) for a in node.args])
            finally:
                self._calls -= 1
        raise RnnsymError(f"{_describe(node)} is not allowed in a formula; allowed: {ALLOWED}")

    def _is_diff(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id in self.differentials

    def _factor(self, top: ast.AST, bottom: ast.AST) -> sp.Dummy:
        of, top_partial = self.differentials[top.id]
        if self._is_diff(bottom):
            wrt, bottom_partial = self.differentials[bottom.id]
        elif isinstance(bottom, ast.Name):  # the article's do3/w: read as do3/dw, and say so
            wrt, bottom_partial = bottom.id, top_partial
            d = "∂" if top_partial else "d"
            self.notes.append(f"read {d}{of}/{wrt} as {d}{of}/{d}{wrt}")
        else:
            raise RnnsymError(f"d{of}/… must be divided by a differential such as d{of}/dw; "
                              f"got {_describe(bottom)} below it")
        dummy = sp.Dummy(f"d{of}_d{wrt}")
        self.factors[dummy] = DerivativeFactor(of, wrt, top_partial or bottom_partial)
        return dummy


def _python_tokens(text: str) -> list:
    """``text`` as Python's tokenizer reads it (one line; no newline or indent tokens), at most
    :data:`MAX_TOKENS` of them; unreadable text is one line naming it."""
    try:
        raw = [t for t in tokenize.generate_tokens(io.StringIO(text.replace("\n", " ")).readline)
               if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise RnnsymError(f"cannot read {text.strip()!r}: {exc.args[0] if exc.args else exc}") from None
    if len(raw) > MAX_TOKENS:
        raise RnnsymError(f"the formula has {len(raw)} tokens; at most {MAX_TOKENS} are read")
    return raw


def _with_products(tokens: list[tuple[str, str]], operands=("name", "number", "diff"), transposes: bool = False) -> list[str]:
    """The tokens' text, with ``*`` where two operands stand side by side: ``(a)(b)``, ``2 w``,
    ``w4 (1 - o4**2)``; a function's name followed by ``(`` is a call, not a product. ``operands``:
    the kinds of token an operand is; ``transposes``: ``.T`` ends an operand and takes no product
    before its ``T`` (the matrix notation)."""
    out: list[str] = []
    previous = None
    for kind, text in tokens:
        ends_operand = previous is not None and (previous[0] in operands or previous[1] == ")")
        starts_operand = kind in (*operands, "func") or text == "("
        if transposes and (previous == ("op", ".") or (kind, text) == ("name", "T")):
            starts_operand = False
        if ends_operand and starts_operand:
            out.append("*")
        if previous is not None and previous[0] == "func" and text != "(":
            raise RnnsymError(_needs_parentheses(previous[1]))
        out.append(text)
        previous = (kind, text)
    if previous is not None and previous[0] == "func":
        raise RnnsymError(_needs_parentheses(previous[1]))
    return out


def _needs_parentheses(function: str) -> str:
    name = function.strip("_")
    return f"{name} needs its argument in parentheses, as in {name}(z)"


def _check_tree(tree: ast.AST) -> None:
    """Refuse a tree deeper than :data:`MAX_DEPTH` (``- - - … x`` or ``a**b**c**…`` nest without
    brackets) before the walker recurses into it."""
    todo = [(tree, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > 2 * MAX_DEPTH + 10:
            raise RnnsymError(f"the formula nests operations more than {MAX_DEPTH} deep; at most {MAX_DEPTH} are read")
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


_WORDS = {ast.Attribute: "attribute access (.name)", ast.Subscript: "indexing ([…])", ast.Lambda: "lambda",
          ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "if/else", ast.Call: "a call",
          ast.List: "a list", ast.Tuple: "a tuple (a comma outside a function's arguments)",
          ast.Dict: "a dict", ast.Set: "a set", ast.Starred: "*unpacking", ast.NamedExpr: ":=",
          ast.JoinedStr: "an f-string", ast.Await: "await", ast.Yield: "yield"}


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        callee = node.func.id if isinstance(node.func, ast.Name) else None
        return f"calling {callee!r}" if callee else "a call of something that is not a function name"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"the operator {type(node.op).__name__}"
    return _WORDS.get(type(node), type(node).__name__)


def _number(value) -> sp.Expr:
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise RnnsymError(f"the number {value!r} is too large for a formula; at most {MAX_NUMBER:g} in size")
    return sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(value))


def _binary(op: ast.operator, left: sp.Expr, right: sp.Expr) -> sp.Expr:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return _finite(left * right)
    if isinstance(op, ast.Div):
        if right == 0:
            raise RnnsymError("the formula divides by zero")
        return _finite(left / right)
    if isinstance(op, ast.Pow):
        return _power(left, right)
    raise RnnsymError(f"the operator {type(op).__name__} is not allowed in a formula; allowed: {ALLOWED}")


def _power(base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
    if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
        raise RnnsymError(f"the exponent {exponent} is too large for a formula; at most {MAX_EXPONENT} in size")
    if base.is_Number and exponent.is_Number:  # computed at once by SymPy: keep the result small
        if base == 0 and exponent.is_negative:
            raise RnnsymError("the formula divides by zero (0 to a negative power)")
        if base != 0 and abs(float(exponent)) * abs(math.log10(abs(float(base)))) > 15:
            raise RnnsymError(f"the number {base}**{exponent} is too large for a formula")
    return _finite(base ** exponent)


def _finite(value: sp.Expr) -> sp.Expr:
    if value.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise RnnsymError("the formula divides by zero or overflows")
    return value


# ---- LaTeX --------------------------------------------------------------------------------------
_LATEX_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}_^]|\s+|\d+\.?\d*|[A-Za-z]|.", re.S)
_FRACTIONS = {r"\frac", r"\dfrac", r"\tfrac"}
_WORD = {r"\mathrm", r"\text", r"\operatorname", r"\mathit", r"\mathbf", r"\boldsymbol", r"\textrm", r"\mathsf"}
_LATEX_FUNCTIONS = {r"\tanh": "tanh", r"\exp": "exp", r"\log": "log", r"\ln": "log", r"\sin": "sin",
                    r"\cos": "cos", r"\sinh": "sinh", r"\cosh": "cosh", r"\arctan": "atan", r"\max": "max",
                    r"\min": "min", r"\sigma": "sigmoid", r"\operatorname{sigmoid}": "sigmoid"}
_LATEX_SYMBOLS = {r"\cdot": "*", r"\times": "*", r"\ast": "*", r"\partial": " ∂", r"\left": "", r"\right": "",
                  r"\bigl": "", r"\bigr": "", r"\Bigl": "", r"\Bigr": "", r"\big": "", r"\Big": "",
                  r"\biggl": "", r"\biggr": "", r"\,": " ", r"\;": " ", r"\!": "", r"\:": " ", r"\ ": " ",
                  r"\quad": " ", r"\qquad": " ", r"\displaystyle": "", r"\{": "(", r"\}": ")",
                  r"\lbrack": "(", r"\rbrack": ")", r"\lparen": "(", r"\rparen": ")", r"\mathrm{d}": "d",
                  r"\(": "", r"\)": "", r"\[": "", r"\]": "", r"\\": " "}


# The commands of the matrix notation, read only for a vector network's formula.
_LATEX_MATRIX = {r"\top": "T", r"\intercal": "T", r"\odot": " ⊙ ", r"\circ": " ⊙ ", r"\delta": " δ",
                 r"\sum": " Σ", r"\mathsf": "", r"\operatorname{diag}": "diag"}


def latex_to_plain(text: str, matrix: bool = False) -> str:
    r"""LaTeX as the plain formula the walker reads: ``\frac{\partial L}{\partial w_3} = (o_5 - Y)
    w_4 (1 - o_4^2) o_3`` becomes ``((∂L)/(∂w_3)) = (o_5 - Y) w_4 (1 - o_4**(2)) o_3``.

    Only the commands a derivation needs are known; any other is refused, naming it.
    """
    tokens = [t for t in _LATEX_TOKEN.findall(text.replace("$", " "))]
    if len(tokens) > 4 * MAX_TOKENS:
        raise RnnsymError(f"the formula has {len(tokens)} LaTeX tokens; at most {4 * MAX_TOKENS} are read")
    out, end = _latex_group(tokens, 0, depth=0, stop=None, matrix=matrix)
    return out


def _latex_group(tokens: list[str], i: int, depth: int, stop: str | None, matrix: bool = False) -> tuple[str, int]:
    if depth > MAX_DEPTH:
        raise RnnsymError(f"the formula nests braces more than {MAX_DEPTH} deep; at most {MAX_DEPTH} are read")
    out: list[str] = []
    while i < len(tokens):
        tok = tokens[i]
        if tok == stop:
            return "".join(out), i + 1
        if tok == "}":
            raise RnnsymError("the formula closes a brace '}' it never opened")
        if tok == "{":
            inner, i = _latex_group(tokens, i + 1, depth + 1, "}", matrix)
            out.append(f"({inner})")
            continue
        if tok in _FRACTIONS:
            top, i = _latex_argument(tokens, i + 1, depth + 1, tok, matrix)
            bottom, i = _latex_argument(tokens, i, depth + 1, tok, matrix)
            out.append(f"(({top})/({bottom}))")
            continue
        if tok in _WORD:
            word, i = _latex_argument(tokens, i + 1, depth + 1, tok, matrix)
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", word.strip()):
                raise RnnsymError(f"{tok}{{{word}}} must hold a name, such as {tok}{{d}} or {tok}{{relu}}")
            out.append(word.strip() if word.strip() != "sigmoid" else " sigmoid")
            continue
        if tok in ("_", "^"):
            arg, i = _latex_argument(tokens, i + 1, depth + 1, tok, matrix)
            if tok == "_":
                if matrix and re.fullmatch(r"\(?t\s*[-+−=]\s*[0-9]+\)?", arg.strip()):  # h_{t-1}, \sum_{t=1}
                    out.append("_(" + arg.strip().strip("()") + ")")
                    continue
                if matrix and out and out[-1] == " δ" and re.fullmatch(r"[A-Za-z0-9_]+", arg.strip()):  # \delta_{h_2}
                    out.append(arg.strip())
                    continue
                if not re.fullmatch(r"[A-Za-z0-9]+", arg.strip()):
                    raise RnnsymError(f"the subscript {arg.strip()!r} is not a name; write o_4 or W_{{hh}}")
                out.append("_" + arg.strip())
            else:
                out.append(f"**({arg})")
            continue
        if tok in _LATEX_FUNCTIONS:
            out.append(f" {_LATEX_FUNCTIONS[tok]}")
        elif matrix and tok in _LATEX_MATRIX:
            out.append(_LATEX_MATRIX[tok])
        elif tok in _LATEX_SYMBOLS:
            out.append(_LATEX_SYMBOLS[tok])
        elif tok.startswith("\\"):
            tok = tok if tok.isprintable() and tok[1:].strip() else repr(tok)  # a backslash before a newline: one line
            raise RnnsymError(f"the LaTeX command {tok} is not known to rnnsym's formula reader; known: \\frac, "
                              "\\partial, \\mathrm{d}, \\cdot, \\times, \\left, \\right, \\tanh, \\sigma, \\exp, "
                              "\\log, \\ln, \\operatorname{…}, _ and ^")
        elif tok.isspace():
            out.append(" ")
        elif re.fullmatch(r"[A-Za-z0-9.+\-*/()\[\]=,]|\d+\.?\d*", tok):
            out.append(tok)
        else:
            raise RnnsymError(f"{tok!r} is not allowed in a formula; allowed: {ALLOWED}")
        i += 1
    if stop is not None:
        raise RnnsymError("the formula leaves a brace '{' open")
    return "".join(out), i


def _latex_argument(tokens: list[str], i: int, depth: int, command: str, matrix: bool = False) -> tuple[str, int]:
    """The argument of ``\\frac``, ``_`` or ``^``: a braced group or one token."""
    while i < len(tokens) and tokens[i].isspace():
        i += 1
    if i >= len(tokens):
        raise RnnsymError(f"{command} is missing its argument")
    if tokens[i] == "{":
        return _latex_group(tokens, i + 1, depth, "}", matrix)
    tok = tokens[i]
    if tok.startswith("\\") or tok in ("}", "_", "^"):
        plain, _ = _latex_group([tok], 0, depth, None, matrix)
        return plain, i + 1
    return tok, i + 1


# ---- vector networks: δ equations in rnnsym's matrix notation -------------------------------------
# A δ equation or a weight's gradient written the way the recursive view prints them:
# δh2 = W_hh^T diag(1 - h3^2) δh3, dL/dW_hh = sum_t diag(1 - h_t^2) δh_t h_(t-1)^T. It is read into a
# small tree of tuples (no SymPy: the verifier evaluates it on arrays), by the same tokenize → ast
# route as a scalar formula, with these forms admitted besides: ^T, .T or ᵀ (transpose), diag(v),
# ⊙ or hadamard(a, b) (elementwise), * · @ or juxtaposition (a matrix product, or a scalar's), δNAME
# (the adjoint ∂L/∂NAME), Σ_t or sum_t (a sum over the steps, to the end of its bracket) and step
# indices NAME_t, NAME_(t-1), NAME_(t+1) inside it.
MATRIX_FUNCTIONS = ("tanh", "sigmoid", "sigma", "relu", "exp", "log")
MATRIX_ALLOWED = ("numbers, the network's names, δNAME (or delta_NAME), + - * / @ (a product), ⊙ or hadamard(a, b) "
                  "(elementwise), ^T, .T or ᵀ (transpose), diag(v), ** or ^ with a number (elementwise power), "
                  "Σ_t / sum_t (a sum over the steps) with NAME_t, NAME_(t-1), and tanh, sigmoid, relu, exp, log")
_MATRIX_UNICODE = {"−": "-", "–": "-", "·": "*", "⋅": "*", "×": "*", "∗": "*", "ᵀ": " .T ", "⊙": " % ",
                   "∘": " % ", "δ": " _delta_ ", "Σ": " sum", "∑": " sum", "σ": " sigma ", "∂": " _partial_ ",
                   "²": "**2", "³": "**3", "⊤": "T", **{chr(0x2080 + k): str(k) for k in range(10)}}
_SUM = re.compile(r"\bsum\s*_\s*[({]?\s*t\s*(=\s*[0-9]+\s*)?[)}]?(\s*(\*\*|\^)\s*[({]?\s*[A-Za-z0-9]+\s*[)}]?)?")


@dataclass(frozen=True)
class MatrixFormula:
    """A parsed δ equation (``kind`` "delta": δNAME = …) or weight gradient (``kind`` "total":
    dL/dNAME = …); ``rhs`` is a tuple tree: ("num", v), ("node", name), ("delta", name),
    ("at", base, offset, is_delta), ("T", a), ("diag", a), ("mul"|"had"|"add"|"sub"|"div", a, b),
    ("neg", a), ("pow", a, n), ("fn", name, a), ("sum_t", a)."""

    source: str
    kind: str
    name: str
    rhs: tuple


def parse_matrix_formula(text: str, network) -> MatrixFormula:
    """Read a vector network's δ equation or weight gradient; anything else is a one-line RnnsymError."""
    if not isinstance(text, str):
        raise RnnsymError(f"a formula is text, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise RnnsymError(f"the formula is {len(text)} characters long; at most {MAX_CHARS} are read")
    if not text.strip():
        raise RnnsymError("the formula is empty; write it as δNAME = … or dL/dW = …, "
                          "e.g. δh2 = W_hh^T diag(1 - h3^2) δh3")
    plain = latex_to_plain(text, matrix=True) if "\\" in text else text
    _check_depth(plain)
    sides = plain.split("=")
    if len(sides) > 2:  # Σ_{t=1}^{T} holds an '=' of its own
        sides = re.sub(r"(?:\bsum|Σ|∑)\s*_\s*[({]\s*t\s*=\s*[0-9]+\s*[)}]", "sum_t", plain).split("=")
    if len(sides) != 2 or any(not s.strip() for s in sides):
        raise RnnsymError("write the formula as one equation with a single '=': δNAME = … (a node's adjoint) or "
                          "dL/dW = … (a weight's gradient)")
    reader = _MatrixReader(network)
    kind, name = reader.left(sides[0])
    rhs = reader.read(sides[1])
    return MatrixFormula(text, kind, name, rhs)


class _MatrixReader:
    def __init__(self, network):
        self.network, self.graph = network, network.graph
        self.placeholders: dict[str, tuple] = {}
        self._calls = 0

    def left(self, side: str) -> tuple[str, str]:
        compact = re.sub(r"[\s(){}\[\]]", "", self._unicode(side))
        m = re.fullmatch(r"_delta_([A-Za-z][A-Za-z0-9_]*)", compact)
        if m and self._node(m.group(1)):
            return "delta", self._node(m.group(1))
        m = re.fullmatch(r"(?:d|_partial_)L/(?:d|_partial_)([A-Za-z][A-Za-z0-9_]*)", compact)
        if m and self._node(m.group(1)):
            node = self._node(m.group(1))
            return ("total" if self.graph[node].kind == "param" else "delta"), node
        raise RnnsymError(f"the left side must be a node's adjoint δNAME or a weight's gradient dL/dNAME, got "
                          f"{side.strip()!r}; {self._names()}")

    def _node(self, name: str) -> str | None:
        if name in self.graph:
            return name
        joined = re.sub(r"_(\d+)$", r"\1", name)
        return joined if joined in self.graph else None

    def _names(self) -> str:
        return "this network's names: " + listed(self.graph.nodes, limit=40)

    @staticmethod
    def _unicode(text: str) -> str:
        for old, new in _MATRIX_UNICODE.items():
            text = text.replace(old, new)
        text = re.sub(r"\bdelta_?(?=[A-Za-z])", " _delta_ ", text)
        return _SUM.sub(" sum_t ", text)

    def read(self, text: str) -> tuple:
        source = self._rewrite(self._unicode(text))
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            raise RnnsymError(f"cannot read the right side {text.strip()!r}: {exc.msg}") from None
        except (MemoryError, RecursionError):
            raise RnnsymError("the right side is too deeply nested to read") from None
        _check_tree(tree)
        return self._walk(tree.body)

    def _rewrite(self, text: str) -> str:
        raw = _python_tokens(text)
        out: list[tuple[str, str]] = []
        sums: list[int] = []  # bracket depths at which an open Σ_t ends
        depth, i = 0, 0
        while i < len(raw):
            tok, s = raw[i], raw[i].string
            ahead = [t.string for t in raw[i + 1:i + 6]]
            if tok.type == tokenize.NAME and s == "sum_t":
                out += [("func", "_sum_t"), ("op", "(")]
                sums.append(depth)
                depth += 1
                i += 1
                continue
            if tok.type == tokenize.NAME and s == "_delta_" and ahead and raw[i + 1].type == tokenize.NAME:
                step = self._indexed(raw, i + 1, delta=True)
                if step is None:
                    raise RnnsymError(f"unknown name {ahead[0]!r} after δ in the formula; {self._names()}")
                out.append(step[0])
                i = step[1]
                continue
            if tok.type == tokenize.NAME:
                step = self._indexed(raw, i, delta=False)
                if step is not None:
                    out.append(step[0])
                    i = step[1]
                    continue
                if s in MATRIX_FUNCTIONS or s in ("diag", "hadamard"):
                    out.append(("func", s))
                    i += 1
                    continue
                raise RnnsymError(f"unknown name {s!r} in the formula; {self._names()}; functions: diag, hadamard, "
                                  f"{', '.join(MATRIX_FUNCTIONS)}")
            if tok.type == tokenize.OP and s in ("^", "**") and ahead[:1] == ["T"]:
                out += [("op", "."), ("name", "T")]
                i += 2
                continue
            if tok.type == tokenize.OP and s in ("^", "**") and ahead[:3] == ["(", "T", ")"]:
                out += [("op", "."), ("name", "T")]
                i += 4
                continue
            if tok.type == tokenize.OP and s == "." and ahead[:1] == ["T"]:
                out += [("op", "."), ("name", "T")]
                i += 2
                continue
            if tok.type == tokenize.NUMBER:
                if not re.fullmatch(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
                    raise RnnsymError(f"the number {s!r} is not allowed in a formula; write decimal numbers")
                out.append(("number", s))
            elif tok.type == tokenize.OP and s in ("+", "-", "*", "/", "**", "^", "@", "%", "(", ")", "[", "]",
                                                   "{", "}", ","):
                op = {"^": "**", "[": "(", "{": "(", "]": ")", "}": ")"}.get(s, s)
                if op == "(":
                    depth += 1
                elif op == ")":
                    depth -= 1
                    while sums and sums[-1] == depth:  # the bracket around a Σ_t closes: so does the Σ
                        out.append(("op", ")"))
                        sums.pop()
                out.append(("op", op))
            else:
                raise RnnsymError(f"{s!r} is not allowed in a formula; allowed: {MATRIX_ALLOWED}")
            i += 1
        out += [("op", ")")] * len(sums)
        return " ".join(_with_products(out, operands=("name", "number"), transposes=True))

    def _place(self, meaning: tuple) -> tuple[str, str]:
        key = f"_P{len(self.placeholders)}"
        self.placeholders[key] = meaning
        return ("name", key)

    def _indexed(self, raw, i: int, delta: bool):
        """(token, next index) for NAME, NAME_t or NAME_(t±k) at raw[i]; None when it is no such name."""
        s = raw[i].string
        after = [t.string for t in raw[i + 1:i + 6]]
        if s.endswith("_") and after[:2] == ["(", "t"]:
            if after[2:3] == [")"]:
                return self._place(("at", s[:-1], 0, delta)), i + 4
            if len(after) >= 5 and after[2] in "+-" and re.fullmatch(r"[0-9]", after[3]) and after[4] == ")":
                return self._place(("at", s[:-1], int(after[2] + after[3]), delta)), i + 6
        if s.endswith("_t") and len(s) > 2 and any(re.fullmatch(re.escape(s[:-2]) + r"[0-9]+", n) for n in self.graph.nodes):
            return self._place(("at", s[:-2], 0, delta)), i + 1
        if s == "T" and not delta:
            return None
        node = self._node(s)
        if node is None:
            return None
        return self._place(("delta" if delta else "node", node)), i + 1

    def _walk(self, node: ast.AST) -> tuple:
        if isinstance(node, ast.BinOp):
            ops = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.MatMult: "mul", ast.Div: "div", ast.Mod: "had"}
            if isinstance(node.op, ast.Pow):
                exponent = node.right
                if not (isinstance(exponent, ast.Constant) and type(exponent.value) is int and
                        0 <= exponent.value <= MAX_EXPONENT):
                    raise RnnsymError(f"a power in a vector formula is a whole number from 0 to {MAX_EXPONENT} "
                                      "(h3^2, elementwise); write ^T for a transpose")
                return ("pow", self._walk(node.left), exponent.value)
            if type(node.op) not in ops:
                raise RnnsymError(f"{_describe(node)} is not allowed in a formula; allowed: {MATRIX_ALLOWED}")
            return (ops[type(node.op)], self._walk(node.left), self._walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self._walk(node.operand)
            return ("neg", value) if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            if not math.isfinite(node.value) or abs(node.value) > MAX_NUMBER:
                raise RnnsymError(f"the number {node.value!r} is too large for a formula")
            return ("num", float(node.value))
        if isinstance(node, ast.Name) and node.id in self.placeholders:
            return self.placeholders[node.id]
        if isinstance(node, ast.Attribute) and node.attr == "T":
            return ("T", self._walk(node.value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in (*MATRIX_FUNCTIONS, "diag", "hadamard", "_sum_t"):
            name = node.func.id
            wanted = 2 if name == "hadamard" else 1
            if node.keywords or len(node.args) != wanted or any(isinstance(a, ast.Starred) for a in node.args):
                raise RnnsymError(f"{name.strip('_')} takes {wanted} argument(s) in a formula")
            if self._calls >= MAX_CALL_DEPTH:
                raise RnnsymError(f"the formula nests functions more than {MAX_CALL_DEPTH} deep")
            self._calls += 1
            try:
                args = [self._walk(a) for a in node.args]
            finally:
                self._calls -= 1
            if name == "hadamard":
                return ("had", *args)
            if name in ("diag", "_sum_t"):
                return ("diag" if name == "diag" else "sum_t", args[0])
            return ("fn", "sigmoid" if name == "sigma" else name, args[0])
        raise RnnsymError(f"{_describe(node)} is not allowed in a formula; allowed: {MATRIX_ALLOWED}")
