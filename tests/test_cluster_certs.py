"""hilos.cluster's certificates and address rules (no cluster started)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from hilos.cluster.certs import check_certs, make_certs
from hilos.cluster.security import parse_address
from hilos.errors import UsageError


def test_certs_are_a_ca_and_a_node_signed_by_it_keys_0600(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    paths = make_certs(tmp_path / "c")
    for key in (paths.key, paths.ca_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700
    ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    node = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not node.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert node.issuer == ca.subject
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    node.verify_directly_issued_by(ca)  # raises unless the CA signed it
    assert check_certs(tmp_path / "c") == paths


def test_certs_never_overwrite(tmp_path: Path) -> None:
    make_certs(tmp_path)
    before = (tmp_path / "node.key").read_bytes()
    with pytest.raises(UsageError, match="refusing to overwrite"):
        make_certs(tmp_path)
    assert (tmp_path / "node.key").read_bytes() == before


def test_missing_certs_are_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no ca\.pem .*hilos cluster certs"):
        check_certs(tmp_path)


@pytest.mark.parametrize(
    ("text", "insecure", "ok"),
    [
        ("tls://127.0.0.1:8786", False, True),
        ("tls://198.18.0.1:8786", False, True),
        ("tls://[::1]:8786", False, True),
        ("tls://203.0.113.5:8786", False, True),  # TLS may go anywhere
        ("tcp://127.0.0.1:8786", False, False),  # plain only when asked for
        ("tcp://127.0.0.1:8786", True, True),
        ("tcp://198.19.254.2:8786", True, True),
        ("tcp://[fd18::5]:8786", True, True),
        ("tcp://10.0.0.1:8786", True, False),  # ... and only on loopback or the lab
        ("tcp://203.0.113.5:8786", True, False),
        ("tls://localhost:8786", False, False),  # no name lookups
        ("tls://127.0.0.1", False, False),
        ("tls://127.0.0.1:0", False, False),
        ("udp://127.0.0.1:1", False, False),
    ],
)
def test_addresses(text: str, insecure: bool, ok: bool) -> None:
    if ok:
        assert str(parse_address(text, insecure=insecure)) == text
    else:
        with pytest.raises(UsageError):
            parse_address(text, insecure=insecure)
