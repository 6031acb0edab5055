"""Numeric flags and --log-level: a value out of range is a usage error (exit 2) naming the flag
and the accepted range, never a traceback or a silently clamped value."""

from __future__ import annotations

import argparse

import pytest

from pdp.cli.main import build_parser, main
from tests.support.bundles import run_pdp
from tests.support.paths import EXAMPLE_BUNDLE

BUNDLE = str(EXAMPLE_BUNDLE)

# Every numeric flag of every subcommand, a value just outside its range, and the range named.
OUT_OF_RANGE = [
    ("serve", "--max-message-bytes", "10", "from 1024 to 2147483647"),
    ("serve", "--max-message-bytes", "1023", "from 1024 to 2147483647"),
    ("serve", "--max-message-bytes", "2147483648", "from 1024 to 2147483647"),  # grpc's int
    ("serve", "--max-batch", "0", "from 1 to 2147483647"),
    ("serve", "--grace", "-1", "from 0 to 86400"),
    ("serve", "--bundle-poll-interval", "0", "from 0.1 to 86400"),
    ("serve", "--grace", "86401", "from 0 to 86400"),
    ("serve", "--poll-interval", "0", "from 0.1 to 3600"),
    ("serve", "--poll-interval", "0.01", "from 0.1 to 3600"),
    ("serve", "--decision-log-buffer", "0", "from 1 to 1000000"),
    ("serve", "--decision-log-buffer", "1000001", "from 1 to 1000000"),
    ("serve", "--decision-cache-size", "-1", "from 0 to 10000000"),
    ("serve", "--decision-cache-size", "10000001", "from 0 to 10000000"),
    ("serve", "--workers", "0", "from 1 to 256"),
    ("serve", "--workers", "257", "from 1 to 256"),
    ("serve", "--max-entities", "0", "from 1 to 2147483647"),
    ("serve", "--max-depth", "0", "from 1 to 128"),
    ("serve", "--max-depth", "129", "from 1 to 128"),  # Cedar refuses deeper JSON itself
    ("serve", "--max-id-length", "0", "from 1 to 2147483647"),
    ("serve", "--max-string-length", "0", "from 1 to 2147483647"),
    ("serve", "--max-context-keys", "0", "from 1 to 2147483647"),
    ("serve", "--max-ancestors", "0", "from 1 to 2147483647"),
    ("serve", "--eval-timeout", "-0.5", "from 0 to 86400"),
    ("serve", "--max-headers", "0", "from 1 to 2147483647"),
    ("serve", "--max-header-bytes", "0", "from 1 to 2147483647"),
    ("serve", "--max-path-bytes", "0", "from 1 to 65536"),
    ("serve", "--decision-log-sample", "1.5", "between 0 and 1"),
    ("serve", "--unix-socket-mode", "1000", "octal mode"),
    ("serve", "--state-timeout", "0", "from 0.001 to 5"),
    ("serve", "--state-timeout", "6", "from 0.001 to 5"),
    ("serve", "--state-max-keys", "99", "from 100 to 100000000"),
    ("serve", "--http-request-timeout", "0.01", "from 0.1 to 3600"),
    ("serve", "--http-idle-timeout", "3601", "from 0.1 to 3600"),
    ("serve", "--http-max-connections", "0", "from 1 to 1000000"),
    ("status", "--timeout", "0", "more than 0 to 3600"),
    ("status", "--timeout", "-5", "more than 0 to 3600"),
    ("test", "--coverage-min", "101", "a percentage from 0 to 100"),
    ("token", "--ttl", "0", "from 1 to 86400"),
    ("token", "--ttl", "86401", "from 1 to 86400"),
    ("fmt", "--line-width", "0", "from 1 to 1000"),
    ("fmt", "--line-width", "99999999999999999999", "from 1 to 1000"),
    ("fmt", "--indent-width", "33", "from 0 to 32"),
]
BAD_NUMBERS = ["nan", "inf", "-inf", "1e400", "abc", "", " ", "1_0", "٣", "5\n", "0x10"]


