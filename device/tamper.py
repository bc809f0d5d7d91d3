"""Camera tamper: a view covered, blinded, defocused or moved, judged against the camera's own past.

A tampered camera still streams, so `camera_offline` never fires, yet every zone is wrong. Once per
`tamper.check_every_s` the detect thread hands the latest frame to `TamperWatch.observe`, which
shrinks it to a 160 px grey frame and compares it with a reference learned from this camera's own
recent normal frames (a running mean: people and cars passing average out):

- covered / blinded: the grey-level spread collapses against the reference's and, when dark, the
  scene no longer matches it (a bag, paint, a hand; dusk lowers the spread but keeps the scene), or
  the view is bright (a light flooding the lens). An almost uniform or mostly blown-out frame counts
  whatever the reference, so a camera covered before the agent started is caught too.
- defocused: the variance of the Laplacian drops against the reference's, both per unit of
  contrast and per unit of the frame's coarser detail.
- moved: the reference's central 70 % is searched for in the view (normalised cross-correlation,
  so a change of light does not matter), as a whole and as a 3 × 3 grid of tiles: the scene is
  found shifted, or nowhere any more, while a bus in front hides some tiles and leaves the others
  in place. The turn comes from ORB features of the last good view matched in the current one.

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

import cv2
import numpy as np

from device.events import DetectedEvent
from device.frames import Frame
from matthan_wire import Alert, CameraTamper, TamperDetail, TamperScores
from matthan_wire.config import CATEGORY_OF, CameraConfig, DeviceIdentity, TamperConfig
from matthan_wire.payloads import TamperKind
from matthan_wire.topics import Kind, device_topic

log = logging.getLogger("matthan.device.tamper")

RULE = "camera_tamper"
WIDTH = 160  # the check's grey frame
SNAPSHOT_WIDTH = 480  # each half of the before/after snapshot
JPEG_QUALITY = 85
# Absolute floors that hold whatever the reference: a grey spread this small is a covered lens, this
# much blown-out white a blinded one.
UNIFORM_STD = 2.5
BLOWN_OUT = 0.6
BRIGHT = 0.62  # mean grey (0..1) above which a collapsed view is blinded rather than covered
SATURATED_LEVEL = 245
# moved: the search window is ±MARGIN of the frame around the reference's centre (and each tile's).
MARGIN = 0.18
CENTRE_BLUR = 2.0  # σ in px of the 160 px frame: the centre is matched on coarse structure
TILE_BLUR = 1.0  # the tiles on finer detail
TILES = 3
TILE_TEXTURE = 3.0  # grey-level spread below which a tile has nothing to match on
TILE_MATCH = 0.5  # a tile matches in place at this correlation
TILE_SHIFTED = 0.6  # and shifted at this one
SHIFT_GAIN = 0.1  # a shifted tile must beat its unshifted match by this much
CENTRE_GAIN = 0.05  # the blurred centre correlates in place too, a little less
AGREE = 0.06  # tiles whose shifts differ by at most this (fraction of the frame; a turn spreads them) agree
# The view matches nothing any more (turned away): the centre's best correlation below this, or
# below this fraction of what good views score.
LOST_MATCH = 0.5
LOST_DROP = 0.6
# Fewer tiles than this fraction still in place: the scene itself has gone (not a bus hiding part).
STAYING = 0.25
ORB_FEATURES = 500  # the turn: ORB on the 480 px colour views
MIN_INLIERS = 12
MAX_TURNS = 1000  # turns kept per suspect span for the alert's median
REF_VIEW_EVERY_S = 10.0  # how often the good colour view is renewed (a resize of the whole frame)
SAVE_EVERY_S = 600.0  # how often a learned reference is written to disk (it survives a restart)
_LEARNED = datetime(2000, 1, 1, tzinfo=UTC)  # learn_until of a reference restored from disk
# Good checks inside a suspect span shorter than this do not end the span (a flicker, a blink).
MIN_GRACE_S = 5.0


def small_grey(image: np.ndarray) -> np.ndarray:
    """The check's frame: WIDTH px wide, grey, float32."""
    h, w = image.shape[:2]
    size = (WIDTH, max(8, round(h * WIDTH / w)))
    # Every n-th pixel first (a view, no copy), keeping two per output pixel for the area average:
    # a 1080p frame costs what a 320 px one does.
    step = max(1, w // (2 * WIDTH))
    small = cv2.resize(image[::step, ::step], size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return np.asarray(grey, dtype=np.float32)


@dataclass(frozen=True)
class Measures:
    mean: float  # 0..255
    std: float
    # Two views of the variance of the Laplacian, each fooled by something else: per unit of contrast
    # (a big smooth car lowers it), and per unit of the frame's coarser detail (dusk, which crushes
    # fine texture into black, lowers that). A defocused lens lowers both.
    sharpness: float  # var(Laplacian) / std²
    detail: float  # var(Laplacian) / var(Laplacian of the frame blurred by σ = 2 px)
    saturated: float  # fraction ≥ SATURATED_LEVEL


def measure(grey: np.ndarray) -> Measures:
    std = float(grey.std())
    fine = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    coarse = float(cv2.Laplacian(cv2.GaussianBlur(grey, (0, 0), 2.0), cv2.CV_32F).var())
    return Measures(
        mean=float(grey.mean()),
        std=std,
        sharpness=fine / (std * std + 1.0),
        detail=fine / (coarse + 1.0),
        saturated=float(np.count_nonzero(grey >= SATURATED_LEVEL)) / grey.size,
    )


@dataclass(frozen=True)
class Alignment:
    match: float  # best normalised correlation of the reference's centre anywhere in the window
    still: float  # its correlation where it was
    dx: float  # its shift, fraction of the width (+ right)
    dy: float  # fraction of the height (+ down)
    textured: int  # tiles with something to match on
    staying: float  # fraction of the textured tiles found within min_shift of where they were
    shifted: int  # textured tiles that match well, shifted by at least min_shift


def _best(window: np.ndarray, template: np.ndarray, at: tuple[int, int]) -> tuple[float, float, int, int]:
    """(best score, score at `at`, best x, best y) of `template` searched in `window`."""
    # A flat template or window (a covered lens) has no defined correlation: count it as none.
    scores = np.nan_to_num(
        cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED), nan=0.0, posinf=0.0, neginf=0.0
    )
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    return float(best), float(scores[at[1], at[0]]), bx, by


def align(reference: np.ndarray, grey: np.ndarray, min_shift: float) -> Alignment:
    """Where the reference lies in the view: its centre as a whole, and each of a 3 × 3 grid of tiles.

    A moved camera shifts every tile alike; a bus in front hides some tiles while the others stay
    put. Tiles without texture (sky, a wall) say nothing and are left out. The centre is matched on
    coarse structure (lines, kerbs, shading: what a plain scene has), the tiles on finer detail (a
    blurred tile would match in place after a shift too).
    """
    h, w = reference.shape
    mx, my = round(w * MARGIN), round(h * MARGIN)
    coarse_ref, coarse = _blur(reference, CENTRE_BLUR), _blur(grey, CENTRE_BLUR)
    best, still_all, bx, by = _best(coarse, coarse_ref[my : h - my, mx : w - mx], (mx, my))
    reference, grey = _blur(reference, TILE_BLUR), _blur(grey, TILE_BLUR)
    textured = staying = 0
    moves: list[tuple[float, float]] = []
    for row in range(TILES):
        for col in range(TILES):
            x0, x1 = col * w // TILES, (col + 1) * w // TILES
            y0, y1 = row * h // TILES, (row + 1) * h // TILES
            tile = reference[y0:y1, x0:x1]
            if float(tile.std()) < TILE_TEXTURE:
                continue
            textured += 1
            wx0, wy0 = max(0, x0 - mx), max(0, y0 - my)
            window = grey[wy0 : min(h, y1 + my), wx0 : min(w, x1 + mx)]
            b, still, tx, ty = _best(window, tile, (x0 - wx0, y0 - wy0))
            sx, sy = (wx0 + tx - x0) / w, (wy0 + ty - y0) / h
            if b >= TILE_MATCH and max(abs(sx), abs(sy)) < min_shift:  # found (about) in place
                staying += 1
            elif b >= TILE_SHIFTED and b - still >= SHIFT_GAIN and max(abs(sx), abs(sy)) >= min_shift:
                moves.append((sx, sy))
    # Tiles found shifted count only when they agree on the shift: a car passing makes tiles match
    # at random places, a turned camera moves them all alike.
    shifted = 0
    if moves:
        mdx = float(np.median([m[0] for m in moves]))
        mdy = float(np.median([m[1] for m in moves]))
        shifted = sum(1 for m in moves if abs(m[0] - mdx) <= AGREE and abs(m[1] - mdy) <= AGREE)
    return Alignment(
        match=float(np.clip(best, -1.0, 1.0)),
        still=float(np.clip(still_all, -1.0, 1.0)),
        dx=(bx - mx) / w,
        dy=(by - my) / h,
        textured=textured,
        staying=staying / textured if textured else 1.0,
        shifted=shifted,
    )


def turn_deg(before: np.ndarray, after: np.ndarray) -> float | None:
    """The camera's turn between two colour views (degrees, + clockwise on screen): ORB features
    matched and a similarity fitted with RANSAC, so people and cars that moved meanwhile drop out.
    None when too few features agree (a plain scene, a view turned right away)."""
    orb = cv2.ORB.create(nfeatures=ORB_FEATURES)
    grey_a = cv2.cvtColor(before, cv2.COLOR_BGR2GRAY) if before.ndim == 3 else before
    grey_b = cv2.cvtColor(after, cv2.COLOR_BGR2GRAY) if after.ndim == 3 else after
    kp_a, des_a = orb.detectAndCompute(grey_a, None)
    kp_b, des_b = orb.detectAndCompute(grey_b, None)
    if des_a is None or des_b is None or len(kp_a) < MIN_INLIERS or len(kp_b) < MIN_INLIERS:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_a, des_b)
    if len(matches) < MIN_INLIERS:
        return None
    src = np.array([kp_a[m.queryIdx].pt for m in matches], dtype=np.float32)
    dst = np.array([kp_b[m.trainIdx].pt for m in matches], dtype=np.float32)
    matrix, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if matrix is None or inliers is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    return float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))


