"""The committed code in pdp/v1 is exactly what `make proto` generates from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import REPO

PROTO = "protos/pdp/v1/authorizer.proto"
GENERATED = ("authorizer_pb2.py", "authorizer_pb2.pyi", "authorizer_pb2_grpc.py")


def test_committed_generated_code_matches_protos(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iprotos",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            PROTO,
        ],
        cwd=REPO,
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "pdp" / "v1" / name).read_text()
        committed = (REPO / "pdp" / "v1" / name).read_text()
        assert committed == fresh, f"pdp/v1/{name} is stale: run `make proto` and commit"
