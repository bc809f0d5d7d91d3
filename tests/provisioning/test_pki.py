"""The project CA: file modes, what it signs and refuses, the CRL, concurrent issuing."""

import datetime as dt
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from matthan.cli import main
from provisioning import pki
from provisioning.errors import ProvisionError


def test_ca_init_keeps_the_key_private_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "ca"
    assert main(["provision", "ca", "init", "--dir", str(d)]) == 0
    assert (d / pki.CA_KEY).stat().st_mode & 0o777 == 0o600
    ca = pki.load_cert(d / pki.CA_CERT)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    before = (d / pki.CA_KEY).read_bytes()
    assert main(["provision", "ca", "init", "--dir", str(d)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a CA already exists there" in err and "Traceback" not in err
    assert (d / pki.CA_KEY).read_bytes() == before


def test_missing_ca_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="ca init --dir"):
        pki.Authority(tmp_path / "nowhere")


def test_device_certificate_from_csr(tmp_path: Path) -> None:
    ca = pki.Authority(pki.init_ca(tmp_path / "ca"))
    key = pki.new_key()
    cert = ca.sign_csr(pki.make_csr(key, "q1-rex-01"), "q1-rex-01")
    assert pki.common_name(cert) == "q1-rex-01"
    assert cert.public_key() == key.public_key()
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=89) < life < dt.timedelta(days=91)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert pki.verify_chain(cert, ca.cert) is None
    cert.verify_directly_issued_by(ca.cert)


def test_csr_for_another_name_or_a_weak_key_is_refused(tmp_path: Path) -> None:
    ca = pki.Authority(pki.init_ca(tmp_path / "ca"))
    with pytest.raises(ProvisionError, match="not the device 'q1-rex-01'"):
        ca.sign_csr(pki.make_csr(pki.new_key(), "q1-rex-02"), "q1-rex-01")
    with pytest.raises(ProvisionError, match="not an id"):
        ca.sign_csr(pki.make_csr(pki.new_key(), "station:x"), "station:x")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-1")]))
        .sign(rsa_key, hashes.SHA256())
    )
    with pytest.raises(ProvisionError, match="EC P-256"):
        ca.sign_csr(csr.public_bytes(serialization.Encoding.PEM), "dev-1")
    with pytest.raises(ProvisionError, match="not a PEM"):
        ca.sign_csr(b"hello", "dev-1")


def test_server_certificate_carries_dns_and_ip_names(tmp_path: Path) -> None:
    ca = pki.Authority(pki.init_ca(tmp_path / "ca"))
    pair = ca.issue_keypair("broker", ["broker.q1.example", "10.0.0.5"])
    sans = pair.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.q1.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    pair.write(tmp_path / "b.key", tmp_path / "b.pem")
    assert (tmp_path / "b.key").stat().st_mode & 0o777 == 0o600


def test_revocation_lists_every_certificate_of_the_device_in_a_signed_crl(tmp_path: Path) -> None:
    ca = pki.Authority(pki.init_ca(tmp_path / "ca"))
    certs = [ca.sign_csr(pki.make_csr(pki.new_key(), "dev-1"), "dev-1") for _ in range(2)]
    other = ca.sign_csr(pki.make_csr(pki.new_key(), "dev-2"), "dev-2")
    assert sorted(ca.revoke("dev-1")) == sorted(f"{c.serial_number:x}" for c in certs)
    assert ca.revoke("dev-1") == []  # twice is harmless
    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    assert {r.serial_number for r in crl} == {c.serial_number for c in certs}
    assert crl.get_revoked_certificate_by_serial_number(other.serial_number) is None
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=pki.CRL_DAYS - 1)


def test_concurrent_issuing_loses_no_index_entry(tmp_path: Path) -> None:
    d = pki.init_ca(tmp_path / "ca")

    def work(n: int) -> None:
        ca = pki.Authority(d)  # each its own handle, as the CLI and the API would be
        for i in range(5):
            ca.sign_csr(pki.make_csr(pki.new_key(), f"dev-{n}-{i}"), f"dev-{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pki.Authority(d).issued()) == 30
