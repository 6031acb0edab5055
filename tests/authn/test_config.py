"""routes.yaml is checked at bundle load: every mistake is a `routes.yaml:LINE: message`."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pdp.bundle import load_bundle
from pdp.errors import BundleError
from tests.support.gateway import bundle_with, public_jwk
from tests.support.server import REPO

BASE = """\
identity:
  jwt:
    issuers:
      - issuer: https://auth.shop.example/
        audiences: [orders-api]
        algorithms: [ES256]
        jwks:
          file: keys/orders.jwks.json
        principal:
          type: User
          roles_claim: roles
          role_type: Role
          attributes:
            email: email
  mtls:
    principal_type: Service
  api_keys:
    keys:
      - name: reporting
        hash: sha256:436cf67a97b68d986eaa435a841068a21456f45959a1dbaf70a41dee9c008c8b
        principal: ApiClient::"reporting"
  anonymous: Anonymous::"anonymous"
routes:
  - name: read-order
    method: GET
    path: /api/orders/{orderId}
    action: readOrder
    resource: {type: Order, id: "{orderId}"}
"""


def load(tmp_path: Path, routes: str, files: dict[str, str] | None = None):
    target = Path(tempfile.mkdtemp(dir=tmp_path)) / "bundle"
    return load_bundle(bundle_with(target, routes, files or {}))


def problems(tmp_path: Path, routes: str, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(BundleError) as info:
        load(tmp_path, routes, files)
    found = [str(p) for p in info.value.problems]
    assert all(p.startswith("routes.yaml") for p in found), found
    return found


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_base_loads_with_principal_types_from_the_schema(tmp_path: Path) -> None:
    gateway = load(tmp_path, BASE).gateway
    assert gateway is not None
    assert gateway.identity.principal_types == ("User", "ApiClient", "Service", "Anonymous")
    (route,) = gateway.routes
    assert route.principal_types == {"User", "ApiClient", "Service", "Anonymous"}
    assert dict(route.context) == {
        "method": "method",
        "path": "path",
        "source_ip": "source_ip",
        "scopes": "scopes",
        "peer": "peer",
    }


def test_the_example_bundle_loads_with_its_routes() -> None:
    gateway = load_bundle(REPO / "policies").gateway
    assert gateway is not None
    names = [r.name for r in gateway.routes]
    assert "list-user-orders" in names and "admin-list-user-orders" in names
    assert "reserve-stock" in names


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("algorithms: [ES256]", "algorithms: [none]", "algorithms:", "'none'"),
        ("algorithms: [ES256]", "algorithms: [ES256, HS256]", "algorithms:", "mixes HMAC"),
        ("algorithms: [ES256]", "algorithms: [ES257]", "algorithms:", "unknown algorithm"),
        ("algorithms: [ES256]", "algorithm: [ES256]", "algorithm:", "unknown key"),
        ("        audiences: [orders-api]\n", "", "- issuer:", "audiences is required"),
        ("file: keys/orders.jwks.json", "file: keys/nope.json", "file:", "not a file"),
        (
            "file: keys/orders.jwks.json",
            "url: http://idp.example/jwks.json",
            "url:",
            "https://",
        ),
        ("action: readOrder", "action: readOrdr", "- name: read-order", "unrecognized action"),
        ("type: Order, id", "type: Ordr, id", "- name: read-order", "unrecognized entity type"),
        ("type: Order, id", "type: Tenant, id", "- name: read-order", "none of the principal"),
        ('id: "{orderId}"', 'id: "{id}"', "resource:", "does not bind"),
        ("path: /api/orders/{orderId}", "path: /api/orders/{orderId", "path:", "parameter"),
        ("method: GET", "method: get", "method:", "HTTP method"),
        ("hash: sha256:436c", "hash: md5:436c", "hash:", "64 lowercase hex"),
        ('principal: ApiClient::"reporting"', "principal: reporting", "principal: rep", "uid"),
        ("principal_type: Service", "principal_type: Svc", None, "unrecognized entity type `Svc`"),
        ("role_type: Role", "role_type: Rle", None, "unrecognized entity type `Rle`"),
        ("email: email", "emial: email", None, "attribute 'emial' is not declared"),
        ("          roles_claim: roles\n", "", "principal:", "go together"),
    ],
)
def test_mistakes_are_located(
    tmp_path: Path, old: str, new: str, needle: str | None, message: str
) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    found = problems(tmp_path, text)
    assert any(message in p for p in found), found
    if needle is not None:
        line = line_of(text, needle)
        assert any(p.startswith(f"routes.yaml:{line}:") and message in p for p in found), found


def test_context_attribute_missing_from_the_schema(tmp_path: Path) -> None:
    text = BASE + "    context: {tenant_hint: query.tenant}\n"
    found = problems(tmp_path, text)
    line = line_of(text, "- name: read-order")
    assert any(
        p.startswith(f"routes.yaml:{line}:") and "'tenant_hint'" in p and "not in the context" in p
        for p in found
    ), found


def test_context_attribute_of_the_wrong_type(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "    context: {peer: source_ip}\n")
    assert any("'peer' (source_ip) has the wrong type" in p for p in found), found


def test_unknown_context_source(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "    context: {method: header.x-user}\n")
    assert any("unknown source 'header.x-user'" in p for p in found), found


def test_shadowed_route_is_an_error(tmp_path: Path) -> None:
    text = BASE + (
        "  - name: read-order-again\n"
        "    method: [GET]\n"
        "    path: /api/orders/{id}\n"
        "    action: readOrder\n"
        '    resource: {type: Order, id: "{id}"}\n'
    )
    found = problems(tmp_path, text)
    assert any("'read-order-again' is unreachable" in p for p in found), found


def test_invalid_yaml_and_duplicate_keys_name_their_line(tmp_path: Path) -> None:
    assert problems(tmp_path, "routes: [\n")[0].startswith("routes.yaml:2:")
    text = BASE.replace("  anonymous:", '  anonymous: Anonymous::"a"\n  anonymous:')
    found = problems(tmp_path, text)
    assert any("duplicate key 'anonymous'" in p for p in found), found


def test_a_key_that_is_not_a_plain_value_is_a_located_problem(tmp_path: Path) -> None:
    # routes.yaml is read by pdp.yamlsrc like every YAML file: a complex key is refused with
    # its line, never a TypeError out of the loader.
    assert problems(tmp_path, "? [a, b]\n: c\nroutes: []\n") == [
        "routes.yaml:1:3: invalid YAML: a mapping key must be a plain value"
    ]


def test_jwks_file_with_no_key_for_the_algorithms(tmp_path: Path) -> None:
    text = BASE.replace("algorithms: [ES256]", "algorithms: [RS256]")
    found = problems(tmp_path, text)
    assert any("no key in keys/orders.jwks.json can verify RS256" in p for p in found), found


def test_without_a_schema_routes_are_not_schema_checked(tmp_path: Path) -> None:
    root = bundle_with(tmp_path / "bundle", BASE.replace("readOrder", "anything"))
    (root / "orders.cedarschema").unlink()
    (root / "manifest.yaml").write_text("name: no-schema\n")
    gateway = load_bundle(root).gateway
    assert gateway is not None and gateway.routes[0].principal_types is None


@pytest.mark.slow  # the CLI end to end
def test_pdp_check_reports_routes_problems(tmp_path: Path) -> None:
    root = bundle_with(tmp_path / "bundle", BASE.replace("[ES256]", "[none]"))
    done = subprocess.run(
        [sys.executable, "-m", "pdp", "check", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 3
    line = line_of(BASE, "algorithms:")
    assert f"routes.yaml:{line}: algorithm 'none'" in done.stdout + done.stderr


INTERNAL_ISSUER = """\
      - issuer: https://internal-tool.test/
        audiences: [orders-api]
        algorithms: [{algorithm}]
        jwks:
          file: keys/internal.jwks.json
        principal:
          type: ApiClient
