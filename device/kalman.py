"""The motion model of a track: a constant-velocity Kalman filter of the box centre and size.

Noise scales with the box, so a near person and a far one are judged by the same yardstick; the
gate is the filter's own uncertainty, not a distance in pixels.
"""

import numpy as np

from device.geometry import Box, centre

# χ² with 2 degrees of freedom at 99 %: a centre further than this (in the filter's own
# uncertainty) is not the same object.
GATE = 9.21


class Kalman:
    """Constant-velocity Kalman filter of (cx, cy, w, h); noise scales with the box size, so a
    near person and a far one are judged by the same yardstick."""

    def __init__(self, box: Box) -> None:
        cx, cy = centre(box)
        w, h = box[2] - box[0], box[3] - box[1]
        self.x = np.array([cx, cy, w, h, 0.0, 0.0, 0.0, 0.0])
        s = np.array([0.1 * w, 0.1 * h, 0.1 * w, 0.1 * h, 1.5 * w, 0.8 * h, 0.1 * w, 0.1 * h])
        self.p = np.diag(s**2)

    def _scale(self) -> np.ndarray:
        w, h = max(self.x[2], 1e-3), max(self.x[3], 1e-3)
        return np.array([w, h, w, h])

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        # White-noise acceleration: people start, stop and turn (1.5 widths/s², 0.8 heights/s²).
        acc = self._scale() * np.array([1.5, 0.8, 0.1, 0.1])
        g = np.concatenate([np.eye(4) * (dt * dt / 2.0), np.eye(4) * dt])
        q = g @ np.diag(acc**2) @ g.T
        self.x = f @ self.x
        self.p = f @ self.p @ f.T + q

    def _r(self) -> np.ndarray:
        return np.diag((self._scale() * np.array([0.08, 0.05, 0.1, 0.08])) ** 2)

    def distance(self, boxes: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each box centre (N×4 x1,y1,x2,y2) to the prediction."""
        s = self.p[:2, :2] + self._r()[:2, :2]
        d = (boxes[:, :2] + boxes[:, 2:]) / 2.0 - self.x[:2]
        inv = np.linalg.inv(s)
        return np.einsum("ni,ij,nj->n", d, inv, d)  # type: ignore[no-any-return]

    def update(self, box: Box) -> None:
        cx, cy = centre(box)
        z = np.array([cx, cy, box[2] - box[0], box[3] - box[1]])
        hm = np.zeros((4, 8))
        hm[:, :4] = np.eye(4)
        s = hm @ self.p @ hm.T + self._r()
        k = self.p @ hm.T @ np.linalg.inv(s)
        self.x = self.x + k @ (z - hm @ self.x)
        self.p = (np.eye(8) - k @ hm) @ self.p

    def box(self) -> Box:
        cx, cy, w, h = (float(v) for v in self.x[:4])
        w, h = max(w, 1e-4), max(h, 1e-4)
        return (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
