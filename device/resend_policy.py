"""When a message without a receipt is sent again: the outbox's resend schedule (docs/architecture.md,
"Resends during a cloud outage")."""

import random

from matthan_wire.config import OutboxConfig


class ResendPolicy:
    """When a message without a receipt is sent again: exponential backoff with jitter, capped.

    After the n-th copy the next is due `min(max_s, first_s * factor**(n-1)) * (1 + jitter * U)`, U
    uniform in [0, 1): the jitter only lengthens a delay, so the nominal delays are a hard floor and
    the bound on copies holds whatever the dice say. With the defaults (30 s, ×4, 600 s, 20 %) a
    message goes out at most at 0, 30, 150 and 630 s: ≤ 3 copies in its first 10 minutes, then one
    per ≥ 10 minutes (≤ 8 in an hour, against 120 at a fixed 30 s). `factor=1, jitter=0` is the
    fixed interval this replaced.
    """

    def __init__(self, limits: OutboxConfig, rng: random.Random | None = None) -> None:
        self.first_s = limits.resend_after_s
        self.factor = limits.resend_factor
        self.max_s = max(limits.resend_max_s, limits.resend_after_s)
        self.jitter = limits.resend_jitter
        self._rng = rng or random.Random()

    def delay(self, step: int) -> float:
        """Seconds from the `step`-th copy (1 = the first) to the next."""
        exp = min(max(step - 1, 0), 64)  # past the cap already; keeps the power finite
        nominal = min(self.max_s, self.first_s * self.factor**exp)
        return nominal * (1.0 + self.jitter * self._rng.random())

    @property
    def horizon_s(self) -> float:
        """No copy is ever scheduled further ahead than this."""
        return self.max_s * (1.0 + self.jitter)
