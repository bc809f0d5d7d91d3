"""The audit log's hash chain on SQLite and PostgreSQL: concurrent appends stay one chain, and the
check names the first altered, deleted or cut entry."""

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from cloud import audit
from cloud.custody import verify_chain
from cloud.db import make_engine, migrate
from matthan.cli import main as matthan_main


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    migrate(e)
    yield e
    e.dispose()


def append_many(engine: Engine, who: str, n: int) -> None:
    for i in range(n):
        with Session(engine) as s:
            audit.record(s, who, "media.view", f"ev-{i % 3}", kind="clip", note="Phường Bến Nghé", n=i)
            s.commit()


def report(engine: Engine):  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return verify_chain(s, batch=7)  # small batches: the walk crosses batch edges


def test_concurrent_appends_make_one_unbroken_chain(engine: Engine) -> None:
    threads = [threading.Thread(target=append_many, args=(engine, f"user:u{t}", 15)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    r = report(engine)
    assert r.ok, r.problem
    assert r.entries == 60 and r.head_seq == 60
    with engine.connect() as c:
        seqs = [row[0] for row in c.execute(text("SELECT seq FROM audit_log ORDER BY seq"))]
    assert seqs == list(range(1, 61))


def test_an_altered_entry_is_named(engine: Engine) -> None:
    append_many(engine, "user:an", 10)
    with engine.begin() as c:
        c.execute(text("UPDATE audit_log SET who = 'user:someone-else' WHERE seq = 4"))
    r = report(engine)
    assert not r.ok and r.problem is not None and r.problem.startswith("entry #4 ") and "altered" in r.problem


def test_an_altered_entry_with_its_hash_recomputed_breaks_the_next_link(engine: Engine) -> None:
    append_many(engine, "user:an", 10)
    with engine.begin() as c:
        c.execute(text("UPDATE audit_log SET who = 'user:x', hash = :h WHERE seq = 6"), {"h": "ab" * 32})
    r = report(engine)
    # Entry 6's own hash no longer matches its content either way: the first break is #6.
    assert not r.ok and r.problem is not None and "#6" in r.problem


@pytest.mark.parametrize(
    ("deletion", "problem"),
    [
        ("seq = 7", "entry #7 is missing (deleted); the next is #8"),
        ("seq > 8", "entries #9..#10 are missing (the log was cut)"),
    ],
    ids=["an entry deleted", "the tail cut"],
)
def test_a_deleted_entry_or_a_cut_tail_is_named(engine: Engine, deletion: str, problem: str) -> None:
    append_many(engine, "user:an", 10)
    with engine.begin() as c:
        c.execute(text(f"DELETE FROM audit_log WHERE {deletion}"))
    assert report(engine).problem == problem


def test_the_command_verifies_and_fails(db_url: str, engine: Engine, capsys) -> None:  # type: ignore[no-untyped-def]
    append_many(engine, "user:an", 3)
    assert matthan_main(["--lang", "en", "cloud", "audit", "verify", "--db", db_url]) == 0
    assert "audit chain intact: 3 entries" in capsys.readouterr().out
    assert matthan_main(["--lang", "vi", "cloud", "audit", "verify", "--db", db_url]) == 0
    assert "chuỗi băm của nhật ký hệ thống nguyên vẹn: 3 mục; mục cuối #" in capsys.readouterr().out
    with engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    assert matthan_main(["cloud", "audit", "verify", "--db", db_url]) == 1
    assert "entry #2 is missing" in capsys.readouterr().err


def test_entries_before_the_migration_are_chained_by_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from alembic.config import Config

    from cloud.db import MIGRATIONS

    e = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with e.begin() as c:
        cfg.attributes["connection"] = c
        command.upgrade(cfg, "0001")
        for i in range(3):
            c.execute(
                text(
                    "INSERT INTO audit_log (at, who, action, target, detail)"
                    " VALUES (:at, 'cli', 'user.add', :t, :d)"
                ),
                {"at": f"2026-11-2{i} 08:00:00.000000", "t": f"u{i}", "d": '{"role": "admin"}'},
            )
    migrate(e)
    append_many(e, "user:an", 2)
    r = report(e)
    e.dispose()
    assert r.ok and r.entries == 5, r.problem
