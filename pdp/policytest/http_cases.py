"""Reads HTTP-level cases: a request through the gateway and the outcome expected."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pdp.policytest.cases import Context, read_policy_ids
from pdp.policytest.fixtures import read_identity
from pdp.policytest.model import HTTP_DECISIONS, HttpCase, Identity, Location
from pdp.policytest.values import SuiteReader
from pdp.yamlsrc import YMap, kind, line_of

HTTP_KEYS = (
    "name",
    "description",
    "method",
    "path",
    "headers",
    "identity",
    "source_ip",
    "expect",
    "determining",
)
_METHOD = re.compile(r"^[A-Z]+$")


def read_http_case(
    reader: SuiteReader, items: Any, index: int, suite: str, ctx: Context
) -> HttpCase | None:
    """One entry of `http:`: a request through the gateway and the outcome expected."""
    item = reader.mapping(items, index, f"http case {index}")
    if item is None:
        return None
    what = f"http case {index}"
    if not reader.known_keys(item, HTTP_KEYS, what) or not reader.required(
        item, ("method", "path", "expect"), what
    ):
        return None
    before = len(reader.problems)
    method = reader.text(item, "method", "method")
    if method is not None and not _METHOD.match(method.upper()):
        reader.error(item, "method", f"method must be an HTTP method like GET, not {method!r}")
    path = reader.text(item, "path", "path")
    if path is not None and not path.startswith("/"):
        reader.error(item, "path", f"path must start with '/', not {path!r}")
    headers: list[tuple[str, str]] = []
    if "headers" in item:
        table = reader.mapping(item, "headers", "headers")
        for name, value in (table or {}).items():
            scalar = isinstance(value, str | int) and not isinstance(value, bool)
            if isinstance(name, str) and scalar:
                headers.append((name.lower(), str(value)))
            else:
                reader.error(table, name, f"header {name!r} must map a name to a string")
    identity = Identity()
    if "identity" in item:
        identity = read_identity(reader, item, "identity", ctx.scope) or identity
    source_ip = ""
    if "source_ip" in item:
        source_ip = reader.text(item, "source_ip", "source_ip") or ""
        try:
            ipaddress.ip_address(source_ip)
        except ValueError:
            reader.error(item, "source_ip", f"source_ip must be an IP address, not {source_ip!r}")
    expect_decision, expect_status = _http_expect(reader, item)
    determining = None
    if "determining" in item:
        determining = read_policy_ids(reader, item, "determining", ctx)
    if len(reader.problems) > before or method is None or path is None:
        return None
    name = item["name"] if isinstance(item.get("name"), str) and item["name"] else None
    return HttpCase(
        suite=suite,
        name=name or f"{method.upper()} {path}",
        where=Location(reader.path, line_of(items, index)),
        method=method.upper(),
        path=path,
        headers=tuple(headers),
        identity=identity,
        expect_decision=expect_decision,
        expect_status=expect_status,
        determining=determining,
        source_ip=source_ip,
    )


def _http_expect(reader: SuiteReader, item: YMap) -> tuple[str | None, int | None]:
    value = item["expect"]
    if isinstance(value, str) and value.lower() in HTTP_DECISIONS:
        return value.lower(), None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return None, value
    reader.error(
        item, "expect", f"expect must be allow, deny or an HTTP status like 401, not {kind(value)}"
    )
    return None, None
