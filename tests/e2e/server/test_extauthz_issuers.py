"""Two issuers minting User principals, through a real `pdp serve` with real JWTs.

An internal tool's HS256 issuer next to the shop's ES256 one: sharing `User` ids by default
would let the tool mint `sub: admin-ada` and act as the bundle's admin, so such a bundle does
not load; with the tool's ids namespaced (`{iss}|{sub}`) its admin-ada is somebody else.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from envoy.service.auth.v3 import external_auth_pb2 as pb

from tests.support.gateway import (
    bearer,
    bundle_with,
    check_request,
    ext_authz,
    log_entry,
    metadata_of,
    token,
)
from tests.support.paths import EXAMPLE_BUNDLE
from tests.support.server import REPO, ServerProcess

TOOL = "https://internal-tool.test/"
SECRET = b"the internal tool's HS256 secret!"  # 33 bytes: at least the hash size
ADMIN_ROUTE = "/api/admin/users/43/orders"


def routes(tool_principal: str, shop_extra: str = "") -> str:
    text = (EXAMPLE_BUNDLE / "routes.yaml").read_text()
    tool = f"""\
      - issuer: {TOOL}
        audiences: [orders-api]
        algorithms: [HS256]
        jwks:
          file: keys/tool.jwks.json
        principal:
{tool_principal}
"""
    marker = "  # Workloads:"
    ours = "          id_claim: sub\n"
    assert marker in text and ours in text
    text = text.replace(ours, ours + shop_extra, 1)
    return text.replace(marker, tool + "\n" + marker, 1)


def bundle(root: Path, routes_text: str) -> Path:
    k = base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()
    keys = json.dumps({"keys": [{"kty": "oct", "k": k, "kid": "tool-1", "alg": "HS256"}]})
    return bundle_with(root, routes_text, {"keys/tool.jwks.json": keys})


def tool_token(sub: str) -> str:
    return token(sub, key=SECRET, algorithm="HS256", kid="tool-1", iss=TOOL)


def test_a_second_user_issuer_without_namespaces_does_not_start(tmp_path: Path) -> None:
    root = bundle(tmp_path / "bundle", routes("          type: User"))
    done = subprocess.run(
        [sys.executable, "-m", "pdp", "serve", str(root), "--listen", f"unix:{tmp_path}/s"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 3
    assert f"issuer '{TOOL}' and issuer 'https://auth.shop.example/'" in done.stderr
    assert "both mint principals of type User" in done.stderr


def test_a_namespaced_issuer_cannot_mint_the_bundles_admin(tmp_path: Path) -> None:
    tool = '          type: User\n          id: "{iss}|{sub}"\n          allow_id_collisions: true'
    root = bundle(
        tmp_path / "bundle", routes(tool, shop_extra="          allow_id_collisions: true\n")
    )
    with (
        ServerProcess(root, listen=f"unix:{tmp_path}/s") as server,
        ext_authz(server.address or "") as stub,
    ):

        def call(value: str) -> pb.CheckResponse:
            return stub.Check(check_request("GET", ADMIN_ROUTE, bearer(value)), timeout=10)

        real_admin = call(token("admin-ada"))
        assert real_admin.status.code == 0
        assert metadata_of(real_admin)["principal"] == 'User::"admin-ada"'

        minted = call(tool_token("admin-ada"))
        assert minted.status.code == 7  # 403: a user, but not the admin
        metadata = metadata_of(minted)
        assert metadata["principal"] == f'User::"{TOOL}|admin-ada"'
        assert metadata["reason"] == "policy"
        entry = log_entry(server, metadata["decision_id"])
        assert entry["principal"] == f'User::"{TOOL}|admin-ada"'
        assert entry["token_iss"] == TOOL
