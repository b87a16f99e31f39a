"""A parser for the FHIRPath subset that SQL-on-FHIR v2 views use.

It produces a small AST that the SQL compiler (:mod:`kangqiao.analytics.fhirpath_sql`)
walks. Anything outside the grammar subset raises :class:`FhirPathSyntaxError`; the
view validator turns that into a ``ViewDefinitionError`` naming the element path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union


class FhirPathSyntaxError(ValueError):
    """The expression is not valid FHIRPath or is outside the supported subset."""


@dataclass(frozen=True)
class Lit:
    value: object  # str | int | float | bool | None (None: the empty collection ``{}``)
    kind: str  # "str" | "int" | "num" | "bool" | "empty"


@dataclass(frozen=True)
class Ident:
    """A member name evaluated against the current focus (``name`` in ``name.family``)."""

    name: str


@dataclass(frozen=True)
class This:
    pass


@dataclass(frozen=True)
class Var:
    name: str  # without the leading ``%``


@dataclass(frozen=True)
class Nav:
    base: Node
    name: str


@dataclass(frozen=True)
class Call:
    base: Node | None  # None: called on the current focus (``where(...)`` at the start)
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Index:
    base: Node
    index: Node


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Bin:
    op: str
    left: Node
    right: Node


Node = Union[Lit, Ident, This, Var, Nav, Call, Index, Unary, Bin]  # noqa: UP007

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<date>@[0-9T:.+\-Z]+)
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
    | (?P<var>%(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`|'[^']+'))
    | (?P<this>\$this|\$index|\$total)
    | (?P<op><=|>=|!=|!~|[-+*/&|<>=~(),.\[\]{}])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "'": "'", '"': '"', "`": "`", "/": "/",
            "\\": "\\"}  # fmt: skip
_KEYWORD_OPS = {"and", "or", "xor", "implies", "div", "mod", "is", "as", "in", "contains"}
# Binary operator precedence, lowest first (FHIRPath section 9, "Operator precedence").
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("implies",),
    ("or", "xor"),
    ("and",),
    ("in", "contains"),
    ("=", "!=", "~", "!~"),
    ("<", ">", "<=", ">="),
    ("|",),
    ("is", "as"),
    ("+", "-", "&"),
    ("*", "/", "div", "mod"),
)


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FhirPathSyntaxError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "ident" and value in _KEYWORD_OPS:
            kind = "op"
        tokens.append((kind, value))
        pos = m.end()
    tokens.append(("eof", ""))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        kind, got = self.take()
        if got != value or kind not in ("op",):
            raise FhirPathSyntaxError(f"expected {value!r}, found {got or 'end of expression'!r}")

    def parse(self) -> Node:
        node = self.binary(0)
        if self.peek()[0] != "eof":
            raise FhirPathSyntaxError(f"unexpected {self.peek()[1]!r}")
        return node

    def binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            kind, value = self.peek()
            if kind != "op" or value not in _LEVELS[level]:
                return left
            self.take()
            if value in ("is", "as"):
                raise FhirPathSyntaxError(f"the {value!r} operator is not supported")
            left = Bin(value, left, self.binary(level + 1))

    def unary(self) -> Node:
        kind, value = self.peek()
        if kind == "op" and value in ("+", "-"):
            self.take()
            operand = self.unary()
            if value == "-" and isinstance(operand, Lit) and operand.kind in ("int", "num"):
                return Lit(-operand.value, operand.kind)  # type: ignore[operator]
            return Unary(value, operand)
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            kind, value = self.peek()
            if kind == "op" and value == ".":
                self.take()
                node = self.invocation(node)
            elif kind == "op" and value == "[":
                self.take()
                index = self.binary(0)
                self.expect("]")
                node = Index(node, index)
            else:
                return node

    def invocation(self, base: Node | None) -> Node:
        kind, value = self.take()
        if kind != "ident":
            raise FhirPathSyntaxError(f"expected a name after '.', found {value!r}")
        name = value.strip("`")
        if self.peek() == ("op", "("):
            self.take()
            args: list[Node] = []
            if self.peek() != ("op", ")"):
                args.append(self.binary(0))
                while self.peek() == ("op", ","):
                    self.take()
                    args.append(self.binary(0))
            self.expect(")")
            return Call(base, name, tuple(args))
        return Ident(name) if base is None else Nav(base, name)

    def term(self) -> Node:
        kind, value = self.peek()
        if kind == "str":
            self.take()
            return Lit(_unescape(value[1:-1]), "str")
        if kind == "num":
            self.take()
            return Lit(float(value), "num") if "." in value else Lit(int(value), "int")
        if kind == "date":
            self.take()
            return Lit(value[1:].lstrip("T") if value.startswith("@T") else value[1:], "str")
        if kind == "var":
            self.take()
            return Var(value[1:].strip("`'"))
        if kind == "this":
            self.take()
            if value != "$this":
                raise FhirPathSyntaxError(f"{value} is not supported")
            return This()
        if kind == "ident":
            if value in ("true", "false") and self.tokens[self.i + 1] != ("op", "("):
                self.take()
                return Lit(value == "true", "bool")
            return self.invocation(None)
        if (kind, value) == ("op", "("):
            self.take()
            node = self.binary(0)
            self.expect(")")
            return node
        if (kind, value) == ("op", "{"):
            self.take()
            self.expect("}")
            return Lit(None, "empty")
        raise FhirPathSyntaxError(f"unexpected {value or 'end of expression'!r}")


def parse(text: str) -> Node:
    """Parse a FHIRPath expression into an AST."""
    if not isinstance(text, str) or not text.strip():
        raise FhirPathSyntaxError("empty expression")
    return _Parser(text).parse()
