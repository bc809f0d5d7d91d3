"""The console's judgement calls: what counts as trouble, in which order, and the district's figures."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloud.console import figures, views
from cloud.models import AlertRow, Camera, Device, HealthLatest

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _health(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "ssd_mobilenet_v1_coco_quant.tflite",
        "temp_c": 55.0,
        "disk_free_mb": 5000.0,
        "outbox_depth": 0,
        "upload_backlog": 0,
        "cameras": [
            {"id": "cam-a", "stream_up": True, "fps_in": 12.5, "fps_detect": 5.0, "detect_ms": 9.0,
             "last_frame_age_s": 0.1, "quality": 0.98},
        ],
    }  # fmt: skip
    body.update(over)
    return body


def _view(dev: str, online: bool = True, seen_min_ago: float = 0.0, **health: Any) -> views.DeviceView:
    d = Device(id=dev, ward="ben-nghe", online=online, last_seen=NOW - timedelta(minutes=seen_min_ago))
    latest = HealthLatest(device_id=dev, at=NOW, body=_health(**health))
    return views.device_view(d, latest, [Camera(device_id=dev, id="cam-a", lat=10.77, lon=106.70)], online)


def test_a_healthy_device_has_no_trouble_and_merges_camera_rows() -> None:
    v = _view("ok-1")
    views.judge([v])
    assert (v.state, v.severity, v.trouble) == ("online", 0, [])
    assert [(c.id, c.lat, c.fps_in) for c in v.cameras] == [("cam-a", 10.77, 12.5)]


def test_a_tampered_view_warns_before_the_alert_and_suspended_zones_are_trouble() -> None:
    cam = {"id": "cam-a", "stream_up": True, "fps_in": 12.5, "quality": 0.98}
    suspect = _view("a", cameras=[{**cam, "tamper": {"state": "suspect", "kind": "moved"}}])
    moved = _view(
        "b", cameras=[{**cam, "tamper": {"state": "tampered", "kind": "moved", "zones_suspended": True}}]
    )
    covered = _view("c", cameras=[{**cam, "tamper": {"state": "tampered", "kind": "covered"}}])
    learning = _view("d", cameras=[{**cam, "tamper": {"state": "learning"}}])
    views.judge([suspect, moved, covered, learning])
    assert (suspect.trouble, suspect.severity) == (["cam-a: view changed: moved?"], 1)
    assert moved.severity == 2 and "zone rules suspended" in moved.trouble[0]
    assert moved.cameras[0].zones_suspended and not moved.cameras[0].fine
    assert (covered.trouble, covered.severity) == (["cam-a: camera tampered: covered"], 2)
    assert (learning.trouble, learning.severity) == ([], 0) and learning.cameras[0].fine


def test_trouble_comes_first_then_warnings_then_the_rest() -> None:
    fine = _view("a-fine")
    hot = _view("b-hot", temp_c=74.0)
    offline_long = _view("c-gone-long", online=False, seen_min_ago=90)
    offline_new = _view("d-gone-new", online=False, seen_min_ago=3)
    cam_down = _view("e-cam-down", cameras=[{"id": "cam-a", "stream_up": False, "fps_in": 0.0}])
    full = _view("f-disk", disk_free_mb=120.0)
    allv = [fine, hot, offline_long, offline_new, cam_down, full]
    views.judge(allv)
    assert hot.trouble == ["hot: 74 °C"] and hot.severity == 1
    assert cam_down.trouble == ["camera down: cam-a"] and cam_down.severity == 2
    assert full.trouble == ["disk: 120 MB free"] and full.severity == 2
    assert offline_long.trouble == ["device offline"]
    order = [v.id for v in views.trouble_first(allv)]
    # Silent longest first among the offline ones; a warning after every trouble; fine last.
    assert order[:2] == ["c-gone-long", "d-gone-new"]
    assert set(order[2:4]) == {"e-cam-down", "f-disk"}
    assert order[4:] == ["b-hot", "a-fine"]


def test_a_device_whose_cloud_link_is_stale_is_flagged() -> None:
    fresh = _view("a-fresh", outbox_oldest_age_s=2, outbox_resends_1h=0)
    stale = _view("b-stale", outbox_oldest_age_s=720, outbox_resends_1h=41)
    long_gone = _view("c-hour", outbox_oldest_age_s=2**63 - 1, outbox_resends_1h=9)
    older_agent = _view("d-old-agent")  # its health has no such field
    views.judge([fresh, stale, long_gone, older_agent])
    assert fresh.trouble == [] and older_agent.trouble == []
    assert stale.trouble == ["cloud link stale: no receipt for 12 min 00 s, 41 resends in 1 h"]
    assert stale.severity == 1
    assert long_gone.severity == 2 and long_gone.trouble[0].startswith("cloud link stale: no receipt for ")


def test_config_not_applied_or_rejected_and_an_odd_model_are_flagged() -> None:
    pending, rejected, odd, same = _view("p"), _view("r"), _view("o", model="other.tflite"), _view("s")
    pending.desired_version, pending.reported_version = 4, 3
    rejected.desired_version, rejected.reported_version, rejected.reported_status = 2, 1, "rejected"
    views.judge([pending, rejected, odd, same])
    assert pending.trouble == ["config v4 not applied yet"] and pending.severity == 1
    assert rejected.trouble == ["config v2 rejected"] and rejected.severity == 2
    assert odd.trouble == ["model other.tflite (fleet runs ssd_mobilenet_v1_coco_quant.tflite)"]
    assert same.model_in_sync and same.config_in_sync
    assert views.matches_state(pending, "out_of_sync") and not views.matches_state(same, "out_of_sync")
    assert views.matches_state(rejected, "trouble") and not views.matches_state(same, "trouble")


def _alert(event_id: str, ward: str, rule: str, started: datetime, state: str = "new", **kw: Any) -> AlertRow:
    kind = rule.split(".")[1]
    category = "urban_order" if kind in ("illegal_parking", "wrong_way", "encroachment") else "security_order"
    return AlertRow(
        event_id=event_id, device_id="d", camera_id="c", ward=ward, zone=rule.split(".")[0], rule=rule,
        type=kind, category=category, started_at=started, state=state, **kw,
    )  # fmt: skip


def test_figures_per_local_day_response_time_and_false_alarm_rate() -> None:
    t = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # 23:30 in Ho Chi Minh City: still the 23rd there
    rows = [
        _alert("a1", "ben-nghe", "plaza.crowd", t, "acknowledged", acknowledged_at=t + timedelta(minutes=2),
               state_at=t + timedelta(minutes=2)),
        _alert("a2", "ben-nghe", "plaza.crowd", t + timedelta(hours=1), "false_alarm",
               state_at=t + timedelta(hours=1, minutes=4), resolved_at=t + timedelta(hours=1, minutes=4)),
        _alert("a3", "da-kao", "curb.illegal_parking", t + timedelta(hours=2), "resolved",
               acknowledged_at=t + timedelta(hours=2, minutes=6), resolved_at=t + timedelta(hours=3),
               state_at=t + timedelta(hours=3)),
        _alert("a4", "da-kao", "curb.illegal_parking", t + timedelta(hours=3)),
    ]  # fmt: skip
    s = figures.stats(rows, 7, ZoneInfo("Asia/Ho_Chi_Minh"))
    assert s.per_day_category == [
        ("2026-11-24", {"security_order": 1, "urban_order": 2}),
        ("2026-11-23", {"security_order": 1, "urban_order": 0}),
    ]
    assert s.per_day_ward == [("2026-11-24", {"ben-nghe": 1, "da-kao": 2}), ("2026-11-23", {"ben-nghe": 1})]
    assert (s.total, s.handled, s.false_alarms, s.judged) == (4, 3, 1, 2)
    assert s.median_response == "4 min 00 s"  # of 2, 4 and 6 minutes
    assert s.false_rate_pct == "50 %"
    by_rule = {r.rule: r for r in s.rules}
    assert (by_rule["plaza.crowd"].judged, by_rule["plaza.crowd"].rate) == (1, 1.0)
    assert by_rule["curb.illegal_parking"].rate == 0.0
    assert s.rules[0].rule == "plaza.crowd"  # the worst rule heads the list
    wards = {w["ward"]: w for w in s.wards}
    assert wards["da-kao"]["open"] == 1 and wards["ben-nghe"]["open"] == 0
    assert wards["ben-nghe"]["median_response"] == "3 min 00 s"


def test_actions_follow_the_lifecycle() -> None:
    assert [a for a, _ in views.ACTIONS["new"]] == ["acknowledge", "resolve", "false_alarm"]
    assert [a for a, _ in views.ACTIONS["acknowledged"]] == ["resolve", "false_alarm"]
    assert views.ACTIONS["resolved"] == views.ACTIONS["false_alarm"] == []
    assert views.human_duration(timedelta(seconds=3725)) == "1 h 02 min"


def test_a_big_recorder_lists_only_its_cameras_in_trouble() -> None:
    cams = [
        {"id": f"cam-{i}", "stream_up": i != 4, "fps_in": 12.0, "quality": 0.6 if i == 7 else 0.99}
        for i in range(9)
    ]
    big = _view("big", cameras=cams)
    # Ten cameras: the nine reporting, and cam-a that only has a position (nothing known about it).
    assert [c.id for c in big.camera_rows] == ["cam-4", "cam-7"] and big.cameras_hidden == 8
    gone = _view("gone", online=False, cameras=cams)
    assert gone.camera_rows == [] and gone.cameras_hidden == 10  # its figures are stale anyway
    small = _view("small")
    assert [c.id for c in small.camera_rows] == ["cam-a"] and small.cameras_hidden == 0
