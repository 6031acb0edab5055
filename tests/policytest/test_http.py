"""HTTP cases through the gateway pipeline, or visibly skipped when there is no gateway."""

from __future__ import annotations

import json
from pathlib import Path

from pdp.policytest import run_path
from tests.policytest.helpers import docs_bundle

ROUTES = """
identity:
  jwt:
    issuers:
      - issuer: https://idp.test/
        audiences: [docs]
        algorithms: [ES256]
        jwks: {file: keys/idp.jwks.json}
        principal: {type: User, id_claim: sub, roles_claim: roles, role_type: Role}
context: {}
routes:
  - {name: read-doc, method: GET, path: "/docs/{id}", action: read,
     resource: {type: Doc, id: "{id}"}}
  - {name: delete-doc, method: DELETE, path: "/docs/{id}", action: delete,
     resource: {type: Doc, id: "{id}"}}
"""

SUITE = """
name: HTTP
identities:
  alice: {claims: {sub: alice}}
  root: {claims: {sub: root, roles: [admin]}}
http:
  - {name: owner, method: GET, path: /docs/d1, identity: alice, expect: 200,
     determining: [owner-read]}
  - {name: stranger, method: GET, path: /docs/d1, identity: {claims: {sub: bob}}, expect: 403}
  - {name: admin, method: GET, path: /docs/d1, identity: root, expect: allow,
     determining: [admin-all]}
  - {name: no credential, method: GET, path: /docs/d1, expect: 401}
  - {name: untrusted issuer, method: GET, path: /docs/d1, expect: 401,
     identity: {claims: {sub: alice, iss: "https://evil.test/"}}}
  - {name: unknown route, method: GET, path: /nowhere, identity: alice, expect: deny}
"""


def _jwks() -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    key = json.loads(ECAlgorithm.to_jwk(public))
    return json.dumps({"keys": [{**key, "kid": "k1", "alg": "ES256", "use": "sig"}]})


def _bundle(tmp_path: Path, suite: str = SUITE, routes: bool = True) -> Path:
    root = docs_bundle(tmp_path, {"http.yaml": suite}, fixtures=False)
    if routes:
        (root / "keys").mkdir()
        (root / "keys" / "idp.jwks.json").write_text(_jwks())
        (root / "routes.yaml").write_text(ROUTES)
    return root


def test_http_cases_run_through_the_gateway(tmp_path: Path) -> None:
    report = run_path(_bundle(tmp_path), coverage=True)
    assert report.load_problems == ()
    assert report.result is not None
    results = {r.case.name: r for r in report.result.results}
    assert {n: r.status for n, r in results.items() if r.status != "passed"} == {}
    assert {n: r.actual for n, r in results.items()} == {
        "owner": "200",
        "stranger": "403",
        "admin": "200",
        "no credential": "401",
        "untrusted issuer": "401",
        "unknown route": "403",
    }
    assert results["owner"].route == "read-doc"
    assert str(results["owner"].action) == 'Action::"read"'
    assert any("nothing is signed" in note for note in report.result.notes)
    coverage = report.coverage
    assert coverage is not None and coverage.routes is not None
    # 401s end before a route is chosen; the unknown route reaches none
    assert [(r.route, r.cases) for r in coverage.routes] == [("read-doc", 3), ("delete-doc", 0)]
    assert coverage.unreached_routes == ["delete-doc"]


def test_a_wrong_http_expectation_fails_with_the_gateway_reason(tmp_path: Path) -> None:
    suite = """
    http:
      - {name: wrong, method: GET, path: /docs/d1, identity: {claims: {sub: bob}}, expect: allow}
    """
    report = run_path(_bundle(tmp_path, suite))
    assert report.result is not None and not report.ok
    (result,) = report.result.results
    assert result.status == "failed"
    assert result.messages[0] == "expected allow, got deny (403)"
    assert result.messages[1].startswith("gateway: policy: ")


def test_without_routes_yaml_http_cases_are_skipped_never_passed(tmp_path: Path) -> None:
    report = run_path(_bundle(tmp_path, routes=False))
    assert report.result is not None
    assert {r.status for r in report.result.results} == {"skipped"}
    assert report.result.passed == 0
    reason = report.result.results[0].messages[0]
    assert reason == "skipped: gateway not available (the bundle has no routes.yaml)"
    assert any("6 HTTP case(s) skipped" in note for note in report.result.notes)
