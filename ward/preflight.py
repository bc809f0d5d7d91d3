"""Checks before a station subscribes: its certificate is for its ward, and TLS to the broker works.

paho reports a refused TLS handshake as "Unspecified error" on every retry, so a station with the
wrong CA or an expired certificate would print that forever. One handshake made here first turns
each failure into words that say what to fix, and refuses to start on the ones a retry cannot
fix. A broker that does not answer yet is only a warning: the station starts and keeps trying.
"""

import contextlib
import logging
import socket
import ssl

from matthan.identity import certificate_name
from matthan.mqtt import endpoint
from matthan_wire.config import BrokerConfig
from ward.errors import WardError

log = logging.getLogger("matthan.ward")

TIMEOUT_S = 5.0


def check_ward(ward: str, cert: str) -> str:
    """The certificate's name when it is `station:{ward}` (or `station:{ward}:{screen}`)."""
    name = certificate_name(cert)
    if name is None:
        raise WardError(f"--cert {cert}: not a readable PEM certificate with a common name")
    parts = name.split(":")
    if len(parts) < 2 or parts[0] != "station":
        raise WardError(
            f"--cert {cert} is for {name!r}, not a ward station; use the certificate made with "
            f"`matthan provision ca client-cert --name station:{ward}`"
        )
    if parts[1] != ward:
        raise WardError(
            f"--ward {ward} does not match the certificate, which is for ward {parts[1]} ({name}); "
            f"start with --ward {parts[1]} or use the certificate of station:{ward}"
        )
    return name


def tls_problem(exc: BaseException, broker: BrokerConfig, host: str) -> str | None:
    """Words for a TLS failure a retry cannot fix; None for a network failure (retry may)."""
    text = str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or text
        if "expired" in reason:
            return f"the broker's certificate has expired ({reason}); renew the broker's certificate"
        if "match" in reason or "hostname" in reason.lower():
            return (
                f"the broker's certificate is not for {host!r} ({reason}); connect with the name the "
                "certificate was issued for (--broker mqtts://NAME:PORT)"
            )
        return (
            f"the broker's certificate is not signed by --ca {broker.ca} ({reason}); use the CA the "
            "broker's certificate came from"
        )
    lowered = text.lower()
    if "unknown ca" in lowered:
        return (
            f"the broker does not trust --cert {broker.cert}: it was not issued by the broker's CA; "
            "use the certificate made by that CA"
        )
    if "certificate expired" in lowered:
        return f"the broker refused --cert {broker.cert}: it has expired; renew it (matthan provision …)"
    if "certificate required" in lowered or "handshake failure" in lowered:
        return "the broker wants a client certificate: give --cert and --key (the station's)"
    if "bad certificate" in lowered or "certificate revoked" in lowered:
        return f"the broker refused --cert {broker.cert} ({text}); it may be revoked: ask for a new one"
    if "key values mismatch" in lowered or "pem lib" in lowered:
        return f"--key {broker.key} does not belong to --cert {broker.cert}"
    if "wrong version number" in lowered or "record layer failure" in lowered:
        return "the broker's port does not speak TLS: use mqtt:// or the broker's TLS port"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with the broker failed: {text}"
    return None


def check_broker(broker: BrokerConfig, timeout: float = TIMEOUT_S) -> None:
    """One TLS handshake (and a read, where TLS 1.3 reports a refused client certificate)."""
    if not broker.url.startswith("mqtts://"):
        return
    where = endpoint(broker.url)
    try:
        context = ssl.create_default_context(cafile=broker.ca)
        if broker.cert:
            context.load_cert_chain(broker.cert, broker.key)
    except (OSError, ssl.SSLError) as exc:
        words = tls_problem(exc, broker, where.host) or str(exc)
        raise WardError(f"broker TLS files: {words}") from None
    try:
        with (
            socket.create_connection((where.host, where.port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=where.host) as tls,
        ):
            tls.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                tls.recv(1)  # the broker says nothing first; a refusal arrives as an alert
    except (ssl.SSLError, OSError) as exc:
        problem = tls_problem(exc, broker, where.host)
        if problem is not None:
            raise WardError(f"broker {broker.url}: {problem}") from None
        log.warning("broker %s not reachable yet (%s); the station will keep trying", broker.url, exc)
