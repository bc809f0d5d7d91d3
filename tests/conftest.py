"""Fixtures shared by every part's tests: real broker, real databases, real assets."""

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from matthan import assets
from tests.support.broker import Mosquitto

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """The verified models and footage; fetched once (from the mirror when there is one)."""
    dest = assets.default_dir()
    list(assets.fetch(dest))  # from MATTHAN_ASSETS_MIRROR when it names one
    os.environ["MATTHAN_ASSETS_DIR"] = str(dest)
    return dest


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator["object"]:
    started: list[Mosquitto] = []

    def make(extra_config: str = "", **kw: object) -> Mosquitto:
        b = Mosquitto(tmp_path / f"broker{len(started)}", extra_config=extra_config, **kw)  # type: ignore[arg-type]
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'matthan.db'}"


PG_HOST, PG_PORT = "127.0.0.1", 5432


def _pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    # Tests stop processes with SIGINT as a terminal's Ctrl-C does. A suite started in the
    # background by a non-interactive shell (`cmd &`, cron) inherits SIGINT ignored, and so would
    # every process it starts: they would never see the Ctrl-C. Handled here, it is reset to the
    # default in each child at exec, as under a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Missing PostgreSQL skips locally but fails under CI, where the machine has it.
    """
    if not _pg_reachable():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (CI requires it)")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    import psycopg

    name = f"matthan_test_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'matthan.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def test_output() -> Path:
    """Artifacts (screenshots, benchmark tables) that a person may want to look at."""
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    return out
