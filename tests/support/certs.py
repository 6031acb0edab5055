"""Real X.509 material for the TLS tests: CAs, a server certificate, client certificates."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.gateway import CHECKOUT

SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM."""

    cert: bytes
    key: bytes
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.crt` and `<name>.key` into `folder` (overwriting in place)."""
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        cert.write_bytes(self.cert)
        key.write_bytes(self.key)
        return cert, key


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1)
    )


def certificate_authority(common_name: str) -> Issued:
    """A self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder).sign(key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), cert, key)


def leaf(ca: Issued, common_name: str, server: bool, spiffe: str | None = None) -> Issued:
    """A certificate signed by `ca`: for a server (127.0.0.1, localhost) or a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    if server:
        names += [x509.DNSName(n) for n in SERVER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_IPS]
    if spiffe:
        names.append(x509.UniformResourceIdentifier(spiffe))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = _validity(builder).sign(ca.private_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), cert, key)


@dataclass(frozen=True)
class Pki:
    """A CA with a server and a client certificate, and an unrelated CA with its own client."""

    folder: Path
    ca: Issued
    server: Issued
    client: Issued
    intruder: Issued

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def files(self, name: str = "server") -> tuple[Path, Path]:
        return self.folder / f"{name}.crt", self.folder / f"{name}.key"

    def client_credentials(self, client: Issued | None = None) -> grpc.ChannelCredentials:
        client = client or self.client
        return grpc.ssl_channel_credentials(self.ca.cert, client.key, client.cert)


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = certificate_authority("pdp test CA")
    pki = Pki(
        folder=folder,
        ca=ca,
        server=leaf(ca, "pdp", server=True),
        client=leaf(ca, "envoy", server=False, spiffe=CHECKOUT),
        intruder=leaf(certificate_authority("another CA"), "envoy", server=False, spiffe=CHECKOUT),
    )
    pki.server.write(folder, "server")
    pki.client.write(folder, "client")
    pki.ca_file.write_bytes(ca.cert)
    return pki


def tls_flags(pki: Pki, client_ca: bool = True) -> tuple[str, ...]:
    cert, key = pki.files()
    flags = ("--tls-cert", str(cert), "--tls-key", str(key))
    return flags + (("--client-ca", str(pki.ca_file)) if client_ca else ())
