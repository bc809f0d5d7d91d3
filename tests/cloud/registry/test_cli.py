"""The registry commands under `matthan cloud`, and their old `matthan provision` names for one release."""

from pathlib import Path

import pytest
from sqlmodel import Session, select

from cloud.auth import token_hash
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
    assert (
        main(["--lang", "en", "cloud", "claim", "--db", db, "--ward", "ben-nghe", "--device-id", "bn-01"])
        == 0
    )
    out, err = capsys.readouterr()
    assert "claim token for ward ben-nghe, device bn-01" in out and "deprecated" not in err
    assert [(t.ward, t.device_id) for t in _tokens(db)] == [("ben-nghe", "bn-01")]


def test_the_claim_reads_in_vietnamese_and_its_token_stays_alone_on_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert main(["--lang", "vi", "cloud", "claim", "--db", db, "--ward", "ben-nghe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (stored,) = _tokens(db)
    # Typed or pasted by the technician: the token alone on its line, whatever the language.
    at = next(i for i, line in enumerate(lines) if token_hash(line.removeprefix("  ")) == stored.token_hash)
    assert lines[at - 1] == "mã kích hoạt cho phường ben-nghe"
    assert lines[at + 1].startswith("  hết hạn lúc ") and lines[at + 1].endswith(
        " UTC; chỉ dùng được một lần"
    )


def test_the_old_provision_name_still_works_with_a_one_line_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert main(["--lang", "en", "provision", "claim", "--db", db, "--ward", "ben-nghe"]) == 0
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
