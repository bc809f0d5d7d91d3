"""Commands from the cloud on `cmd`, each answered with a CommandResult on `cmd/result`.

`snapshot` publishes a camera's latest frame as JPEG on `snapshot/{command id}`; `restart-camera`
restarts one camera's worker; `resync-config` fetches the retained desired config again and reports
what runs; `confirm-view` makes a camera's current view its tamper reference (ending a camera_tamper
alert and the zone suspension of a moved camera). Anything else, or a command that fails, is
answered with ok=false and the reason: a bad command never takes the agent down. Each message is
counted once: `malformed` (refused by the contract) or `failed` (anything else went wrong handling it).
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from device.errors import DeviceError
from device.frames import Frame
from matthan_wire import Command, CommandResult, Kind, WireError, decode, format_ts, utc_now
from matthan_wire.ids import is_id
from matthan_wire.payloads import CONFIRM_VIEW
from matthan_wire.topics import device_topic

log = logging.getLogger("matthan.device.commands")

JPEG_QUALITY = 85


@dataclass(frozen=True)
class CommandTargets:
    """What commands act on; supplied by the agent."""

    cameras: Callable[[], list[str]]
    latest_frame: Callable[[str], Frame | None]
    restart_camera: Callable[[str], None]
    resync_config: Callable[[], None]
    publish: Callable[[str, bytes], bool]  # QoS 1; False when not sent
    # Accept a camera's current view as its tamper reference; returns the tamper state before.
    confirm_view: Callable[[str], str] | None = None


class CommandHandler:
    def __init__(self, device_id: str, ward: str, targets: CommandTargets) -> None:
        self.device_id = device_id
        self.ward = ward
        self.t = targets
        self.malformed = 0
        self.failed = 0
        self._handlers: dict[str, Callable[[Command], dict[str, object]]] = {
            "snapshot": self._snapshot,
            "restart-camera": self._restart_camera,
            "resync-config": self._resync_config,
            CONFIRM_VIEW: self._confirm_view,
        }

    def handle(self, payload: bytes) -> CommandResult | None:
        """Run one command and publish its result; None when there is no id to answer to. Never
        raises: whatever one message does, the next one is handled."""
        try:
            return self._handle(payload)
        except Exception:
            self.failed += 1
            log.exception("command handling failed id=%s bytes=%d", _salvage_id(payload), len(payload))
            return None

    def _handle(self, payload: bytes) -> CommandResult | None:
        try:
            cmd = decode(Command, payload)
        except WireError as exc:
            self.malformed += 1
            command_id = _salvage_id(payload)
            log.warning("command rejected id=%s reason=%s", command_id, exc)
            if command_id is None:
                return None
            return self._answer(
                CommandResult(command_id=command_id, ok=False, error=str(exc)[:2000], at=utc_now())
            )
        handler = self._handlers.get(cmd.name)
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            return self._answer(self._fail(cmd, f"unknown command {cmd.name!r}; known: {known}"))
        try:
            detail = handler(cmd)
        except DeviceError as exc:
            return self._answer(self._fail(cmd, str(exc)))
        except Exception as exc:  # a bug in one command must not end command handling
            self.failed += 1
            log.exception("command crashed id=%s name=%s", cmd.id, cmd.name)
            return self._answer(self._fail(cmd, f"internal error: {exc.__class__.__name__}: {exc}"))
        log.info("command done id=%s name=%s camera=%s", cmd.id, cmd.name, cmd.camera_id or "-")
        return self._answer(CommandResult(command_id=cmd.id, ok=True, detail=detail, at=utc_now()))

    def _fail(self, cmd: Command, reason: str) -> CommandResult:
        log.warning("command failed id=%s name=%s reason=%s", cmd.id, cmd.name, reason)
        return CommandResult(command_id=cmd.id, ok=False, error=reason[:2000], at=utc_now())

    def _answer(self, result: CommandResult) -> CommandResult:
        topic = device_topic(Kind.CMD_RESULT, self.ward, self.device_id)
        try:
            sent = self.t.publish(topic, result.model_dump_json().encode())
        except Exception:  # the answer is lost, but the command was handled (and counted) already
            log.exception("command result not sent id=%s", result.command_id)
            return result
        if not sent:
            log.warning("command result not sent (no connection) id=%s", result.command_id)
        return result

    def _camera(self, cmd: Command) -> str:
        if cmd.camera_id is None:
            raise DeviceError(f"{cmd.name} needs camera_id")
        if cmd.camera_id not in self.t.cameras():
            raise DeviceError(f"no camera {cmd.camera_id!r} on this device")
        return cmd.camera_id

    def _snapshot(self, cmd: Command) -> dict[str, object]:
        camera_id = self._camera(cmd)
        frame = self.t.latest_frame(camera_id)
        if frame is None:
            raise DeviceError(f"camera {camera_id} has no frame yet (stream down?)")
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise DeviceError(f"camera {camera_id}: frame could not be encoded as JPEG")
        topic = device_topic(Kind.SNAPSHOT, self.ward, self.device_id, cmd.id)
        data = jpeg.tobytes()
        if not self.t.publish(topic, data):
            raise DeviceError("no broker connection; snapshot not sent")
        return {
            "topic": topic,
            "bytes": len(data),
            "frame_at": format_ts(frame.ts),
            "frame_index": frame.index,
        }

    def _restart_camera(self, cmd: Command) -> dict[str, object]:
        camera_id = self._camera(cmd)
        self.t.restart_camera(camera_id)
        return {"camera_id": camera_id}

    def _confirm_view(self, cmd: Command) -> dict[str, object]:
        camera_id = self._camera(cmd)
        if self.t.confirm_view is None:
            raise DeviceError("this agent cannot confirm camera views")
        before = self.t.confirm_view(camera_id)
        return {"camera_id": camera_id, "tamper_state": before}

    def _resync_config(self, cmd: Command) -> dict[str, object]:
        self.t.resync_config()
        return {}


def _salvage_id(payload: bytes) -> str | None:
    """The id of a command that failed validation, so the sender still hears why."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and is_id(value) else None
