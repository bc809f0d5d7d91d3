"""Delivery of the outbox through the MQTT link: in publishing order, a bounded window awaiting PUBACKs,
each message sent again on its `ResendPolicy` schedule until the cloud's receipt names it."""

import logging
import queue
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from device.outbox import Outbox, OutboxStats
from device.resend_policy import ResendPolicy
from matthan.worker_thread import WorkerThread
from matthan_wire import Receipt, WireError, decode

log = logging.getLogger("matthan.device.outbox")

# After the first receipt that ends a silence, the backlog is replayed this much later: the cloud
# works through what its persistent session kept at the broker (thousands of messages a second) and
# receipts it meanwhile, which leaves only what the broker dropped to replay.
REPLAY_GRACE_S = 5.0


class Link(Protocol):
    """What the publisher needs of an MQTT link (matthan.mqtt.MqttLink)."""

    @property
    def connected(self) -> bool: ...

    @property
    def epoch(self) -> int: ...

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None: ...


@dataclass
class PublisherCounters:
    published: int = 0  # first copies
    republished: int = 0  # every further copy: backoff resends, reconnect and cloud-back replays
    pubacks: int = 0
    refused: int = 0
    receipts: int = 0
    bad_receipts: int = 0
    replays: int = 0  # times the whole backlog was made due at once


