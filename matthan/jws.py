"""Compact JWS (RFC 7515) with ES256 (RFC 7518 §3.4) and the signer's certificate in `x5c`.

Only what the evidence manifests need: sign a payload with an EC P-256 key, and read back and
check a token. The signature is the raw r‖s pair (64 bytes), not DER, as the JWA requires.
`cryptography` is imported here only, so the wire contract stays pydantic-only.
"""

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from matthan.errors import UserError

ALG = "ES256"
_COORD = 32  # bytes per P-256 coordinate


class JwsError(UserError):
    """A token that is not a well-formed ES256 compact JWS, or whose signature does not verify."""


@dataclass(frozen=True)
class Jws:
    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes  # raw r‖s

    def certificates(self) -> list[x509.Certificate]:
        """The `x5c` chain, signer first (RFC 7515 §4.1.6: standard base64 DER)."""
        chain = self.header.get("x5c")
        if not isinstance(chain, list) or not chain or len(chain) > 4:
            raise JwsError("the signature carries no signer certificate (x5c)")
        try:
            return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in chain]
        except (ValueError, TypeError):
            raise JwsError("the signer certificate (x5c) is not a DER certificate") from None

    def verify(self, public: ec.EllipticCurvePublicKey) -> bool:
        r = int.from_bytes(self.signature[:_COORD], "big")
        s = int.from_bytes(self.signature[_COORD:], "big")
        try:
            public.verify(encode_dss_signature(r, s), self.signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise JwsError("not base64url") from None


def sign(payload: bytes, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate], typ: str) -> str:
    if not isinstance(key.curve, ec.SECP256R1):
        raise JwsError(f"ES256 needs a P-256 key, not {key.curve.name}")
    header = {
        "alg": ALG,
        "typ": typ,
        "x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain],
    }
    signing_input = f"{b64url(json.dumps(header, separators=(',', ':')).encode())}.{b64url(payload)}"
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64url(r.to_bytes(_COORD, 'big') + s.to_bytes(_COORD, 'big'))}"


def parse(token: str, typ: str, max_bytes: int = 64 * 1024) -> Jws:
    """Split and decode a compact JWS; the signature is not checked yet (see Jws.verify)."""
    if len(token) > max_bytes:
        raise JwsError(f"the token is over {max_bytes} bytes")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS (three base64url parts joined by dots)")
    try:
        header = json.loads(unb64url(parts[0]))
    except (ValueError, RecursionError):
        raise JwsError("the JWS header is not JSON") from None
    if not isinstance(header, dict):
        raise JwsError("the JWS header is not a JSON object")
    if header.get("alg") != ALG:
        raise JwsError(f"signature algorithm {header.get('alg')!r}: only {ALG} is accepted")
    if header.get("typ") != typ:
        raise JwsError(f"token type {header.get('typ')!r}, not {typ!r}")
    if set(header.get("crit", [])):
        raise JwsError("the JWS names critical extensions this verifier does not know")
    signature = unb64url(parts[2])
    if len(signature) != 2 * _COORD:
        raise JwsError("an ES256 signature is 64 bytes")
    return Jws(header, unb64url(parts[1]), f"{parts[0]}.{parts[1]}".encode(), signature)
