"""The error model: every exception lives in pdp/errors.py, every code has one status."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import grpc
import pytest

from pdp import errors
from pdp.errors import STATUS, ErrorCode, HttpLimitExceeded, PdpError

PACKAGE = Path(__file__).resolve().parent.parent / "pdp"


def error_classes() -> list[type[PdpError]]:
    return [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, PdpError)
    ]


def test_every_code_has_a_grpc_and_an_http_status() -> None:
    assert set(STATUS) == set(ErrorCode)
    for code, (grpc_name, http_status) in STATUS.items():
        assert grpc.StatusCode[grpc_name] is not grpc.StatusCode.OK, code
        assert 400 <= http_status <= 599, code


@pytest.mark.parametrize("kind", error_classes(), ids=lambda kind: kind.__name__)
def test_every_error_class_has_a_code_the_table_knows(kind: type[PdpError]) -> None:
    assert kind.code in STATUS
    assert kind.__doc__, f"{kind.__name__} needs a one-line docstring"


def test_statuses_come_from_the_code() -> None:
    assert errors.RequestError("context", "bad").grpc_status == "INVALID_ARGUMENT"
    assert errors.LimitExceeded("context", "big").grpc_status == "RESOURCE_EXHAUSTED"
    assert errors.DeadlineExceeded("late").grpc_status == "DEADLINE_EXCEEDED"
    assert errors.DeadlineExceeded("late").http_status == 503  # a Check refused as unavailable
    assert errors.NoBundleError("none").grpc_status == "UNAVAILABLE"
    over = HttpLimitExceeded("attributes.request.http.path", "long", 414)
    assert (over.grpc_status, over.http_status) == ("RESOURCE_EXHAUSTED", 414)


def test_bundle_errors_carry_their_warnings() -> None:
    warning = errors.Problem("entity.json", "unknown file", severity="warning")
    error = errors.BundleError([errors.Problem("p.cedar", "bad")], (warning,))
    assert error.warnings == (warning,)
    assert errors.BundleError([errors.Problem("p.cedar", "bad")]).warnings == ()


def exception_classes_outside_errors(root: Path) -> list[str]:
    """`module:Class` for every public class deriving from an exception outside errors.py."""
    known = {name for name, value in vars(errors).items() if inspect.isclass(value)}
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        # pdp.client's errors are the caller's contract (what a service catches around a
        # call), derived from PdpError and named after gRPC statuses; they live with the client.
        if rel.startswith(("pdp/v1/", "pdp/client/")) or rel == "pdp/errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
            if any(b in known or b.endswith(("Error", "Exception", "Exceeded")) for b in bases):
                found.append(f"{rel}:{node.name}")
    return found


def test_no_exception_class_is_defined_outside_errors() -> None:
    assert exception_classes_outside_errors(PACKAGE) == []


def test_the_exception_rule_catches_a_stray_class(tmp_path: Path) -> None:
    stray = tmp_path / "pdp" / "gateway"
    stray.mkdir(parents=True)
    (stray / "routes.py").write_text(
        "class RouteError(ValueError):\n    pass\n\n\nclass _Signal(Exception):\n    pass\n"
    )
    assert exception_classes_outside_errors(tmp_path / "pdp") == [
        "pdp/gateway/routes.py:RouteError"
    ]