"""


def _with_internal_issuer(algorithm: str) -> str:
    marker = "  mtls:\n"
    return BASE.replace(marker, INTERNAL_ISSUER.format(algorithm=algorithm) + marker, 1)


def _oct(secret: bytes, kid: str = "internal-1") -> str:
    k = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    return json.dumps({"keys": [{"kty": "oct", "k": k, "kid": kid}]})


@pytest.mark.parametrize(
    ("algorithm", "size"), [("HS256", 6), ("HS256", 31), ("HS384", 47), ("HS512", 63)]
)
def test_an_hmac_key_shorter_than_its_hash_is_a_load_error(
    tmp_path: Path, algorithm: str, size: int
) -> None:
    text = _with_internal_issuer(algorithm)
    files = {"keys/internal.jwks.json": _oct(b"s" * size)}
    found = problems(tmp_path, text, files)
    line = line_of(text, "file: keys/internal.jwks.json")
    assert any(
        p.startswith(f"routes.yaml:{line}:")
        and "keys/internal.jwks.json: key 0 (internal-1): too weak for " + algorithm in p
        and f"{size} bytes" in p
        for p in found
    ), found


def test_an_hmac_key_as_long_as_its_hash_loads(tmp_path: Path) -> None:
    for algorithm, size in (("HS256", 32), ("HS384", 48), ("HS512", 64)):
        files = {"keys/internal.jwks.json": _oct(b"s" * size)}
        gateway = load(tmp_path, _with_internal_issuer(algorithm), files).gateway
        assert gateway is not None and gateway.identity.jwt is not None
        assert len(gateway.identity.jwt.issuers["https://internal-tool.test/"].keys or ()) == 1


def test_an_rsa_key_under_2048_bits_is_a_load_error(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    files = {"keys/internal.jwks.json": json.dumps({"keys": [public_jwk(weak, "old", "RS256")]})}
    found = problems(tmp_path, _with_internal_issuer("RS256"), files)
    assert any("key 0 (old): too weak for RS256" in p and "1024 bits" in p for p in found), found


@pytest.mark.slow  # the CLI end to end
def test_pdp_check_refuses_the_six_byte_secret(tmp_path: Path) -> None:
    """0.1.0: `"secret"` passed `pdp check`, and the first token printed a raw warning."""
    text = _with_internal_issuer("HS256")
    root = bundle_with(tmp_path / "bundle", text, {"keys/internal.jwks.json": _oct(b"secret")})
    done = subprocess.run(
        [sys.executable, "-m", "pdp", "check", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 3
    line = line_of(text, "file: keys/internal.jwks.json")
    assert f"routes.yaml:{line}:" in done.stdout + done.stderr
    assert "keys/internal.jwks.json: key 0 (internal-1): too weak for HS256" in done.stderr


# --- two identity sources minting the same principals --------------------------------------

STRONG_SECRET = _oct(b"an internal tool's 32-byte secret")
INTERNAL_USERS = """\
      - issuer: {issuer}
        audiences: [orders-api]
        algorithms: [HS256]
        jwks:
          file: keys/internal.jwks.json
        principal:
          type: {type}
{extra}"""


def _second_issuer(
    principal_type: str = "User", extra: str = "", issuer: str = "https://internal-tool.test/"
) -> str:
    block = INTERNAL_USERS.format(issuer=issuer, type=principal_type, extra=extra)
    return BASE.replace("  mtls:\n", block + "  mtls:\n", 1)


def _namespaced(text: str) -> str:
    """The first issuer's ids in a namespace of their own: `shop:<sub>`."""
    marker = "          type: User\n          roles_claim: roles\n"
    assert marker in text
    namespaced = '          type: User\n          id: "shop:{sub}"\n          roles_claim: roles\n'
    return text.replace(marker, namespaced, 1)


