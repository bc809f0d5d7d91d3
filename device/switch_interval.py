"""How long a Python thread may hold the GIL while another waits for it, on a device.

A device runs some seventy threads in one process: per camera a capture and a detect thread, the
detector pool, the recorders' helpers, and the few that carry an alert to the ward (intake,
outbox publisher, MQTT). The interpreter lets a thread that holds the GIL run on for the switch
interval (5 ms by default) before a waiting one gets it, and under load a waiting thread queues
behind several such turns. With 16 busy cameras on a saturated 2-core machine, an alert waited
p99 124 ms from its rule firing to the ward with 5 ms turns and 62 ms with 1 ms turns
(bench.alert_latency, bench/RESULTS.md); the cost of the more frequent hand-offs is measured there
too (bench.capacity, detector runs per second at saturation).
"""

import sys

SWITCH_INTERVAL_S = 0.001


def favour_latency() -> float:
    """Shorter GIL turns for this process; returns the interval it had, to restore on stop."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return before
