"""The peer: Cerbos from npm, an orders policy equivalent to the Cedar one, and the same mix."""

from __future__ import annotations

import importlib
import json
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import bundles
from bench.mix import Call

METHOD = "/cerbos.svc.v1.CerbosService/CheckResources"
VERSION = "0.55.0"
HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / ".peers"
_NPM_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}

DERIVED_ROLES = """\
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: orders_roles
  definitions:
    - name: owner
      parentRoles: ["user"]
      condition:
        match:
          expr: request.resource.attr.owner == request.principal.id
    - name: tenant_support
      parentRoles: ["support"]
      condition:
        match:
          expr: request.resource.attr.tenant == request.principal.attr.tenant
    - name: self
      parentRoles: ["user"]
      condition:
        match:
          expr: request.resource.id == request.principal.id
"""

ORDER_POLICY = """\
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: order
  importDerivedRoles: [orders_roles]
  rules:
    - actions: ["readOrder"]
      effect: EFFECT_ALLOW
      derivedRoles: [owner, tenant_support]
    - actions: ["cancelOrder"]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
    - actions: ["refundOrder"]
      effect: EFFECT_ALLOW
      roles: [admin]
"""

USER_POLICY = """\
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: user
  importDerivedRoles: [orders_roles]
  rules:
    - actions: ["listUserOrders"]
      effect: EFFECT_ALLOW
      derivedRoles: [self]
    - actions: ["adminListUserOrders"]
      effect: EFFECT_ALLOW
      roles: [admin]
"""


def package_name() -> str:
    """The npm package holding the Cerbos binary for this machine."""
    arch = _NPM_ARCH.get(platform.machine().lower(), platform.machine().lower())
    return f"@cerbos/cerbos-linux-{arch}"


def binary_path() -> Path:
    """Where the bench-local npm install puts the Cerbos binary."""
    name = package_name()
    return PEERS_DIR / "node_modules" / name / name.split("/")[1]


def ensure_installed(log: Any = print) -> Path:
    """Install Cerbos from npm into bench/.peers/ (checked with `npm view` first); its binary."""
    binary = binary_path()
    if binary.is_file():
        return binary
    name = package_name()
    view = subprocess.run(
        ["npm", "view", f"{name}@{VERSION}", "version"], capture_output=True, text=True, timeout=120
    )
    if view.returncode != 0 or VERSION not in view.stdout:
        raise RuntimeError(
            f"npm view {name}@{VERSION} failed: {(view.stderr or view.stdout).strip()}"
        )
    log(f"installing {name}@{VERSION} from npm into {PEERS_DIR}")
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(PEERS_DIR),
            "--no-audit",
            "--no-fund",
            "--silent",
            f"{name}@{VERSION}",
        ],
        check=True,
        timeout=600,
    )
    if not binary.is_file():
        raise RuntimeError(f"npm install {name} did not produce {binary}")
    return binary


def write_config(root: Path, grpc_port: int, http_port: int) -> Path:
    """The policies and a config serving them on loopback only; returns the config path."""
    policies = root / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "derived_roles.yaml").write_text(DERIVED_ROLES)
    (policies / "order.yaml").write_text(ORDER_POLICY)
    (policies / "user.yaml").write_text(USER_POLICY)
    config = root / "cerbos.yaml"
    config.write_text(
        "server:\n"
        f'  httpListenAddr: "127.0.0.1:{http_port}"\n'
        f'  grpcListenAddr: "127.0.0.1:{grpc_port}"\n'
        "storage:\n"
        "  driver: disk\n"
        "  disk:\n"
        f"    directory: {policies}\n"
        "    watchForChanges: false\n"
        "audit:\n"
        "  enabled: false\n"
        "telemetry:\n"
        "  disabled: true\n"
    )
    return config


def compile_policies(binary: Path, root: Path) -> None:
    """`cerbos compile`: refuse to benchmark policies Cerbos itself rejects."""
    result = subprocess.run(
        [str(binary), "compile", str(root / "policies")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cerbos compile: {(result.stdout + result.stderr).strip()[-500:]}")


def load_messages(work: Path) -> ModuleType:
    """Compile bench/cerbos_min.proto with grpc_tools into `work` and import it."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    work.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "protoc",
            f"-I{HERE}",
            f"-I{include}",
            f"--python_out={work}",
            str(HERE / "cerbos_min.proto"),
        ]
    )
    if code != 0:
        raise RuntimeError("protoc failed on cerbos_min.proto")
    if str(work) not in sys.path:
        sys.path.insert(0, str(work))
    return importlib.import_module("cerbos_min_pb2")


def mappable(call: Call) -> bool:
    """Whether Cerbos can answer `call` with the equivalent policy (users on orders and users)."""
    return (
        call.principal[0] == "User"
        and call.resource[0] in ("Order", "User")
        and call.expect is not None
        and (call.principal[1], call.resource[1]) not in bundles.DELEGATED
    )


def request_bytes(messages: ModuleType, call: Call) -> bytes:
    """The serialized CheckResourcesRequest for `call`: attributes travel in the request."""
    request = messages.CheckResourcesRequest(request_id="bench")
    principal = request.principal
    principal.id = call.principal[1]
    principal.roles.extend(["user", *call.roles])
    principal.attr["tenant"].string_value = call.tenant
    entry = request.resources.add()
    entry.actions.append(call.action)
    resource = entry.resource
    resource.kind = "order" if call.resource[0] == "Order" else "user"
    resource.id = call.resource[1]
    resource.attr["owner"].string_value = call.owner
    resource.attr["tenant"].string_value = call.resource_tenant
    return request.SerializeToString()


def allowed(messages: ModuleType, raw: bytes, action: str) -> bool:
    """Whether a serialized CheckResourcesResponse allows `action` on its one resource."""
    response = messages.CheckResourcesResponse.FromString(raw)
    return (
        bool(response.results) and response.results[0].actions.get(action) == messages.EFFECT_ALLOW
    )


def describe(messages: ModuleType, raw: bytes) -> str:
    """A short readable form of a response, for error messages."""
    response = messages.CheckResourcesResponse.FromString(raw)
    return json.dumps([{k: int(v) for k, v in r.actions.items()} for r in response.results])
