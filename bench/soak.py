"""Cloud outage soak: `python -m bench.soak [--minutes N] [--rate R] [--tracemalloc]`.

The device's delivery path (the real SQLite outbox, OutboxPublisher and MqttLink, in a child process
of its own so its RSS is the device's alone) publishes alerts at a high rate to a real Mosquitto with
no cloud: nothing is receipted. A ward station (a persistent QoS 1 session, in this process) counts
every copy of every alert. Both resend policies run in one go, one after the other, on fresh brokers:
- before: the fixed interval this replaced (every 30 s, the whole backlog): factor 1, no jitter;
- after: the default backoff (30 s, ×4, capped at 600 s, +0–20 % jitter).

The outbox and the publisher run on a clock this benchmark moves in 5 s steps (tests/support/clock.py),
so N minutes of outage take far less than N minutes. The compression is honest for what is measured:
every copy the schedule calls for is really published, acknowledged by the broker and received by the
station before the clock moves on (the station reports back after each step), and the process does
the same work and holds the same data it would in real time; only the idle time between steps goes.
RSS is sampled every simulated minute. With `--tracemalloc` the child also prints the ten Python
allocation sites that grew most between the end of warm-up (minute 2) and the end of the run.

`--agent-minutes M` (off by default: it runs in real time) also soaks the real agent (`matthan device
run`, four cameras looping vtest with a loitering rule that fires often, no cloud) for M minutes per
policy, sampling its RSS and the copies the station received.
"""

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import yaml

from bench.outbox_link import outbox_link
from device.outbox import MessageKind, NewMessage, Outbox
from matthan import assets
from matthan_wire import Alert, Kind, encode, utc_now
from matthan_wire.config import OutboxConfig
from matthan_wire.topics import device_topic
from tests.support.broker import Mosquitto
from tests.support.clock import SimClock
from tests.support.receipts import CopyCounter

WARD, DEVICE = "soak-ward", "soak-dev-01"
STEP_S = 5.0
WARM_UP_MIN = 2
POLICIES: dict[str, OutboxConfig] = {
    "before: fixed 30 s": OutboxConfig(
        resend_after_s=30.0, resend_factor=1.0, resend_max_s=30.0, resend_jitter=0.0
    ),
    "after: backoff (defaults)": OutboxConfig(),
}


def _alert(i: int) -> NewMessage:
    eid = f"soak-{i:07d}"
    a = Alert(
        event_id=eid, phase="start", device_id=DEVICE, camera_id=f"cam-{i % 4 + 1}", ward=WARD, zone="all",
        rule="all.loitering", type="loitering", category="security_order", labels=["person"],
        object_count=1, score=0.8, bbox=[0.1, 0.2, 0.3, 0.4], started_at=utc_now(), ended_at=None, seq=i,
        snapshot=None, clip=None,
    )  # fmt: skip
    return NewMessage(eid, MessageKind.ALERT, device_topic(Kind.ALERT, WARD, DEVICE), encode(a))


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def device_side(
    port: int, db: str, limits: OutboxConfig, minutes: int, rate: float, trace: bool, conn: Connection
) -> None:
    """The child: alerts in, copies out, clock stepped; reports (sim minute, RSS MB, depth) samples."""
    if trace:
        tracemalloc.start(10)
    clock = SimClock()
    outbox = Outbox(db, limits, clock=clock.now)
    link, publisher = outbox_link(outbox, port, WARD, DEVICE, max_inflight=120)
    link.start()
    publisher.start()
    link.wait_connected(10)
    proc = psutil.Process()
    samples: list[tuple[int, float, int]] = [(0, proc.memory_info().rss / 2**20, 0)]
    steps_per_min = int(60 / STEP_S)
    made, owed = 0, 0.0
    warm: tracemalloc.Snapshot | None = None
    for k in range(minutes * steps_per_min):
        owed += rate * STEP_S
        while owed >= 1.0:  # one transaction per alert, as the agent commits them
            outbox.put([_alert(made)])
            made += 1
            owed -= 1.0
        publisher.wake()
        clock.advance(STEP_S)
        publisher.wake()
        if not _wait(publisher.settled, 60):
            raise RuntimeError("publisher did not settle within 60 s")
        c = publisher.counters
        conn.send(c.published + c.republished)
        conn.recv()  # the station has every copy sent so far
        if (k + 1) % steps_per_min == 0:
            minute = (k + 1) // steps_per_min
            samples.append((minute, proc.memory_info().rss / 2**20, outbox.depth()))
            if trace and minute == WARM_UP_MIN:
                warm = tracemalloc.take_snapshot()
    lines: list[str] = []
    if warm is not None:
        end = tracemalloc.take_snapshot()
        stats = end.compare_to(warm, "lineno")
        lines = [str(s) for s in stats[:10]]
        lines.append(f"traced now {tracemalloc.get_traced_memory()[0] / 2**20:.2f} MB")
    c = publisher.counters
    health = publisher.stats()
    publisher.stop()
    link.stop()
    outbox.close()
    conn.send(
        ("done", made, c.published, c.republished, health.resends_1h, health.oldest_age_s, samples, lines)
    )


