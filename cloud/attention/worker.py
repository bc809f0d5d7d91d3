"""The attention worker of one cloud process: a ticker thread (outages, then escalation steps) and a
sender thread (the notification queue). Safe to run in every cloud process at once: each step and
each send is claimed in the database (see escalation.py and queue.py)."""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from cloud.attention.channels import Channel, channels, http_client
from cloud.attention.clock import Clock, make_clock
from cloud.attention.escalation import Escalator
from cloud.attention.outages import OutageWatch
from cloud.attention.queue import Sender
from cloud.attention.sealing import SETTING, Sealer
from cloud.clipstore import ClipStore
from cloud.models import NotifyEndpoint
from cloud.notify import Notifier
from cloud.settings import Settings
from matthan.worker_thread import WorkerThread

log = logging.getLogger("matthan.cloud.attention")


class AttentionWorker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: ClipStore | None,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        channel_map: dict[str, Channel] | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        a = settings.attention
        self.settings = a
        self.engine = engine
        self.sealer = sealer or Sealer.from_setting(a.endpoint_key)
        self.clock = clock or make_clock(a.clock_file)
        self.notifier = notifier
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.outages = OutageWatch(engine, self.clock, a.outage_debounce_s, a.escalate_max_age_h)
        self.escalator = Escalator(
            engine, self.clock, public_url=settings.public_url, tz_name=settings.console_tz,
            max_age_h=a.escalate_max_age_h, language=settings.language,
        )  # fmt: skip
        self._http = http_client(a)
        self.sender = Sender(
            engine, a, channel_map or channels(a, self._http), store, self.clock, self.name, self.sealer
        )
        self._wake_sender = threading.Event()
        self._ticker = WorkerThread("attention-ticker", self._tick_step)
        self._sending = WorkerThread("attention-sender", self._send_step, wake=self._wake_sender.set)
        self.errors = 0

    def start(self) -> None:
        self._guarded("sealing endpoint secrets", self.seal_stored)
        self._ticker.start()
        self._sending.start()
        log.info(
            "attention worker=%s up tick=%.1fs debounce=%.0fs",
            self.name,
            self.settings.tick_s,
            self.settings.outage_debounce_s,
        )

    def stop(self, timeout: float = 10.0) -> None:
        # Both asked at once, then each joined: a send in progress hears of the stop at once.
        self._ticker.ask_stop()
        self._sending.ask_stop()
        self._ticker.join(timeout)
        self._sending.join(timeout)
        self._http.close()

    @property
    def alive(self) -> bool:
        return self._ticker.alive and self._sending.alive

    def seal_stored(self) -> int:
        """Seal the secrets of endpoints saved before the cloud had an endpoint key; without one,
        say once that they are stored as given. Every process may do it: a value sealed twice by
        two processes at once is still one secret, opened by either's key."""
        with Session(self.engine) as s:
            plain = [e for e in s.exec(select(NotifyEndpoint)).all() if self.sealer.has_plain(e.config)]
            if not plain:
                return 0
            if not self.sealer.enabled:
                log.warning(
                    "notification endpoints with secrets stored as given: %d; set %s (from `matthan "
                    "cloud endpoint-key`) to seal them in the database",
                    len(plain), SETTING,
                )  # fmt: skip
                return 0
            for e in plain:
                e.config = self.sealer.seal(e.config)
                s.add(e)
            s.commit()
        log.info("notification endpoints sealed: %d (their secrets are now encrypted at rest)", len(plain))
        return len(plain)

    def tick_once(self) -> None:
        """One round of the ticker (tests call it directly)."""
        if self.outages.tick() and self.notifier is not None:
            self.notifier.notify()
        if self.escalator.tick():
            self._wake_sender.set()

    def _tick_step(self) -> None:
        self._guarded("attention tick", self.tick_once)
        self._ticker.stopping.wait(self.settings.tick_s)

    def _send_step(self) -> None:
        self._guarded("notification sender", lambda: self.sender.drain(self._sending.stopping))
        self._wake_sender.wait(self.settings.tick_s)
        self._wake_sender.clear()

    def _guarded(self, what: str, run: Callable[[], object]) -> None:
        """One round; a failure is counted and logged, and the next round tries again."""
        try:
            run()
        except SQLAlchemyError as exc:
            self.errors += 1
            log.warning("%s failed (database): %s", what, str(exc).splitlines()[0][:200])
        except Exception:
            self.errors += 1
            log.exception("%s failed", what)


def attention_counts(engine: Engine) -> dict[str, int]:
    """For the metrics: the figures every cloud process agrees on (read from the database)."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from cloud.models import Escalation, Notification, Outage

    with Session(engine) as s:
        by_status = dict(
            s.exec(select(Notification.status, func.count()).group_by(col(Notification.status))).all()
        )
        outages = s.exec(
            select(func.count()).select_from(Outage).where(col(Outage.event_id).is_not(None))
        ).one()
        active = s.exec(
            select(func.count()).select_from(Escalation).where(Escalation.state == "active")
        ).one()
    return {
        "notifications_pending": int(by_status.get("pending", 0)),
        "notifications_failed": int(by_status.get("failed", 0)),
        "outages_open": int(outages),
        "escalations_active": int(active),
    }
