"""The fleet over HTTP: devices, one device with its health history, cameras, wards."""

from fastapi import APIRouter, Query

from cloud.api.deps import Mqtt
from cloud.auth import Admin, AnyUser, DbSession, Staff
from cloud.services import devices
from cloud.services.devices import (
    CameraIn,
    CameraOut,
    CommandSent,
    DeviceDetail,
    DeviceList,
    WardIn,
    WardOut,
)
from matthan_wire.ids import INT32_MAX, Id

router = APIRouter(prefix="/api/v1", tags=["devices"])


@router.get("/devices", summary="Devices, filtered by ward and online state")
def list_devices(
    principal: AnyUser,
    session: DbSession,
    ward: Id | None = None,
    online: bool | None = None,
    limit: int = Query(200, ge=1, le=5000),
    offset: int = Query(0, ge=0, le=INT32_MAX),
) -> DeviceList:
    return devices.list_devices(session, principal, ward, online, limit, offset)


@router.get("/devices/{device_id}", summary="One device: state, latest health, health history, cameras")
def device_detail(
    device_id: str,
    principal: AnyUser,
    session: DbSession,
    hours: float = Query(24.0, gt=0, le=24 * 90, description="how much health history"),
    max_points: int = Query(2000, ge=1, le=20000),
) -> DeviceDetail:
    return devices.device_detail(session, principal, device_id, hours, max_points)


@router.put("/devices/{device_id}/cameras/{camera_id}", summary="Set a camera's site name and position")
def put_camera(
    device_id: str, camera_id: Id, body: CameraIn, principal: Staff, session: DbSession
) -> CameraOut:
    return devices.set_camera(session, principal, device_id, camera_id, body)


@router.post(
    "/devices/{device_id}/cameras/{camera_id}/confirm-view",
    summary="Accept a camera's current view as its tamper reference",
    description="Sends the `confirm-view` command: the device makes the camera's current view its "
    "reference, ends an open camera_tamper alert and lifts the zone suspension of a moved camera. "
    "The device answers on cmd/result; its health shows the camera learning its new reference.",
)
def confirm_view(
    device_id: str, camera_id: Id, principal: Staff, session: DbSession, link: Mqtt
) -> CommandSent:
    return devices.confirm_view(session, principal, device_id, camera_id, link)


@router.get("/wards", summary="Wards with device counts")
def wards(principal: AnyUser, session: DbSession) -> list[WardOut]:
    return devices.wards(session, principal)


@router.post("/wards", summary="Add or rename a ward", status_code=201)
def put_ward(body: WardIn, principal: Admin, session: DbSession) -> WardOut:
    return devices.set_ward(session, principal, body)