def run_policy(
    work: Path, name: str, limits: OutboxConfig, minutes: int, rate: float, trace: bool
) -> dict[str, object]:
    broker = Mosquitto(work / f"broker-{len(name)}").start()
    station = CopyCounter(broker.port, WARD, client_id=f"station-{len(name)}")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    db = str(work / f"outbox-{len(name)}.db")
    p = ctx.Process(target=device_side, args=(broker.port, db, limits, minutes, rate, trace, child))
    started = time.monotonic()
    p.start()
    try:
        while True:
            if not parent.poll(120):
                raise RuntimeError("device side silent for 120 s")
            msg = parent.recv()
            if isinstance(msg, tuple):
                break
            sent = int(msg)
            if not _wait(lambda: station.received() >= sent, 60):  # noqa: B023 (used before the next pass)
                print(f"station short: {station.received()} of {sent} copies", file=sys.stderr)
            parent.send(True)
        p.join(30)
    finally:
        if p.is_alive():
            p.kill()
        station.stop()
        broker.stop()
    _, made, published, republished, resends_1h, oldest_s, samples, lines = msg
    copies = station.snapshot()
    return {
        "name": name, "made": made, "published": published, "republished": republished,
        "resends_1h": resends_1h, "oldest_s": oldest_s, "samples": samples, "trace": lines,
        "station_total": sum(copies.values()), "distinct": len(copies),
        "max_copies": max(copies.values(), default=0), "wall_s": time.monotonic() - started,
    }  # fmt: skip


AgentSample = tuple[float, float, int, int]  # minutes, RSS MB, copies at the station, distinct alerts


