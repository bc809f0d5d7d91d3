"""Remote configuration: retained `config/desired` in, validated, applied atomically, persisted, reported.

A desired config is decoded (the wire model validates every field), checked against this device
(sources it can open), applied as one step by the agent (zones and rules hot-reload; a changed source
restarts only that camera), written to disk, and answered on the retained `config/reported` with the
version now running. A bad one is answered with its reason and changes nothing. The persisted file
lets the device start from its last applied config when the broker is unreachable.
"""

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from device.errors import DeviceError
from matthan_wire import DesiredConfig, ReportedConfig, WireError, decode, utc_now
from matthan_wire.config import SiteConfig
from matthan_wire.ids import INT32_MAX

log = logging.getLogger("matthan.device.config")

STATE_FILE = "applied-config.json"


def load_applied(path: Path) -> tuple[int, SiteConfig] | None:
    """The last applied (version, site config), or None if there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["version"]), SiteConfig.model_validate(data["config"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        # A damaged file must not keep the device from starting: the config file still works.
        log.error("applied config %s unreadable, starting from the config file: %s", path, exc)
        return None


def save_applied(path: Path, version: int, site: SiteConfig) -> None:
    """Atomically: a power cut leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    body = json.dumps({"version": version, "config": site.model_dump(mode="json")}, indent=1)
    with tmp.open("w", encoding="utf-8") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    dirfd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


class ConfigSync:
    def __init__(
        self,
        state_path: Path,
        *,
        apply: Callable[[SiteConfig], None],
        publish: Callable[[ReportedConfig], bool],
        check: Callable[[SiteConfig], None] | None = None,
        version: int | None = None,
    ) -> None:
        """`apply` switches the running agent to a site config or raises DeviceError having changed
        nothing; `check` raises DeviceError for a config this device cannot run; `publish` sends the
        report (retained) and says whether it went out."""
        self.state_path = state_path
        self.version = version
        self.rejected = 0
        self.failed = 0
        self._apply = apply
        self._publish = publish
        self._check = check
        self._last_report: ReportedConfig | None = None
        self._report_pending = False

    def handle_desired(self, payload: bytes) -> ReportedConfig | None:
        """Apply one desired config and report; never raises (each message is counted once, as
        `rejected` or `failed`), so one bad message cannot stop the next."""
        try:
            return self._handle_desired(payload)
        except Exception:
            self.failed += 1
            log.exception(
                "config handling failed version=%s bytes=%d", _salvage_version(payload), len(payload)
            )
            return None

    def _handle_desired(self, payload: bytes) -> ReportedConfig:
        if not payload:
            # An empty retained message clears the topic; there is nothing to apply.
            return self.report_current()
        try:
            desired = decode(DesiredConfig, payload)
        except WireError as exc:
            return self._reject(_salvage_version(payload), str(exc))
        if desired.version == self.version:
            return self.report_current()  # retained config delivered again on reconnect
        try:
            if self._check is not None:
                self._check(desired.config)
            self._apply(desired.config)
        except DeviceError as exc:
            return self._reject(desired.version, str(exc))
        except Exception as exc:  # a bug meeting an odd config: refuse it, keep what runs
            log.exception("config check/apply crashed version=%d", desired.version)
            return self._reject(desired.version, f"internal error: {exc.__class__.__name__}: {exc}")
        try:
            save_applied(self.state_path, desired.version, desired.config)
        except OSError as exc:
            # Running but not persisted: say so; a restart would come back on the previous config.
            log.error("config version=%d applied but not saved: %s", desired.version, exc)
        old, self.version = self.version, desired.version
        log.info(
            "config applied version=%d previous=%s cameras=%d",
            desired.version,
            old,
            len(desired.config.cameras),
        )
        return self._report(ReportedConfig(version=self.version, status="applied", at=utc_now()))

    def report_current(self) -> ReportedConfig:
        return self._report(ReportedConfig(version=self.version, status="applied", at=utc_now()))

    def republish(self) -> None:
        """After a reconnect: a report made while offline goes out now."""
        if self._report_pending and self._last_report is not None:
            self._report(self._last_report)

    def _reject(self, version: int | None, reason: str) -> ReportedConfig:
        self.rejected += 1
        log.error("config rejected version=%s running=%s reason=%s", version, self.version, reason)
        return self._report(
            ReportedConfig(
                version=self.version,
                status="rejected",
                rejected_version=version,
                error=reason[:2000],
                at=utc_now(),
            )
        )

    def _report(self, report: ReportedConfig) -> ReportedConfig:
        self._last_report = report
        try:
            self._report_pending = not self._publish(report)
        except Exception:  # not sent: republish() tries again after the next connect
            log.exception("config report not sent status=%s", report.status)
            self._report_pending = True
        return report


def _salvage_version(payload: bytes) -> int | None:
    """The version of a desired config that failed validation, so the cloud hears which one it was."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return None
    value = data.get("version") if isinstance(data, dict) else None
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= INT32_MAX
    return value if ok else None
