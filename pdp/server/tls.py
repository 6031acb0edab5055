"""The listener's transport security: TLS/mTLS re-read on rotation, Unix socket permissions."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from pdp.errors import TlsError

log = logging.getLogger("pdp.server.tls")

DEFAULT_SOCKET_MODE = 0o660
MAX_PEM_BYTES = 1024 * 1024
# A file changed this recently may change again within the file system's timestamp
# granularity without its stamp changing: until then, its content is compared too.
SETTLE_NS = 2_000_000_000
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
Stamp = tuple[tuple[int, int, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the listener's certificate chain, key and (for mTLS) client CA bundle live."""

    cert: str
    key: str
    client_ca: str | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


@dataclass(frozen=True, slots=True)
class Material:
    """The PEM bytes of one good certificate configuration, checked to belong together."""

    chain: bytes
    key: bytes
    client_ca: bytes | None
    subject: str
    not_after: str

    def same_as(self, other: Material) -> bool:
        return (self.chain, self.key, self.client_ca) == (other.chain, other.key, other.client_ca)


def read_material(files: TlsFiles) -> Material:
    """Read and check the files: PEM certificates, an unencrypted key matching the leaf."""
    chain = _read(files.cert, "--tls-cert")
    key_pem = _read(files.key, "--tls-key")
    certificates = _certificates(chain, files.cert, "--tls-cert")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsError(
            f"--tls-key {files.key}: the key is encrypted; pdp needs it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):  # never echo the parser: it may quote the key
        raise TlsError(f"--tls-key {files.key}: not a PEM private key") from None
    leaf = certificates[0]
    if key.public_key().public_bytes(*_SPKI) != leaf.public_key().public_bytes(*_SPKI):
        raise TlsError(
            f"--tls-key {files.key} does not match the certificate in --tls-cert {files.cert}"
        )
    client_ca = None
    if files.client_ca:
        client_ca = _read(files.client_ca, "--client-ca")
        _certificates(client_ca, files.client_ca, "--client-ca")
    return Material(
        chain=chain,
        key=key_pem,
        client_ca=client_ca,
        subject=leaf.subject.rfc4514_string(),
        not_after=leaf.not_valid_after_utc.isoformat(),
    )


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise TlsError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES:
        raise TlsError(f"{flag} {path}: larger than {MAX_PEM_BYTES} bytes")
    return data


def _certificates(data: bytes, path: str, flag: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsError(f"{flag} {path}: no PEM certificate could be read") from None
    return certificates


def _stamp(paths: Sequence[str]) -> Stamp:
    """What changes when a file is rewritten, replaced or re-linked (a Secret volume update)."""
    stamps = []
    for path in paths:
        info = os.stat(path)
        stamps.append((info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(stamps)


def _settled(stamp: Stamp) -> bool:
    """Whether every file's last change is old enough for its stamp to tell the next one."""
    newest = max(max(entry[3], entry[4]) for entry in stamp)
    return time.time_ns() - newest > SETTLE_NS


class CertificateSource:
    """The listener's certificates: the last good set, re-read when the files change.

    grpc calls `fetch` before every TLS handshake; it costs a few `stat` calls unless a file
    changed (or changed in the last two seconds: then the contents are compared). A changed
    set that does not load (half-written, mismatched key) is logged once and the last good
    one keeps serving until the files change again.
    """

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._stamp = _stamp(files.paths)  # before reading: a change during the read is seen
        self.material = read_material(files)
        self._failed: Stamp | None = None
        self.reloads = 0

    @property
    def require_client_certificate(self) -> bool:
        return self.files.client_ca is not None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        """The grpc configuration of the current material."""
        material = self.material
        return grpc.ssl_server_certificate_configuration(
            [(material.key, material.chain)], root_certificates=material.client_ca
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed and load, else None (keep the current)."""
        try:
            return self._fetch()
        except Exception:  # a grpc callback must not raise; the last good set keeps serving
            log.exception("certificate check failed", extra={"event": "tls_reload_error"})
            return None

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            stamp = _stamp(self.files.paths)
        except OSError as exc:  # a file missing for a moment while it is replaced
            self._report(None, f"cannot stat a certificate file: {exc}")
            return None
        settled = _settled(stamp)
        if settled and stamp in (self._stamp, self._failed):
            return None
        with self._lock:
            if settled and stamp in (self._stamp, self._failed):
                return None
            try:
                material = read_material(self.files)
            except TlsError as exc:
                self._report(stamp, str(exc))
                return None
            if material.same_as(self.material):
                self._stamp, self._failed = stamp, None
                return None
            self._stamp, self._failed, self.material = stamp, None, material
            self.reloads += 1
        log.info(
            "TLS certificate reloaded",
            extra={
                "event": "tls_reloaded",
                "subject": material.subject,
                "not_after": material.not_after,
            },
        )
        return self.configuration()

    def _report(self, stamp: Stamp | None, message: str) -> None:
        if stamp is not None and stamp == self._failed:
            return
        self._failed = stamp
        log.error(
            "TLS files changed but do not load; the previous certificate keeps serving: %s",
            message,
            extra={"event": "tls_reload_failed", "error": message},
        )

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that ask `fetch` for the certificate before every handshake."""
        return grpc.dynamic_ssl_server_credentials(
            self.configuration(),
            # grpc documents None as "keep the current certificate"; types-grpcio omits it.
            self.fetch,  # type: ignore[arg-type]
            require_client_authentication=self.require_client_certificate,
        )


def tls_files(cert: str | None, key: str | None, client_ca: str | None) -> TlsFiles | None:
    """The TLS files of a listener, or None for plaintext; ValueError for an incomplete set."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError("--client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    return TlsFiles(cert, key, client_ca)


def add_listener(
    server: grpc.aio.Server,
    listen: str,
    files: TlsFiles | None = None,
    socket_mode: int = DEFAULT_SOCKET_MODE,
) -> int:
    """Open `listen` on `server` (TLS when `files`); 0 when it cannot be bound.

    A Unix socket is created owner-only and then given `socket_mode`, before the server
    starts accepting, so no one else can connect in between.
    """
    source = CertificateSource(files) if files is not None else None
    unix = listen.startswith("unix:")
    mask = os.umask(0o177) if unix else None
    try:
        if source is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, source.credentials())
    except RuntimeError:  # grpc's bind failure; with so_reuseport 0 a busy port ends here
        port = 0
    finally:
        if mask is not None:
            os.umask(mask)
    if port and unix:
        os.chmod(listen[len("unix:") :], socket_mode)
    if source is not None and port:
        _log_serving(source)
    return port


def _log_serving(source: CertificateSource) -> None:
    material = source.material
    expires = datetime.fromisoformat(material.not_after)
    if expires <= datetime.now(UTC):
        log.warning(
            "the TLS certificate has expired; clients will refuse it",
            extra={"event": "tls_expired", "subject": material.subject},
        )
    log.info(
        "TLS on the listener",
        extra={
            "event": "tls_enabled",
            "subject": material.subject,
            "not_after": material.not_after,
            "client_certificates": "required"
            if source.require_client_certificate
            else "not requested",
        },
    )


def check_arguments(cert: str | None, key: str | None, client_ca: str | None) -> None:
    """ValueError for an incomplete set of flags, TlsError for files that cannot be served."""
    files = tls_files(cert, key, client_ca)
    if files is not None:
        read_material(files)
