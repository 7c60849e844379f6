"""Reading IR text (the format of :mod:`ir.printer`) back into a :class:`~ir.graph.Graph`.

``parse(text)`` tokenizes the whole text (strings may hold ``#``, ``,`` or
``)``; newlines inside ``(...)`` and ``[...]`` are ignored, so a long header
or call may span lines), builds the graph statement by statement, and runs
the verifier on the result, so output types that disagree with the ops'
type rules are errors. Every problem raises :class:`IRParseError` naming the
line.

Intermediate values may carry any name in the text (``%h``, ``%loss``); the
graph does not keep those names (the printer numbers intermediates). On a
node line the trailing comment is the node's ``loc``; comments elsewhere are
ignored.

A graph may also be an attribute value (a ``fused`` node's ``body``): it is
written whole, with its own scope of names, and its lines count as lines
(newlines and comments inside its braces are kept, though it sits in ``[...]``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from ir.dtypes import ALL_DTYPES, scalar_dtype
from ir.graph import MUTATION_FIELDS, Graph, Mutation, Role, Value
from ir.opdef import REGISTRY
from ir.types import Device, TensorType
from ir.verify import IRVerificationError, verify

__all__ = ["parse", "parse_literal", "IRParseError"]


class IRParseError(ValueError):
    """IR text that cannot be read: ``line`` (1-based, None when unknown) says where."""

    def __init__(self, message: str, line: int | None = None, source: str | None = None):
        self.message = message
        self.line = line
        self.source = source
        text = message if line is None else f"line {line}: {message}"
        if source is not None and source.strip():
            text += f"\n    {source.strip()}"
        super().__init__(text)


_STRING = r'"(?:[^"\\\x00-\x1f]|\\.)*"'
_TOKEN = re.compile(rf"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<newline>\n)
  | (?P<string>{_STRING})
  | (?P<value>%(?:[A-Za-z0-9_.]+|{_STRING}))
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<arrow><-)
  | (?P<ellipsis>\.\.\.)
  | (?P<punct>[()\[\]{{}},=:@\-])
""", re.VERBOSE)


