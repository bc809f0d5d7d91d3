"""The motion model alone: a steady walker is predicted ahead, and the gate widens while unseen."""

import numpy as np

from device.kalman import GATE, Kalman, distances


def test_a_steady_walker_is_predicted_where_they_will_be() -> None:
    kf = Kalman((0.10, 0.30, 0.16, 0.50))
    for i in range(1, 11):  # 0.1 of the frame per second, at 5 fps
        kf.predict(0.2)
        x = 0.10 + 0.02 * i
        kf.update((x, 0.30, x + 0.06, 0.50))
    kf.predict(1.0)  # a second unseen
    cx = (kf.box()[0] + kf.box()[2]) / 2
    assert abs(cx - (0.13 + 0.02 * 10 + 0.1)) < 0.02


def test_the_gate_widens_while_the_track_is_unseen() -> None:
    kf = Kalman((0.10, 0.30, 0.16, 0.50))
    for _ in range(5):
        kf.predict(0.2)
        kf.update((0.10, 0.30, 0.16, 0.50))
    aside = np.array([[0.16, 0.30, 0.22, 0.50]])  # one width to the right
    before = float(distances([kf], aside)[0, 0])
    kf.predict(1.5)
    after = float(distances([kf], aside)[0, 0])
    assert before > GATE >= after


def test_the_closed_forms_are_the_textbook_filter() -> None:
    """Predict and update on the 2×2 blocks give what the 8×8 matrix filter gives (the blocks never
    mix: each coordinate with its own velocity, diagonal noises), up to rounding."""
    box = (0.10, 0.30, 0.16, 0.50)
    kf = Kalman(box)
    w, h = 0.06, 0.2
    x = np.array([0.13, 0.4, w, h, 0, 0, 0, 0])
    p = np.diag(np.array([0.1 * w, 0.1 * h, 0.1 * w, 0.1 * h, 1.5 * w, 0.8 * h, 0.1 * w, 0.1 * h]) ** 2)
    hm = np.hstack([np.eye(4), np.zeros((4, 4))])
    rng = np.random.default_rng(3)
    for _ in range(30):
        dt = float(rng.choice([0.2, 0.4, 1.3]))
        scale = np.array([max(x[2], 1e-3), max(x[3], 1e-3)] * 2)
        f = np.eye(8) + np.diag(np.full(4, dt), 4)
        g = np.vstack([np.eye(4) * dt * dt / 2.0, np.eye(4) * dt])
        x, p = f @ x, f @ p @ f.T + g @ np.diag((scale * [1.5, 0.8, 0.1, 0.1]) ** 2) @ g.T
        kf.predict(dt)
        b = tuple(
            float(v) for v in np.array([x[0] - x[2] / 2, x[1] - x[3] / 2, x[0] + x[2] / 2, x[1] + x[3] / 2])
        )
        b = tuple(v + float(rng.normal(0.0, 0.01)) for v in b)
        scale = np.array([max(x[2], 1e-3), max(x[3], 1e-3)] * 2)
        s = hm @ p @ hm.T + np.diag((scale * [0.08, 0.05, 0.1, 0.08]) ** 2)
        k = p @ hm.T @ np.linalg.inv(s)
        z = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])
        x, p = x + k @ (z - hm @ x), (np.eye(8) - k @ hm) @ p
        kf.update(b)  # type: ignore[arg-type]
        blocks = np.zeros((8, 8))
        for i in range(4):
            blocks[i, i], blocks[i, i + 4], blocks[i + 4, i], blocks[i + 4, i + 4] = (
                kf.pp[i],
                kf.pv[i],
                kf.vp[i],
                kf.vv[i],
            )
        np.testing.assert_allclose(kf.x, x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(blocks, p, rtol=1e-9, atol=1e-15)
