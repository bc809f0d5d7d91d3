"""Users over the HTTP API (cloud/api/users.py) on SQLite and PostgreSQL: administrators only, a
made password answered once, unknown wards refused as the CLI refuses them, every change audited,
and the operations centre cannot lock its last administrator out."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from cloud import auth
from cloud.app import create_app
from cloud.models import AuditLog, Ward
from cloud.settings import Settings


@pytest.fixture
def api(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    settings = Settings(db_url=db_url, broker_url=None, clips=str(tmp_path / "clips"),
                        secret_key="users-api-test-secret-key-0123456789")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
            admin = auth.issue_api_key(s, auth.create_user(s, "root", "admin", "correct horse battery"))
            operator = auth.issue_api_key(s, auth.create_user(s, "lan", "operator", "correct horse battery"))
            s.add(Ward(id="da-kao"))
            s.commit()
        # Errors come in the reader's language (deployment default: Vietnamese); these read English.
        en = {"Accept-Language": "en"}
        yield (
            client,
            {"Authorization": f"Bearer {admin}", **en},
            {"Authorization": f"Bearer {operator}", **en},
        )


def test_users_are_managed_by_administrators_only_and_audited(
    api: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    client, admin, operator = api
    assert client.get("/api/v1/users", headers=operator).status_code == 403
    assert (
        client.post("/api/v1/users", json={"name": "x", "role": "admin"}, headers=operator).status_code == 403
    )
    new = {"name": "thu", "role": "ward_officer", "ward": "phu-my"}
    resp = client.post("/api/v1/users", json=new, headers=admin)
    assert resp.status_code == 422 and "unknown ward phu-my" in resp.json()["detail"]
    resp = client.post("/api/v1/users", json={**new, "role": "ward_officer", "ward": None}, headers=admin)
    assert resp.status_code == 422 and "needs a ward" in resp.json()["detail"]
    resp = client.post("/api/v1/users", json={**new, "ward": "da-kao", "language": "vi"}, headers=admin)
    assert resp.status_code == 201
    made = resp.json()["password"]
    assert len(made) == 12 and resp.json()["user"]["ward"] == "da-kao"
    assert client.post("/api/v1/users", json={**new, "ward": "da-kao"}, headers=admin).status_code == 409
    login = client.post("/api/v1/auth/login", json={"name": "thu", "password": made})
    assert login.status_code == 200 and login.json()["ward"] == "da-kao"

    resp = client.patch("/api/v1/users/thu", json={"role": "operator", "language": None}, headers=admin)
    assert resp.status_code == 200
    assert (resp.json()["role"], resp.json()["ward"], resp.json()["language"]) == ("operator", None, None)
    assert client.patch("/api/v1/users/nobody", json={"disabled": True}, headers=admin).status_code == 404
    assert client.patch("/api/v1/users/thu", json={"language": "fr"}, headers=admin).status_code == 422
    assert client.patch("/api/v1/users/thu", json={"disabled": True}, headers=admin).json()["disabled"]
    assert client.post("/api/v1/auth/login", json={"name": "thu", "password": made}).status_code == 401
    client.patch("/api/v1/users/thu", json={"disabled": False}, headers=admin)
    resp = client.post("/api/v1/users/thu/password", json={"password": "a new long password"}, headers=admin)
    assert resp.status_code == 200 and resp.json()["password"] is None  # chosen, not made: not echoed
    assert client.post("/api/v1/auth/login", json={"name": "thu", "password": made}).status_code == 401
    fresh = client.post("/api/v1/auth/login", json={"name": "thu", "password": "a new long password"})
    assert fresh.status_code == 200

    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        rows = s.exec(select(AuditLog).where(AuditLog.target == "thu").order_by(col(AuditLog.id))).all()
    assert [(r.who, r.action) for r in rows] == [
        ("user:root", "user.add"), ("user:root", "user.change"), ("user:root", "user.change"),
        ("user:root", "user.change"), ("user:root", "user.password_reset"),
    ]  # fmt: skip
    assert rows[1].detail == {"role": "operator", "ward": None, "language": None}
    assert made not in str([r.detail for r in rows]) and "a new long password" not in str(
        [r.detail for r in rows]
    )


def test_the_last_administrator_keeps_the_role(
    api: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    client, admin, _ = api
    resp = client.patch("/api/v1/users/root", json={"role": "operator"}, headers=admin)
    assert resp.status_code == 409 and "last enabled administrator" in resp.json()["detail"]
    assert (
        client.post("/api/v1/users", json={"name": "hai", "role": "admin"}, headers=admin).status_code == 201
    )
    assert (
        client.patch("/api/v1/users/root", json={"disabled": True}, headers=admin).status_code == 409
    )  # self
    resp = client.patch("/api/v1/users/root", json={"role": "operator"}, headers=admin)
    assert resp.status_code == 200  # another admin exists now
