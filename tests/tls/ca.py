"""A certificate authority made for a test run, and the certificates mcp-edge presents.

    python tests/tls/ca.py DIR

writes, in DIR: `ca.pem` (the authority clients trust), `edge.pem`/`edge-key.pem` and
`rotated.pem`/`rotated-key.pem` (two server certificates for localhost and 127.0.0.1, told apart
by their serial numbers, for a rotation; also valid for the name the conformance suite's
DNS-rebinding check sends), and `other.pem`/`other-key.pem` (signed by an authority
nobody trusts). Keys are P-256; everything lives a day."""

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def authority(common: str = "mcp-edge test CA"):
    """A self-signed authority: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def server(ca, serial: int, lifetime: datetime.timedelta = DAY):
    """A server certificate for localhost and 127.0.0.1 signed by `ca`: (certificate, key)."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    # evil.example.com too: the conformance suite's DNS-rebinding check sends that Host, and
    # Node verifies the certificate against the Host header; the edge must then refuse the
    # request itself, as over plaintext.
    names = [x509.DNSName("localhost"), x509.DNSName("evil.example.com"),
             x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - DAY).not_valid_after(now + lifetime)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ca = authority()
    (directory / "ca.pem").write_bytes(pem(ca[0]))
    for name, serial, issuer in [("edge", 1001, ca), ("rotated", 1002, ca),
                                 ("other", 1003, authority("an authority nobody trusts"))]:
        cert, key = server(issuer, serial)
        (directory / f"{name}.pem").write_bytes(pem(cert))
        (directory / f"{name}-key.pem").write_bytes(key_pem(key))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write(Path(sys.argv[1]))
