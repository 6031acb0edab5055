"""Keys written as PEM files, and hand-made (hostile) tar.gz archives, for archive tests."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pdp.bundle.archive import build_archive, read_archive
from pdp.bundle.loader import read_bundle
from pdp.bundle.package import pack
from pdp.bundle.signing import SigningKey, load_signing_key
from tests.support.paths import EXAMPLE_BUNDLE


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def write_key(folder: Path, kind: str = "ec", name: str = "") -> KeyPair:
    """A fresh key of `kind` (ec, ec384, ed25519, rsa, rsa1024) as PEM files in `folder`."""
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ec384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "rsa1024":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    else:
        raise ValueError(kind)
    name = name or kind
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public)


def signing_key(pair: KeyPair, key_id: str = "k1", algorithm: str = "") -> SigningKey:
    return load_signing_key(str(pair.private), key_id, algorithm)


def example_archive(key: SigningKey | None = None, root: Path = EXAMPLE_BUNDLE) -> bytes:
    return pack(read_bundle(root), key)


def example_files(key: SigningKey | None = None) -> dict[str, bytes]:
    """The example bundle's archive members (with `.signatures.json` when signed)."""
    return read_archive(example_archive(key))


def rebuild(files: dict[str, bytes]) -> bytes:
    """An archive of exactly `files`, signature file included as given (not re-signed)."""
    return build_archive(files)


@dataclass
class Member:
    """One raw tar member for hand-made archives; anything tarfile can write."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    size: int | None = None  # the header's size, when it should lie
    pax: dict[str, str] = field(default_factory=dict)


def raw_tar(members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.linkname = member.linkname
            info.size = len(member.data) if member.type in (tarfile.REGTYPE, b"\0") else 0
            info.pax_headers = dict(member.pax)
            tar.addfile(info, io.BytesIO(member.data) if info.size else None)
    raw = out.getvalue()
    for member in members:
        if member.size is not None:
            raw = _lie_about_size(raw, member.name, member.size)
    return raw


def raw_archive(members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    return gzip.compress(raw_tar(list(members), fmt), mtime=0)


def _lie_about_size(raw: bytes, name: str, size: int) -> bytes:
    """Rewrite the size field (and checksum) of the ustar header named `name`."""
    buffer = bytearray(raw)
    encoded = name.encode()
    for offset in range(0, len(buffer), 512):
        if bytes(buffer[offset : offset + 100]).rstrip(b"\0") == encoded:
            field_ = f"{size:011o}".encode() + b"\0"
            if len(field_) > 12:  # base-256 for big sizes
                field_ = b"\x80" + size.to_bytes(11, "big")
            buffer[offset + 124 : offset + 136] = field_
            buffer[offset + 148 : offset + 156] = b" " * 8
            checksum = sum(buffer[offset : offset + 512])
            buffer[offset + 148 : offset + 156] = f"{checksum:06o}".encode() + b"\0 "
            return bytes(buffer)
    raise ValueError(f"no header named {name}")
