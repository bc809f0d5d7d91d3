"""The alert card's evidence link and the admin's pin button, over HTTP (SQLite and PostgreSQL)."""

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from cloud.models import AlertPin, AuditLog, MediaObject
from tests.cloud.console.test_pages import _csrf, _login, app  # noqa: F401  (a fixture)


def _with_snapshot(client: TestClient, event_id: str) -> None:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        s.add(MediaObject(event_id=event_id, kind="snapshot", device_id="dev-bn", size=3, sha256="0" * 64,
                          offset=3, complete=True, key=f"dev-bn/{event_id}/snapshot.jpg"))  # fmt: skip
        s.commit()


def test_an_admin_pins_and_unpins_from_the_alert_card(app: TestClient) -> None:  # noqa: F811
    _with_snapshot(app, "ev-dev-bn")
    _login(app, "root")
    page = app.get("/console/alerts").text
    assert 'href="/api/v1/alerts/ev-dev-bn/evidence.zip"' in page and "Pin as evidence" in page
    r = app.post(
        "/console/alerts/ev-dev-bn/pin",
        data={"reason": "công an phường yêu cầu", "pin": "1", "csrf_token": _csrf(app)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        pin = s.get(AlertPin, "ev-dev-bn")
        assert pin is not None and pin.pinned_by == "user:root" and pin.reason == "công an phường yêu cầu"
    r = app.post("/console/alerts/ev-dev-bn/pin", data={"reason": " ", "pin": "0", "csrf_token": _csrf(app)})
    assert r.status_code == 422  # unpinning needs a reason
    r = app.post(
        "/console/alerts/ev-dev-bn/pin",
        data={"reason": "hết vụ việc", "pin": "0", "csrf_token": _csrf(app)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        assert s.get(AlertPin, "ev-dev-bn") is None
        rows = s.exec(select(AuditLog).where(AuditLog.target == "ev-dev-bn").order_by(col(AuditLog.seq)))
        actions = [a.action for a in rows]
    assert actions == ["evidence.pin", "evidence.unpin"]


def test_an_operator_sees_the_export_link_but_may_not_pin(app: TestClient) -> None:  # noqa: F811
    _with_snapshot(app, "ev-dev-bn")
    _login(app, "lan")
    page = app.get("/console/alerts").text
    assert "evidence.zip" in page and "Pin as evidence" not in page
    r = app.post("/console/alerts/ev-dev-bn/pin", data={"reason": "x", "pin": "1", "csrf_token": _csrf(app)})
    assert r.status_code == 403
