"""The motion model of a track: a constant-velocity Kalman filter of the box centre and size.

Noise scales with the box, so a near person and a far one are judged by the same yardstick; the
gate is the filter's own uncertainty, not a distance in pixels.

Each coordinate (cx, cy, w, h) moves on its own with its own velocity, and the process and
measurement noises are diagonal per coordinate: the 8×8 covariance is four independent 2×2 blocks
(position, velocity) that never mix. So predict and update are closed forms on those blocks in
plain floats — what the 8×8 matrix products computed, term for term, without the dozen tiny NumPy
calls per track and frame that made the filter most of the tracker's cost (bench/tracker_speed.py).
"""

from collections.abc import Sequence

import numpy as np

from device.geometry import Box, centre

# χ² with 2 degrees of freedom at 99 %: a centre further than this (in the filter's own
# uncertainty) is not the same object.
GATE = 9.21

# Per coordinate (cx, cy, w, h), in widths or heights of the box: the white-noise acceleration
# (people start, stop and turn: 1.5 widths/s², 0.8 heights/s²) and the measurement noise.
_ACCELERATION = (1.5, 0.8, 0.1, 0.1)
_MEASUREMENT = (0.08, 0.05, 0.1, 0.08)


class Kalman:
    """Constant-velocity Kalman filter of (cx, cy, w, h); noise scales with the box size, so a
    near person and a far one are judged by the same yardstick.

    `x` is the state (cx, cy, w, h and their velocities); the covariance is kept as its four 2×2
    blocks, coordinate i's [[pp, pv], [vp, vv]] (both off-diagonals: the update keeps them as
    the full product did, which is symmetric only up to rounding)."""

    __slots__ = ("pp", "pv", "vp", "vv", "x")

    def __init__(self, box: Box) -> None:
        cx, cy = centre(box)
        w, h = box[2] - box[0], box[3] - box[1]
        self.x = [cx, cy, w, h, 0.0, 0.0, 0.0, 0.0]
        pos = (0.1 * w, 0.1 * h, 0.1 * w, 0.1 * h)
        vel = (1.5 * w, 0.8 * h, 0.1 * w, 0.1 * h)
        self.pp = [s * s for s in pos]
        self.pv = [0.0] * 4
        self.vp = [0.0] * 4
        self.vv = [s * s for s in vel]

    def _scale(self) -> tuple[float, float, float, float]:
        w, h = max(self.x[2], 1e-3), max(self.x[3], 1e-3)
        return (w, h, w, h)

    def fade(self, factor: float) -> None:
        """Scale the velocities (a lost or resting object's last velocity is a poor guess)."""
        x = self.x
        for i in range(4, 8):
            x[i] *= factor

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        x, pp, pv, vp, vv = self.x, self.pp, self.pv, self.vp, self.vv
        half = dt * dt / 2.0
        for i, (s, c) in enumerate(zip(self._scale(), _ACCELERATION, strict=True)):
            acc = s * c
            q = acc * acc
            qp, qv = half * q, dt * q
            a, b, cv, d = pp[i], pv[i], vp[i], vv[i]
            # F P Fᵀ + Q with F = [[1, dt], [0, 1]] and Q = g q gᵀ, g = (dt²/2, dt).
            row_p, row_pv = a + dt * cv, b + dt * d
            pp[i] = (row_p + dt * row_pv) + qp * half
            pv[i] = row_pv + qp * dt
            vp[i] = (cv + dt * d) + qv * half
            vv[i] = d + qv * dt
            x[i] = x[i] + dt * x[i + 4]

    def _r(self) -> list[float]:
        return [(s * c) * (s * c) for s, c in zip(self._scale(), _MEASUREMENT, strict=True)]

    def update(self, box: Box) -> None:
        cx, cy = centre(box)
        z = (cx, cy, box[2] - box[0], box[3] - box[1])
        x, pp, pv, vp, vv = self.x, self.pp, self.pv, self.vp, self.vv
        for i, r in enumerate(self._r()):
            a, b, c, d = pp[i], pv[i], vp[i], vv[i]
            inv = 1.0 / (a + r)
            kp, kv = a * inv, c * inv  # the gain
            y = z[i] - x[i]
            x[i] = x[i] + kp * y
            x[i + 4] = x[i + 4] + kv * y
            keep = 1.0 - kp
            pp[i], pv[i] = keep * a, keep * b
            vp[i], vv[i] = -(kv * a) + c, -(kv * b) + d

    def box(self) -> Box:
        cx, cy, w, h = self.x[:4]
        w, h = max(w, 1e-4), max(h, 1e-4)
        return (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)


def distances(filters: Sequence[Kalman], boxes: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each box centre (N×4 x1,y1,x2,y2) to each filter's
    prediction (len(filters)×N). The centre's covariance is diagonal (x and y never mix)."""
    gate = np.array(
        [(f.x[0], f.x[1], 1.0 / (f.pp[0] + r[0]), 1.0 / (f.pp[1] + r[1])) for f in filters for r in (f._r(),)]
    ).reshape(-1, 4)
    c = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    dx = c[None, :, 0] - gate[:, 0, None]
    dy = c[None, :, 1] - gate[:, 1, None]
    return (dx * gate[:, 2, None]) * dx + (dy * gate[:, 3, None]) * dy  # type: ignore[no-any-return]
