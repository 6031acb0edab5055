"""Credentials to one verified principal: claims mapping, API keys, mTLS peers, the order."""

from __future__ import annotations

import hashlib

import pytest

from pdp.authn.apikeys import ApiKey, ApiKeyConfig, hash_key, parse_hash
from pdp.authn.config import IdentityConfig, JwtAuthnMetadata
from pdp.authn.identity import (
    Credentials,
    identify,
    key_lookup,
    read_credentials,
)
from pdp.authn.jwks import Keyring
from pdp.authn.mtls import MtlsConfig, trust_domain
from pdp.authn.principal import AttributeClaim, ClaimTemplate, PrincipalMapping
from pdp.bundle import load_bundle
from pdp.errors import AuthnError
from pdp.model import EntityRef
from tests.support.gateway import CHECKOUT, REPORTING_KEY, token
from tests.support.paths import EXAMPLE_BUNDLE

EXAMPLE = load_bundle(EXAMPLE_BUNDLE).gateway.identity  # type: ignore[union-attr]
LOOKUP = key_lookup(Keyring())


def who(creds: Credentials, config: IdentityConfig = EXAMPLE):
    return identify(creds, config, LOOKUP)


def test_claims_become_a_principal_with_roles_and_attributes() -> None:
    mapping = PrincipalMapping(
        "User",
        roles_claim="realm.roles",
        role_type="Role",
        attributes=(
            AttributeClaim("email", "email"),
            AttributeClaim("tenant", "tenant", "Tenant"),
            AttributeClaim("level", "level"),
            AttributeClaim("groups", "groups"),
            AttributeClaim("nested", "nested"),
        ),
    )
    claims = {
        "sub": "900",
        "realm": {"roles": ["admin", "support", "admin"]},
        "email": "a@b",
        "tenant": "acme",
        "level": 3,
        "groups": ["a", 1, {"x": 1}],
        "nested": {"x": 1},
    }
    principal = mapping.principal(claims)
    assert principal.uid == EntityRef("User", "900")
    assert principal.parents == (EntityRef("Role", "admin"), EntityRef("Role", "support"))
    assert principal.entity_json() == {
        "uid": {"type": "User", "id": "900"},
        "attrs": {
            "email": "a@b",
            "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
            "level": 3,
            "groups": ["a", 1],
        },
        "parents": [{"type": "Role", "id": "admin"}, {"type": "Role", "id": "support"}],
    }


@pytest.mark.parametrize(
    "roles",
    [
        ["admin", 7],
        ["admin", ""],
        ["x" * 1025],
        {"admin": True},
        5,
        [f"r{i}" for i in range(100)] + ["suspended"],
    ],
)
def test_roles_that_cannot_all_be_read_refuse_the_token_instead_of_dropping_some(
    roles: object,
) -> None:
    mapping = PrincipalMapping("User", roles_claim="roles", role_type="Role")
    with pytest.raises(AuthnError) as info:
        mapping.principal({"sub": "900", "roles": roles})
    assert info.value.reason == "bad_claim"


def test_a_hundred_roles_and_an_absent_roles_claim_are_fine() -> None:
    mapping = PrincipalMapping("User", roles_claim="roles", role_type="Role")
    hundred = [f"r{i}" for i in range(100)]
    assert len(mapping.principal({"sub": "1", "roles": hundred}).parents) == 100
    assert mapping.principal({"sub": "1"}).parents == ()


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": ["x"]}, {"sub": "x" * 2000}])
def test_an_unusable_id_claim_is_an_authentication_failure(claims: dict) -> None:
    with pytest.raises(AuthnError) as info:
        PrincipalMapping("User").principal(claims)
    assert info.value.reason == "missing_claim"


def test_id_templates_render_claims_by_name() -> None:
    template = ClaimTemplate.parse("{iss}|{sub}")
    mapping = PrincipalMapping("User", id=template)
    claims = {"iss": "https://idp.test/", "sub": 42, "realm": {"user": "u-7"}}
    assert mapping.principal(claims).uid.id == "https://idp.test/|42"
    nested = PrincipalMapping("User", id=ClaimTemplate.parse("realm:{realm.user}"))
    assert nested.principal(claims).uid.id == "realm:u-7"
    for broken in ({"iss": "https://idp.test/"}, {**claims, "sub": ""}, {**claims, "sub": [1]}):
        with pytest.raises(AuthnError) as info:
            mapping.principal(broken)
        assert info.value.reason == "missing_claim"
    with pytest.raises(AuthnError) as info:  # each claim fits, the whole id does not
        mapping.principal({"iss": "i" * 600, "sub": "s" * 600})
    assert "longer than 1024" in info.value.message


def test_id_template_bounds_are_what_every_id_starts_and_ends_with() -> None:
    iss = {"iss": "https://a/"}
    assert ClaimTemplate.parse("{iss}|{sub}").bounds(iss) == ("https://a/|", "")
    assert ClaimTemplate.parse("{sub}@{iss}").bounds(iss) == ("", "@https://a/")
    assert ClaimTemplate.parse("x-{tenant}/{sub}.y").bounds(iss) == ("x-", ".y")
    assert ClaimTemplate.parse("{sub}").bounds(iss) == ("", "")
    assert ClaimTemplate.parse("{iss}").bounds(iss) == ("https://a/", "https://a/")


