"""The console in its users' language, over HTTP: the deployment's language, a user's own choice
(stored, changed on the account page), the browser's when the deployment says "auto", and the
locale's dates and numbers. The real app on real SQLite."""

import html
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from cloud import auth
from cloud.app import create_app
from cloud.models import AlertRow, AuditLog, Device, User
from cloud.settings import Settings
from matthan_wire.timeutil import utc_now
from tests.cloud.console.test_pages import PASSWORD, _login

STARTED = utc_now().replace(microsecond=0) - timedelta(minutes=3)


def _app(tmp_path: Path, language: str) -> TestClient:
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'cloud.db'}", broker_url=None, clips=str(tmp_path / "clips"),
        secret_key="i18n-test-secret-key-0123456789", language=language,
    )  # fmt: skip
    return TestClient(create_app(settings))


def _seed(client: TestClient) -> None:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        auth.create_user(s, "lan", "operator", PASSWORD)
        auth.create_user(s, "mai", "operator", PASSWORD)
        s.add(Device(id="dev-bn", ward="ben-nghe", online=True, last_seen=utc_now()))
        s.add(
            AlertRow(
                event_id="ev-1", device_id="dev-bn", camera_id="cam-a", ward="ben-nghe", zone="plaza",
                rule="plaza.crowd", type="crowd", category="security_order", object_count=12, score=0.875,
                started_at=STARTED,
            )
        )  # fmt: skip
        s.commit()
        mai = s.exec(select(User).where(User.name == "mai")).one()
        mai.language = "en"
        s.commit()


@pytest.fixture
def vi_app(tmp_path: Path) -> Iterator[TestClient]:
    with _app(tmp_path, "vi") as client:
        _seed(client)
        yield client


def _text(page: str) -> str:
    page = re.sub(r"<script.*?</script>", " ", page, flags=re.S)  # the scripts' catalogue JSON has both
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_the_deployment_speaks_vietnamese_by_default(tmp_path: Path) -> None:
    assert Settings(db_url="sqlite://", secret_key="x" * 32).language == "vi"
    with _app(tmp_path, "vi") as client:
        page = client.get("/console/login").text
    assert '<html lang="vi">' in page and "Đăng nhập" in page and "Tên đăng nhập" in page


def test_a_user_without_a_choice_reads_vietnamese_names_states_and_local_numbers(vi_app: TestClient) -> None:
    _login(vi_app, "lan")
    fleet = _text(vi_app.get("/console/fleet").text)
    assert "Tình trạng thiết bị" in fleet and "thiết bị hoạt động" in fleet and "đang hoạt động" in fleet
    alerts = _text(vi_app.get("/console/alerts").text)
    for words in ("Tụ tập đông người", "mới", "Loại cảnh báo", "An ninh trật tự"):
        assert words in alerts, words
    assert "giờ Asia/Ho_Chi_Minh" in alerts  # times are on the district's clock, and say so
    assert STARTED.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%H:%M:%S %d/%m/%Y") in alerts
    assert "Crowd" not in alerts
    one = _text(vi_app.get("/console/alerts/ev-1").text)  # the alert's own page: act, history, place
    for words in ("Tụ tập đông người", "Tiếp nhận", "Đã xử lý", "Báo động sai", "Diễn biến", "12 × "):
        assert words in one, words
    assert "Acknowledge" not in one
    report = _text(vi_app.get("/console/reports").text)
    assert "Cảnh báo theo ngày và theo nhóm" in report and "Tỷ lệ báo động sai theo quy tắc" in report


def test_a_user_who_chose_english_reads_english(vi_app: TestClient) -> None:
    _login(vi_app, "mai")
    alerts = vi_app.get("/console/alerts").text
    assert '<html lang="en">' in alerts
    assert "Crowd gathering" in alerts and "Tụ tập" not in alerts
    one = _text(vi_app.get("/console/alerts/ev-1").text)
    assert "Acknowledge" in one and "History" in one and "Tụ tập" not in one


def test_the_account_page_changes_the_language_and_the_audit_log_says_so(vi_app: TestClient) -> None:
    _login(vi_app, "lan")
    page = vi_app.get("/console/account").text
    assert "Ngôn ngữ giao diện" in page and "Mặc định của hệ thống (Tiếng Việt)" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    r = vi_app.post("/console/account/language", data={"language": "en", "csrf_token": token.group(1)})
    assert r.status_code == 200 and "Saved." in r.text and "Console language" in r.text
    assert "Fleet health" in vi_app.get("/console/fleet").text
    bad = vi_app.post("/console/account/language", data={"language": "fr", "csrf_token": token.group(1)})
    assert bad.status_code == 400
    forged = vi_app.post("/console/account/language", data={"language": "vi", "csrf_token": "forged"})
    assert forged.status_code == 403
    with Session(vi_app.app.state.engine) as s:  # type: ignore[attr-defined]
        assert s.exec(select(User.language).where(User.name == "lan")).one() == "en"
        audit = s.exec(select(AuditLog).where(AuditLog.action == "set_language")).all()
    assert [a.detail for a in audit] == [{"language": "en"}]


@pytest.mark.parametrize(
    "header, expected",
    [
        ("en-US,en;q=0.9", "en"),
        ("vi-VN,vi;q=0.9,en;q=0.5", "vi"),
        ("fr-FR, en;q=0.3", "en"),
        ("fr", "vi"),
        ("", "vi"),
    ],
)
def test_auto_follows_the_browser(tmp_path: Path, header: str, expected: str) -> None:
    with _app(tmp_path, "auto") as client:
        page = client.get("/console/login", headers={"Accept-Language": header}).text
    assert f'<html lang="{expected}">' in page


def test_the_scripts_texts_come_from_the_same_catalogue(vi_app: TestClient) -> None:
    _login(vi_app, "lan")
    page = vi_app.get("/console/alerts").text
    m = re.search(r'<script type="application/json" id="i18n-messages">(.*?)</script>', page, re.S)
    assert m is not None
    messages = json.loads(m.group(1))
    assert messages["Saving…"] == "Đang lưu…"
    assert messages["Add rule"] == "Thêm quy tắc"
    assert all(v for v in messages.values()) and len(messages) > 20


def test_a_refusal_is_explained_in_the_users_language(vi_app: TestClient) -> None:
    _login(vi_app, "lan")
    r = vi_app.get("/console/alerts?since=yesterday", headers={"Accept": "text/html"})
    assert r.status_code == 400
    text = _text(r.text)
    assert "Vui lòng kiểm tra lại yêu cầu" in text and "từ: 'yesterday' không phải ngày giờ hợp lệ" in text
    assert "Quay lại danh sách thiết bị" in text


def test_the_handover_and_a_refused_escalation_page_in_vietnamese(vi_app: TestClient) -> None:
    _login(vi_app, "lan")
    handover = _text(vi_app.get("/console/handover").text)
    assert "Bàn giao ca trực" in handover and "Cảnh báo chưa xử lý xong (cũ nhất trước)" in handover
    assert "Shift handover" not in handover
    refused = vi_app.get("/console/escalation", headers={"Accept": "text/html"})
    assert refused.status_code == 403
    assert "chỉ dành cho quản trị viên" in _text(refused.text)


def test_an_empty_text_stays_empty_not_the_catalogues_header() -> None:
    from matthan import i18n

    assert i18n.translate("vi", "") == "" and "Project-Id-Version" not in i18n.translate("en", "")