@dataclass
class Token:
    kind: str     # name, number, string, value, comment, newline, arrow, ellipsis, punct, eof
    text: str
    line: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; newlines (and comments) inside brackets are dropped."""
    tokens: list[Token] = []
    lines = text.split("\n")
    line, pos, opened = 1, 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            problem = f"unexpected character {text[pos]!r}"
            if text[pos] == "<":  # the printer's <repr> for values the format cannot hold
                problem += " (a <...> value cannot be written as IR text)"
            raise IRParseError(problem, line, lines[line - 1])
        kind, tok = m.lastgroup, m.group()
        pos = m.end()
        # lines count inside a nested graph's braces (a fused body in an attribute)
        in_lines = not opened or opened[-1][0] == "{"
        if kind == "newline":
            if in_lines:
                tokens.append(Token("newline", tok, line))
            line += 1
            continue
        if kind == "ws" or (kind == "comment" and not in_lines):
            continue
        if kind == "punct" and (tok in "([" or (tok == "{" and opened)):
            opened.append((tok, line))
        elif kind == "punct" and tok == "}" and opened and opened[-1][0] == "{":
            opened.pop()
        elif kind == "punct" and tok in ")]":
            if not opened or opened[-1][0] != {")": "(", "]": "["}[tok]:
                raise IRParseError(f"unmatched {tok!r}", line, lines[line - 1])
            opened.pop()
        tokens.append(Token(kind, tok, line))
    if opened:
        tok, where = opened[-1]
        raise IRParseError(f"{tok!r} is never closed", where, lines[where - 1])
    tokens.append(Token("newline", "", line))
    tokens.append(Token("eof", "", line))
    return tokens


_SHORT_DTYPES = {d.short: d for d in ALL_DTYPES}
_DTYPE_NAMES = {d.name: d for d in ALL_DTYPES}
_ROLES = {r.value: r for r in Role}
_KEYWORDS = {"None": None, "True": True, "False": False, "inf": float("inf"),
             "nan": float("nan")}


def _decode_string(tok: Token) -> str:
    try:
        return json.loads(tok.text)
    except ValueError as e:
        raise IRParseError(f"bad string {tok.text}: {e}", tok.line) from None


class _Parser:
    def __init__(self, text: str):
        self.lines = text.split("\n")
        self.tokens = tokenize(text)
        self.count = len(self.tokens)
        self.pos = 0
        self.graph: Graph | None = None
        self.scope: dict[str, Value] = {}
        self.where: dict[int, int] = {}  # id(node / mutation / input) -> line

    # --- token helpers ------------------------------------------------------------------

    def peek(self, offset: int = 0) -> Token:
        i = self.pos + offset
        return self.tokens[i] if i < self.count else self.tokens[-1]

    def next(self) -> Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> IRParseError:
        line = (tok or self.peek()).line
        source = self.lines[line - 1] if line <= len(self.lines) else None
        return IRParseError(message, line, source)

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (text is None or tok.text == text)

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        return self.next() if self.at(kind, text) else None

    def expect(self, kind: str, text: str | None = None, what: str | None = None) -> Token:
        if self.at(kind, text):
            return self.next()
        tok = self.peek()
        found = "end of line" if tok.kind == "newline" else (
            "end of text" if tok.kind == "eof" else repr(tok.text))
        if what is None:
            what = repr(text) if text is not None else kind
        raise self.error(f"expected {what}, found {found}", tok)

    def end_of_statement(self) -> str | None:
        """Consume an optional comment and the newline; return the comment's text."""
        comment = self.accept("comment")
        self.expect("newline", what="end of line")
        return None if comment is None else comment.text[1:].strip()

    def skip_blank(self) -> None:
        while self.at("newline") or self.at("comment"):
            self.next()

    # --- names and types ------------------------------------------------------------------

    def value_name(self, tok: Token) -> str:
        body = tok.text[1:]
        return _decode_string(Token("string", body, tok.line)) if body.startswith('"') else body

    def use(self, tok: Token) -> Value:
        name = self.value_name(tok)
        if name not in self.scope:
            raise self.error(f"undefined value {tok.text}", tok)
        return self.scope[name]

    def define(self, tok: Token, value: Value) -> None:
        name = self.value_name(tok)
        if name in self.scope:
            raise self.error(f"{tok.text} is defined twice", tok)
        self.scope[name] = value

    def parse_type(self) -> TensorType:
        tok = self.expect("name", what="a type such as f32[2,3]")
        dtype = _SHORT_DTYPES.get(tok.text)
        if dtype is None:
            raise self.error(f"unknown dtype {tok.text!r} (expected one of "
                             f"{', '.join(_SHORT_DTYPES)})", tok)
        self.expect("punct", "[")
        dims = []
        while not self.at("punct", "]"):
            if dims:
                self.expect("punct", ",")
            dim = self.expect("number", what="a dimension size")
            if not dim.text.isdigit():
                raise self.error(f"a dimension size is a whole number, not {dim.text}", dim)
            dims.append(int(dim.text))
        self.next()
        device = None
        if self.accept("punct", "@"):
            dev = self.expect("name", what="a device such as cuda:0")
            spec = dev.text
            if self.accept("punct", ":"):
                spec += ":" + self.expect("number", what="a device index").text
            try:
                device = Device(spec)
            except (RuntimeError, ValueError, TypeError) as e:
                raise self.error(f"bad device {spec!r}: {e}", dev) from None
        weak = self.accept("name", "weak") is not None
        return TensorType(tuple(dims), dtype, device, weak)

    # --- literals -------------------------------------------------------------------------

    def literal(self):
        tok = self.next()
        if tok.kind == "punct" and tok.text == "-":
            nxt = self.peek()
            if nxt.kind == "number" or (nxt.kind == "name" and nxt.text in ("inf", "nan")):
                return -self.literal()
            raise self.error("expected a number after '-'", nxt)
        if tok.kind == "number":
            if any(c in tok.text for c in ".eE"):
                return float(tok.text)
            return int(tok.text)
        if tok.kind == "string":
            return _decode_string(tok)
        if tok.kind == "ellipsis":
            return Ellipsis
        if tok.kind == "punct" and tok.text == "(":
            return self.tuple_rest(tok)
        if tok.kind == "punct" and tok.text == "[":
            items = self.items("]")
            return items
        if tok.kind == "name":
            if tok.text in _KEYWORDS:
                return _KEYWORDS[tok.text]
            if tok.text in _DTYPE_NAMES:
                return _DTYPE_NAMES[tok.text]
            if tok.text == "device" and self.at("punct", "("):
                return self.device_literal()
            if tok.text == "slice" and self.at("punct", "("):
                self.next()
                parts = self.items(")")
                if len(parts) != 3:
                    raise self.error("slice(...) takes start, stop and step", tok)
                return slice(*parts)
            if tok.text == "graph":
                return self.nested_graph()
            if tok.text == "array" and self.at("punct", "("):
                self.next()
                data = self.literal()
                self.expect("punct", ",")
                t = self.parse_type()
                self.expect("punct", ")")
                return self.array_data(data, t, tok)
            raise self.error(f"unknown name {tok.text!r} in a value", tok)
        if tok.kind == "value":
            raise self.error(f"an attribute is a constant, not a graph value ({tok.text})", tok)
        raise self.error(f"expected a value, found {tok.text or 'end of line'!r}", tok)

    def items(self, close: str) -> list:
        items = []
        while not self.accept("punct", close):
            if items:
                self.expect("punct", ",", what=f"',' or {close!r}")
            items.append(self.literal())
        return items

    def tuple_rest(self, open_tok: Token) -> tuple:
        if self.accept("punct", ")"):
            return ()
        first = self.literal()
        if self.accept("punct", ")"):
            raise self.error("a parenthesised value is a tuple: write a 1-tuple as (x,)", open_tok)
        self.expect("punct", ",", what="','")
        if self.accept("punct", ")"):
            return (first,)
        return (first, *self.items(")"))

    def device_literal(self) -> Device:
        self.next()
        tok = self.expect("string", what='a device string such as "cuda:0"')
        self.expect("punct", ")")
        try:
            return Device(_decode_string(tok))
        except (RuntimeError, ValueError, TypeError) as e:
            raise self.error(f"bad device: {e}", tok) from None

    def scalar(self):
        tok = self.peek()
        value = self.literal()
        if type(value) not in (bool, int, float):
            raise self.error(f"a node input must be a value (%name) or a number, got {tok.text}",
                             tok)
        return value

    def array_data(self, data, t: TensorType, tok: Token):
        """CONSTANT data (or an ``array(...)`` attribute) of type ``t`` from its literal."""
        if t.weak:
            if type(data) not in (bool, int, float) or scalar_dtype(data) is not t.dtype:
                raise self.error(f"the data of a {t} value must be a Python "
                                 f"{ {'bool': 'bool', 'int64': 'int'}.get(t.dtype.name, 'float')}",
                                 tok)
            return data
        kind = t.dtype.np_dtype.kind
        allowed = (bool,) if kind == "b" else (int,) if kind in "iu" else (int, float)

        def check(x) -> None:
            if isinstance(x, list):
                for y in x:
                    check(y)
            elif type(x) not in allowed:
                raise self.error(f"{t.dtype.name} data cannot hold {x!r}", tok)

        check(data)
        try:
            arr = np.array(data, dtype=t.dtype.np_dtype)
        except (ValueError, OverflowError) as e:
            raise self.error(f"bad {t} data: {e}", tok) from None
        if arr.shape != t.shape:
            if arr.size == 0 and 0 in t.shape:
                arr = arr.reshape(t.shape)
            else:
                raise self.error(f"the data has shape {list(arr.shape)}, its type is {t}", tok)
        return arr

    # --- the graph --------------------------------------------------------------------------

    def parse(self) -> Graph:
        self.skip_blank()
        self.expect("name", "graph", what="'graph'")
        self.graph_block()
        self.end_of_statement()
        self.skip_blank()
        if not self.at("eof"):
            raise self.error("text after the closing '}'")
        self.check()
        return self.graph

    def nested_graph(self) -> Graph:
        """A graph written as an attribute (after its ``graph`` word): its own scope."""
        outer, scope = self.graph, self.scope
        self.scope = {}
        try:
            return self.graph_block()
        finally:
            self.graph, self.scope = outer, scope

    def graph_block(self) -> Graph:
        """A graph from its name to its closing ``}`` (the ``graph`` word already read)."""
        tok = self.next()
        if tok.kind == "name":
            name = tok.text
        elif tok.kind == "string":
            name = _decode_string(tok)
        else:
            raise self.error("expected the graph's name", tok)
        self.graph = Graph(name)
        self.expect("punct", "(")
        while not self.accept("punct", ")"):
            if self.graph.inputs:
                self.expect("punct", ",", what="',' or ')'")
            self.graph_input()
        self.expect("punct", "{")
        self.end_of_statement()
        returned = False
        while True:
            self.skip_blank()
            tok = self.peek()
            if tok.kind == "punct" and tok.text == "}":
                if not returned:
                    raise self.error("the graph has no return line", tok)
                self.next()
                break
            if tok.kind == "eof":
                raise self.error("missing the closing '}'", tok)
            if tok.kind == "name" and tok.text == "return":
                if returned:
                    raise self.error("a second return line", tok)
                self.next()
                self.return_line()
                returned = True
            elif tok.kind == "name" and tok.text == "mutate":
                if not returned:
                    raise self.error("mutate lines come after the return line", tok)
                self.next()
                self.mutate_line()
            elif returned:
                raise self.error("only mutate lines may follow the return line", tok)
            else:
                self.node_line()
        return self.graph

    def graph_input(self) -> None:
        tok = self.expect("value", what="an input such as %x: f32[3]")
        self.expect("punct", ":")
        t = self.parse_type()
        role, data = Role.ARGUMENT, None
        role_tok = self.accept("name")
        if role_tok is not None:
            if role_tok.text not in _ROLES:
                raise self.error(f"unknown input role {role_tok.text!r} (expected one of "
                                 f"{', '.join(_ROLES)})", role_tok)
            role = _ROLES[role_tok.text]
            if role is Role.CONSTANT:
                self.expect("punct", "=", what="'=' and the constant's data")
                data = self.array_data(self.literal(), t, role_tok)
        value = self.graph.add_input(t, role, self.value_name(tok), data)
        self.define(tok, value)
        self.where[id(value)] = tok.line

    def node_line(self) -> None:
        out_toks = []
        if self.at("value"):
            out_toks.append(self.next())
            while self.accept("punct", ","):
                out_toks.append(self.expect("value", what="an output name"))
            self.expect("punct", "=")
        op_tok = self.expect("name", what="a node (%out = op(...) : type)")
        op = REGISTRY.get(op_tok.text)
        if op is None:
            raise self.error(f"unknown op {op_tok.text!r}", op_tok)
        self.expect("punct", "(")
        args = []
        while not self.accept("punct", ")"):
            if args:
                self.expect("punct", ",", what="',' or ')'")
            args.append(self.use(self.next()) if self.at("value") else self.scalar())
        attrs: dict = {}
        if self.accept("punct", "["):
            while not self.accept("punct", "]"):
                if attrs:
                    self.expect("punct", ",", what="',' or ']'")
                key = self.expect("name", what="an attribute name")
                if key.text in attrs:
                    raise self.error(f"attribute {key.text!r} is given twice", key)
                self.expect("punct", "=")
                attrs[key.text] = self.literal()
        types = []
        if out_toks:
            self.expect("punct", ":", what="':' and the output types")
            types.append(self.parse_type())
            while self.accept("punct", ","):
                types.append(self.parse_type())
            if len(types) != len(out_toks):
                raise self.error(f"{len(out_toks)} outputs but {len(types)} types", op_tok)
        loc = self.end_of_statement()
        if loc is not None and loc.startswith('"'):
            try:
                loc = json.loads(loc)
            except ValueError:
                raise self.error(f"bad quoted location {loc}", op_tok) from None
        node = self.graph.add_node(op, args, attrs, types, loc=loc)
        for tok, out in zip(out_toks, node.outputs):
            self.define(tok, out)
        self.where[id(node)] = op_tok.line

    def return_line(self) -> None:
        outputs = []
        if not self.at("newline") and not self.at("comment"):
            outputs.append(self.use(self.expect("value", what="a value to return")))
            while self.accept("punct", ","):
                outputs.append(self.use(self.expect("value", what="a value to return")))
        self.end_of_statement()
        self.graph.outputs = outputs

    def mutate_line(self) -> None:
        first = self.peek()
        if self.at("value"):
            field, target = "data", self.use(self.next())
        else:
            field_tok = self.expect("name", what="%target or grad(%target)")
            if field_tok.text not in MUTATION_FIELDS:
                raise self.error(f"unknown mutation field {field_tok.text!r} (expected one of "
                                 f"{', '.join(MUTATION_FIELDS)})", field_tok)
            field = field_tok.text
            self.expect("punct", "(")
            target = self.use(self.expect("value", what="the mutated input"))
            self.expect("punct", ")")
        self.expect("arrow", what="'<-'")
        value = None if self.accept("name", "None") else self.use(
            self.expect("value", what="a value or None"))
        self.end_of_statement()
        m = Mutation(target, field, value)
        self.graph.mutations.append(m)
        self.where[id(m)] = first.line

    def check(self) -> None:
        try:
            verify(self.graph, roundtrip=False)
        except IRVerificationError as e:
            culprit = e.node if e.node is not None else e.mutation if e.mutation is not None \
                else e.value
            line = self.where.get(id(culprit))
            raise IRParseError(str(e), line,
                               self.lines[line - 1] if line is not None else None) from e


def parse(text: str) -> Graph:
    """Read IR text back into a verified :class:`~ir.graph.Graph`.

    Raises :class:`IRParseError` (a ValueError) naming the line for unknown ops,
    undefined or redefined values, malformed lines, bad types or data, and for
    anything the verifier rejects (such as a type the op's rule disagrees with).
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() expects IR text (a str), got {type(text).__name__}")
    return _Parser(text).parse()


def parse_literal(text: str):
    """Read one attribute value written by :func:`ir.printer.format_literal`."""
    p = _Parser(text)
    value = p.literal()
    p.skip_blank()
    if not p.at("eof"):
        raise p.error(f"unexpected {p.peek().text!r} after the value")
    return value
