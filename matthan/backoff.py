"""Exponential backoff with jitter (each wait uniform in [ceiling/2, ceiling]), for every retry loop."""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _attempt: int = field(default=0, init=False)

    def next(self) -> float:
        """Seconds to wait before the next attempt: uniform in [0, min(max, initial*factor^n)]."""
        ceiling = min(self.maximum, self.initial * self.factor**self._attempt)
        self._attempt += 1
        # Jitter keeps a fleet of devices that lost the broker together from returning together.
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt
