"""The technician's checklist in the technician's language; the report for the cloud stays data."""

from collections.abc import Iterator

import pytest

from matthan import i18n
from matthan.i18n import Joined, Msg
from provisioning.check_report import Checked, table

ITEMS = [
    Checked(
        "certificate",
        "pass",
        Msg("%(name)s, valid until %(day)s (%(days)d days)", name="q1-rex-01", day="2027-11-26", days=365),
    ),
    Checked(
        "camera rex-north",
        "warn",
        Joined(
            "; ", [Joined(", ", ["640x360", Msg("%(fps)s fps", fps="12.0")]), Msg("the link drops frames?")]
        ),
    ),
    Checked(
        "broker", "fail", Msg("%(where)s: refused (%(why)s)", where="10.0.0.5:8883", why="Not authorized")
    ),
]


@pytest.fixture
def vietnamese() -> Iterator[None]:
    before = i18n.language()
    i18n.set_language("vi")
    yield
    i18n.set_language(before)


def test_the_checklist_reads_vietnamese_and_its_columns_line_up(vietnamese: None) -> None:
    lines = table(ITEMS).splitlines()
    assert lines[0].split() == ["hạng", "mục", "kết", "quả", "chi", "tiết"]
    assert lines[2].startswith("chứng thư số") and "ĐẠT" in lines[2]
    assert lines[2].endswith("q1-rex-01, còn hiệu lực đến 2027-11-26 (365 ngày)")
    assert lines[3].startswith("camera rex-north") and "LƯU Ý" in lines[3]
    assert lines[3].endswith("640x360, 12.0 khung hình/giây; đường truyền bị mất khung hình?")
    assert lines[4].startswith("máy chủ MQTT") and "KHÔNG ĐẠT" in lines[4]
    assert lines[4].endswith("10.0.0.5:8883: từ chối kết nối (Not authorized)")
    assert lines[-1] == "1 không đạt, 1 lưu ý, 1 đạt"
    # Every result starts in the same column, whatever the length of the Vietnamese names.
    starts = {line.index(mark) for line, mark in zip(lines[2:5], ("ĐẠT", "LƯU Ý", "KHÔNG ĐẠT"), strict=True)}
    assert len(starts) == 1


def test_the_report_for_the_cloud_keeps_english_names_and_details(vietnamese: None) -> None:
    items = [i.item() for i in ITEMS]
    assert [i.name for i in items] == ["certificate", "camera rex-north", "broker"]
    assert items[1].detail == "640x360, 12.0 fps; the link drops frames?"
    assert items[2].model_dump()["detail"] == "10.0.0.5:8883: refused (Not authorized)"


def test_english_is_the_source_language() -> None:
    i18n.set_language("en")
    lines = table(ITEMS).splitlines()
    assert lines[2].endswith("q1-rex-01, valid until 2027-11-26 (365 days)")
    assert lines[-1] == "1 fail, 1 warn, 1 pass"