class OutboxPublisher(WorkerThread):
    """Drains the outbox through the link: in order, a bounded window in flight, resend until receipted.

    One thread. Each pass it publishes, while fewer than `window` await their PUBACK, what the outbox
    says is due: never-sent messages first (a new alert goes out at once), then copies due by their
    own `ResendPolicy` schedule, kept in the outbox's rows. Two things make the whole backlog due at
    once, in publishing order, paced by the PUBACK window (the rate `bench.alert_latency` measures as
    replay): a new connection (the broker may have lost what it acknowledged) and the first receipt
    after a silence (a resend went unanswered: the cloud was away and is back; the backoff restarts).
    PUBACKs and receipts arrive from paho's thread through `on_published` and `on_receipt`, which
    only enqueue.
    """

    def __init__(
        self,
        outbox: Outbox,
        link: Link,
        *,
        window: int = 100,
        policy: ResendPolicy | None = None,
        prune_every_s: float = 60.0,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.window = window
        self.policy = policy or ResendPolicy(outbox.limits)
        self.prune_every_s = prune_every_s
        self.counters = PublisherCounters()
        # (what, mid, ok, payload): "wake", "puback" (mid, ok) or "receipt" (payload).
        self._events: queue.SimpleQueue[tuple[str, int, bool, bytes]] = queue.SimpleQueue()
        self._next_prune = 0.0  # monotonic; a start prunes at once
        # mid -> id awaiting PUBACK: the only per-message state, at most `window` entries.
        self._inflight: dict[int, int] = {}
        self._epoch = -1
        # A resend went out since the last receipt and none came for resend_after_s: the cloud was
        # silent, so the next receipt means it is back.
        self._unanswered = False
        self._last_receipt = outbox.clock()
        # Resends per minute of the outbox clock, for the last hour: at most 61 buckets.
        self._resend_minutes: deque[list[int]] = deque(maxlen=61)
        self._next_due: float | None = 0.0  # cached outbox.next_due(); None = nothing held
        self.passes = 0
        super().__init__("outbox-publisher", self._step, wake=self.wake)

    # ---- inputs (any thread) ---------------------------------------------------------------------

    def wake(self) -> None:
        """A new message is in the outbox."""
        self._events.put(("wake", 0, True, b""))

    def on_published(self, mid: int, ok: bool) -> None:
        self._events.put(("puback", mid, ok, b""))

    def on_receipt(self, payload: bytes) -> None:
        self._events.put(("receipt", 0, True, payload))

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._next_prune = 0.0
        super().start()

    def in_flight(self) -> int:
        return len(self._inflight)

    def resends_1h(self) -> int:
        now_min = int(self.outbox.clock() // 60)
        return sum(n for minute, n in list(self._resend_minutes) if now_min - minute < 60)

    def stats(self) -> OutboxStats:
        """The outbox's figures with this publisher's resends of the last hour, for health."""
        s = self.outbox.stats()
        return OutboxStats(
            depth=s.depth,
            alerts_total=s.alerts_total,
            alerts_acked_total=s.alerts_acked_total,
            dropped_total=s.dropped_total,
            oldest_age_s=s.oldest_age_s,
            resends_1h=self.resends_1h(),
        )

    def settled(self) -> bool:
        """Nothing awaits a PUBACK and nothing is due now (tests step their clock on this)."""
        due = self.outbox.next_due()
        return not self._inflight and (due is None or due > self.outbox.clock())

    # ---- the loop --------------------------------------------------------------------------------

    def _step(self) -> None:
        try:
            woken = self._drain_events(timeout=0.05)
            now = time.monotonic()
            if now >= self._next_prune:
                self.outbox.prune()
                # A wall clock set back (NTP on boot) must not park copies far in the future.
                self.outbox.clamp_schedule(self.outbox.clock() + self.policy.horizon_s)
                self._next_prune = now + self.prune_every_s
                woken = True
            if woken:
                self._next_due = 0.0
            self._send()
            self.passes += 1
        except Exception:  # a bad row or a closed database must not end delivery silently
            log.exception("outbox publisher error; retrying")
            self.stopping.wait(1.0)

    def _drain_events(self, timeout: float) -> bool:
        """Apply what arrived; True when the outbox may have changed (a wake or a receipt)."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return False
        receipts: list[bytes] = []
        woken = False
        while True:
            what, mid, ok, data = item
            if what == "puback":
                if self._inflight.pop(mid, None) is not None:
                    self.counters.pubacks += 1
                    self.counters.refused += not ok
            elif what == "receipt":
                receipts.append(data)
            else:
                woken = True
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
        for payload in receipts:
            self._apply_receipt(payload)
        return woken or bool(receipts)

    def _apply_receipt(self, payload: bytes) -> None:
        try:
            receipt = decode(Receipt, payload)
        except WireError as exc:
            self.counters.bad_receipts += 1
            log.warning("receipt rejected: %s", exc)
            return
        acked = self.outbox.ack(receipt)
        self.counters.receipts += 1
        clock = self.outbox.clock()
        silent_s = clock - self._last_receipt
        self._last_receipt = clock
        if self._unanswered and silent_s >= self.policy.first_s:
            # The first receipt after a silence: the cloud is back. What it has not receipted goes
            # again, oldest first, instead of each message waiting out its own (by now long) backoff.
            # The grace lets the receipts for what the cloud's own session kept at the broker arrive
            # first, so those are not sent once more for nothing.
            held = self.outbox.replay_all(clock + REPLAY_GRACE_S, reset_backoff=True)
            self.counters.replays += 1
            self._next_due = 0.0
            log.info(
                "cloud receipts again after %.0f s of silence: replaying %d unreceipted message(s) in order",
                silent_s,
                held,
            )
        self._unanswered = False
        log.debug(
            "receipt alerts=%d ends=%d snapshots=%d depth=%d",
            acked.alerts,
            acked.ends,
            acked.snapshots,
            self.outbox.depth(),
        )

    def _send(self) -> None:
        if not self.link.connected:
            return
        clock = self.outbox.clock()
        if self.link.epoch != self._epoch:
            # A new connection: the broker may have lost anything it acknowledged (SIGKILL after
            # PUBACK), so everything not receipted goes again, oldest first. The backoff goes on:
            # a flapping link must not turn into a flood either.
            self._epoch = self.link.epoch
            self._inflight.clear()
            if self.outbox.replay_all(clock, reset_backoff=False):
                self.counters.replays += 1
            self._next_due = 0.0
        while self._room() > 0:
            if self._next_due is None or self._next_due > clock:
                return
            batch = self.outbox.due(clock, self._room())
            if not batch:
                self._next_due = self.outbox.next_due()
                return
            plan: list[tuple[int, int, float]] = []
            try:
                for s in batch:
                    mid = self.link.publish(s.message.topic, s.message.payload, qos=1)
                    if mid is None:
                        return
                    self._inflight[mid] = s.message.id
                    step = s.step + 1
                    plan.append((s.message.id, step, clock + self.policy.delay(step)))
                    if s.sends:
                        self.counters.republished += 1
                        self._count_resend(clock)
                    else:
                        self.counters.published += 1
            finally:
                if plan:
                    self.outbox.scheduled(plan)

    def _count_resend(self, clock: float) -> None:
        self._unanswered = True
        minute = int(clock // 60)
        if self._resend_minutes and self._resend_minutes[-1][0] == minute:
            self._resend_minutes[-1][1] += 1
        else:
            self._resend_minutes.append([minute, 1])

    def _room(self) -> int:
        return max(0, self.window - len(self._inflight))
