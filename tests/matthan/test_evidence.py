"""The evidence verifier on hostile tokens: every one is a verdict with a reason, never an exception."""

import base64
import json
from pathlib import Path

import pytest

from matthan.evidence import EvidenceError, verify_bundle, verify_manifest
from provisioning import pki


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def header(**fields: object) -> str:
    return b64(json.dumps({"alg": "ES256", "typ": "matthan-evidence+jwt", **fields}).encode())


SIG = b64(b"\x01" * 64)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "not a compact JWS"),
        ("a.b.c", "not base64url"),
        (f"{b64(b'[' * 20000 + b']' * 20000)}.e30.{SIG}", "header is not JSON"),
        (
            f"{b64(json.dumps({'alg': 'none', 'typ': 'matthan-evidence+jwt'}).encode())}.e30.{SIG}",
            "only ES256",
        ),
        (f"{b64(json.dumps({'alg': 'ES256', 'typ': 'JWT'}).encode())}.e30.{SIG}", "token type"),
        (f"{header()}.e30.{SIG}", "no signer certificate"),
        (f"{header(x5c=['!!'])}.e30.{SIG}", "not a DER certificate"),
        (f"{header(x5c=['x'] * 5)}.e30.{SIG}", "no signer certificate"),
        (f"{header(crit=['b64'])}.e30.{SIG}", "critical extensions"),
        (f"{header()}.e30.{b64(b'x' * 10)}", "64 bytes"),
        ("x" * 70_000, "over 65536 bytes"),
    ],
)
def test_hostile_tokens_are_refused_with_a_reason(tmp_path: Path, token: str, reason: str) -> None:
    ca = pki.load_cert(pki.init_ca(tmp_path / "ca") / "ca.pem")
    verdict = verify_manifest(token, ca, None, {"clip": "0" * 64})
    assert not verdict.valid and len(verdict.problems) == 1 and reason in verdict.problems[0], (
        verdict.problems
    )


def test_a_file_that_is_not_an_evidence_zip_is_one_clear_error(tmp_path: Path) -> None:
    ca = pki.load_cert(pki.init_ca(tmp_path / "ca") / "ca.pem")
    with pytest.raises(EvidenceError, match="not a zip file"):
        verify_bundle(b"PK not really", ca)
