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
