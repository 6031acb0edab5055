"""JSON in and out of the HTTP edge: strict request bodies, error bodies that name the problem."""

from __future__ import annotations

import json
import re
from typing import Any

from pdp import jsonkeys
from pdp.errors import BodyError, PdpError, RequestError
from pdp.http.messages import Request, Response
from pdp.server.calls import STATUS, code_of

JSON_TYPE = "application/json"
NO_STORE = ("cache-control", "no-store")
JSON_HEADERS = [("content-type", JSON_TYPE), NO_STORE]
ERROR_WORDS = {
    400: "invalid_argument",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal",
    503: "unavailable",
}


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Duplicate
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_object(request: Request, media_status: int = 415) -> dict[str, Any]:
    """The request's body as a JSON object; BodyError naming what is wrong.

    The Content-Type must be application/json (`media_status` when not: 415, or 400 where
    a spec says so), the body UTF-8 JSON with no key twice, its top level an object.
    """
    media = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media != JSON_TYPE:
        shown = request.header("content-type")
        got = "none" if shown is None else repr(shown[:60])
        raise BodyError(media_status, f"Content-Type must be {JSON_TYPE} (got {got})")
    if not request.body.strip():
        raise BodyError(400, "the body is empty; expected a JSON object")
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Duplicate:
        found = jsonkeys.find_duplicate(text)
        where = found.path if found is not None else ""
        message = found.message if found is not None else "duplicate key"
        raise BodyError(400, message, where.lstrip(".")) from None
    except RecursionError:
        raise BodyError(400, "the body is nested too deeply") from None
    except ValueError as exc:
        raise BodyError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BodyError(400, f"the body must be a JSON object, not {_kind(document)}")
    if "\\u" in text:  # only an escape can bring a lone surrogate: strict UTF-8 cannot
        lone = _lone_surrogate(document)
        if lone is not None:
            what = "a lone surrogate escape (\\ud800 to \\udfff without its pair) is not text"
            raise BodyError(400, what, lone.lstrip("."))
    return document


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(document: Any) -> str | None:
    """Where a string (or, naming the object holding it, a key) holds a lone surrogate, as
    the duplicate key check writes paths; None when every string is text."""
    for path, value in jsonkeys.walk(document):
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path
        elif isinstance(value, dict) and any(_SURROGATE.search(key) for key in value):
            return path  # (before its members: a path never holds the key itself)
    return None


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def ok(value: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(200, dumps(value), JSON_HEADERS + (headers or []))


def error_body(status: int, message: str, field: str = "", word: str = "") -> bytes:
    """`{"error": word, "message": "FIELD: message", "field": FIELD}` (field when known)."""
    body: dict[str, Any] = {
        "error": word or ERROR_WORDS.get(status, "error"),
        "message": f"{field}: {message}" if field else message,
    }
    if field:
        body["field"] = field
    return dumps(body)


def error(status: int, message: str, field: str = "", word: str = "") -> Response:
    return Response(status, error_body(status, message, field, word), list(JSON_HEADERS))


def from_body_error(exc: BodyError) -> Response:
    return error(exc.status, exc.message, exc.field)


def from_pdp_error(exc: PdpError, rename: Any = None) -> Response:
    """The answer for a call that failed: status by code (`STATUS`), the field named."""
    code = code_of(exc)
    status = STATUS[code][1]
    if isinstance(exc, RequestError):
        field = rename(exc.field) if rename is not None else exc.field
        return error(status, exc.message, field, code)
    headers = [("retry-after", "1")] if status == 503 else []
    response = error(status, str(exc), "", code)
    response.headers += headers
    return response