def agent_soak(work: Path, tag: str, limits: OutboxConfig, minutes: float) -> list[AgentSample]:
    """The real agent with no cloud: (minutes, RSS MB, copies at the station, distinct alerts) samples."""
    broker = Mosquitto(work / f"agent-broker-{tag}").start()
    station = CopyCounter(broker.port, WARD, client_id=f"agent-station-{tag}")
    cams = [
        {"id": f"cam-{i}", "source": str(assets.path("video/vtest_480x360.mp4")), "loop": True,
         "detect": {"fps": 2}, "record": {"enabled": False},
         "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                    "rules": [{"type": "loitering", "labels": ["person"], "min_duration_s": 0.5}]}]}
        for i in range(1, 5)
    ]  # fmt: skip
    config = work / f"agent-{tag}.yaml"
    config.write_text(yaml.safe_dump({
        "device": {"id": DEVICE, "ward": WARD}, "broker": {"url": broker.url},
        "storage": {"path": str(work / f"agent-{tag}")},
        "model": {"path": str(assets.path(assets.DEFAULT_MODEL)),
                  "labels": str(assets.path(assets.DEFAULT_LABELS)), "threads": 1},
        "outbox": limits.model_dump(), "cameras": cams,
    }))  # fmt: skip
    samples: list[AgentSample] = []
    with (work / f"agent-{tag}.log").open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "matthan", "device", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        ps = psutil.Process(proc.pid)
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < minutes * 60 + 1:
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited with {proc.returncode}; see agent-{tag}.log")
            copies = station.snapshot()
            samples.append((elapsed / 60, ps.memory_info().rss / 2**20, sum(copies.values()), len(copies)))
            time.sleep(30.0)  # a sampling period, not a wait for readiness
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        station.stop()
        broker.stop()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=int, default=15, help="simulated minutes of outage (default 15)")
    parser.add_argument("--rate", type=float, default=2.0, help="alerts per simulated second (default 2)")
    parser.add_argument("--tracemalloc", action="store_true", help="print the allocation sites that grew")
    parser.add_argument(
        "--agent-minutes", type=float, default=0.0, help="also soak the real agent, real time, per policy"
    )
    args = parser.parse_args(argv)
    results = []
    agent: dict[str, list[AgentSample]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        for name, limits in POLICIES.items():
            print(f"{name} …", file=sys.stderr, flush=True)
            results.append(run_policy(Path(tmp), name, limits, args.minutes, args.rate, args.tracemalloc))
        for i, (name, limits) in enumerate(POLICIES.items()):
            if args.agent_minutes > 0:
                print(f"agent, {name} …", file=sys.stderr, flush=True)
                agent[name] = agent_soak(Path(tmp), str(i), limits, args.agent_minutes)
    before, after = results
    print(f"## Cloud outage soak (`python -m bench.soak --minutes {args.minutes} --rate {args.rate:g}`)\n")
    print(
        f"{args.minutes} simulated minutes with no cloud, {args.rate:g} alerts/s, real Mosquitto; "
        f"the clock moves in {STEP_S:.0f} s steps once every due copy is at the station.\n"
    )
    print(
        "| policy | alerts | copies at the station | copies per alert (mean / max) "
        "| resends last hour (health) | oldest unreceipted | wall s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        made = int(r["made"])  # type: ignore[call-overload]
        total = int(r["station_total"])  # type: ignore[call-overload]
        print(
            f"| {r['name']} | {made:,} ({r['distinct']:,} seen) | {total:,} | {total / max(made, 1):.1f} / "
            f"{r['max_copies']} | {int(r['resends_1h']):,} | {int(r['oldest_s']) // 60} min | "  # type: ignore[call-overload]
            f"{float(r['wall_s']):.0f} |"  # type: ignore[arg-type]
        )
    ratio = int(before["station_total"]) / max(int(after["station_total"]), 1)  # type: ignore[call-overload]
    print(f"\nCopies the station must dedupe, before ÷ after: {ratio:.1f}×.\n")
    print("| simulated minute | RSS MB before | RSS MB after | outbox depth |")
    print("| ---: | ---: | ---: | ---: |")
    every = max(1, args.minutes // 15)
    sb, sa = before["samples"], after["samples"]
    for (m, rss_b, depth), (_, rss_a, _) in zip(sb, sa, strict=True):  # type: ignore[call-overload]
        if m % every == 0 or m == args.minutes:
            print(f"| {m} | {rss_b:.1f} | {rss_a:.1f} | {depth:,} |")
    for r in results:
        warm = [s for s in r["samples"] if s[0] >= WARM_UP_MIN]  # type: ignore[attr-defined]
        if len(warm) >= 2:
            print(
                f"\n{r['name']}: RSS from minute {WARM_UP_MIN} to {warm[-1][0]}: "
                f"{warm[0][1]:.1f} → {warm[-1][1]:.1f} MB ({warm[-1][1] - warm[0][1]:+.1f} MB)."
            )
        if r["trace"]:
            print(f"\nTop allocation growth after warm-up, {r['name']}:\n\n```")
            print("\n".join(r["trace"]))  # type: ignore[arg-type]
            print("```")
    if agent:
        b, a = agent.values()
        print(f"\nThe real agent, {args.agent_minutes:g} min per policy (4 cameras looping vtest, 2 fps, no")
        print("cloud): RSS, and copies at the station / distinct alerts, by the real clock.\n")
        print("| minute | RSS MB before | copies / alerts before | RSS MB after | copies / alerts after |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for (m, rb, cb, db), (_, ra, ca, da) in zip(b, a, strict=False):
            print(f"| {m:.1f} | {rb:.1f} | {cb:,} / {db:,} | {ra:.1f} | {ca:,} / {da:,} |")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
