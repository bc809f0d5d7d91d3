"""`matthan provision enroll`: run on the device at the roadside.

Makes the device's key here (it never leaves the box), sends a CSR with the claim token, checks
what comes back (the certificate is for our key and our id, and chains to the CA sent along), and
only then writes everything under the config folder:

    device.key    0600  the private key
    device.pem          the device certificate (CN = device id)
    ca.pem              the project CA, trusted for the broker and the cloud
    device.token  0600  the upload token (Authorization: Bearer …)
    device.yaml   0600  the configuration `matthan device run` reads (camera URLs carry passwords)

A refused token changes nothing on disk.
"""

import os
import pwd
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from matthan.i18n import Msg, language
from matthan_wire.codec import describe
from matthan_wire.config import DeviceConfig
from matthan_wire.enrollment import EnrollRequest, EnrollResponse, RenewRequest, RenewResponse
from matthan_wire.ids import is_id
from provisioning import pki
from provisioning.errors import ProvisionError
from provisioning.files import write_file

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
FILES = ("device.key", "device.pem", "ca.pem", "device.token", "device.yaml")


def enroll(
    cloud: str,
    token: str,
    device_id: str,
    dest: Path,
    camera: str | None = None,
    ward: str | None = None,
    storage: str | None = None,
    verify: str | bool = True,
    owner: str | None = None,
) -> Path:
    """Enroll this device; returns the path of the device.yaml written.

    `owner`: the user the agent runs as (the systemd unit's `matthan`, the image's uid 10001).
    Enrollment usually runs as root; without handing the files over, the agent cannot read its
    own key.
    """
    # Checked before the token is spent: a single-use token must not be lost to a typo here.
    account = _account(owner) if owner is not None else None
    if not is_id(device_id):
        raise ProvisionError(f"device id {device_id!r} is not an id ([a-z0-9-], at most 63 characters)")
    if ward is not None and not is_id(ward):
        raise ProvisionError(f"ward {ward!r} is not an id ([a-z0-9-])")
    cloud = cloud.rstrip("/")
    key = pki.new_key()
    request = EnrollRequest(
        token=token.strip(),
        device_id=device_id,
        csr=pki.make_csr(key, device_id).decode(),
        ward=ward,
        camera=camera,
    )
    data = _post(f"{cloud}/api/v1/enroll", request.model_dump(mode="json", exclude_none=True), verify)
    try:
        answer = EnrollResponse.model_validate(data)
    except ValidationError as exc:
        raise ProvisionError(f"the cloud's answer is not an enrollment: {describe(exc)}") from None
    cert, ca = _check_certificate(answer.certificate, answer.ca, key, device_id)
    paths = {name: dest / name for name in FILES}
    # The address that just worked, rather than whatever the server believes its public URL is.
    config = _device_config(
        answer, cloud, paths, storage, cloud_ca=verify if isinstance(verify, str) else None
    )
    write_file(paths["ca.pem"], pki.cert_pem(ca), mode=0o644)
    write_file(paths["device.key"], pki.key_pem(key), mode=0o600)
    write_file(paths["device.pem"], pki.cert_pem(cert), mode=0o644)
    write_file(paths["device.token"], answer.api_token + "\n", mode=0o600)
    text = "# Written by `matthan provision enroll`; the cloud's desired config overrides the cameras.\n"
    text += yaml.safe_dump(config, sort_keys=False)
    written = write_file(paths["device.yaml"], text, mode=0o600)
    if account is not None:
        uid, gid = account
        for path in paths.values():
            os.chown(path, uid, gid)
        if storage:
            Path(storage).mkdir(parents=True, exist_ok=True)
            os.chown(storage, uid, gid)
    return written


