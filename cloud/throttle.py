"""Login throttling: after a few failed sign-ins a user name, or a client address, is locked out for
a while, and each further lockout is twice as long (30 s, 1 min, 2 min, … at most 15 min).

Keyed by the name as typed, whether or not such a user exists, so the answers for an unknown name
and a wrong password stay the same. During a lockout no password is checked at all (not even the
right one): a locked name is no oracle. A success clears the name's failures but not the address's,
so an attacker cannot reset its address by signing in to an account of its own between guesses.
The address threshold is higher than the name's: a ward station's officers may share one NAT.

State lives in the process (several API processes each keep their own, which at worst multiplies
the allowance by their number); the number of keys is bounded so a spray of names cannot grow it.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class Lockout:
    key: str  # "user:NAME" or "addr:ADDRESS"
    failures: int
    seconds: float


class LoginThrottle:
    def __init__(
        self,
        *,
        user_failures: int = 5,
        address_failures: int = 20,
        base_lock_s: float = 30.0,
        max_lock_s: float = 900.0,
        window_s: float = 900.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.user_failures = user_failures
        self.address_failures = address_failures
        self.base_lock_s = base_lock_s
        self.max_lock_s = max_lock_s
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._keys: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def locked_for(self, name: str, address: str) -> float:
        """Seconds until this name and address may try again (0: now)."""
        now = self.clock()
        with self._lock:
            left = 0.0
            for key in (_user(name), _addr(address)):
                rec = self._keys.get(key)
                if rec is not None:
                    left = max(left, rec.locked_until - now)
            return left

    def failed(self, name: str, address: str) -> list[Lockout]:
        """Count a failed sign-in; the lockouts it starts (for one log line and audit entry each)."""
        now = self.clock()
        started: list[Lockout] = []
        with self._lock:
            for key, threshold in (
                (_user(name), self.user_failures),
                (_addr(address), self.address_failures),
            ):
                rec = self._keys.get(key)
                if rec is None:
                    self._room(now)
                    rec = self._keys[key] = _Failures()
                elif now - rec.last > self.window_s:
                    rec.count = 0  # a quiet spell forgives earlier failures
                rec.count += 1
                rec.last = now
                if rec.count >= threshold:
                    seconds = min(self.max_lock_s, self.base_lock_s * 2 ** (rec.count - threshold))
                    rec.locked_until = now + seconds
                    started.append(Lockout(key, rec.count, seconds))
        return started

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._keys.pop(_user(name), None)

    def _room(self, now: float) -> None:
        """Keep the table bounded: forget quiet keys first, then the oldest."""
        if len(self._keys) < self.max_keys:
            return
        for key in [
            k for k, r in self._keys.items() if now - r.last > self.window_s and now >= r.locked_until
        ]:
            del self._keys[key]
        while len(self._keys) >= self.max_keys:
            del self._keys[next(iter(self._keys))]


def _user(name: str) -> str:
    return f"user:{name.strip().lower()[:64]}"


def _addr(address: str) -> str:
    return f"addr:{address[:64]}"
