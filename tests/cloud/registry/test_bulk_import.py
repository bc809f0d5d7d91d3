"""Bulk import: bad rows named by line, nothing half-imported, the CLI's output."""

from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from cloud.db import make_engine, migrate
from cloud.errors import Invalid
from cloud.models import Camera, ClaimToken, DesiredConfigRow, Device
from cloud.registry.bulk_import import parse_csv
from matthan.cli import main

HEADER = "site,ward,lat,lon,source,device\n"


def test_rows_group_by_device_in_file_order() -> None:
    plans = parse_csv(
        "\ufeff" + HEADER.upper() + "A,w1,10.1,106.1,rtsp://a/1,d-1\n\nB,w1,10.2,106.2,rtsp://a/2,d-1\n"
        "C,w2,10.3,106.3,/srv/c.mp4,d-2\n"
    )
    assert [r.source for r in plans["d-1"].rows] == ["rtsp://a/1", "rtsp://a/2"]
    assert plans["d-2"].ward == "w2"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("site,ward,lat\nA,w1,1\n", "line 1: missing column(s) lon, source, device"),
        (HEADER + "A,w1,x,106,rtsp://a,d-1\n", "line 2: lat 'x' is not a number"),
        (HEADER + "A,w1,10,200,rtsp://a,d-1\n", "line 2: lon 200.0 is outside [-180, 180]"),
        (HEADER + "A,w1,10,106,rtsp://a,D_1\n", "line 2: device 'D_1' is not an id"),
        (
            HEADER + "A,w1,10,106,rtsp://a,d-1\nB,w2,10,106,rtsp://b,d-1\n",
            "line 3: device d-1 is in ward w1 on line 2",
        ),
        (HEADER + "A,w1,10,106,rtsp://a,d-1,extra\n", "line 2: more cells than columns"),
        (HEADER + "A,w1,nan,106,rtsp://a,d-1\n", "line 2: lat nan is outside"),
        (HEADER, "no rows to import"),
    ],
)
def test_bad_input_is_named(body: str, message: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_csv(body)
    assert message in str(err.value)


def test_cli_import_is_all_or_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    csv_file = tmp_path / "cameras.csv"
    csv_file.write_text(
        HEADER
        + "Rex,ben-nghe,10.77,106.70,rtsp://u:p@10.0.0.1/a,rex-01\nOpera,ben-nghe,10.77,106.70,,opera-01\n"
    )
    assert main(["cloud", "import", str(csv_file), "--db", db]) == 1
    err = capsys.readouterr().err
    assert "nothing imported: line 3: source is empty" in err and err.count("\n") == 1
    engine = make_engine(db)
    migrate(engine)
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Device)).one() == 0

    csv_file.write_text(HEADER + "Rex,ben-nghe,10.77,106.70,rtsp://u:p@10.0.0.1/a,rex-01\n"
                        "Rex 2,ben-nghe,10.78,106.71,rtsp://u:p@10.0.0.2/a,rex-01\n"
                        "Opera,ben-nghe,10.776,106.703,rtsp://10.0.0.3/a,opera-01\n")  # fmt: skip
    assert main(["--lang", "en", "cloud", "import", str(csv_file), "--db", db]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "device,ward,token,expires_at"
    assert {line.split(",")[0] for line in out.splitlines()[1:]} == {"rex-01", "opera-01"}
    assert "imported 2 device(s), 3 camera(s)" in err
    with Session(engine) as s:
        cams = s.exec(select(Camera).where(Camera.device_id == "rex-01")).all()
        assert sorted((c.id, c.site_name, c.source_redacted) for c in cams) == [
            ("cam-1", "Rex", "rtsp://***@10.0.0.1/a"),
            ("cam-2", "Rex 2", "rtsp://***@10.0.0.2/a"),
        ]
        desired = s.exec(select(DesiredConfigRow).where(DesiredConfigRow.device_id == "rex-01")).one()
        assert [c["source"] for c in desired.body["cameras"]] == [
            "rtsp://u:p@10.0.0.1/a",
            "rtsp://u:p@10.0.0.2/a",
        ]
        assert s.exec(select(func.count()).select_from(ClaimToken)).one() == 2

    # The same device again in another ward is refused, naming the line; nothing changes.
    csv_file.write_text(HEADER + "Rex,da-kao,10.77,106.70,rtsp://10.0.0.9/a,rex-01\n")
    assert main(["cloud", "import", str(csv_file), "--db", db]) == 1
    assert "line 2: device rex-01 is registered in ward ben-nghe" in capsys.readouterr().err
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ClaimToken)).one() == 2
    engine.dispose()


def test_a_vietnamese_site_and_its_address_reach_the_registry_and_the_desired_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    csv_file = tmp_path / "cameras.csv"
    csv_file.write_text(
        "site,address,ward,lat,lon,source,device\n"
        '"Ngã tư Bến Thành","Lê Lợi, phường Bến Thành, Quận 1",ben-thanh,10.7725,106.698,rtsp://10.0.0.1/a,bt-01\n',
        encoding="utf-8",
    )
    assert main(["cloud", "import", str(csv_file), "--db", db]) == 0
    capsys.readouterr()
    engine = make_engine(db)
    with Session(engine) as s:
        cam = s.get(Camera, ("bt-01", "cam-1"))
        assert cam is not None
        assert (cam.site_name, cam.address, cam.lat, cam.lon) == (
            "Ngã tư Bến Thành", "Lê Lợi, phường Bến Thành, Quận 1", 10.7725, 106.698,
        )  # fmt: skip
        desired = s.exec(select(DesiredConfigRow).where(DesiredConfigRow.device_id == "bt-01")).one()
        site = desired.body["cameras"][0]["site"]
        assert site["name"] == "Ngã tư Bến Thành" and site["address"] == "Lê Lợi, phường Bến Thành, Quận 1"
        assert (site["lat"], site["lon"]) == (10.7725, 106.698)
    engine.dispose()
