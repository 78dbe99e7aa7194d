"""Certificates for the cluster's mutual TLS: one CA and one node certificate every member uses.

An open Dask scheduler runs any pickled function sent to it, so the cluster speaks only
``tls://`` and both ends of every connection must show a certificate signed by this CA. The
keys are written 0600; the CA's key stays beside them so more node certificates can be made
(copy only ca.pem, node.pem and node.key to the other machines).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from hilos.errors import UsageError

__all__ = ["CertPaths", "cert_paths", "make_certs"]

VALID_DAYS = 825  # what browsers accept for leaf certificates; long enough for a campaign


@dataclass(frozen=True, slots=True)
class CertPaths:
    """Where a certificate directory keeps each file."""

    ca: Path
    ca_key: Path
    cert: Path
    key: Path


def cert_paths(folder: str | os.PathLike[str]) -> CertPaths:
    d = Path(folder)
    return CertPaths(d / "ca.pem", d / "ca.key", d / "node.pem", d / "node.key")


def check_certs(folder: str | os.PathLike[str]) -> CertPaths:
    """The directory's paths, or a UsageError naming the first missing file."""
    paths = cert_paths(folder)
    for p in (paths.ca, paths.cert, paths.key):
        if not p.is_file():
            raise UsageError(f"--certs {folder}: no {p.name} (make them with hilos cluster certs)")
    return paths


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # whatever the umask said


def make_certs(folder: str | os.PathLike[str], name: str = "hilos-node") -> CertPaths:
    """Write a CA and a node certificate/key signed by it into `folder` (created 0700).
    Existing files are never overwritten (UsageError)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    paths = cert_paths(folder)
    Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in (paths.ca, paths.ca_key, paths.cert, paths.key):
        if p.exists():
            raise UsageError(f"{p} exists: refusing to overwrite a certificate")
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=VALID_DAYS)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hilos cluster CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    node = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    _write(paths.ca_key, pem_key(ca_key), 0o600)
    _write(paths.key, pem_key(key), 0o600)
    _write(paths.ca, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(paths.cert, node.public_bytes(serialization.Encoding.PEM), 0o644)
    return paths