def _account(owner: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(owner) if not owner.isdigit() else pwd.getpwuid(int(owner))
    except KeyError:
        raise ProvisionError(f"--owner {owner}: no such user on this device") from None
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        raise ProvisionError(f"--owner {owner}: only root can hand the device's files to another user")
    return entry.pw_uid, entry.pw_gid


def renew(config_path: Path, verify: str | bool = True) -> x509.Certificate:
    """A new key and certificate for an enrolled device, authenticated by its upload token."""
    from device.config_file import load_config

    config = load_config(config_path)
    if config.cloud is None or config.cloud.token_file is None or config.broker.cert is None:
        raise ProvisionError(f"{config_path}: not an enrolled device (no cloud token or certificate)")
    token = Path(config.cloud.token_file).read_text().strip()
    key = pki.new_key()
    body = RenewRequest(csr=pki.make_csr(key, config.device.id).decode())
    url = f"{config.cloud.url.rstrip('/')}/api/v1/devices/{config.device.id}/renew"
    answer = RenewResponse.model_validate(
        _post(url, body.model_dump(), config.cloud.ca or verify, headers={"Authorization": f"Bearer {token}"})
    )
    cert, _ = _check_certificate(answer.certificate, answer.ca, key, config.device.id)
    assert config.broker.key is not None
    write_file(Path(config.broker.key), pki.key_pem(key), mode=0o600)
    write_file(Path(config.broker.cert), pki.cert_pem(cert), mode=0o644)
    return cert


def due_for_renewal(config_path: Path) -> timedelta | None:
    """None when the certificate should be renewed now, else how long it is still valid."""
    from device.config_file import load_config

    config = load_config(config_path)
    if config.broker.cert is None:
        raise ProvisionError(f"{config_path}: no broker certificate configured (enroll first)")
    left = pki.load_cert(Path(config.broker.cert)).not_valid_after_utc - datetime.now(UTC)
    return None if left < timedelta(days=pki.RENEW_BEFORE_DAYS) else left


def _post(url: str, body: dict[str, Any], verify: str | bool, headers: dict[str, str] | None = None) -> Any:
    # The cloud's refusal in the technician's language (matthan --lang, the locale).
    headers = {"Accept-Language": language(), **(headers or {})}
    try:
        resp = httpx.post(url, json=body, timeout=TIMEOUT, verify=verify, headers=headers)
    except httpx.HTTPError as exc:
        raise ProvisionError(
            Msg(
                "cannot reach the cloud at %(url)s: %(error)s",
                url=url,
                error=f"{exc.__class__.__name__}: {exc}",
            )
        ) from None
    if resp.status_code >= 400:
        raise ProvisionError(
            Msg(
                "enrollment refused (HTTP %(status)d): %(detail)s",
                status=resp.status_code,
                detail=_detail(resp),
            )
        )
    try:
        return resp.json()
    except ValueError:
        raise ProvisionError(
            Msg(
                "the cloud at %(url)s did not answer JSON (HTTP %(status)d)", url=url, status=resp.status_code
            )
        ) from None


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        return resp.text[:200] or resp.reason_phrase
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    return str(detail)


def _check_certificate(
    cert_text: str, ca_text: str, key: Any, device_id: str
) -> tuple[x509.Certificate, x509.Certificate]:
    try:
        cert = x509.load_pem_x509_certificate(cert_text.encode())
        ca = x509.load_pem_x509_certificate(ca_text.encode())
    except ValueError:
        raise ProvisionError("the cloud sent a certificate that is not PEM") from None
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        raise ProvisionError("the certificate the cloud sent is not for this device's key")
    if pki.common_name(cert) != device_id:
        raise ProvisionError(f"the certificate names {pki.common_name(cert)!r}, not {device_id!r}")
    problem = pki.verify_chain(cert, ca)
    if problem:
        raise ProvisionError(f"the certificate the cloud sent is unusable: {problem}")
    return cert, ca


def _device_config(
    answer: EnrollResponse, cloud: str, paths: dict[str, Path], storage: str | None, cloud_ca: str | None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "device": {"id": answer.device_id, "ward": answer.ward},
        "broker": {
            "url": answer.broker_url,
            "ca": str(paths["ca.pem"].resolve()),
            "cert": str(paths["device.pem"].resolve()),
            "key": str(paths["device.key"].resolve()),
        },
        "cloud": {"url": cloud, "token_file": str(paths["device.token"].resolve())},
        **answer.site,
    }
    if cloud_ca:
        data["cloud"]["ca"] = cloud_ca
    if storage:
        data["storage"] = {"path": storage}
    try:
        DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise ProvisionError(f"the cloud's initial configuration is not valid: {describe(exc)}") from None
    return data