@dataclass
class Reference:
    """What this camera's normal view looks like, learned from its own good checks."""

    image: np.ndarray  # running mean of grey frames
    std: float
    sharpness: float
    detail: float
    match: float = 1.0  # how well good views match the reference (a plain street scores ~0.8)
    checks: int = 1

    def learn(self, grey: np.ndarray, m: Measures, match: float, alpha: float | None) -> None:
        """Fold a good view in: a plain mean while learning (alpha None), then a slow running mean."""
        self.checks += 1
        a = 1.0 / self.checks if alpha is None else alpha
        cv2.accumulateWeighted(grey, self.image, a)
        self.std += a * (m.std - self.std)
        self.sharpness += a * (m.sharpness - self.sharpness)
        self.detail += a * (m.detail - self.detail)
        self.match += a * (match - self.match)


@dataclass(frozen=True)
class Check:
    kind: TamperKind | None  # None: the view is fine
    scores: TamperScores


def judge(config: TamperConfig, ref: Reference | None, grey: np.ndarray, m: Measures) -> Check:
    """One check of a view against the reference (None while there is none yet)."""
    bright = m.mean / 255.0
    if ref is None:
        kind = _lost(bright, m, UNIFORM_STD)
        scores = TamperScores(
            brightness=_unit(bright), saturated=_unit(m.saturated), contrast=1.0, sharpness=1.0,
            match=1.0, shift_x=0.0, shift_y=0.0,
        )  # fmt: skip
        return Check(kind, scores)
    contrast = m.std / max(ref.std, 1e-3)
    sharpness = max(m.sharpness / max(ref.sharpness, 1e-6), m.detail / max(ref.detail, 1e-6))
    a = align(ref.image, grey, config.min_shift)
    kind = _lost(bright, m, max(UNIFORM_STD, config.contrast_ratio * ref.std), a.match)
    if kind is None and sharpness < config.defocus_ratio:
        kind = "defocused"
    # Moved: more of the scene is found shifted than in place (tiles), or the centre as a whole is
    # found shifted while the tiles say nothing stayed (a plain scene has too few tiles to vote), or
    # the scene is found nowhere.
    lost = min(LOST_MATCH, LOST_DROP * ref.match)
    far = max(abs(a.dx), abs(a.dy)) >= config.min_shift
    centre_moved = far and a.match >= TILE_SHIFTED and a.match - a.still >= CENTRE_GAIN
    if kind is None and (
        (a.shifted >= 2 and a.shifted > a.staying * a.textured)
        or (a.staying < STAYING and (centre_moved or a.match < lost))
    ):
        kind = "moved"
    scores = TamperScores(
        brightness=_unit(bright),
        saturated=_unit(m.saturated),
        contrast=round(min(100.0, contrast), 3),
        sharpness=round(min(100.0, sharpness), 3),
        match=round(a.match, 3),
        shift_x=round(max(-1.0, min(1.0, a.dx)), 3),
        shift_y=round(max(-1.0, min(1.0, a.dy)), 3),
    )
    return Check(kind, scores)


