"""The schema: migrations run on SQLite and PostgreSQL, match the models, and keep UTC."""

from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from cloud.db import insert_ignore, make_engine, migrate
from cloud.models import AlertRow, Ward, table


def test_migrations_create_the_models_schema_and_rerun_cleanly(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # every start runs it; the second time changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree; add a revision: {diff}"


def test_times_come_back_aware_utc_and_duplicates_are_ignored(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ict = timezone(timedelta(hours=7))
    started = datetime(2026, 11, 24, 15, 0, 0, 123000, tzinfo=ict)
    row = {
        "event_id": "e1",
        "device_id": "d1",
        "camera_id": "c1",
        "ward": "w1",
        "rule": "r",
        "type": "crowd",
        "category": "security_order",
        "labels": ["person"],
        "started_at": started,
        "received_at": started,
        "updated_at": started,
        "state": "new",
    }
    with Session(engine) as s:
        insert_ignore(s, table(AlertRow), [row, row], ["event_id"])
        insert_ignore(s, table(AlertRow), [{**row, "rule": "changed"}], ["event_id"])
        s.add(Ward(id="w1"))
        s.commit()
        got = s.exec(select(AlertRow)).all()
        assert len(got) == 1 and got[0].rule == "r"
        assert got[0].started_at == started and got[0].started_at.tzinfo is not None
        assert got[0].started_at.utcoffset() == timedelta(0)
        # Comparisons in queries use the same UTC on both databases.
        later = s.exec(
            select(AlertRow).where(AlertRow.started_at > datetime(2026, 11, 24, 7, 59, tzinfo=UTC))
        )
        assert len(later.all()) == 1
    engine.dispose()
