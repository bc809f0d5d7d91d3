"""Users, sessions, CSRF, API keys and the `matthan cloud user add` command."""

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from cloud.auth import hash_password, verify_password
from cloud.models import AuditLog, Device, User, Ward
from cloud.session_cookie import CSRF_COOKIE, SESSION_COOKIE
from tests.cloud.conftest import add_user, bearer

MATTHAN = [sys.executable, "-m", "matthan"]


def test_passwords_are_salted_scrypt_and_verify() -> None:
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a != b and a.startswith("scrypt$")
    assert verify_password("correct horse battery", a)
    assert not verify_password("correct horse batterx", a)
    assert not verify_password("anything", "garbage")


def test_cookie_session_with_csrf(cloud: TestClient) -> None:
    add_user(cloud, "admin", "admin")
    bad = cloud.post("/api/v1/auth/login", json={"name": "admin", "password": "wrong password"})
    assert bad.status_code == 401
    r = cloud.post("/api/v1/auth/login", json={"name": "admin", "password": "correct horse battery"})
    assert r.status_code == 200
    cookie = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in session_cookie and "samesite=lax" in session_cookie.lower()
    assert "Secure" not in session_cookie  # http public URL; https turns it on
    csrf = r.json()["csrf_token"]
    assert cloud.cookies.get(CSRF_COOKIE) == csrf

    assert cloud.get("/api/v1/auth/me").json()["name"] == "admin"
    # An unsafe method with only the cookie (what a cross-site form could send) is refused.
    r = cloud.post("/api/v1/wards", json={"id": "ben-nghe", "name": "Bến Nghé"})
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    r = cloud.post(
        "/api/v1/wards", json={"id": "ben-nghe", "name": "Bến Nghé"}, headers={"X-CSRF-Token": "nope"}
    )
    assert r.status_code == 403
    r = cloud.post(
        "/api/v1/wards", json={"id": "ben-nghe", "name": "Bến Nghé"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 201

    # A tampered cookie is not a session.
    cloud.cookies.set(SESSION_COOKIE, cloud.cookies[SESSION_COOKIE][:-2] + "xx")
    assert cloud.get("/api/v1/auth/me").status_code == 401
    cloud.post("/api/v1/auth/logout")
    assert cloud.get("/api/v1/auth/me").status_code == 401


def test_roles_limit_what_users_may_do(cloud: TestClient) -> None:
    officer = add_user(cloud, "officer", "ward_officer", "ben-nghe")
    operator = add_user(cloud, "op", "operator")
    assert cloud.post("/api/v1/wards", json={"id": "x"}, headers=bearer(officer)).status_code == 403
    assert cloud.post("/api/v1/wards", json={"id": "x"}, headers=bearer(operator)).status_code == 403
    assert cloud.get("/api/v1/devices", headers=bearer("mak_not-a-key")).status_code == 401
    assert cloud.get("/api/v1/devices", headers={"Authorization": "Basic abc"}).status_code == 401
    assert cloud.get("/api/v1/devices").status_code == 401


def test_user_add_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    ok = subprocess.run(
        [
            *MATTHAN,
            "--lang",
            "en",
            "cloud",
            "user",
            "add",
            "--db",
            db,
            "--name",
            "chief",
            "--role",
            "admin",
            "--password-stdin",
            "--api-key",
        ],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "added admin chief" in ok.stdout and "api key: mak_" in ok.stdout
    for args, message in (
        (["--name", "chief", "--role", "admin"], "exists already"),
        (["--name", "w", "--role", "ward_officer"], "needs --ward"),
        (["--name", "o", "--role", "operator", "--ward", "ben-nghe"], "ward_officer only"),
        (["--name", "bad name!", "--role", "operator"], "user name"),
    ):
        r = subprocess.run(
            [*MATTHAN, "cloud", "user", "add", "--db", db, "--password-stdin", *args],
            input="a long enough password\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    short = subprocess.run(
        [
            *MATTHAN,
            "cloud",
            "user",
            "add",
            "--db",
            db,
            "--password-stdin",
            "--name",
            "z",
            "--role",
            "operator",
        ],
        input="short\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert short.returncode != 0 and "at least 8" in short.stderr

    from cloud.db import make_engine

    engine = make_engine(db)
    with Session(engine) as s:
        users = s.exec(select(User)).all()
        assert [u.name for u in users] == ["chief"]
        assert s.exec(select(AuditLog).where(AuditLog.action == "user.add")).first() is not None
    engine.dispose()


def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    r = subprocess.run(
        [*MATTHAN, "cloud", "serve", "--db", "mysql://x", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "database URL" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [*MATTHAN, "cloud", "serve", "--broker", "http://x"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and "broker URL" in r.stderr and "Traceback" not in r.stderr


def test_a_ward_officer_of_an_unknown_ward_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"

    def add(name: str, ward: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MATTHAN, "cloud", "user", "add", "--db", db, "--password-stdin", "--name", name,
             "--role", "ward_officer", "--ward", ward],
            input="a long enough password\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    refused = add("officer", "no-such-ward")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "unknown ward 'no-such-ward' (known: none yet)" in refused.stderr
    from cloud.db import make_engine

    engine = make_engine(db)
    with Session(engine) as s:
        s.add(Ward(id="da-kao"))  # added by an admin
        s.add(Device(id="q1-bn-01", ward="ben-nghe"))  # or known because a device is there
        s.commit()
    typo = add("officer", "da-ka0")
    assert typo.returncode == 1 and "unknown ward 'da-ka0' (known: ben-nghe, da-kao)" in typo.stderr
    assert add("officer-dk", "da-kao").returncode == 0
    assert add("officer-bn", "ben-nghe").returncode == 0
    with Session(engine) as s:
        assert sorted(u.name for u in s.exec(select(User)).all()) == ["officer-bn", "officer-dk"]
    engine.dispose()


class _Clock:
    """The throttle's clock, moved by the test: lockouts pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_thirty_wrong_passwords_lock_the_name_out_even_for_the_right_one(cloud: TestClient) -> None:
    add_user(cloud, "admin", "admin")
    clock = _Clock()
    cloud.app.state.login_throttle.clock = clock  # type: ignore[attr-defined]
    login = "/api/v1/auth/login"
    codes = [
        cloud.post(login, json={"name": "admin", "password": f"guess number {i}"}).status_code
        for i in range(30)
    ]
    # Five tries, then locked: the other 25 are refused without a password check.
    assert codes == [401] * 5 + [429] * 25
    right = cloud.post(login, json={"name": "admin", "password": "correct horse battery"})
    assert right.status_code == 429 and int(right.headers["Retry-After"]) == 30
    # An unknown name is throttled the same way, with the same words.
    unknown = [cloud.post(login, json={"name": "nobody", "password": "whatever!"}) for _ in range(6)]
    assert [r.status_code for r in unknown] == [401] * 5 + [429]
    assert unknown[0].json()["detail"] == "wrong name or password"
    assert unknown[-1].json()["detail"] == right.json()["detail"]

    clock.now += 31  # the lockout has passed
    assert cloud.post(login, json={"name": "admin", "password": "correct horse battery"}).status_code == 200
    with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
        actions = [a.action for a in s.exec(select(AuditLog)).all()]
    assert actions.count("login_failed") == 10 and "login_locked" in actions and "login" in actions


def test_lockouts_grow_and_the_client_address_is_throttled_across_names(cloud: TestClient) -> None:
    add_user(cloud, "admin", "admin")
    clock = _Clock()
    cloud.app.state.login_throttle.clock = clock  # type: ignore[attr-defined]
    login = "/api/v1/auth/login"

    def attempt(name: str, password: str = "wrong password") -> int:
        return int(cloud.post(login, json={"name": name, "password": password}).status_code)

    # One address trying many names: the address locks after 20 failures, whatever the names.
    assert [attempt(f"user{i}") for i in range(21)] == [401] * 20 + [429]
    assert attempt("admin", "correct horse battery") == 429
    clock.now += 31
    # Another failure from the locked-out address doubles its lockout.
    assert attempt("user99") == 401
    assert attempt("admin", "correct horse battery") == 429
    clock.now += 61
    assert attempt("admin", "correct horse battery") == 200


def test_console_sign_in_is_throttled_too(cloud: TestClient) -> None:
    add_user(cloud, "admin", "admin")
    cloud.app.state.login_throttle.clock = _Clock()  # type: ignore[attr-defined]
    codes = []
    for _ in range(6):
        page = cloud.get("/console/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = cloud.post(
            "/console/login",
            data={"username": "admin", "password": "wrong password", "csrf_token": token},
            follow_redirects=False,
        )
        codes.append(r.status_code)
    assert codes == [401] * 5 + [429]
    assert "Too many failed sign-ins" in r.text
