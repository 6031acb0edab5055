"""Reads the actions a schema declares, from Cedar or JSON schema text (cedarpy cannot say)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pdp.model import EntityRef

_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>//[^\n]*)|(?P<string>"(?:[^"\\]|\\.)*")"""
    r"""|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<path>::)|(?P<punct>.)""",
    re.S,
)
_OPEN = {"{": "}", "[": "]", "(": ")", "<": ">"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True, slots=True)
class ActionDecl:
    """One declared action: its uid, whether it has `appliesTo`, and its parent groups."""

    uid: EntityRef
    applies: bool
    parents: tuple[EntityRef, ...] = field(default=())


def actions_from_schema(path: str, text: str) -> list[ActionDecl]:
    """Every action of the schema at `path` (`.cedarschema.json` is JSON, else Cedar syntax).

    Raises ValueError when the text cannot be read (cedarpy has accepted it by then).
    """
    if path.endswith(".json"):
        return _from_json(text)
    return _CedarSchemaReader(text).read()


def requestable(actions: list[ActionDecl]) -> list[ActionDecl]:
    """Actions a request can name: leaves out pure groups (no appliesTo, parent of another)."""
    groups = {parent for action in actions for parent in action.parents}
    return [a for a in actions if a.applies or a.uid not in groups]


def _action_type(namespace: str) -> str:
    return f"{namespace}::Action" if namespace else "Action"


def _from_json(text: str) -> list[ActionDecl]:
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("a JSON schema is an object of namespaces")
    found: list[ActionDecl] = []
    for namespace, body in document.items():
        actions = body.get("actions", {}) if isinstance(body, dict) else {}
        action_type = _action_type(namespace)
        for name, spec in actions.items():
            spec = spec if isinstance(spec, dict) else {}
            parents = tuple(
                EntityRef(str(m.get("type") or action_type), str(m.get("id")))
                for m in spec.get("memberOf") or []
                if isinstance(m, dict) and "id" in m
            )
            found.append(ActionDecl(EntityRef(action_type, name), "appliesTo" in spec, parents))
    return found


class _CedarSchemaReader:
    """A small recursive reader of the Cedar schema grammar that keeps only actions."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup or "punct"
            if kind not in ("space", "comment"):
                self.tokens.append((kind, match.group()))
        self.pos = 0
        self.found: list[ActionDecl] = []

    def read(self) -> list[ActionDecl]:
        while not self._at_end():
            self._skip_annotations()
            if self._peek() == ("ident", "namespace"):
                self.pos += 1
                namespace = self._path()
                self._expect("{")
                while self._peek()[1] != "}":
                    if self._at_end():
                        raise ValueError(f"namespace {namespace} is not closed")
                    self._declaration(namespace)
                self.pos += 1
            else:
                self._declaration("")
        return self.found

    def _declaration(self, namespace: str) -> None:
        self._skip_annotations()
        if self._peek() == ("ident", "action"):
            self.pos += 1
            self._action(namespace)
        else:
            self._skip_statement()

    def _action(self, namespace: str) -> None:
        action_type = _action_type(namespace)
        names = [self._name()]
        while self._peek()[1] == ",":
            self.pos += 1
            names.append(self._name())
        parents: list[EntityRef] = []
        applies = False
        while self._peek()[1] != ";":
            if self._at_end():
                raise ValueError("action declaration is not terminated by ';'")
            kind, value = self._next()
            if (kind, value) == ("ident", "in"):
                parents = self._refs(namespace)
            elif (kind, value) == ("ident", "appliesTo"):
                applies = True
                self._skip_group()
            elif (kind, value) == ("ident", "attributes"):
                self._skip_group()
            else:
                raise ValueError(f"unexpected {value!r} in action declaration")
        self.pos += 1
        for name in names:
            self.found.append(ActionDecl(EntityRef(action_type, name), applies, tuple(parents)))

    def _refs(self, namespace: str) -> list[EntityRef]:
        if self._peek()[1] != "[":
            return [self._ref(namespace)]
        self.pos += 1
        refs = []
        while self._peek()[1] != "]":
            refs.append(self._ref(namespace))
            if self._peek()[1] == ",":
                self.pos += 1
        self.pos += 1
        return refs

    def _ref(self, namespace: str) -> EntityRef:
        kind, value = self._next()
        if kind == "string":
            return EntityRef(_action_type(namespace), _unquote(value))
        parts = [value]
        while self._peek()[1] == "::":
            self.pos += 1
            kind, value = self._next()
            if kind == "string":
                path = "::".join(parts)
                if path == "Action" and namespace:
                    path = _action_type(namespace)
                return EntityRef(path, _unquote(value))
            parts.append(value)
        return EntityRef(_action_type(namespace), "::".join(parts))

    def _name(self) -> str:
        kind, value = self._next()
        if kind == "string":
            return _unquote(value)
        if kind == "ident":
            return value
        raise ValueError(f"expected an action name, found {value!r}")

    def _path(self) -> str:
        parts = [self._next()[1]]
        while self._peek()[1] == "::":
            self.pos += 1
            parts.append(self._next()[1])
        return "::".join(parts)

    def _skip_annotations(self) -> None:
        while self._peek()[1] == "@":
            self.pos += 2
            if self._peek()[1] == "(":
                self._skip_group()

    def _skip_statement(self) -> None:
        while not self._at_end():
            value = self._peek()[1]
            if value == ";":
                self.pos += 1
                return
            if value in _OPEN and value != "<":
                self._skip_group()
            else:
                self.pos += 1
        raise ValueError("declaration is not terminated by ';'")

    def _skip_group(self) -> None:
        """Skip one bracketed group, nested ones included, starting at its opening token."""
        depth = 0
        while not self._at_end():
            kind, value = self._next()
            if kind != "punct":
                continue
            if value in "{[(":
                depth += 1
            elif value in "}])":
                depth -= 1
                if depth == 0:
                    return
        raise ValueError("unbalanced brackets")

    def _expect(self, value: str) -> None:
        found = self._next()[1]
        if found != value:
            raise ValueError(f"expected {value!r}, found {found!r}")

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token[0] == "end":
            raise ValueError("unexpected end of schema")
        self.pos += 1
        return token

    def _at_end(self) -> bool:
        return self.pos >= len(self.tokens)


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u" and body.startswith("{", i + 2):
            end = body.index("}", i + 3)
            out.append(chr(int(body[i + 3 : end], 16)))
            i = end + 1
        else:
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)
