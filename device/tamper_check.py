"""One tamper check: a camera's view, shrunk to a 160 px grey frame, judged against its reference.

The reference is learned from this camera's own recent normal frames (a running mean: people and
cars passing average out); device/tamper.py decides when a check runs and what its verdicts mean
over time. A view is

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
"""

from dataclasses import dataclass

import cv2
import numpy as np

from matthan_wire import TamperScores
from matthan_wire.config import TamperConfig
from matthan_wire.payloads import TamperKind

WIDTH = 160  # the check's grey frame
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
