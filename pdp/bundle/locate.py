"""Source positions for Cedar statements and JSON array items, which cedarpy does not report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Statement:
    """One `;`-terminated Cedar statement and the 1-based line and column where it starts."""

    text: str
    line: int
    column: int


def split_statements(source: str, nested: bool = False) -> list[Statement]:
    """Split Cedar policy text at top-level `;`, skipping strings and `//` comments.

    The result is for locating errors only; cedarpy stays the parser of record. Trailing text
    without a `;` (a truncated policy) is returned as a last statement so it can be blamed.
    With `nested` (Cedar schema text), `;` inside braces does not split, and a closing brace
    back at the top level not followed by `;` ends a declaration (`namespace A { ... }`).
    """
    spans: list[tuple[int, int]] = []
    start: int | None = None
    depth = 0
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "/" and source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch.isspace():
            i += 1
            continue
        if start is None:
            start = i
        if ch == '"':
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
            i += 1
            continue
        if nested and ch == "{":
            depth += 1
        elif nested and ch == "}" and depth > 0:
            depth -= 1
            if depth == 0 and not _next_is_semicolon(source, i + 1):
                spans.append((start, i + 1))
                start = None
        elif ch == ";" and depth == 0:
            spans.append((start, i + 1))
            start = None
        i += 1
    if start is not None:
        spans.append((start, n))
    return _statements(source, spans)


def _next_is_semicolon(source: str, i: int) -> bool:
    while i < len(source) and source[i].isspace():
        i += 1
    return source.startswith(";", i)


def _statements(source: str, spans: list[tuple[int, int]]) -> list[Statement]:
    """Statements for ascending spans, counting newlines once (linear in the text)."""
    statements: list[Statement] = []
    line, counted, line_start = 1, 0, 0
    for start, end in spans:
        newlines = source.count("\n", counted, start)
        if newlines:
            line += newlines
            line_start = source.rfind("\n", counted, start) + 1
        counted = start
        statements.append(Statement(source[start:end], line, start - line_start + 1))
    return statements


# cedarpy's parsers recurse on the native stack and kill the whole process (SIGSEGV) when
# it runs out: at about 700 nested brackets, 4,500 nested `if`s or 20,000 chained operators
# in a policy, 3,000 nested records in a schema. Nothing a person writes comes near these
# limits, which leave room for a mix of the two; a policy nested even a tenth as deep
# exceeds the 128 levels of Cedar's JSON form anyway.
MAX_BRACKET_DEPTH = 200
MAX_OPERATORS = 2000  # per policy statement


def parser_hazard(source: str, schema: bool = False) -> tuple[int, str] | None:
    """Where Cedar text would overflow cedarpy's parser, and why; None when it is safe.

    Strings and `//` comments are skipped. Check before handing text to cedarpy.
    """
    depth = operators = 0
    opening, closing = ("([{<", ")]}>") if schema else ("([{", ")]}")  # a < b is an operator
    for match in (_SCHEMA_TOKENS if schema else _POLICY_TOKENS).finditer(source):
        token = match.group()
        if len(token) == 1 and token in opening:
            depth += 1
            if depth > MAX_BRACKET_DEPTH:
                return match.start(), f"brackets nested more than {MAX_BRACKET_DEPTH} levels deep"
        elif len(token) == 1 and token in closing:
            depth = max(depth - 1, 0)
        elif token == ";":
            if depth == 0:
                operators = 0
        elif token[0] not in '"/':
            operators += 1
            if operators > MAX_OPERATORS:
                return match.start(), f"more than {MAX_OPERATORS} operators in one policy"
    return None


_SKIPPED = r'"(?:[^"\\]|\\.)*"?|//[^\n]*'
_POLICY_TOKENS = re.compile(
    _SKIPPED + r"|[()\[\]{};]|&&|\|\||==|!=|<=|>=|[<>+\-*.]|\b(?:if|has|like|is|in)\b"
)
_SCHEMA_TOKENS = re.compile(_SKIPPED + r"|[()\[\]{}<>]")


def line_comments(source: str) -> list[tuple[int, str]]:
    """Every `//` comment of Cedar text, in order, as (1-based line, text without trailing
    blanks); `//` inside a string is not a comment."""
    found: list[tuple[int, str]] = []
    line, counted = 1, 0
    for match in re.finditer(_SKIPPED, source):
        if match.group().startswith("//"):
            line += source.count("\n", counted, match.start())
            counted = match.start()
            found.append((line, match.group().rstrip()))
    return found


def position(source: str, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of a character offset."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def json_array_item_lines(source: str) -> list[int]:
    """The 1-based start line of each item of a top-level JSON array, in order.

    Returns an empty list when the text is not a JSON array (the caller reports that).
    """
    decoder = json.JSONDecoder()
    i = _skip_ws(source, 0)
    if i >= len(source) or source[i] != "[":
        return []
    lines: list[int] = []
    line, counted = 1, 0  # newlines are counted once, as the scan moves forward
    i = _skip_ws(source, i + 1)
    while i < len(source) and source[i] != "]":
        line += source.count("\n", counted, i)
        counted = i
        lines.append(line)
        try:
            _, i = decoder.raw_decode(source, i)
        except json.JSONDecodeError:
            break
        i = _skip_ws(source, i)
        if i < len(source) and source[i] == ",":
            i = _skip_ws(source, i + 1)
    return lines


def _skip_ws(source: str, i: int) -> int:
    while i < len(source) and source[i] in " \t\r\n":
        i += 1
    return i


def line_of_token(source: str, token: str) -> int | None:
    """The first line that uses `token` outside a `//` comment, if any (for schema errors).

    An identifier matches whole words only, so `Usr` is not found inside `User`.
    """
    pattern = re.escape(token)
    if re.fullmatch(r"\w+", token):
        pattern = rf"(?<![\w]){pattern}(?![\w])"
    for match in re.finditer(pattern, source):
        line_start = source.rfind("\n", 0, match.start()) + 1
        if "//" not in source[line_start : match.start()]:
            return position(source, match.start())[0]
    return None
