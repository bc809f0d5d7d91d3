"""Config distribution over HTTP: read a device's desired and reported config, PUT a new one
(validated with the device's own SiteConfig model, stored as the next version, published retained).
The rules are in cloud/services/config.py."""

from fastapi import APIRouter

from cloud.api.deps import Mqtt
from cloud.auth import AnyUser, DbSession, Staff
from cloud.services import config
from cloud.services.config import ConfigState
from cloud.services.devices import get_device
from matthan_wire.config import SiteConfig

router = APIRouter(prefix="/api/v1", tags=["config"])


@router.get(
    "/devices/{device_id}/config",
    summary="Desired and reported config of a device (stream credentials only for admins and operators)",
)
def get_config(device_id: str, principal: AnyUser, session: DbSession) -> ConfigState:
    return config.get_config(session, principal, get_device(session, principal, device_id))


@router.put(
    "/devices/{device_id}/config",
    summary="Set a device's desired config: stored as a new version and published retained",
    responses={422: {"description": "the config does not validate (same rules as on the device)"}},
)
def put_config(
    device_id: str, body: SiteConfig, principal: Staff, session: DbSession, link: Mqtt
) -> ConfigState:
    return config.set_config(session, principal, get_device(session, principal, device_id), body, link)
