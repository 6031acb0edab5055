"""routes.yaml's `identity:` section is checked at bundle load (pdp/authn/config.py): issuers,
key sets, principal mapping, API keys, mTLS; every mistake is a `routes.yaml:LINE: message`.

The routes themselves: tests/routes/test_compile.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.cli import run_cli
from tests.support.gateway import bundle_with, public_jwk
from tests.support.routes import BASE, line_of, load, problems


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


def test_jwks_file_with_no_key_for_the_algorithms(tmp_path: Path) -> None:
    text = BASE.replace("algorithms: [ES256]", "algorithms: [RS256]")
    found = problems(tmp_path, text)
    assert any("no key in keys/orders.jwks.json can verify RS256" in p for p in found), found


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
    done = run_cli("check", str(root))
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
    done = run_cli("check", str(root))
    assert done.returncode == 3
    assert "both mint principals of type User" in done.stderr
