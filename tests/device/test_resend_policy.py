"""The resend schedule's delays: exponential, capped, jitter only lengthening them."""

import random

from device.resend_policy import ResendPolicy
from matthan_wire.config import OutboxConfig


def test_resend_delays_grow_to_the_cap_and_jitter_only_lengthens_them() -> None:
    limits = OutboxConfig()  # 30 s, ×4, 600 s, 20 %
    nominal = [30.0, 120.0, 480.0, 600.0, 600.0]
    for seed in range(50):
        policy = ResendPolicy(limits, random.Random(seed))
        for step, floor in enumerate(nominal, start=1):
            assert floor <= policy.delay(step) <= floor * 1.2
    fixed = ResendPolicy(OutboxConfig(resend_factor=1.0, resend_max_s=30.0, resend_jitter=0.0))
    assert [fixed.delay(s) for s in (1, 2, 50)] == [30.0, 30.0, 30.0]
    assert ResendPolicy(limits).delay(10_000) <= 720.0  # no overflow far past the cap
