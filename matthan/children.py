"""Child processes that do not outlive the process that started them.

Three mechanisms, each covering a case the others cannot:

- `die_with_parent` (Linux `PR_SET_PDEATHSIG`): the kernel signals the child when the thread
  that started it ends, however it ended: SIGKILL, the OOM killer, a crash, where no code of
  ours runs to stop anything. Used for the demo's services and for the agent's ffmpeg recorders.
- A process group per service (`start_new_session` + `os.killpg`): one signal reaches a
  service and everything it started, so a supervisor that stops a service leaves nothing behind
  even when a grandchild did not arm its own death signal.
- The service manager's cgroup (systemd's default `KillMode=control-group`): stopping the unit
  ends every process in it, including one that escaped into a session of its own. That is what
  covers a deployed agent or cloud; the two above cover `matthan demo` and a killed agent.
"""

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator

_PR_SET_PDEATHSIG = 1

# Resolved at import: between fork and exec the child must not load libraries or import modules
# (another thread of the parent may have held the import lock at fork time).
_prctl: Callable[..., int] | None = None
if sys.platform == "linux":
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when the spawning thread ends.

    The signal follows the *thread* that called Popen, not the process: spawn from a thread that
    outlives the child (the main thread, or a monitor thread that ends the child before it
    returns). Between fork and exec the child only calls prctl and getppid, which take no lock,
    so this is safe in the agent's many-threaded process. None where prctl does not exist.
    """
    prctl = _prctl
    if prctl is None:
        return None
    parent = os.getpid()
    signum = int(sig)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the signal was armed: nobody would send it

    return arm


def kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal a whole process group; a group that has already ended is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled exactly as Ctrl-C is."""


@contextlib.contextmanager
def interrupt_on_signals(*sigs: signal.Signals) -> Iterator[None]:
    """Raise KeyboardInterrupt in the main thread on these signals (default SIGTERM and SIGHUP),
    so a service manager's stop or a closed terminal takes the same clean path as Ctrl-C."""
    sigs = sigs or (signal.SIGTERM, signal.SIGHUP)

    def raise_interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, raise_interrupt) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_ignored(*sigs: signal.Signals) -> Iterator[None]:
    """While a clean stop runs, a second Ctrl-C or SIGTERM must not abandon it half-way."""
    sigs = sigs or (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