def test_namespacing_one_issuer_leaves_the_other_free_to_mint_its_ids(tmp_path: Path) -> None:
    """`{sub}` can be anything, `https://internal-tool.test/|admin` included."""
    (problem,) = _collisions(tmp_path, _second_issuer(extra='          id: "{iss}|{sub}"\n'))
    assert "issuer 'https://internal-tool.test/' and issuer 'https://auth.shop.example/'" in problem


def _collisions(tmp_path: Path, text: str) -> list[str]:
    found = problems(tmp_path, text, {"keys/internal.jwks.json": STRONG_SECRET})
    return [p for p in found if "can mint the same ids" in p]


def test_two_issuers_minting_users_from_sub_is_a_load_error(tmp_path: Path) -> None:
    text = _second_issuer()
    (problem,) = _collisions(tmp_path, text)
    second = text.index("https://internal-tool.test/")
    line = line_of(text[second:], "principal:") + text[:second].count("\n")
    first = line_of(text, "principal:")
    assert problem == (
        f"routes.yaml:{line}: issuer 'https://internal-tool.test/' and issuer "
        f"'https://auth.shop.example/' (line {first}) both mint principals of type User and can "
        "mint the same ids, so one could act as the other's User (its entity and roles "
        "included): map one to a principal type of its own, give both ids of their own "
        '(principal.id, such as "{iss}|{sub}"), or accept that risk with '
        "principal.allow_id_collisions: true on both"
    )


