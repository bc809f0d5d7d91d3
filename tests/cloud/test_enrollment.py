"""The provisioning endpoints of the real cloud app (uvicorn, SQLite): who may issue tokens, what a
refused enrollment leaves behind, bulk import all-or-nothing, the commissioning report."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from sqlalchemy import func, update
from sqlmodel import Session, select

from cloud.models import ClaimToken, Device
from cloud.settings import EnrollmentSettings
from matthan_wire.timeutil import utc_now
from provisioning import pki
from tests.provisioning.conftest import CloudServer


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudServer]:
    ca_dir = pki.init_ca(tmp_path / "ca")
    server = CloudServer(tmp_path / "cloud", ca_dir, "mqtts://broker.example:8883", None).start()
    yield server
    server.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def enroll_body(
    token: str, device: str, cn: str | None = None, **extra: str
) -> tuple[dict[str, str], object]:
    key = pki.new_key()
    body = {"token": token, "device_id": device, "csr": pki.make_csr(key, cn or device).decode(), **extra}
    return body, key


def test_only_staff_issue_claim_tokens_and_lists_never_show_the_secret(cloud: CloudServer) -> None:
    url = f"{cloud.url}/api/v1/claim-tokens"
    assert httpx.post(url, json={"ward": "ben-nghe"}).status_code == 401
    engine = cloud.engine()
    from cloud.auth import create_user, issue_api_key
    from cloud.db import session_scope
    from cloud.models import Ward

    with session_scope(engine) as s:
        s.add(Ward(id="ben-nghe"))
        officer = issue_api_key(
            s, create_user(s, "officer", "ward_officer", "correct horse", ward="ben-nghe")
        )
    assert httpx.post(url, json={"ward": "ben-nghe"}, headers=auth(officer)).status_code == 403

    key = cloud.user_key()
    resp = httpx.post(url, json={"ward": "ben-nghe", "ttl_hours": 2}, headers=auth(key))
    assert resp.status_code == 201
    issued = resp.json()
    assert issued["token"].startswith("mct_") and "\u2588" in issued["qr"]
    assert httpx.post(url, json={"ward": "Ben Nghe"}, headers=auth(key)).status_code == 422

    listed = httpx.get(url, headers=auth(key)).json()
    assert [t["status"] for t in listed] == ["open"]
    assert issued["token"] not in str(listed)
    with engine.begin() as conn:
        conn.execute(update(ClaimToken).values(expires_at=utc_now() - timedelta(seconds=1)))
    assert [t["status"] for t in httpx.get(url, headers=auth(key)).json()] == ["expired"]
    engine.dispose()


def test_a_refused_csr_does_not_consume_the_token(cloud: CloudServer) -> None:
    key = cloud.user_key()
    token = httpx.post(
        f"{cloud.url}/api/v1/claim-tokens", json={"ward": "ben-nghe"}, headers=auth(key)
    ).json()["token"]
    body, _ = enroll_body(token, "dev-1", cn="someone-else", camera="rtsp://10.0.0.1/s")
    resp = httpx.post(f"{cloud.url}/api/v1/enroll", json=body)
    assert resp.status_code == 400 and "not the device 'dev-1'" in resp.json()["detail"]
    body, _ = enroll_body(token, "dev-1", camera="rtsp://10.0.0.1/s")
    assert httpx.post(f"{cloud.url}/api/v1/enroll", json=body).status_code == 200
    assert httpx.post(f"{cloud.url}/api/v1/enroll", json=body).status_code == 409


def test_reenrolling_a_replaced_box_revokes_the_old_certificate(cloud: CloudServer, tmp_path: Path) -> None:
    key = cloud.user_key()
    claims = f"{cloud.url}/api/v1/claim-tokens"
    first = httpx.post(claims, json={"ward": "ben-nghe"}, headers=auth(key)).json()["token"]
    body, _ = enroll_body(first, "dev-1", camera="rtsp://10.0.0.1/s")
    old = x509.load_pem_x509_certificate(
        httpx.post(f"{cloud.url}/api/v1/enroll", json=body).json()["certificate"].encode()
    )

    # An unbound token cannot take over an enrolled device; a token bound to it can.
    other = httpx.post(claims, json={"ward": "ben-nghe"}, headers=auth(key)).json()["token"]
    body, _ = enroll_body(other, "dev-1")
    assert httpx.post(f"{cloud.url}/api/v1/enroll", json=body).status_code == 409
    bound = httpx.post(claims, json={"ward": "ben-nghe", "device_id": "dev-1"}, headers=auth(key)).json()[
        "token"
    ]
    body, _ = enroll_body(bound, "dev-1")
    resp = httpx.post(f"{cloud.url}/api/v1/enroll", json=body)
    assert resp.status_code == 200
    new = x509.load_pem_x509_certificate(resp.json()["certificate"].encode())
    ca = pki.Authority(cloud.app.state.settings.enrollment.ca_dir)
    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(old.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(new.serial_number) is None


def test_import_is_all_or_nothing_and_names_bad_lines(cloud: CloudServer) -> None:
    key = cloud.user_key()
    url = f"{cloud.url}/api/v1/import"
    # English asked for: this server speaks the deployment's default, Vietnamese, otherwise.
    headers = {**auth(key), "Content-Type": "text/csv", "Accept-Language": "en"}
    bad = (
        "site,ward,lat,lon,source,device\n"
        "Rex,ben-nghe,10.77,106.70,rtsp://10.0.0.1/a,rex-01\n"
        "Opera,ben-nghe,95.0,106.70,rtsp://10.0.0.2/a,opera-01\n"
        "Hall,Ben Nghe,10.77,106.70,,hall-01\n"
    )
    resp = httpx.post(url, content=bad, headers=headers)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "line 3: lat 95.0 is outside [-90, 90]" in detail
    assert "line 4: ward 'Ben Nghe' is not an id" in detail and "source is empty" in detail
    engine = cloud.engine()
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Device)).one() == 0
        assert s.exec(select(func.count()).select_from(ClaimToken)).one() == 0
    good = bad.splitlines()[0] + "\n" + bad.splitlines()[1] + "\n"
    resp = httpx.post(url, content=good, headers=headers)
    assert resp.status_code == 201 and resp.json()["devices"] == 1
    assert resp.json()["tokens"][0]["device_id"] == "rex-01"
    engine.dispose()


def test_commissioning_report_is_the_devices_own(cloud: CloudServer) -> None:
    key = cloud.user_key()
    tokens = []
    for dev in ("dev-1", "dev-2"):
        claim = httpx.post(f"{cloud.url}/api/v1/claim-tokens", json={"ward": "w1"}, headers=auth(key)).json()
        body, _ = enroll_body(claim["token"], dev, camera="rtsp://10.0.0.1/s")
        tokens.append(httpx.post(f"{cloud.url}/api/v1/enroll", json=body).json()["api_token"])
    report = {
        "by": "tech-anh",
        "at": "2026-11-24T08:00:00.000Z",
        "ok": True,
        "items": [{"name": "camera cam-1", "status": "pass", "detail": "1920x1080, 25.0 fps"}],
    }
    url = f"{cloud.url}/api/v1/devices/dev-1/commissioning"
    assert httpx.post(url, json=report, headers=auth(tokens[1])).status_code == 403
    assert httpx.post(url, json=report, headers=auth(key)).status_code == 403
    assert httpx.post(url, json={**report, "ok": False}, headers=auth(tokens[0])).status_code == 204
    engine = cloud.engine()
    with Session(engine) as s:
        assert s.get(Device, "dev-1").commissioned_at is None  # type: ignore[union-attr]
    assert httpx.post(url, json=report, headers=auth(tokens[0])).status_code == 204
    with Session(engine) as s:
        row = s.get(Device, "dev-1")
        assert row is not None and row.commissioned_by == "tech-anh"
        assert row.commissioned_at is not None and row.commissioned_at.year == 2026
    engine.dispose()


def test_enrollment_without_a_ca_is_a_clear_503(cloud: CloudServer) -> None:
    settings = cloud.app.state.settings
    cloud.app.state.settings = settings.model_copy(update={"enrollment": EnrollmentSettings()})
    body, _ = enroll_body("mct_whatever-token", "dev-1")
    resp = httpx.post(f"{cloud.url}/api/v1/enroll", json=body)
    assert resp.status_code == 503 and "MATTHAN_PROVISION_CA_DIR" in resp.json()["detail"]


def test_one_token_enrolls_one_device_even_when_raced(tmp_path: Path, db_url: str) -> None:
    ca_dir = pki.init_ca(tmp_path / "ca")
    cloud = CloudServer(
        tmp_path / "cloud", ca_dir, "mqtts://broker.example:8883", None, db_url=db_url
    ).start()
    try:
        _race(cloud)
    finally:
        cloud.stop()


def _race(cloud: CloudServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    key = cloud.user_key()
    token = httpx.post(f"{cloud.url}/api/v1/claim-tokens", json={"ward": "w1"}, headers=auth(key)).json()[
        "token"
    ]
    bodies = [enroll_body(token, f"racer-{i}", camera="rtsp://10.0.0.1/s")[0] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(
            pool.map(
                lambda b: httpx.post(f"{cloud.url}/api/v1/enroll", json=b, timeout=30).status_code, bodies
            )
        )
    assert codes == [200, 409, 409, 409, 409, 409]
    engine = cloud.engine()
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Device)).one() == 1
    engine.dispose()


def test_an_admin_revokes_an_unused_token_and_enrollment_refuses_it(cloud: CloudServer) -> None:
    operator, admin = cloud.user_key(), cloud.user_key("root", "admin")
    claims = f"{cloud.url}/api/v1/claim-tokens"
    token = httpx.post(claims, json={"ward": "ben-nghe"}, headers=auth(operator)).json()["token"]
    (listed,) = httpx.get(claims, headers=auth(admin)).json()
    revoke = f"{claims}/{listed['ref']}/revoke"
    assert httpx.post(revoke, headers=auth(operator)).status_code == 403  # administrators only
    assert httpx.post(f"{claims}/0123456789ab/revoke", headers=auth(admin)).status_code == 404
    resp = httpx.post(revoke, headers=auth(admin))
    assert resp.status_code == 200 and resp.json()["status"] == "revoked"
    assert resp.json()["revoked_by"] == "user:root"
    assert httpx.post(revoke, headers=auth(admin)).status_code == 409
    body, _ = enroll_body(token, "dev-1", camera="rtsp://10.0.0.1/s")
    resp = httpx.post(f"{cloud.url}/api/v1/enroll", json=body, headers={"Accept-Language": "en"})
    assert resp.status_code == 410 and "revoked" in resp.json()["detail"]
    resp = httpx.post(f"{cloud.url}/api/v1/enroll", json=body)  # the deployment's language
    assert resp.status_code == 410 and "đã bị thu hồi" in resp.json()["detail"]
    engine = cloud.engine()
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Device)).one() == 0  # nothing enrolled
    engine.dispose()
