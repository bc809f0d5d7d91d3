"""Endpoint secrets sealed at rest: the database never holds them as typed once the cloud has an
endpoint key, the webhook still carries a signature the receiver verifies, a changed key is told
apart from a missing one, and endpoints saved before the key are sealed when the worker starts."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from cloud.app import create_app
from cloud.attention.sealing import PREFIX, SETTING, Sealer, SealError, new_key
from cloud.settings import AttentionSettings, Settings
from matthan.cli import main as matthan_main
from tests.cloud.attention.conftest import SECRET, Receiver
from tests.cloud.attention.helpers import add_alert, add_endpoint, notifications, set_policy
from tests.cloud.attention.test_channels import _worker
from tests.cloud.conftest import add_user, bearer, running

GATEWAY = {
    "url": "https://ott.example.vn/send",
    "headers": {"Authorization": "Bearer zalo-oa-token-0123456789", "X-Trace": "on"},
    "body": '{"text": "$text"}',
}


def test_seal_and_open_round_trip_and_rotation() -> None:
    old, new = new_key(), new_key()
    config = {
        "url": "https://h.example/x",
        "secret": SECRET,
        **{k: v for k, v in GATEWAY.items() if k == "headers"},
    }
    sealed = Sealer([old]).seal(config)
    assert sealed["url"] == config["url"] and sealed["headers"]["X-Trace"] == "on"  # only secrets change
    assert sealed["secret"].startswith(PREFIX) and SECRET not in json.dumps(sealed)
    assert sealed["headers"]["Authorization"].startswith(PREFIX)
    assert Sealer([old]).seal(sealed) == sealed  # sealed once, never twice
    assert Sealer([old]).open(sealed) == config
    assert Sealer([new, old]).open(sealed) == config  # the old key after a new one still opens
    assert Sealer([new, old]).seal(config)["secret"] != sealed["secret"]
    assert Sealer().open(config) == config  # saved before any key: as given
    assert Sealer([old]).has_plain(config) and not Sealer([old]).has_plain(sealed)
    with pytest.raises(SealError, match="not set"):
        Sealer().open(sealed)
    with pytest.raises(SealError, match="another key"):
        Sealer([new]).open(sealed)
    with pytest.raises(SealError, match=SETTING):
        Sealer.from_setting("not-a-key")
    assert not Sealer.from_setting(" , ").enabled


def test_the_command_prints_a_key_the_cloud_takes(capsys: pytest.CaptureFixture[str]) -> None:
    assert matthan_main(["cloud", "endpoint-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert Sealer.from_setting(key).enabled


def _stored(engine: object, endpoint_id: int) -> str:
    with engine.connect() as c:  # type: ignore[attr-defined]
        return str(
            c.execute(text("SELECT config FROM notify_endpoint WHERE id = :i"), {"i": endpoint_id}).scalar()
        )


def test_a_sealed_webhook_secret_still_signs_and_a_changed_key_is_retried_until_fixed(
    sqlite_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    old, new = new_key(), new_key()
    worker, _clock, engine = _worker(sqlite_url, tmp_path, endpoint_key=old)
    hook = add_endpoint(engine, "duty", "webhook", {"url": receiver.url, "secret": SECRET}, worker.sealer)
    assert SECRET not in _stored(engine, hook) and PREFIX in _stored(engine, hook)
    set_policy(engine, "*", "security_order", [(0, [hook])])
    add_alert(engine, "ev-s1")
    worker.tick_once()
    assert worker.sender.drain() == 1
    (req,) = receiver.requests()
    assert req["verified"] is True  # signed with the secret as typed

    # The key replaced without the old one after it: the message waits, saying which setting.
    add_alert(engine, "ev-s2")
    (tmp_path / "wrong").mkdir()
    wrong, _c, _e = _worker(sqlite_url, tmp_path / "wrong", endpoint_key=new)
    wrong.tick_once()
    wrong.sender.drain()
    pending = [n for n in notifications(engine) if n.event_id == "ev-s2"]
    assert [n.status for n in pending] == ["pending"], pending
    assert SETTING in (pending[0].last_error or "") and "another key" in (pending[0].last_error or "")
    # NEW,OLD: it goes out.
    (tmp_path / "fixed").mkdir()
    fixed, clock, _e = _worker(sqlite_url, tmp_path / "fixed", endpoint_key=f"{new},{old}")
    clock.advance(60)  # past the retry's backoff
    fixed.sender.drain()
    assert [n.status for n in notifications(engine) if n.event_id == "ev-s2"] == ["sent"]
    assert [json.loads(r["body"])["event_id"] for r in receiver.requests()] == ["ev-s1", "ev-s2"]
    assert all(r["verified"] for r in receiver.requests())
    engine.dispose()


def test_endpoints_saved_before_the_key_are_sealed_when_the_worker_starts(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain, _c, engine = _worker(sqlite_url, tmp_path)
    e = add_endpoint(engine, "ott", "gateway", GATEWAY)
    assert "zalo-oa-token-0123456789" in _stored(engine, e)
    with caplog.at_level("WARNING", logger="matthan.cloud.attention"):
        assert plain.seal_stored() == 0
    assert SETTING in caplog.text  # said once: stored as given
    (tmp_path / "keyed").mkdir()
    keyed, _c, _e = _worker(sqlite_url, tmp_path / "keyed", endpoint_key=new_key())
    assert keyed.seal_stored() == 1
    stored = _stored(engine, e)
    assert "zalo-oa-token-0123456789" not in stored and '"X-Trace": "on"' in stored
    assert keyed.seal_stored() == 0  # nothing left to seal
    with engine.connect() as c:
        config = json.loads(str(c.execute(text("SELECT config FROM notify_endpoint")).scalar()))
    assert keyed.sealer.open(config)["headers"]["Authorization"] == "Bearer zalo-oa-token-0123456789"
    engine.dispose()


def test_the_api_seals_what_an_admin_types_and_keeps_it_through_an_edit(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    key = new_key()
    with running(make_settings(sqlite_url, attention=AttentionSettings(endpoint_key=key))) as cloud:
        admin = bearer(add_user(cloud, "root", "admin"))
        hook = {
            "name": "centre",
            "kind": "webhook",
            "config": {"url": "https://x.example/h", "secret": SECRET},
        }
        e = cloud.post("/api/v1/notify/endpoints", json=hook, headers=admin).json()
        assert e["config"]["secret"] == "***"
        engine = cloud.app.state.engine  # type: ignore[attr-defined]
        first = _stored(engine, e["id"])
        assert SECRET not in first and PREFIX in first
        moved = {**hook, "config": {"url": "https://y.example/h", "secret": "***"}}
        assert cloud.put(f"/api/v1/notify/endpoints/{e['id']}", json=moved, headers=admin).status_code == 200
        config = json.loads(_stored(engine, e["id"]))
        assert config["secret"] == json.loads(first)["secret"]  # kept as sealed, not sealed again
        assert Sealer([key]).open(config) == {"url": "https://y.example/h", "secret": SECRET}
    # A key that is not one stops the start, naming the setting.
    with pytest.raises(SealError, match=SETTING):
        create_app(make_settings(sqlite_url, attention=AttentionSettings(endpoint_key="oops")))
