"""HTTP cases through the gateway pipeline, or visibly skipped when there is no gateway."""

from __future__ import annotations

import json
from pathlib import Path

from pdp.policytest import run_path
from tests.support.cli import run_cli
from tests.support.policytest_bundles import docs_bundle

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


TWO_ISSUERS = ROUTES.replace(
    "        principal: {type: User, id_claim: sub, roles_claim: roles, role_type: Role}\n",
    "        principal: {type: User, id_claim: sub, roles_claim: roles, role_type: Role,\n"
    "                    allow_id_collisions: true}\n"
    "      - issuer: https://partner.test/\n"
    "        audiences: [docs]\n"
    "        algorithms: [ES256]\n"
    "        jwks: {file: keys/idp.jwks.json}\n"
    "        principal: {type: User, allow_id_collisions: true}\n",
    1,
)
NO_ISS = """
name: HTTP
http:
  - {name: no iss, method: GET, path: /docs/d1, identity: {claims: {sub: alice}}, expect: 200}
  - {name: "no iss, expecting a 401", method: GET, path: /docs/d1,
     identity: {claims: {sub: alice}}, expect: 401}
  - {name: with iss, method: GET, path: /docs/d1, expect: 200,
     identity: {claims: {sub: alice, iss: "https://idp.test/"}}}
  - {name: untrusted iss, method: GET, path: /docs/d1, expect: 200,
     identity: {claims: {sub: alice, iss: "https://evil.test/"}}}
"""


def test_claims_without_iss_under_several_issuers_say_so(tmp_path: Path) -> None:
    """0.1.0: every such case failed with "jwt_authn payload issuer is not trusted", and one
    expecting 401 passed for that wrong reason."""
    root = _bundle(tmp_path, NO_ISS)
    (root / "routes.yaml").write_text(TWO_ISSUERS)
    report = run_path(root)
    assert report.load_problems == () and report.result is not None
    results = {r.case.name: r for r in report.result.results}
    expected = (
        "the case's claims have no `iss`, and the bundle trusts 2 issuers (https://idp.test/, "
        "https://partner.test/): add `iss: <one of them>` to the claims to say whose token "
        "they stand for"
    )
    for name in ("no iss", "no iss, expecting a 401"):
        assert (results[name].status, results[name].messages) == ("failed", (expected,))
    assert results["with iss"].status == "passed"
    untrusted = results["untrusted iss"]
    assert untrusted.status == "failed"
    assert untrusted.messages[-1] == (
        "gateway: unknown_issuer: the case's claims have iss 'https://evil.test/', not one of "
        "the bundle's issuers (https://idp.test/, https://partner.test/)"
    )
    assert not any("jwt_authn" in m for r in results.values() for m in r.messages)


def test_pdp_test_reports_the_missing_iss(tmp_path: Path) -> None:
    root = _bundle(tmp_path, NO_ISS)
    (root / "routes.yaml").write_text(TWO_ISSUERS)
    done = run_cli("test", str(root))  # the report's words; test_cli.py runs the process
    assert done.returncode == 4
    assert "the case's claims have no `iss`, and the bundle trusts 2 issuers" in done.stdout
    assert "jwt_authn" not in done.stdout


def test_with_one_issuer_claims_without_iss_still_mean_that_issuer(tmp_path: Path) -> None:
    suite = """
    http:
      - {name: no iss, method: GET, path: /docs/d1, identity: {claims: {sub: alice}}, expect: 200}
    """
    report = run_path(_bundle(tmp_path, suite))
    assert report.result is not None and report.ok