def _bundle_args(command: str) -> list[str]:
    return [BUNDLE] if command in ("serve", "test") else []


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], run: bool = False) -> str:
    """The usage error `argv` gets; only parsed unless `run` (a wrong pass must not serve)."""
    with pytest.raises(SystemExit) as exited:
        main(argv) if run else build_parser().parse_args(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    return err


@pytest.mark.parametrize(("command", "flag", "value", "accepted"), OUT_OF_RANGE)
def test_an_out_of_range_value_is_a_usage_error_naming_flag_and_range(
    capsys: pytest.CaptureFixture[str], command: str, flag: str, value: str, accepted: str
) -> None:
    err = _refused(capsys, [command, *_bundle_args(command), flag, value])
    assert f"pdp {command}: error: argument {flag}: " in err, err
    assert accepted in err, err


def _numeric_flags() -> list[tuple[str, str]]:
    """(subcommand, flag) for every option whose value is a number, read from the parser."""
    parser = build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                for option in sub._actions:
                    numeric = isinstance(option.default, int | float) and not isinstance(
                        option.default, bool
                    )
                    if option.option_strings and (numeric or option.metavar in ("N", "SECONDS")):
                        found.append((command, option.option_strings[-1]))
    return found


def test_the_table_covers_every_numeric_flag() -> None:
    listed = {(command, flag) for command, flag, _, _ in OUT_OF_RANGE}
    missing = set(_numeric_flags()) - listed
    assert not missing, f"numeric flags without an out-of-range case: {sorted(missing)}"


@pytest.mark.parametrize(("command", "flag"), sorted({(c, f) for c, f, _, _ in OUT_OF_RANGE}))
def test_no_numeric_flag_takes_nan_inf_or_junk(
    capsys: pytest.CaptureFixture[str], command: str, flag: str
) -> None:
    for value in BAD_NUMBERS:
        err = _refused(capsys, [command, *_bundle_args(command), f"{flag}={value}"])
        assert f"argument {flag}: " in err, (value, err)


@pytest.mark.parametrize(
    ("flag", "value", "dest", "expected"),
    [
        ("--max-message-bytes", "1024", "max_message_bytes", 1024),
        ("--max-message-bytes", "2147483647", "max_message_bytes", 2**31 - 1),
        ("--max-depth", "128", "max_depth", 128),
        ("--grace", "0", "grace", 0.0),
        ("--eval-timeout", "0", "eval_timeout_seconds", 0.0),
        ("--eval-timeout", "2.5e1", "eval_timeout_seconds", 25.0),
        ("--poll-interval", "0.1", "poll_interval", 0.1),
        ("--workers", "256", "workers", 256),
    ],
)
def test_the_ends_of_each_range_are_accepted(
    flag: str, value: str, dest: str, expected: float
) -> None:
    args = build_parser().parse_args(["serve", BUNDLE, flag, value])
    assert getattr(args, dest) == expected


@pytest.mark.slow  # the CLI end to end
def test_the_largest_message_size_grpc_takes_really_serves(tmp_path) -> None:
    from tests.support.server import ServerProcess

    with ServerProcess(EXAMPLE_BUNDLE, "--max-message-bytes", str(2**31 - 1)) as server:
        assert server.stop() == 0
    assert '"listening"' in server.stderr


@pytest.mark.slow  # the CLI end to end
def test_a_bogus_log_level_is_a_usage_error_listing_the_levels() -> None:
    done = run_pdp("serve", BUNDLE, "--log-level", "bogus")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        "argument --log-level: invalid choice: 'bogus' "
        "(choose from 'debug', 'info', 'warning', 'error')" in done.stderr
    )


@pytest.mark.slow  # the CLI end to end
def test_log_level_is_documented_and_case_insensitive() -> None:
    help_text = run_pdp("serve", "--help").stdout
    assert "--log-level {debug,info,warning,error}" in help_text
    assert "least severe server log line" in help_text
    assert build_parser().parse_args(["serve", BUNDLE, "--log-level", "DEBUG"]).log_level == "debug"


# Flags whose value a parser of pdp reads (argtypes.parsed): its ValueError is the usage error,
# reason and all, never argparse's bare "invalid value".
UNPARSABLE = [
    ("serve", "--listen", "host:99999", "the port must be a number from 0 to 65535"),
    ("serve", "--http-listen", "nope", "expected HOST:PORT, [IPv6]:PORT or unix:/path, got 'nope'"),
    ("serve", "--metrics", "unix:/x.sock", "expected HOST:PORT or [IPv6]:PORT, not a unix socket"),
    ("serve", "--http-trusted-proxies", "10.0.0.0/33", "'10.0.0.0/33' is not an IP address"),
    ("serve", "--authzen-base-url", "ftp://x", "expected https://HOST[:PORT][/PATH]"),
    ("serve", "--decision-log-sample", "often", "expected all, deny-only or a rate"),
    ("status", "--address", "nope", "expected HOST:PORT, [IPv6]:PORT or unix:/path, got 'nope'"),
    ("authorize", "--principal", "User", "expected an entity uid like User::\"alice\", got 'User'"),
    ("authorize", "--action", 'Action::"', 'expected an entity uid like User::"alice"'),
    ("plan", "--principal", "User", "expected an entity uid like User::\"alice\", got 'User'"),
]


@pytest.mark.parametrize(("command", "flag", "value", "reason"), UNPARSABLE)
def test_a_value_that_does_not_parse_is_a_usage_error_giving_the_reason(
    capsys: pytest.CaptureFixture[str], command: str, flag: str, value: str, reason: str
) -> None:
    positional = [BUNDLE] if command in ("serve", "authorize", "plan") else []
    err = _refused(capsys, [command, *positional, flag, value])
    assert f"pdp {command}: error: argument {flag}: {reason}" in err, err


def test_flags_that_go_together_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(capsys, ["serve", BUNDLE, "--client-ca", "ca.pem"], run=True)
    assert "pdp serve: error: --client-ca needs --tls-cert and --tls-key" in err
    unix = ["--listen", "unix:/tmp/x.sock"]
    err = _refused(capsys, ["serve", BUNDLE, "--workers", "2", *unix], run=True)
    assert "pdp serve: error: --workers needs a TCP --listen address" in err
    err = _refused(capsys, ["status", "--tls-cert", "c.pem"], run=True)
    assert "pdp status: error: --tls-cert and --tls-key go together" in err
