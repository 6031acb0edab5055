"""tests.support.cli.serve_usage_error: a `pdp serve` that passes its usage checks fails the
test at once (it never serves), and a usage error is answered as the process answers it."""

from __future__ import annotations

import pytest

from tests.support.cli import serve_usage_error
from tests.support.paths import EXAMPLE_BUNDLE


def test_flags_without_a_usage_error_fail_instead_of_serving() -> None:
    with pytest.raises(AssertionError, match="no usage error"):
        serve_usage_error(str(EXAMPLE_BUNDLE), "--listen", "127.0.0.1:0", "--workers", "2")


def test_a_check_of_serve_run_is_exit_2_naming_the_flags() -> None:
    refused = serve_usage_error(str(EXAMPLE_BUNDLE), "--workers", "2", "--listen", "unix:/x.s")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert "pdp serve: error: --workers needs a TCP --listen address" in refused.stderr
