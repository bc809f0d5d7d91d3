"""The device's command and config handlers under hostile messages (extreme values, deep nesting,
invalid UTF-8, wrong types), interleaved with valid ones: none raises, each message is counted
once (answered, malformed/rejected, or failed), and valid ones still work afterwards. Also when a
target itself blows up (a publish that raises, an apply that raises something unexpected)."""

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.commands import CommandHandler, CommandTargets
from device.config_sync import ConfigSync
from matthan_wire import Command, DesiredConfig, ReportedConfig, decode, encode, utc_now
from matthan_wire.config import SiteConfig
from tests.support.hostile import BAD_INTS, bad_time

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SITE = SiteConfig.model_validate({"cameras": [{"id": "cam-1", "source": "rtsp://10.0.0.1/s"}]})

hostile_values = st.one_of(
    BAD_INTS,
    bad_time(),
    st.integers(100, 50_000).map(lambda d: "[" * d + "]" * d),  # raw, spliced in below
    st.sampled_from([{"a": 1}, [1], "x" * 70, True, None, 1e400]),
)


def _splice(body: dict[str, Any], key: str, value: Any) -> bytes:
    if isinstance(value, str) and value.startswith("["):  # deep nesting, written raw
        body[key] = None
        return json.dumps(body).replace("null", value, 1).encode()
    body[key] = value
    return json.dumps(body, allow_nan=True).encode()


@st.composite
def hostile_command(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["field", "utf8", "binary", "args"]))
    body = json.loads(encode(Command(id="c-1", name="restart-camera", camera_id="cam-1", at=utc_now())))
    if how == "field":
        return _splice(
            body, draw(st.sampled_from(["id", "name", "at", "camera_id", "v"])), draw(hostile_values)
        )
    if how == "args":
        return _splice(body, "args", {f"k{i}": draw(hostile_values) for i in range(draw(st.integers(1, 40)))})
    if how == "utf8":
        return json.dumps(body).encode().replace(b"restart-camera", b"restart-\xff\xfe")
    return draw(st.binary(max_size=200))


@st.composite
def hostile_desired(draw: st.DrawFn) -> bytes:
    body = json.loads(encode(DesiredConfig(version=2, issued_at=utc_now(), config=SITE)))
    how = draw(st.sampled_from(["field", "camera", "cameras", "binary"]))
    if how == "field":
        return _splice(body, draw(st.sampled_from(["version", "issued_at", "config"])), draw(hostile_values))
    if how == "camera":
        key = draw(st.sampled_from(["offline_debounce_s", "zones", "source", "detect"]))
        return _splice(body["config"]["cameras"][0], key, draw(hostile_values)) and json.dumps(body).encode()
    if how == "cameras":
        body["config"]["cameras"] = [
            {"id": f"c{i}", "source": "x"} for i in range(draw(st.integers(257, 2000)))
        ]
        return json.dumps(body).encode()
    return draw(st.binary(min_size=1, max_size=200))


def test_command_handler_survives_and_counts_every_hostile_command() -> None:
    sent: list[tuple[str, bytes]] = []
    restarted: list[str] = []
    explode = {"on": False}

    def publish(topic: str, data: bytes) -> bool:
        if explode["on"]:
            raise OSError("socket gone")
        sent.append((topic, data))
        return True

    handler = CommandHandler(
        "q1-rex-01",
        "ben-nghe",
        CommandTargets(
            cameras=lambda: ["cam-1"],
            latest_frame=lambda _c: None,
            restart_camera=restarted.append,
            resync_config=lambda: None,
            publish=publish,
        ),
    )
    tried = {"hostile": 0, "valid": 0, "answered": 0}

    @FUZZ
    @given(payload=hostile_command(), boom=st.booleans())
    def run(payload: bytes, boom: bool) -> None:
        explode["on"] = boom
        before = handler.malformed + handler.failed
        result = handler.handle(payload)  # must not raise
        counted = handler.malformed + handler.failed - before
        # Counted once as malformed or failed, or (a legal command after all) answered.
        assert counted == 1 or (counted == 0 and result is not None)
        tried["hostile"] += 1
        tried["answered"] += 1 - counted
        explode["on"] = False
        ok = handler.handle(
            encode(Command(id="c-ok", name="restart-camera", camera_id="cam-1", at=utc_now()))
        )
        assert ok is not None and ok.ok
        tried["valid"] += 1

    run()
    assert len(restarted) >= tried["valid"]
    assert handler.malformed + handler.failed + tried["answered"] == tried["hostile"]
    assert handler.failed == 0
    print(
        f"\ncommands tried={tried['hostile'] + tried['valid']} hostile={tried['hostile']}"
        f" malformed={handler.malformed} failed={handler.failed} answered={tried['answered']}"
    )


def test_config_handler_survives_and_counts_every_hostile_config(tmp_path: Path) -> None:
    applied: list[SiteConfig] = []
    reports: list[ReportedConfig] = []
    mode = {"apply": "ok", "publish": "ok"}

    def apply(site: SiteConfig) -> None:
        if mode["apply"] == "bug":
            raise ZeroDivisionError("a bug in apply")
        applied.append(site)

    def publish(report: ReportedConfig) -> bool:
        if mode["publish"] == "raise":
            raise OSError("socket gone")
        reports.append(decode(ReportedConfig, encode(report)))
        return True

    sync = ConfigSync(tmp_path / "applied.json", apply=apply, publish=publish, version=1)
    tried = {"hostile": 0, "valid": 0, "applied": 0}

    @FUZZ
    @given(payload=hostile_desired(), publish_fails=st.booleans())
    def run(payload: bytes, publish_fails: bool) -> None:
        mode["publish"] = "raise" if publish_fails else "ok"
        before, was_applied = sync.rejected + sync.failed, len(applied)
        sync.handle_desired(payload)  # must not raise
        counted = sync.rejected + sync.failed - before
        # Counted once as rejected or failed, or (a legal config after all) applied.
        assert counted == 1 or (counted == 0 and len(applied) == was_applied + 1)
        tried["hostile"] += 1
        tried["applied"] += 1 - counted
        mode["publish"] = "ok"
        version = (sync.version or 1) + 1
        good = encode(DesiredConfig(version=version, issued_at=utc_now(), config=SITE))
        report = sync.handle_desired(good)
        assert report is not None and report.status == "applied" and report.version == version
        tried["valid"] += 1

    run()
    assert sync.rejected + tried["applied"] == tried["hostile"] and sync.failed == 0
    assert len(applied) == tried["valid"] + tried["applied"]
    # An unexpected exception from apply is a rejection with its reason, not the end of the loop.
    mode["apply"] = "bug"
    report = sync.handle_desired(encode(DesiredConfig(version=10_000, issued_at=utc_now(), config=SITE)))
    assert report is not None and report.status == "rejected" and "ZeroDivisionError" in (report.error or "")
    print(
        f"\nconfigs tried={tried['hostile'] + tried['valid'] + 1} hostile={tried['hostile']}"
        f" rejected={sync.rejected} failed={sync.failed} applied={len(applied)}"
    )
