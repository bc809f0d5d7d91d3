"""The ingest's upkeep of device state between batches: a device silent for offline_factor × its
health interval is marked offline (the will marks a dying one at once, through the status topic),
and health history past its retention is deleted. Run by the writer thread (cloud/ingest.py).
"""

import logging
import time
from datetime import timedelta

from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, delete, select

from cloud.models import Device, HealthSample, table
from cloud.settings import Settings
from matthan_wire.timeutil import utc_now

log = logging.getLogger("matthan.cloud.ingest")


class DeviceUpkeep:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._started_at = utc_now()
        self._last_sweep = 0.0
        self._last_purge = 0.0

    def run_due(self) -> None:
        """Whatever is due now; called by the writer thread between batches."""
        now = time.monotonic()
        sweep_every = min(5.0, self.settings.health_interval_s / 2)
        if now - self._last_sweep >= sweep_every:
            self._last_sweep = now
            try:
                self.sweep_offline()
            except SQLAlchemyError as exc:
                log.warning("offline sweep failed: %s", str(exc).splitlines()[0][:200])
        if now - self._last_purge >= 600:
            self._last_purge = now
            try:
                self.purge_health()
            except SQLAlchemyError as exc:
                log.warning("health purge failed: %s", str(exc).splitlines()[0][:200])

    def sweep_offline(self) -> list[str]:
        """Devices silent for offline_factor × their health interval are offline."""
        now = utc_now()
        gone: list[str] = []
        with Session(self.engine) as s:
            rows = s.exec(
                select(Device.id, Device.last_seen, Device.health_interval_s).where(Device.online)
            ).all()
            for device, last_seen, interval in rows:
                # Silence is counted from when we could first have heard it (our own start).
                since = max(last_seen or self._started_at, self._started_at)
                limit = self.settings.offline_factor * (interval or self.settings.health_interval_s)
                if (now - since).total_seconds() > limit:
                    gone.append(device)
            if gone:
                c = table(Device).c
                s.execute(
                    update(table(Device)).where(c.id.in_(gone), c.online.is_(True)).values(online=False)
                )
                s.commit()
                for device in gone:
                    log.info(
                        "device=%s offline (silent past %.0f × health interval)",
                        device,
                        self.settings.offline_factor,
                    )
        return gone

    def purge_health(self) -> int:
        cutoff = utc_now() - timedelta(days=self.settings.health_retention_days)
        with Session(self.engine) as s:
            result = s.exec(delete(HealthSample).where(col(HealthSample.at) < cutoff))
            s.commit()
            return int(result.rowcount or 0)
