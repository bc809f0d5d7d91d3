"""Camera tamper: a view covered, blinded, defocused or moved, judged against the camera's own past.

A tampered camera still streams, so `camera_offline` never fires, yet every zone is wrong. Once per
`tamper.check_every_s` the detect thread hands the latest frame to `TamperWatch.observe`, which
checks it against a reference learned from this camera's own recent normal frames
(device/tamper_check.py: what each kind looks like).

One bad check is nothing: a kind must hold for `persist_s` (short good moments inside the span do
not reset it, a strobe flickers) before a `camera_tamper` alert starts, and the view must be good
for `clear_s` before it ends. The reference follows slow change (dusk, shadows) with time constant
`adapt_s`, and only from good checks; it stands still while the view is suspect.

While a camera is moved its zones no longer lie on the scene: `zones_suspended` tells the pipeline
to end open violations and raise no zone events until the view returns to the reference or an
operator confirms the new view (the `confirm-view` command → `request_confirm`), which makes the
current view the reference.
"""

import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from device.camera_alert import camera_alert
from device.events import DetectedEvent
from device.frames import Frame
from device.tamper_check import Check, Measures, Reference, judge, measure, small_grey, turn_deg
from device.tamper_snapshot import before_after_jpeg, shrink
from matthan_wire import Alert, CameraTamper, TamperDetail, TamperScores
from matthan_wire.config import CameraConfig, DeviceIdentity, TamperConfig
from matthan_wire.payloads import TamperKind
from matthan_wire.topics import Kind, device_topic

log = logging.getLogger("matthan.device.tamper")

RULE = "camera_tamper"
MAX_TURNS = 1000  # turns kept per suspect span for the alert's median
REF_VIEW_EVERY_S = 10.0  # how often the good colour view is renewed (a resize of the whole frame)
SAVE_EVERY_S = 600.0  # how often a learned reference is written to disk (it survives a restart)
_LEARNED = datetime(2000, 1, 1, tzinfo=UTC)  # learn_until of a reference restored from disk
# Good checks inside a suspect span shorter than this do not end the span (a flicker, a blink).
MIN_GRACE_S = 5.0


@dataclass
class _Span:
    """A run of bad checks (short good gaps allowed) and what kinds they were."""

    since: datetime
    last_bad: datetime
    kinds: Counter[str] = field(default_factory=Counter)
    latest: TamperKind = "covered"
    turns: list[float] = field(default_factory=list)  # the moved checks' rotations


