"""The admin API of escalation: endpoints with secrets hidden (and kept when '***' comes back),
validated policies, the queue with 'send again'; only administrators."""

from fastapi.testclient import TestClient

from tests.cloud.conftest import add_user, bearer


def test_endpoints_policies_and_who_may(cloud: TestClient) -> None:
    admin = bearer(add_user(cloud, "root", "admin"))
    officer = bearer(add_user(cloud, "officer", "ward_officer", "w1"))
    hook = {"name": "centre", "kind": "webhook", "config": {"url": "https://x.example/h", "secret": "s" * 20}}
    assert cloud.post("/api/v1/notify/endpoints", json=hook, headers=officer).status_code == 403
    r = cloud.post("/api/v1/notify/endpoints", json=hook, headers=admin)
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["config"]["secret"] == "***"
    # A short secret, a bad address, an unknown field: refused with what to fix.
    bad = {**hook, "name": "b", "config": {"url": "https://x.example/h", "secret": "short"}}
    assert cloud.post("/api/v1/notify/endpoints", json=bad, headers=admin).status_code == 422
    mail = {"name": "m", "kind": "email", "config": {"to": ["not an address"]}}
    assert cloud.post("/api/v1/notify/endpoints", json=mail, headers=admin).status_code == 422
    # '***' keeps the stored secret while the URL changes.
    moved = {**hook, "config": {"url": "https://y.example/h", "secret": "***"}}
    assert cloud.put(f"/api/v1/notify/endpoints/{e['id']}", json=moved, headers=admin).status_code == 200
    from sqlmodel import Session

    from cloud.models import NotifyEndpoint

    with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
        stored = s.get(NotifyEndpoint, e["id"])
        assert stored is not None and stored.config == {"url": "https://y.example/h", "secret": "s" * 20}

    policy = {
        "ward": "w1",
        "category": "urban_order",
        "levels": [{"after_min": 5, "endpoints": [e["id"]]}, {"after_min": 2, "endpoints": []}],
    }
    r = cloud.put("/api/v1/escalation/policies", json=policy, headers=admin)
    assert r.status_code == 422  # times must increase
    policy["levels"][1]["after_min"] = 20  # type: ignore[index]
    assert cloud.put("/api/v1/escalation/policies", json=policy, headers=admin).status_code == 200
    policy["levels"][0]["endpoints"] = [999]  # type: ignore[index]
    assert cloud.put("/api/v1/escalation/policies", json=policy, headers=admin).status_code == 422
    got = cloud.get("/api/v1/escalation/policies", headers=admin).json()
    assert [(p["ward"], p["category"], [lv["after_min"] for lv in p["levels"]]) for p in got] == [
        ("w1", "urban_order", [5, 20])
    ]
    assert cloud.get("/api/v1/escalation/policies", headers=officer).status_code == 403
    assert cloud.get("/api/v1/notify/notifications?status=failed", headers=admin).json() == []
    assert cloud.post("/api/v1/notify/notifications/7/retry", headers=admin).status_code == 404
