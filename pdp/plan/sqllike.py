"""Cedar's `like` in SQL: case-sensitive, `*` its only wildcard, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

# --- Cedar's `like` ----------------------------------------------------------------------


class CedarLike(ColumnElement[bool]):
    """`subject like pattern` as Cedar means it: case-sensitive, `*` the only wildcard.

    SQLite: GLOB (case-sensitive), with `*`, `?` and `[` of the text put in brackets.
    PostgreSQL: LIKE (case-sensitive) with `%`, `_` and the escape character escaped.
    Other dialects are refused: their LIKE may ignore case.
    """

    type = sa.Boolean()
    inherit_cache = False

    def __init__(self, subject: ColumnElement[Any], pattern: list[Any]) -> None:
        self.subject = subject
        self.pattern = pattern

    def get_children(self, **kw: Any) -> list[Any]:
        return [self.subject]


def _glob(pattern: list[Any]) -> str:
    special = {"*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(
        "*" if part == "Wildcard" else "".join(special.get(ch, ch) for ch in part["Literal"])
        for part in pattern
    )


def _like_pattern(pattern: list[Any]) -> str:
    special = {"%": "!%", "_": "!_", "!": "!!"}
    return "".join(
        "%" if part == "Wildcard" else "".join(special.get(ch, ch) for ch in part["Literal"])
        for part in pattern
    )


@compiles(CedarLike, "sqlite")
def _like_sqlite(element: CedarLike, compiler: Any, **kw: Any) -> str:
    subject = compiler.process(element.subject, **kw)
    pattern = compiler.process(sa.literal(_glob(element.pattern), sa.String()), **kw)
    return f"({subject} GLOB {pattern})"


@compiles(CedarLike, "postgresql")
def _like_postgresql(element: CedarLike, compiler: Any, **kw: Any) -> str:
    subject = compiler.process(element.subject, **kw)
    pattern = compiler.process(sa.literal(_like_pattern(element.pattern), sa.String()), **kw)
    return f"({subject} LIKE {pattern} ESCAPE '!')"


@compiles(CedarLike)
def _like_other(element: CedarLike, compiler: Any, **kw: Any) -> str:
    raise sa.exc.CompileError(
        f"Cedar's like is written for sqlite and postgresql, not {compiler.dialect.name}"
    )
