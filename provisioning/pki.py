"""The project's certificate authority: CA, server and client certificates, device certificates
signed from a CSR, and the certificate revocation list.

Layout of a CA folder (`matthan provision ca init --dir D`):

    ca.key      the CA's private key, 0600 — the only file that must never leave the server room
    ca.pem      the CA certificate every device and broker trusts
    index.json  every certificate issued: serial, common name, expiry, revocation time
    crl.pem     the signed revocation list the broker checks on each TLS handshake

Keys are ECDSA P-256: small enough for a Pi to generate in milliseconds and accepted by every
broker we target. Device certificates are short-lived (90 days by default) and renewed from a
fresh CSR, so a stolen key is useful for a bounded time even if nobody revokes it.
"""

import datetime as dt
import fcntl
import ipaddress
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, TypeAdapter

from matthan_wire.ids import is_id
from provisioning.errors import ProvisionError
from provisioning.files import write_file

CA_KEY = "ca.key"
CA_CERT = "ca.pem"
CRL_FILE = "crl.pem"
INDEX = "index.json"

DEVICE_DAYS = 90
SERVER_DAYS = 825
CA_DAYS = 3650
# The broker refuses every client once its CRL is past nextUpdate, so the CRL is re-signed on each
# revocation and by every `broker-config` run; 30 days leaves a month to notice a stopped timer.
CRL_DAYS = 30
# Reissuing to an already-expired CA or device is refused; renewing is allowed this long before expiry.
RENEW_BEFORE_DAYS = 30


class Issued(BaseModel):
    serial: str  # hex
    common_name: str
    kind: str  # "device" | "server" | "client"
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None


_INDEX = TypeAdapter(list[Issued])


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    """A CSR as the device builds it: the private key stays on the device, only this leaves it."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ProvisionError(f"{path}: no such certificate") from None
    except ValueError:
        raise ProvisionError(f"{path}: not a PEM certificate") from None


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def init_ca(directory: Path, name: str = "matthan project CA", days: int = CA_DAYS) -> Path:
    """Create a new CA in `directory`; refuses to overwrite one (that would orphan every device)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CA_KEY).exists() or (directory / CA_CERT).exists():
        raise ProvisionError(f"{directory}: a CA already exists there; refusing to replace it")
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    write_file(directory / CA_KEY, key_pem(key), mode=0o600)
    write_file(directory / CA_CERT, cert_pem(cert), mode=0o644)
    write_file(directory / INDEX, "[]\n", mode=0o600)
    ca = Authority(directory)
    ca.write_crl()
    return directory


@dataclass
class KeyPair:
    key_pem: bytes
    cert_pem: bytes
    cert: x509.Certificate

    def write(self, key_path: Path, cert_path: Path, group: str | None = None) -> None:
        # With a group (the broker's), the key is 0640 so the broker's unprivileged user can read it.
        write_file(key_path, self.key_pem, mode=0o640 if group else 0o600, group=group)
        write_file(cert_path, self.cert_pem, mode=0o644, group=group)


class Authority:
    """A CA folder opened for issuing; every write to the index holds a file lock."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        key_path = directory / CA_KEY
        if not key_path.exists():
            raise ProvisionError(
                f"{directory}: no CA here; run 'matthan provision ca init --dir {directory}'"
            )
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except PermissionError:
            raise ProvisionError(f"{key_path}: not readable by this user") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProvisionError(f"{key_path}: not an EC private key")
        self.key = key
        self.cert = load_cert(directory / CA_CERT)

    @property
    def cert_path(self) -> Path:
        return self.dir / CA_CERT

    @property
    def crl_path(self) -> Path:
        return self.dir / CRL_FILE

    # -- issuing ------------------------------------------------------------------------------

    def sign_csr(self, csr_pem: bytes, device_id: str, days: int = DEVICE_DAYS) -> x509.Certificate:
        """A device certificate for the key in the CSR; the CN must be exactly the device id."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise ProvisionError("the CSR is not a PEM certificate signing request") from None
        if not csr.is_signature_valid:
            raise ProvisionError("the CSR's signature does not match its key")
        cn = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if cn != [device_id]:
            raise ProvisionError(f"the CSR names {cn or 'no common name'}, not the device {device_id!r}")
        if not is_id(device_id):
            raise ProvisionError(f"device id {device_id!r} is not an id ([a-z0-9-], at most 63 characters)")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.key_size < 256:
            raise ProvisionError("the CSR's key must be EC P-256 or stronger")
        return self._issue(device_id, public, days, kind="device", sans=())

    def issue_keypair(
        self, name: str, sans: Sequence[str] = (), days: int = SERVER_DAYS, server: bool = True
    ) -> KeyPair:
        """Key and certificate made here, for the broker, the API, a ward station or the cloud client."""
        key = new_key()
        cert = self._issue(name, key.public_key(), days, kind="server" if server else "client", sans=sans)
        return KeyPair(key_pem(key), cert_pem(cert), cert)

    def _issue(
        self,
        name: str,
        public: ec.EllipticCurvePublicKey,
        days: int,
        kind: str,
        sans: Sequence[str],
    ) -> x509.Certificate:
        now = _now()
        not_after = min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc)
        if not_after <= now:
            raise ProvisionError(f"the CA expired on {self.cert.not_valid_after_utc:%Y-%m-%d}; make a new CA")
        usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            # A few minutes back-dated: a device whose clock is slightly behind still accepts it.
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(_sans(sans)), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        with self._index() as index:
            index.append(
                Issued(serial=f"{cert.serial_number:x}", common_name=name, kind=kind, not_after=not_after)
            )
        return cert

    # -- revocation ---------------------------------------------------------------------------

    def revoke(self, common_name: str, keep: frozenset[str] | set[str] = frozenset()) -> list[str]:
        """Revoke every unexpired certificate issued to `common_name` except the serials in `keep`."""
        now = _now()
        done: list[str] = []
        with self._index() as index:
            for i, entry in enumerate(index):
                if (
                    entry.common_name == common_name
                    and entry.revoked_at is None
                    and entry.not_after > now
                    and entry.serial not in keep
                ):
                    index[i] = entry.model_copy(update={"revoked_at": now})
                    done.append(entry.serial)
        self.write_crl()
        return done

    def issued(self) -> list[Issued]:
        return _INDEX.validate_json((self.dir / INDEX).read_bytes())

    def is_revoked(self, serial: int) -> bool:
        return any(e.serial == f"{serial:x}" and e.revoked_at for e in self.issued())

    def write_crl(self, days: int = CRL_DAYS) -> Path:
        """Sign a fresh CRL listing every revoked certificate that has not yet expired."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=days))
        )
        for entry in self.issued():
            if entry.revoked_at is not None and entry.not_after > now:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(entry.serial, 16))
                    .revocation_date(entry.revoked_at)
                    .build()
                )
        crl = builder.sign(self.key, hashes.SHA256())
        return write_file(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)

    @contextmanager
    def _index(self) -> Iterator[list[Issued]]:
        # The cloud API and a technician's CLI may issue at once; the lock keeps both entries.
        with (self.dir / ".index.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.issued()
            yield entries
            write_file(self.dir / INDEX, _INDEX.dump_json(entries, indent=1) + b"\n", mode=0o600)


def _sans(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def verify_chain(cert: x509.Certificate, ca: x509.Certificate, at: dt.datetime | None = None) -> str | None:
    """Why `cert` would be refused by a peer trusting `ca` (None when it is fine)."""
    at = at or _now()
    if cert.issuer != ca.subject:
        return "not issued by the project CA"
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return "signature does not verify against the project CA"
    if at > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if at < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (clock behind?)"
    return None