class TamperWatch:
    """One camera's tamper check, run by its detect thread; `request_confirm` from any thread."""

    def __init__(
        self,
        device: DeviceIdentity,
        camera: CameraConfig,
        on_event: Callable[[DetectedEvent], None],
        next_seq: Callable[[], int],
        state_dir: Path | None = None,
    ) -> None:
        self.device = device
        self.camera = camera
        self.on_event = on_event
        self.next_seq = next_seq
        # The learned reference is kept on disk: a camera turned while the agent was down (or turned,
        # then the box power-cycled) must not become the new normal at the next start.
        self.state_path = state_dir / f"tamper-{camera.id}.npz" if state_dir is not None else None
        self._saved_at: datetime | None = None
        self.ref: Reference | None = None
        self.learn_until: datetime | None = None
        self.span: _Span | None = None
        self.open: Alert | None = None
        self.good_since: datetime | None = None
        self.last: Check | None = None
        self.last_check_at: datetime | None = None
        self.check_ms: float | None = None
        self.checks = 0
        self.cpu_s = 0.0  # summed CPU of the checks, this thread only (health, the benchmark)
        self._ref_view: np.ndarray | None = None  # a recent good colour view, for the snapshot and turn
        self._ref_view_at: datetime | None = None
        self._confirm = threading.Event()
        self._restore()

    @property
    def config(self) -> TamperConfig:
        return self.camera.tamper

    def set_camera(self, camera: CameraConfig) -> None:
        """A config reload. Zones re-drawn while they are suspended accept the new view, like a confirm."""
        redrawn = (camera.zones, camera.lines) != (self.camera.zones, self.camera.lines)
        self.camera = camera
        if redrawn and self.zones_suspended:
            self._confirm.set()

    def due(self, ts: datetime) -> bool:
        if not self.config.enabled:
            return False
        if self._confirm.is_set():
            return True
        last = self.last_check_at
        return last is None or (ts - last).total_seconds() >= self.config.check_every_s

    @property
    def zones_suspended(self) -> bool:
        """A moved view: the zones no longer lie where they were drawn."""
        return self.open is not None and self.span is not None and self.span.latest == "moved"

    def request_confirm(self) -> str:
        """An operator accepts the current view (thread-safe); applied at the next frame."""
        state = self.status().state if self.config.enabled else "off"
        self._confirm.set()
        return state

    def observe(self, frame: Frame) -> None:
        started = time.thread_time()
        self.last_check_at = frame.ts
        grey = small_grey(frame.image)
        m = measure(grey)
        if self._confirm.is_set():
            self._confirm.clear()
            self._relearn(frame, grey, m, "confirmed")
        else:
            self._step(frame, grey, m)
        spent = time.thread_time() - started
        self.checks += 1
        self.cpu_s += spent
        self.check_ms = round(spent * 1000.0, 3)

    def _step(self, frame: Frame, grey: np.ndarray, m: Measures) -> None:
        now = frame.ts
        if self.ref is not None and self.ref.image.shape != grey.shape:
            log.info("tamper reference dropped (the frame changed shape) camera=%s", self.camera.id)
            self.ref, self.learn_until, self._ref_view = None, None, None
        learning = self.learn_until is None or now < self.learn_until
        check = judge(self.config, None if learning and self.ref is None else self.ref, grey, m)
        if learning and check.kind not in (None, "covered", "blinded"):
            # Before the reference is learned only the absolute floors (covered, blinded) count.
            check = Check(None, check.scores)
        if check.kind == "moved" and self._ref_view is not None:
            turn = turn_deg(self._ref_view, shrink(frame.image))
            if turn is not None:
                check = Check(check.kind, check.scores.model_copy(update={"rotation_deg": round(turn, 1)}))
        self.last = check
        if check.kind is None:
            self._good(frame, grey, m, learning)
            return
        self._bad(frame, check.kind)
        turn = check.scores.rotation_deg
        if self.span is not None and turn is not None and len(self.span.turns) < MAX_TURNS:
            self.span.turns.append(turn)

    def _good(self, frame: Frame, grey: np.ndarray, m: Measures, learning: bool) -> None:
        now = frame.ts
        if self.good_since is None:
            self.good_since = now
        grace = max(MIN_GRACE_S, 3 * self.config.check_every_s)
        if self.span is not None and self.open is None and (now - self.span.last_bad).total_seconds() > grace:
            log.info(
                "tamper suspicion cleared device=%s camera=%s kind=%s lasted=%.0fs",
                self.device.id, self.camera.id, self.span.latest, (now - self.span.since).total_seconds(),
            )  # fmt: skip
            self.span = None
        if self.open is not None:
            if (now - self.good_since).total_seconds() >= self.config.clear_s:
                self._end(now, "view_back")
                self.span = None
            return
        if self.span is not None:
            return  # the reference stands still while the view is suspect
        if self.ref is None:
            self.ref = Reference(grey.copy(), m.std, m.sharpness, m.detail)
            self.learn_until = now + timedelta(seconds=self.config.learn_s)
        else:
            assert self.last is not None
            alpha = None if learning else self.config.check_every_s / self.config.adapt_s
            self.ref.learn(grey, m, self.last.scores.match, alpha)
        if self._ref_view_at is None or (now - self._ref_view_at).total_seconds() >= REF_VIEW_EVERY_S:
            self._ref_view, self._ref_view_at = shrink(frame.image), now
        if not learning and (
            self._saved_at is None or (now - self._saved_at).total_seconds() >= SAVE_EVERY_S
        ):
            self._save(now)

    def _save(self, now: datetime) -> None:
        self._saved_at = now
        if self.state_path is None or self.ref is None:
            return
        r = self.ref
        view = self._ref_view if self._ref_view is not None else np.zeros((0,), np.uint8)
        tmp = self.state_path.with_suffix(".tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as f:
                np.savez(f, image=r.image.astype(np.float16), view=view,
                         stats=np.array([r.std, r.sharpness, r.detail, r.match], np.float64))  # fmt: skip
            os.replace(tmp, self.state_path)
        except OSError as exc:  # a full or failing card: the check goes on from memory
            log.warning("tamper reference not saved camera=%s path=%s error=%s", self.camera.id, tmp, exc)

    def _restore(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            with np.load(self.state_path) as data:
                image = np.asarray(data["image"], dtype=np.float32)
                std, sharpness, detail, match = (float(x) for x in data["stats"])
                view = np.asarray(data["view"], dtype=np.uint8)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("tamper reference unreadable, learning anew camera=%s error=%s", self.camera.id, exc)
            return
        self.ref = Reference(image, std, sharpness, detail, match, checks=1_000_000)
        self.learn_until = _LEARNED
        self._ref_view = view if view.ndim == 3 else None
        log.info("tamper reference restored camera=%s path=%s", self.camera.id, self.state_path)

    def _bad(self, frame: Frame, kind: TamperKind) -> None:
        now = frame.ts
        self.good_since = None
        if self.span is None:
            self.span = _Span(since=now, last_bad=now)
            log.info("tamper suspected device=%s camera=%s kind=%s", self.device.id, self.camera.id, kind)
        span = self.span
        span.last_bad = now
        span.kinds[kind] += 1
        span.latest = kind
        if self.open is None and (now - span.since).total_seconds() >= self.config.persist_s:
            top = span.kinds.most_common(1)[0][0]
            span.latest = kind if span.kinds[kind] == span.kinds[top] else top  # type: ignore[assignment]
            self._start(frame, span.since)

    def _start(self, frame: Frame, since: datetime) -> None:
        assert self.span is not None and self.last is not None
        kind = self.span.latest
        jpeg = before_after_jpeg(self._ref_view, frame.image, kind, since)
        alert = self._alert(
            str(uuid.uuid4()), since, None, kind, None, snapshot=jpeg is not None, suspended=kind == "moved"
        )
        self.open = alert
        log.warning(
            "camera tampered device=%s camera=%s event=%s kind=%s contrast=%.2f sharpness=%.2f match=%.2f "
            "shift=%.3f,%.3f zones_suspended=%s",
            self.device.id, self.camera.id, alert.event_id, kind, self.last.scores.contrast,
            self.last.scores.sharpness, self.last.scores.match, self.last.scores.shift_x,
            self.last.scores.shift_y, self.zones_suspended,
        )  # fmt: skip
        self._send(DetectedEvent(alert, jpeg))

    def _end(self, now: datetime, why: str) -> None:
        start = self.open
        assert start is not None and start.tamper is not None
        suspended = start.tamper.zones_suspended
        end = self._alert(
            start.event_id,
            start.started_at,
            max(now, start.started_at),
            start.tamper.kind,
            why,
            suspended=suspended,
        )
        self.open = None
        log.info(
            "camera view back device=%s camera=%s event=%s kind=%s ended_by=%s",
            self.device.id, self.camera.id, end.event_id, start.tamper.kind, why,
        )  # fmt: skip
        self._send(DetectedEvent(end, None))

    def _send(self, event: DetectedEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a consumer's bug must not stop the camera
            log.exception("on_event failed camera=%s event=%s", self.camera.id, event.alert.event_id)

    def _relearn(self, frame: Frame, grey: np.ndarray, m: Measures, why: str) -> None:
        """The current view becomes the reference: after a confirm, or a config change of the view."""
        if self.open is not None:
            self._end(frame.ts, why)
        self.span = None
        self.good_since = frame.ts
        self.ref = Reference(grey.copy(), m.std, m.sharpness, m.detail)
        self.learn_until = frame.ts + timedelta(seconds=self.config.learn_s)
        self._ref_view, self._ref_view_at = shrink(frame.image), frame.ts
        self._saved_at = None  # written again once learned
        self.last = None
        log.info("tamper reference relearned device=%s camera=%s (%s)", self.device.id, self.camera.id, why)

    def close(self, at: datetime) -> None:
        """The camera stops: end an open alert (a restart judges the view afresh)."""
        if self.open is not None:
            self._end(at, "stopped")

    def status(self) -> CameraTamper:
        scores = self.last.scores if self.last is not None else None
        if self.open is not None:
            assert self.span is not None
            return CameraTamper(
                state="tampered", kind=self.span.latest, since=self.open.started_at,
                zones_suspended=self.zones_suspended, event_id=self.open.event_id, scores=scores,
                check_ms=self.check_ms,
            )  # fmt: skip
        if self.span is not None:
            return CameraTamper(
                state="suspect", kind=self.span.latest, since=self.span.since, scores=scores,
                check_ms=self.check_ms,
            )  # fmt: skip
        learning = self.learn_until is None or (
            self.last_check_at is not None and self.last_check_at < self.learn_until
        )
        return CameraTamper(state="learning" if learning else "ok", scores=scores, check_ms=self.check_ms)

    def _span_scores(self) -> TamperScores:
        """The latest scores, with the span's median turn (one check's turn is noisy)."""
        assert self.last is not None
        turns = sorted(self.span.turns) if self.span is not None else []
        if not turns:
            return self.last.scores
        return self.last.scores.model_copy(update={"rotation_deg": round(turns[len(turns) // 2], 1)})

    def _alert(
        self,
        event_id: str,
        started: datetime,
        ended: datetime | None,
        kind: TamperKind,
        ended_by: str | None,
        snapshot: bool = False,
        suspended: bool = False,
    ) -> Alert:
        assert self.last is not None
        return camera_alert(
            self.device,
            self.camera.id,
            "camera_tamper",
            f"{RULE}.{kind}",  # the kind shows wherever the rule does (cards, reports, ward)
            event_id,
            started,
            ended,
            self.next_seq(),
            snapshot=device_topic(Kind.SNAPSHOT, self.device.ward, self.device.id, event_id)
            if snapshot
            else None,
            tamper=TamperDetail(
                kind=kind,
                scores=self._span_scores(),
                zones_suspended=suspended,
                ended_by=ended_by,  # type: ignore[arg-type]
            ),
        )