@pytest.mark.parametrize("text", ["sub", "{sub", "sub}", "{}", "a{b}c}", "{a{b}}"])
def test_bad_id_templates(text: str) -> None:
    with pytest.raises(ValueError):
        ClaimTemplate.parse(text)


def test_space_separated_roles_and_numeric_subjects() -> None:
    mapping = PrincipalMapping("User", roles_claim="scope", role_type="Role")
    principal = mapping.principal({"sub": 42, "scope": "read write"})
    assert principal.uid.id == "42"
    assert [p.id for p in principal.parents] == ["read", "write"]


def test_whole_doubles_from_envoy_metadata_read_as_integers() -> None:
    mapping = PrincipalMapping("User", attributes=(AttributeClaim("level", "level"),))
    principal = mapping.principal({"sub": 42.0, "level": 3.0, "ratio": 0.5})
    assert principal.uid.id == "42" and principal.attrs == {"level": 3}


def test_api_keys_are_stored_hashed_and_matched() -> None:
    digest = parse_hash(hash_key("s3cret"))
    assert digest == hashlib.sha256(b"s3cret").digest()
    keys = ApiKeyConfig("x-api-key", (ApiKey("tool", digest, EntityRef("ApiClient", "tool")),))
    assert keys.lookup("s3cret").name == "tool"
    for wrong in ("s3cret ", "S3cret", "", "x" * 5000):
        with pytest.raises(AuthnError):
            keys.lookup(wrong)


@pytest.mark.parametrize("text", ["sha256:ABC", "md5:" + "0" * 64, "0" * 64, "sha256:" + "0" * 63])
def test_bad_hashes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hash(text)


def test_mtls_trust_domains() -> None:
    config = MtlsConfig("Service", ("cluster.local",))
    assert config.principal(CHECKOUT) == EntityRef("Service", CHECKOUT)
    assert trust_domain(CHECKOUT) == "cluster.local"
    for peer in ("spiffe://evil.example/ns/x/sa/y", "CN=checkout", "spiffe://cluster.local\n"):
        with pytest.raises(AuthnError):
            config.principal(peer)
    assert MtlsConfig("Service").principal("CN=checkout").id == "CN=checkout"


def test_credentials_are_read_from_headers() -> None:
    creds = read_credentials(
        {"authorization": ("Bearer abc",), "x-api-key": ("k",)}, EXAMPLE, peer=CHECKOUT
    )
    assert (creds.bearer, creds.api_key, creds.peer, creds.problem) == ("abc", "k", CHECKOUT, None)
    basic = read_credentials({"authorization": ("Basic dTpw",)}, EXAMPLE)
    assert basic.bearer is None and basic.problem is not None
    assert basic.problem.reason == "unsupported_scheme"
    assert read_credentials({"authorization": ("bearer   abc ",)}, EXAMPLE).bearer == "abc"
    doubled = read_credentials({"authorization": ("Bearer a", "Bearer b")}, EXAMPLE)
    assert doubled.problem is not None and doubled.problem.reason == "duplicate_credential"
    assert read_credentials({"authorization": ("Bearer ",)}, EXAMPLE).problem is not None


def test_principal_order_jwt_then_api_key_then_peer_then_anonymous() -> None:
    jwt_id = who(Credentials(bearer=token("42"), api_key=REPORTING_KEY, peer=CHECKOUT))
    assert (jwt_id.kind, jwt_id.principal.uid.id, jwt_id.peer) == ("jwt", "42", CHECKOUT)
    key_id = who(Credentials(api_key=REPORTING_KEY, peer=CHECKOUT))
    assert (key_id.kind, key_id.principal.uid) == ("api_key", EntityRef("ApiClient", "reporting"))
    peer_id = who(Credentials(peer=CHECKOUT))
    assert (peer_id.kind, peer_id.principal.uid) == ("mtls", EntityRef("Service", CHECKOUT))
    anonymous = who(Credentials())
    assert anonymous.anonymous and anonymous.principal.uid.type == "Anonymous"
    assert who(Credentials(), IdentityConfig()).principal is None


def test_any_failing_credential_fails_the_whole_request() -> None:
    with pytest.raises(AuthnError):
        who(Credentials(bearer=token("42"), api_key="wrong"))
    with pytest.raises(AuthnError):
        who(Credentials(bearer=token("42"), peer="spiffe://evil.example/x"))
    with pytest.raises(AuthnError):
        who(Credentials(bearer="garbage", api_key=REPORTING_KEY))


def test_bearer_tokens_without_configured_issuers_are_refused() -> None:
    with pytest.raises(AuthnError) as info:
        who(Credentials(bearer=token("42")), IdentityConfig())
    assert info.value.reason == "unknown_issuer"


def test_jwt_authn_payload_maps_through_its_issuer() -> None:
    config = IdentityConfig(jwt=EXAMPLE.jwt, jwt_authn=JwtAuthnMetadata())
    payload = {"iss": "https://auth.shop.example/", "sub": "43", "scope": "orders:read"}
    creds = read_credentials(
        {}, config, metadata={"envoy.filters.http.jwt_authn": {"jwt_payload": payload}}
    )
    identity = who(creds, config)
    assert (identity.kind, identity.principal.uid.id, identity.scopes) == (
        "jwt",
        "43",
        ("orders:read",),
    )
    with pytest.raises(AuthnError):
        who(Credentials(jwt_payload={"iss": "https://evil/", "sub": "1"}), config)