def _blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Matching leaves out the finest grain, which a slight turn or compression noise scrambles."""
    return np.asarray(cv2.GaussianBlur(grey, (0, 0), sigma), dtype=np.float32)


def _lost(bright: float, m: Measures, min_std: float, match: float = 0.0) -> TamperKind | None:
    """Covered or blinded: the view has (almost) no grey-level spread left.

    Below `min_std` a dark view is covered only if the scene's structure is gone too (`match`): dusk
    also lowers the spread, but the scene is still there and still matches the reference.
    """
    if m.saturated >= BLOWN_OUT:
        return "blinded"
    if m.std < UNIFORM_STD:
        return "blinded" if bright >= BRIGHT else "covered"
    if m.std < min_std:
        if bright >= BRIGHT:
            return "blinded"
        if match < LOST_MATCH:
            return "covered"
    return None


def _unit(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 3)


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
            turn = turn_deg(self._ref_view, _shrink(frame.image))
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
            self._ref_view, self._ref_view_at = _shrink(frame.image), now
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
        self._ref_view, self._ref_view_at = _shrink(frame.image), frame.ts
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
        return Alert(
            event_id=event_id,
            phase="start" if ended is None else "end",
            device_id=self.device.id,
            camera_id=self.camera.id,
            ward=self.device.ward,
            zone=None,
            rule=f"{RULE}.{kind}",  # the kind shows wherever the rule does (cards, reports, ward)
            type="camera_tamper",
            category=CATEGORY_OF["camera_tamper"],
            labels=[],
            object_count=0,
            score=1.0,
            bbox=None,
            started_at=started,
            ended_at=ended,
            seq=self.next_seq(),
            snapshot=device_topic(Kind.SNAPSHOT, self.device.ward, self.device.id, event_id)
            if snapshot
            else None,
            clip=None,
            tamper=TamperDetail(
                kind=kind,
                scores=self._span_scores(),
                zones_suspended=suspended,
                ended_by=ended_by,  # type: ignore[arg-type]
            ),
        )


def _shrink(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= SNAPSHOT_WIDTH:
        return image.copy()
    step = max(1, w // (2 * SNAPSHOT_WIDTH))
    size = (SNAPSHOT_WIDTH, round(h * SNAPSHOT_WIDTH / w))
    return cv2.resize(image[::step, ::step], size, interpolation=cv2.INTER_AREA)


def before_after_jpeg(
    reference: np.ndarray | None, current: np.ndarray, kind: str, since: datetime
) -> bytes | None:
    """The snapshot of a camera_tamper start: the reference view (before) and the view now (after)."""
    after = _shrink(current)
    before = reference if reference is not None else np.zeros_like(after)
    if before.shape != after.shape:
        before = cv2.resize(before, (after.shape[1], after.shape[0]), interpolation=cv2.INTER_AREA)
    if before.ndim == 2:
        before = cv2.cvtColor(before, cv2.COLOR_GRAY2BGR)
    if after.ndim == 2:
        after = cv2.cvtColor(after, cv2.COLOR_GRAY2BGR)
    gap = np.full((after.shape[0], 6, 3), 255, dtype=np.uint8)
    both = np.hstack([before, gap, after])
    for x, text in ((6, "reference"), (before.shape[1] + 12, f"{kind} since {since:%H:%M:%S} UTC")):
        cv2.putText(both, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(both, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".jpg", both, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes() if ok else None
