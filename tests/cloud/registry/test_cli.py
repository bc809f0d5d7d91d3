"""The registry commands under `matthan cloud`, and their old `matthan provision` names for one release."""

from pathlib import Path

import pytest
from sqlmodel import Session, select

from cloud.db import make_engine
from cloud.models import ClaimToken
from matthan.cli import main


def _tokens(db: str) -> list[ClaimToken]:
    engine = make_engine(db)
    with Session(engine) as s:
        rows = list(s.exec(select(ClaimToken)))
    engine.dispose()
    return rows


def test_cloud_claim_issues_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert main(["cloud", "claim", "--db", db, "--ward", "ben-nghe", "--device-id", "bn-01"]) == 0
    out, err = capsys.readouterr()
    assert "claim token for ward ben-nghe, device bn-01" in out and "deprecated" not in err
    assert [(t.ward, t.device_id) for t in _tokens(db)] == [("ben-nghe", "bn-01")]


def test_the_old_provision_name_still_works_with_a_one_line_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert main(["provision", "claim", "--db", db, "--ward", "ben-nghe"]) == 0
    out, err = capsys.readouterr()
    assert "claim token for ward ben-nghe" in out
    assert err.count("\n") == 1 and "use 'matthan cloud claim'" in err
    assert len(_tokens(db)) == 1


@pytest.mark.parametrize("command", ["claim", "import", "revoke", "broker-config"])
def test_help_names_the_new_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["cloud", "--help"])
    assert command in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["provision", "--help"])
    assert f"use 'matthan cloud {command}'" in " ".join(capsys.readouterr().out.split())
