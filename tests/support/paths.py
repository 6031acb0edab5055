"""Where things are: the repository, the example bundle, the tests, the shared conformance cases."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
EXAMPLE_BUNDLE = REPO / "policies"
CONFORMANCE = REPO.parent / "shared" / "conformance" / "cedar"
