"""The technician's checklist in the technician's language; the report for the cloud stays data."""

from collections.abc import Iterator

import pytest

from matthan import i18n
from matthan_wire.enrollment import CheckItem
from provisioning.check import table

ITEMS = [
    CheckItem(name="certificate", status="pass", detail="q1-rex-01, valid until 2027-11-26 (365 days)"),
    CheckItem(name="camera rex-north", status="warn", detail="640x360, 12.0 fps"),
    CheckItem(name="broker", status="fail", detail="10.0.0.5:8883: refused (Not authorized)"),
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
    assert lines[3].startswith("camera rex-north") and "LƯU Ý" in lines[3]
    assert lines[4].startswith("máy chủ MQTT") and "LỖI" in lines[4]
    assert lines[-1] == "1 lỗi, 1 lưu ý, 1 đạt"
    # Every result starts in the same column, whatever the length of the Vietnamese names.
    starts = {line.index(mark) for line, mark in zip(lines[2:5], ("ĐẠT", "LƯU Ý", "LỖI"), strict=True)}
    assert len(starts) == 1
    # The items themselves are unchanged: they are what the cloud's commissioning record keeps.
    assert [i.name for i in ITEMS] == ["certificate", "camera rex-north", "broker"]


def test_english_is_the_source_language() -> None:
    i18n.set_language("en")
    assert table(ITEMS).splitlines()[-1] == "1 fail, 1 warn, 1 pass"
