from matthan.backoff import Backoff


def test_backoff_grows_to_its_ceiling_with_jitter() -> None:
    b = Backoff(initial=1.0, maximum=8.0)
    waits = [b.next() for _ in range(8)]
    assert 0.5 <= waits[0] <= 1.0
    assert 2.0 <= waits[2] <= 4.0
    assert all(4.0 <= w <= 8.0 for w in waits[4:])
    assert b.attempts == 8
    b.reset()
    assert b.next() <= 1.0
