"""Packs a bundle into an archive, signs and verifies archives, and opens one as a bundle."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from pdp.bundle.archive import SIGNATURES, build_archive, read_archive, write_tree
from pdp.bundle.loader import BundleSource, read_bundle
from pdp.bundle.signing import SigningKey, VerificationKey, sign_files, verify_files


@dataclass(frozen=True, slots=True)
class OpenedArchive:
    """A bundle read from an archive: its source, who signed it, and the archive's digest."""

    source: BundleSource
    key_id: str
    sha256: str


def pack(source: BundleSource, key: SigningKey | None = None) -> bytes:
    """The archive of a read bundle's content files, signed when `key` is given."""
    files = {name: text.encode("utf-8") for name, text in source.files.items()}
    return _build(files, key)


def sign_archive(data: bytes, key: SigningKey, where: str = "archive") -> bytes:
    """`data` with its signature replaced by one made with `key` (content unchanged)."""
    files = read_archive(data, where)
    files.pop(SIGNATURES, None)
    return _build(files, key)


def verify_archive(
    data: bytes, keys: Sequence[VerificationKey], where: str = "archive"
) -> tuple[dict[str, bytes], str]:
    """The content files of a signed archive and the signer's key id; ArchiveError if not."""
    verified = verify_files(read_archive(data, where), keys)
    return verified.files, verified.key_id


def open_archive(
    data: bytes,
    keys: Sequence[VerificationKey] | None,
    name: str = "bundle",
    where: str = "archive",
) -> OpenedArchive:
    """Check an archive (its signature when `keys` is not None), extract it into a private
    temporary directory, read it with the bundle reader and its limits, and remove the copy.

    Raises ArchiveError for the archive, BundleError for the bundle inside it.
    """
    files = read_archive(data, where)
    key_id = ""
    if keys is not None:
        verified = verify_files(files, keys)
        files, key_id = verified.files, verified.key_id
    else:
        files.pop(SIGNATURES, None)
    root = write_tree(files, name=name)
    try:
        source = read_bundle(root)
    finally:
        shutil.rmtree(os.path.dirname(root), ignore_errors=True)
    return OpenedArchive(source, key_id, sha256_hex(data))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _build(files: dict[str, bytes], key: SigningKey | None) -> bytes:
    if key is not None:
        files = {**files, SIGNATURES: sign_files(files, key)}
    return build_archive(files)
