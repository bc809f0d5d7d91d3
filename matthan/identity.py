"""The MQTT identity a client certificate carries: its common name.

The generated broker config makes the certificate's common name the client's user name and its
client id (`use_identity_as_username`, `use_username_as_clientid`), so every client asks for that
same id: the name it logs and the session it resumes are then the ones the broker uses.
"""

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID


def certificate_name(cert_path: str | Path) -> str | None:
    """The common name of a PEM certificate; None when the file holds no readable certificate."""
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError):
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode()
