"""Revocation: the device's certificates into the CRL, its upload token refused, the broker reloaded.

Used by `matthan cloud revoke DEVICE` (straight on the registry database) and by the cloud's
`POST /api/v1/devices/{id}/revoke`.
"""

import logging
from pathlib import Path

from sqlmodel import Session

from cloud.audit import record
from cloud.errors import NotFound
from cloud.models import Device
from cloud.registry import broker_config
from matthan.i18n import Msg
from matthan_wire.timeutil import utc_now
from provisioning import pki

log = logging.getLogger("matthan.cloud.registry")


def revoke_device(session: Session, ca: pki.Authority, device_id: str, by: str) -> tuple[Device, list[str]]:
    """Mark the device revoked and its certificates in the CRL; the caller commits.

    Returns the device row and the revoked serials. Revoking twice is harmless.
    """
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(Msg("no device %(device)r in the registry", device=device_id))
    if device.revoked_at is None:
        device.revoked_at = utc_now()
    # The token's hash stays: the API then answers "device … is revoked" (403) rather than a vague 401,
    # which tells the technician at the pole exactly why uploads stopped.
    session.add(device)
    serials = ca.revoke(device_id)
    record(session, by, "device.revoke", device_id, serials=serials)
    log.info("revoked device=%s serials=%s by=%s", device_id, ",".join(serials) or "-", by)
    return device, serials


def sync_broker(session: Session, ca_dir: Path, broker_dir: Path | None) -> bool:
    """Regenerate the broker's ACL and CRL from the registry and SIGHUP it; True when a broker reloaded."""
    if broker_dir is None:
        return False
    broker_config.regenerate(broker_config.registry_from_session(session), ca_dir, broker_dir)
    return broker_config.reload_broker(broker_dir) is not None
