"""The API's errors in the requester's language: the user's own setting (API key or console
session), else Accept-Language, else the deployment's. The JSON stays {"detail": text}."""

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from cloud.models import User
from cloud.settings import Settings
from tests.cloud.conftest import add_device, add_user, bearer, running


def _speaks(client: TestClient, name: str, language: str | None) -> None:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        user = s.exec(select(User).where(User.name == name)).one()
        user.language = language
        s.add(user)
        s.commit()


def test_a_vietnamese_user_reads_vietnamese_errors_on_an_english_deployment(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    with running(make_settings(sqlite_url, language="en")) as cloud:
        key = add_user(cloud, "anh", "operator")
        _speaks(cloud, "anh", "vi")
        r = cloud.get("/api/v1/alerts/ev-404", headers=bearer(key))
        assert r.status_code == 404
        assert r.json() == {"detail": "không có cảnh báo ev-404"}  # the shape clients know, translated
        assert r.headers["content-language"] == "vi"
        # A message built of parts: every line's problems translated, the separators kept.
        csv = "site,ward,lat,lon,source,device\nA,Ben Nghe,95,106,,d-1\n"
        r = cloud.post("/api/v1/import", content=csv, headers={**bearer(key), "Content-Type": "text/csv"})
        assert r.status_code == 422
        assert r.json()["detail"] == (
            "chưa nhập dữ liệu nào: dòng 2: phường 'Ben Nghe' không phải mã hợp lệ ([a-z0-9-]); "
            "lat 95.0 nằm ngoài khoảng [-90, 90]; chưa điền nguồn (source)"
        )
        # The sign-in and permission checks too, with their headers kept.
        r = cloud.get("/api/v1/notify/endpoints", headers=bearer(key))
        assert r.status_code == 403 and r.json() == {"detail": "cần vai trò admin"}
        r = cloud.get("/api/v1/alerts", headers={"Accept-Language": "vi"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"detail": "hãy đăng nhập, hoặc gửi Authorization: Bearer <mã truy cập>"}
        # Their own setting wins over what the client asks for.
        r = cloud.get("/api/v1/alerts/ev-404", headers={**bearer(key), "Accept-Language": "en"})
        assert r.json()["detail"] == "không có cảnh báo ev-404"


def test_the_console_session_carries_the_users_language(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    with running(make_settings(sqlite_url, language="en")) as cloud:
        add_user(cloud, "officer", "ward_officer", ward="ben-nghe")
        _speaks(cloud, "officer", "vi")
        r = cloud.post("/api/v1/auth/login", json={"name": "officer", "password": "correct horse battery"})
        assert r.status_code == 200
        r = cloud.get("/api/v1/alerts", params={"ward": "tan-dinh"})
        assert r.status_code == 403 and r.json() == {"detail": "bạn chỉ được xem dữ liệu của phường ben-nghe"}


def test_without_a_setting_accept_language_then_the_deployment_decides(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    with running(make_settings(sqlite_url, language="vi")) as cloud:
        key = add_user(cloud, "ops", "operator")  # no language of their own
        ask = {**bearer(key)}
        assert cloud.get("/api/v1/alerts/x-1", headers=ask).json()["detail"] == "không có cảnh báo x-1"
        ask["Accept-Language"] = "en-GB,en;q=0.9,vi;q=0.5"
        r = cloud.get("/api/v1/alerts/x-1", headers=ask)
        assert r.json()["detail"] == "no alert x-1" and r.headers["content-language"] == "en"
        ask["Accept-Language"] = "fr-FR"  # a language we have no catalogue for: the deployment's
        assert cloud.get("/api/v1/alerts/x-1", headers=ask).json()["detail"] == "không có cảnh báo x-1"
        # A device's answers go to its logs, which are English; unless it asks (the checklist's report).
        token = add_device(cloud, "pi-1", "ben-nghe")
        r = cloud.get("/api/v1/media/x-1/clip", headers=bearer(token))
        assert r.status_code == 404 and r.json()["detail"] == "not stored (yet)"
        r = cloud.get("/api/v1/media/x-1/clip", headers={**bearer(token), "Accept-Language": "vi"})
        assert r.json()["detail"] == "chưa được lưu"
    with running(make_settings(sqlite_url, language="en")) as cloud:
        r = cloud.get("/api/v1/alerts/x-1", headers={**bearer(key), "Accept-Language": "vi-VN"})
        assert r.json()["detail"] == "không có cảnh báo x-1"
        # No principal at all (a box enrolling): the technician's tool asks in its own language.
        r = cloud.post(
            "/api/v1/enroll",
            json={"token": "n" * 16, "device_id": "d-1", "csr": "x" * 120},
            headers={"Accept-Language": "vi"},
        )
        assert r.status_code == 503, r.text
        assert r.json()["detail"].startswith("máy chủ này chưa được cấu hình để đăng ký thiết bị: hãy đặt ")
