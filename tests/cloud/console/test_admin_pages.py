"""The claim-token and users pages over HTTP (SQLite and PostgreSQL): administrators only, CSRF,
every change audited, a secret shown once; and a page's bad query answered with a page."""

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from cloud.models import AuditLog, ClaimToken
from tests.cloud.console.test_pages import PASSWORD, _csrf, _login, app  # noqa: F401  (a fixture)

HTML = {"Accept": "text/html"}


def _actions(client: TestClient) -> list[tuple[str, str, str | None]]:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        rows = s.exec(select(AuditLog).order_by(col(AuditLog.id))).all()
    return [(a.who, a.action, a.target) for a in rows]


def test_only_administrators_reach_claim_tokens_and_users(app: TestClient) -> None:  # noqa: F811
    _login(app, "lan")
    for url in ("/console/claims", "/console/users"):
        r = app.get(url, headers=HTML)
        assert r.status_code == 403 and "for administrators" in r.text, url
    assert 'href="/console/users"' not in app.get("/console/fleet").text  # not offered in the menu
    assert app.get("/api/v1/users").status_code == 403
    r = app.post("/console/claims", data={"ward": "da-kao", "csrf_token": _csrf(app)})
    assert r.status_code == 403
    with Session(app.app.state.engine) as s:  # type: ignore[attr-defined]
        assert s.exec(select(ClaimToken)).first() is None


def test_an_admin_issues_a_claim_token_sees_it_once_and_revokes_it(app: TestClient) -> None:  # noqa: F811
    _login(app, "root")
    assert app.post("/console/claims", data={"ward": "da-kao", "csrf_token": "forged"}).status_code == 403
    form = {"ward": "da-kao", "device_id": "dk-new-01", "ttl_hours": "4", "csrf_token": _csrf(app)}
    r = app.post("/console/claims", data=form)
    assert r.status_code == 200
    token = re.search(r'data-testid="claim-token">(mct_[\w-]+)<', r.text)
    assert token is not None
    command = re.search(r'data-testid="enroll-command">([^<]+)<', r.text)
    assert (
        command is not None
        and f"--token {token.group(1)} --device-id dk-new-01 --ward da-kao" in command.group(1)
    )
    assert "\u2588" in r.text  # the QR code
    listed = app.get("/console/claims").text
    assert token.group(1) not in listed  # never again
    (ref,) = re.findall(r'data-ref="([0-9a-f]{12})" data-status="open"', listed)

    r = app.post(f"/console/claims/{ref}/revoke", data={"csrf_token": _csrf(app)}, follow_redirects=False)
    assert r.status_code == 303
    assert f'data-ref="{ref}" data-status="revoked"' in app.get("/console/claims").text
    r = app.post(f"/console/claims/{ref}/revoke", data={"csrf_token": _csrf(app)}, headers=HTML)
    assert r.status_code == 409 and "revoked already" in r.text
    assert [a for a in _actions(app) if a[1].startswith("claim_token")] == [
        ("user:root", "claim_token.issue", "da-kao"),
        ("user:root", "claim_token.revoke", "da-kao"),
    ]
    # The API lists it the same way, without the secret.
    (info,) = app.get("/api/v1/claim-tokens").json()
    assert (info["ref"], info["status"], info["revoked_by"]) == (ref, "revoked", "user:root")


def test_a_bad_claim_form_is_a_page_that_says_which_field(app: TestClient) -> None:  # noqa: F811
    _login(app, "root")
    r = app.post(
        "/console/claims", data={"ward": "Da Kao", "ttl_hours": "4", "csrf_token": _csrf(app)}, headers=HTML
    )
    assert r.status_code == 422 and "“Ward” must be letters, digits and &#39;-&#39; only" in r.text


def test_an_admin_adds_changes_disables_and_resets_users(app: TestClient) -> None:  # noqa: F811
    _login(app, "root")
    add = {"name": "thu", "role": "ward_officer", "ward": "phu-my", "csrf_token": _csrf(app)}
    r = app.post("/console/users", data=add, headers=HTML)
    assert r.status_code == 422 and "unknown ward phu-my" in r.text  # as the CLI refuses it
    r = app.post("/console/users", data={**add, "ward": "da-kao", "language": "vi"})
    made = re.search(r'data-testid="new-password">(\w{12})<', r.text)
    assert r.status_code == 200 and made is not None
    row = re.search(r'<tr data-user="thu" data-role="ward_officer" data-disabled="0">', r.text)
    assert row is not None

    other = TestClient(app.app)
    assert _login(other, "thu", made.group(1)) == "/console/fleet"
    r = app.post(
        "/console/users/thu",
        data={"role": "operator", "ward": "da-kao", "language": "en", "csrf_token": _csrf(app)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    (thu,) = [u for u in app.get("/api/v1/users").json() if u["name"] == "thu"]
    assert (thu["role"], thu["ward"], thu["language"]) == ("operator", None, "en")

    app.post("/console/users/thu/disabled", data={"disabled": "true", "csrf_token": _csrf(app)})
    assert 'data-user="thu" data-role="operator" data-disabled="1"' in app.get("/console/users").text
    assert other.get("/console/fleet", follow_redirects=False).status_code in (303, 401)  # the session ends
    assert _login(TestClient(app.app), "thu", made.group(1)) == "401"
    app.post("/console/users/thu/disabled", data={"disabled": "false", "csrf_token": _csrf(app)})
    r = app.post("/console/users/thu/password", data={"csrf_token": _csrf(app)})
    fresh = re.search(r'data-testid="new-password">(\w{12})<', r.text)
    assert fresh is not None and fresh.group(1) != made.group(1)
    assert _login(TestClient(app.app), "thu", made.group(1)) == "401"
    assert _login(TestClient(app.app), "thu", fresh.group(1)) == "/console/fleet"
    assert [a[1] for a in _actions(app) if a[2] == "thu" and a[1].startswith("user.")] == [
        "user.add", "user.change", "user.change", "user.change", "user.password_reset",
    ]  # fmt: skip
    assert made.group(1) not in str(_actions(app))


def test_the_last_administrator_cannot_lock_the_centre_out(app: TestClient) -> None:  # noqa: F811
    _login(app, "root")
    r = app.post("/console/users/root", data={"role": "operator", "csrf_token": _csrf(app)}, headers=HTML)
    assert r.status_code == 409 and "last enabled administrator" in r.text
    r = app.patch("/api/v1/users/root", json={"disabled": True}, headers={"X-CSRF-Token": _csrf(app)})
    assert r.status_code == 409  # yourself, and the last one
    assert app.get("/console/users").status_code == 200


def test_a_bad_query_is_a_page_for_a_browser_and_json_for_a_script(app: TestClient) -> None:  # noqa: F811
    _login(app, "lan")
    r = app.get("/console/reports?days=abc", headers=HTML)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "“Days” must be a whole number" in r.text and "Please check the request" in r.text
    r = app.get("/console/reports?days=9999", headers=HTML)
    assert "“Days” must be at most 366" in r.text
    r = app.get("/console/audit?page=x", headers=HTML)  # any page: the route class answers
    assert r.status_code in (403, 422) and r.headers["content-type"].startswith("text/html")
    r = app.get("/console/reports?days=abc")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "days"]
    r = app.get("/api/v1/alerts?limit=abc", headers=HTML)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]  # the API keeps JSON
    app.post("/console/account/language", data={"language": "vi", "csrf_token": _csrf(app)})
    r = app.get("/console/reports?days=abc", headers=HTML)
    assert "“Số ngày”: cần một số nguyên" in r.text
