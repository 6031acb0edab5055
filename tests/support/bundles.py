"""Small bundles written to disk for loader, compiler and CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

# A compact schema in the shape of the example bundle, for error-message tests.
SCHEMA = """\
entity Tenant;
entity Role;
entity User in [Role, Tenant] = {
  tenant?: Tenant,
  email?: String,
};
entity Order in [Tenant] = {
  owner: User,
  tenant: Tenant,
  status: String,
  total_cents: Long,
};
action readOrder appliesTo {
  principal: [User],
  resource: [Order],
};
action refundOrder appliesTo {
  principal: [User],
  resource: [Order],
};
"""

OWNER_READS = """\
@id("owner-reads")
permit (
  principal is User,
  action == Action::"readOrder",
  resource is Order
)
when { resource.owner == principal };
"""


def write_bundle(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative POSIX path -> text) under `root` and return `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


ALLOW_ALL = '@id("allow-all")\npermit (principal, action, resource);\n'
GUARD = '@id("guard")\nforbid (principal == User::"mallory", action, resource);\n'


def guarded_bundle(root: Path) -> Path:
    """A permit-all bundle whose forbid is reached through a link into a hidden folder."""
    write_bundle(root, {"main.cedar": ALLOW_ALL, ".shared/guard.cedar": GUARD})
    os.symlink(".shared/guard.cedar", root / "guard.cedar")
    return root


def run_pdp(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m pdp ARGS` as a real subprocess, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "pdp", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
