"""The channels' durable queue: the `notification` table. A notification accepted here is sent at
least once: it is committed with the decision that caused it (an escalation step), claimed by one
sender at a time with a lease, retried with exponential backoff and jitter, and marked `failed`
(shown in the console) after Settings.attention.max_attempts.

Claiming, so that several cloud processes send each row once:
- PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED, then the lease is written in the same transaction;
- SQLite: an atomic UPDATE … WHERE the row is unclaimed (or its lease ran out), row by row.
A sender that dies holding a lease lets go when the lease ends; the row is then sent again (the
receiver drops the repeat by its delivery id)."""

import logging
import random
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, select

from cloud.attention.channels import Channel, SendError
from cloud.attention.clock import Clock
from cloud.attention.messages import Message
from cloud.attention.sealing import Sealer, SealError
from cloud.clipstore import ClipStore
from cloud.db import insert_ignore
from cloud.models import Notification, NotifyEndpoint, table
from cloud.settings import AttentionSettings

log = logging.getLogger("matthan.cloud.notify")


def enqueue(session: Session, endpoint: NotifyEndpoint, reason: str, message: Message, now: datetime) -> None:
    """Queue one message for one endpoint, in the caller's transaction; the same (endpoint, alert,
    reason) again changes nothing."""
    assert endpoint.id is not None
    row = {
        "endpoint_id": endpoint.id,
        "event_id": message.event_id,
        "reason": reason,
        "kind": endpoint.kind,
        "message": message.model_dump(mode="json"),
        "status": "pending",
        "attempts": 0,
        "next_at": now,
        "created_at": now,
    }
    insert_ignore(session, table(Notification), [row], ["endpoint_id", "event_id", "reason"])


def retry_delay(attempts: int, settings: AttentionSettings) -> float:
    """Seconds before attempt `attempts + 1`: doubling from retry_initial_s, capped, jittered in
    [ceiling/2, ceiling] so receivers that come back are not hit by every sender at once."""
    ceiling = min(settings.retry_max_s, settings.retry_initial_s * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


def claim(engine: Engine, worker: str, now: datetime, lease_s: float, limit: int = 20) -> list[int]:
    until = now + timedelta(seconds=lease_s)
    free = or_(col(Notification.claimed_until).is_(None), col(Notification.claimed_until) < now)
    due = select(Notification.id).where(
        Notification.status == "pending", col(Notification.next_at) <= now, free
    )
    with Session(engine) as s:
        if engine.dialect.name == "postgresql":
            ids = [
                int(i)
                for i in s.exec(
                    due.order_by(col(Notification.next_at)).limit(limit).with_for_update(skip_locked=True)
                ).all()
                if i is not None
            ]
            if ids:
                s.execute(
                    update(table(Notification))
                    .where(table(Notification).c.id.in_(ids))
                    .values(claimed_by=worker, claimed_until=until)
                )
            s.commit()
            return ids
        got: list[int] = []
        for i in s.exec(due.order_by(col(Notification.next_at)).limit(limit)).all():
            c = table(Notification).c
            result = s.execute(
                update(table(Notification))
                .where(c.id == i, or_(c.claimed_until.is_(None), c.claimed_until < now))
                .values(claimed_by=worker, claimed_until=until)
            )
            s.commit()
            if result.rowcount == 1:  # type: ignore[attr-defined]
                got.append(int(i))  # type: ignore[arg-type]
        return got


class Sender:
    """Sends claimed notifications through their channel; one per cloud process."""

    def __init__(
        self,
        engine: Engine,
        settings: AttentionSettings,
        channels: dict[str, Channel],
        store: ClipStore | None,
        clock: Clock,
        worker: str,
        sealer: Sealer,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.channels = channels
        self.sealer = sealer
        self.store = store
        self.clock = clock
        self.worker = worker
        self.sent = 0
        self.failed = 0

    def drain(self, stop: threading.Event | None = None) -> int:
        """Send everything due now; the number of rows handled."""
        done = 0
        while stop is None or not stop.is_set():
            ids = claim(self.engine, self.worker, self.clock.now(), self.settings.lease_s)
            if not ids:
                return done
            for i in ids:
                self._send_one(i)
                done += 1
        return done

    def _send_one(self, row_id: int) -> None:
        with Session(self.engine) as s:
            row = s.get(Notification, row_id)
            if row is None or row.status != "pending" or row.claimed_by != self.worker:
                return
            endpoint = s.get(NotifyEndpoint, row.endpoint_id)
            error: SendError | None = None
            if endpoint is None or not endpoint.enabled:
                error = SendError("the endpoint was removed or disabled", permanent=True)
            else:
                try:
                    message = Message.model_validate(row.message)
                    config = self.sealer.open(endpoint.config)
                    self.channels[row.kind].send(config, message, row_id, self._snapshot(message))
                except SendError as exc:
                    error = exc
                except SealError as exc:  # retried: the operator fixes the key and it goes out
                    error = SendError(str(exc))
                except Exception as exc:  # a bad config or template must not stop the others
                    error = SendError(f"{type(exc).__name__}: {exc}", permanent=True)
            now = self.clock.now()
            row.attempts += 1
            row.claimed_until = None  # claimed_by stays: which process sent it (or tried last)
            if error is None:
                row.status, row.sent_at, row.last_error = "sent", now, None
                self.sent += 1
                log.info(
                    "notification=%s event=%s endpoint=%s kind=%s sent",
                    row_id,
                    row.event_id,
                    row.endpoint_id,
                    row.kind,
                )
            elif error.permanent or row.attempts >= self.settings.max_attempts:
                row.status, row.last_error = "failed", str(error)
                self.failed += 1
                log.error(
                    "notification=%s event=%s endpoint=%s kind=%s failed for good after %d attempts: %s",
                    row_id, row.event_id, row.endpoint_id, row.kind, row.attempts, error,
                )  # fmt: skip
            else:
                delay = retry_delay(row.attempts, self.settings)
                row.next_at, row.last_error = now + timedelta(seconds=delay), str(error)
                log.warning(
                    "notification=%s event=%s endpoint=%s kind=%s attempt=%d failed (%s); again in %.0fs",
                    row_id, row.event_id, row.endpoint_id, row.kind, row.attempts, error, delay,
                )  # fmt: skip
            s.add(row)
            s.commit()

    def _snapshot(self, message: Message) -> bytes | None:
        if self.store is None or message.snapshot_key is None:
            return None
        size = self.store.size(message.snapshot_key)
        if not size:
            return None
        return b"".join(self.store.read_range(message.snapshot_key, 0, size - 1))


def retry_now(session: Session, row_id: int, now: datetime) -> Notification | None:
    """An operator's 'send again' on a failed notification: back in the queue, attempts reset."""
    row = session.get(Notification, row_id)
    if row is None:
        return None
    row.status, row.attempts, row.next_at, row.claimed_until = "pending", 0, now, None
    session.add(row)
    return row
