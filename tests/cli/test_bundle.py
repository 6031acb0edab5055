"""`pdp bundle build|sign|verify`: files written, exit codes, problems named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pdp.bundle.archive import SIGNATURES, read_archive
from pdp.cli.main import main
from tests.support.archives import Member, raw_archive, rebuild, write_key
from tests.support.bundles import write_bundle
from tests.support.paths import EXAMPLE_BUNDLE


def test_build_sign_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = write_key(tmp_path, "ec")
    out = tmp_path / "orders.tar.gz"
    assert main(["bundle", "build", str(EXAMPLE_BUNDLE), "-o", str(out)]) == 0
    assert "unsigned" in capsys.readouterr().out
    unsigned = out.read_bytes()
    assert main(["bundle", "verify", str(out), "--verification-key", str(pair.public)]) == 3
    assert "archive is not signed" in capsys.readouterr().err

    key = ["--signing-key", str(pair.private), "--key-id", "ops-1"]
    assert main(["bundle", "sign", str(out), *key]) == 0  # in place
    capsys.readouterr()
    assert SIGNATURES in read_archive(out.read_bytes())
    assert main(["bundle", "verify", str(out), "--verification-key", str(pair.public)]) == 0
    printed = capsys.readouterr().out
    assert "orders-api" in printed and "key id ops-1" in printed

    other = tmp_path / "copy.tar.gz"
    assert main(["bundle", "sign", str(out), *key, "-o", str(other)]) == 0
    assert other.exists()
    signed_at_build = tmp_path / "b.tar.gz"
    assert main(["bundle", "build", str(EXAMPLE_BUNDLE), "-o", str(signed_at_build), *key]) == 0
    assert (
        main(["bundle", "verify", str(signed_at_build), "--verification-key", str(pair.public)])
        == 0
    )
    # content of signed and unsigned builds is the same: only the signature file differs
    signed_files = read_archive(signed_at_build.read_bytes())
    signed_files.pop(SIGNATURES)
    assert signed_files == read_archive(unsigned)


def test_verify_names_a_tampered_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = write_key(tmp_path, "ed25519")
    out = tmp_path / "b.tar.gz"
    key = ["--signing-key", str(pair.private), "--key-id", "k"]
    assert main(["bundle", "build", str(EXAMPLE_BUNDLE), "-o", str(out), *key]) == 0
    files = read_archive(out.read_bytes())
    files["orders/customers.cedar"] = b"permit (principal, action, resource);"
    out.write_bytes(rebuild(files))
    capsys.readouterr()
    assert main(["bundle", "verify", str(out), "--verification-key", str(pair.public)]) == 3
    err = capsys.readouterr().err
    assert "orders/customers.cedar: does not match its signed SHA-256" in err
    assert "is refused (1 problem(s))" in err


def test_verify_also_loads_the_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = write_key(tmp_path, "ec")
    files = read_archive(
        _built(tmp_path, ["--signing-key", str(pair.private), "--key-id", "k"]).read_bytes()
    )
    files.pop(SIGNATURES)
    files["baseline.cedar"] = b"permit (principal, action, resource) when { nope };"
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(rebuild(files))
    key = ["--signing-key", str(pair.private), "--key-id", "k"]
    assert main(["bundle", "sign", str(bad), *key]) == 0  # signing does not judge content
    capsys.readouterr()
    assert main(["bundle", "verify", str(bad), "--verification-key", str(pair.public)]) == 3
    assert "baseline.cedar" in capsys.readouterr().err


def _built(tmp_path: Path, extra: list[str]) -> Path:
    out = tmp_path / "built.tar.gz"
    assert main(["bundle", "build", str(EXAMPLE_BUNDLE), "-o", str(out), *extra]) == 0
    return out


def test_build_refuses_a_bundle_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(tmp_path / "b", {"p.cedar": "permit (principal"})
    out = tmp_path / "x.tar.gz"
    assert main(["bundle", "build", str(root), "-o", str(out)]) == 3
    assert "p.cedar" in capsys.readouterr().err
    assert not out.exists()


def test_key_problems_exit_1_and_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.tar.gz"
    missing = ["--signing-key", str(tmp_path / "nope.pem"), "--key-id", "k"]
    assert main(["bundle", "build", str(EXAMPLE_BUNDLE), "-o", str(out), *missing]) == 1
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["bundle", "build", str(EXAMPLE_BUNDLE), "-o", str(out), "--key-id", "k"])
    assert exited.value.code == 2
    pair = write_key(tmp_path, "ec")
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "bundle",
                "build",
                str(EXAMPLE_BUNDLE),
                "-o",
                str(out),
                "--signing-key",
                str(pair.private),
            ]
        )
    assert exited.value.code == 2
    assert "--signing-key needs --key-id" in capsys.readouterr().err


def test_sign_refuses_a_hostile_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = write_key(tmp_path, "ec")
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(raw_archive([Member("../../etc/x.cedar", b"x")]))
    before = evil.read_bytes()
    key = ["--signing-key", str(pair.private), "--key-id", "k"]
    assert main(["bundle", "sign", str(evil), *key]) == 3
    assert "climbs out" in capsys.readouterr().err
    assert evil.read_bytes() == before


def test_output_name_does_not_change_the_bytes(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(EXAMPLE_BUNDLE, copy)
    one, two = tmp_path / "one.tar.gz", tmp_path / "other-name.tgz"
    assert main(["bundle", "build", str(EXAMPLE_BUNDLE), "-o", str(one)]) == 0
    assert main(["bundle", "build", str(copy), "-o", str(two)]) == 0
    assert one.read_bytes() == two.read_bytes()