def test_an_issuer_minting_the_mtls_principal_type_is_a_load_error(tmp_path: Path) -> None:
    """A token with `sub: spiffe://cluster.local/ns/shop/sa/checkout` would be the workload."""
    (problem,) = _collisions(tmp_path, _second_issuer("Service"))
    assert "mtls and issuer 'https://internal-tool.test/'" in problem
    assert "mtls.allow_id_collisions: true and principal.allow_id_collisions: true" in problem


@pytest.mark.parametrize(
    "extra",
    [
        '          id: "{iss}|{sub}"\n',
        '          id: "tool/{sub}"\n',
        '          id: "internal:{sub}"\n',
        '          id: "internal:{ tenant }/{sub}"\n',
    ],
)
def test_issuers_with_ids_of_their_own_load(tmp_path: Path, extra: str) -> None:
    files = {"keys/internal.jwks.json": STRONG_SECRET}
    gateway = load(tmp_path, _namespaced(_second_issuer(extra=extra)), files).gateway
    assert gateway is not None and gateway.identity.jwt is not None
    mapping = gateway.identity.jwt.issuers["https://internal-tool.test/"].principal
    claims = {"iss": "https://internal-tool.test/", "sub": "admin-ada", "tenant": "acme"}
    expected = extra.split('"')[1].replace("{ tenant }", "acme")
    expected = expected.replace("{iss}", claims["iss"]).replace("{sub}", "admin-ada")
    assert mapping.principal(claims).uid.id == expected


def test_namespaces_that_overlap_are_still_a_collision(tmp_path: Path) -> None:
    """`{iss}|{sub}` of `https://a` and of `https://a|x` overlap: `sub: x|admin` of the first
    is `https://a|x|admin`, an id of the second."""
    first = _namespaced(_second_issuer(extra='          id: "{iss}|{sub}"\n', issuer="https://a"))
    text = first.replace(
        "  mtls:\n",
        INTERNAL_USERS.format(
            issuer="https://a|x", type="User", extra='          id: "{iss}|{sub}"\n'
        )
        + "  mtls:\n",
        1,
    )
    (problem,) = _collisions(tmp_path, text)
    assert "issuer 'https://a|x' and issuer 'https://a'" in problem


def test_collisions_are_accepted_only_when_both_sources_say_so(tmp_path: Path) -> None:
    opt_in = "          allow_id_collisions: true\n"
    assert _collisions(tmp_path, _second_issuer(extra=opt_in))  # only one of the two
    text = _second_issuer(extra=opt_in).replace(
        "          roles_claim: roles\n", opt_in + "          roles_claim: roles\n", 1
    )
    files = {"keys/internal.jwks.json": STRONG_SECRET}
    gateway = load(tmp_path, text, files).gateway
    assert gateway is not None and gateway.identity.jwt is not None
    assert len(gateway.identity.jwt.issuers) == 2


def test_api_key_and_anonymous_principals_may_share_an_issuers_type(tmp_path: Path) -> None:
    """They name one uid each, written in the bundle like an entity of entities.json: the
    issuer that mints the type can present that uid too, and that is documented."""
    text = BASE.replace('principal: ApiClient::"reporting"', 'principal: User::"admin-ada"')
    text = text.replace('anonymous: Anonymous::"anonymous"', 'anonymous: User::"guest"')
    gateway = load(tmp_path, text).gateway
    assert gateway is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('          id: "{sub}"\n          id_claim: sub\n', "not both"),
        ('          id: "{sub"\n', "braces only enclose a claim name"),
        ('          id: "admin-ada"\n', "names no claim"),
        ('          id: "x{}y"\n', "an empty {} names no claim"),
        ("          id: 42\n", "must be a template over claims"),
        ("          allow_id_collisions: yes please\n", "must be true or false"),
    ],
)
def test_bad_id_templates_are_located(tmp_path: Path, extra: str, message: str) -> None:
    text = _second_issuer(
        extra=extra + "          id_claim_unused: x\n".replace("          id_claim_unused: x\n", "")
    )
    found = problems(tmp_path, text, {"keys/internal.jwks.json": STRONG_SECRET})
    line = line_of(text, extra.strip().splitlines()[0])
    assert any(p.startswith(f"routes.yaml:{line}:") and message in p for p in found), found


@pytest.mark.slow  # the CLI end to end
def test_pdp_check_reports_the_collision(tmp_path: Path) -> None:
    text = _second_issuer()
    root = bundle_with(tmp_path / "bundle", text, {"keys/internal.jwks.json": STRONG_SECRET})
    done = subprocess.run(
        [sys.executable, "-m", "pdp", "check", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 3
    assert "both mint principals of type User" in done.stderr
