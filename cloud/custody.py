"""The audit log as a hash chain: append-only and tamper-evident (chain of custody).

Each entry carries its position (`seq`), the previous entry's hash and its own:
`hash = SHA-256(canonical JSON of {seq, at, who, action, target, detail, prev})`. Changing an
entry breaks its own hash; deleting one leaves a gap in `seq` and breaks the next entry's `prev`;
cutting the tail leaves the head row (`audit_head`) pointing past the last entry. `verify_chain`
names the first entry where any of this shows.

Appends are serialized by the head row: the first statement of an append is
`UPDATE audit_head SET seq = seq + 1 … RETURNING seq, hash`. On PostgreSQL that takes the row lock
until commit, and a concurrent appender waits, then reads the committed head (READ COMMITTED
re-reads an updated row); on SQLite it makes the transaction the database's single writer. Entries
are written in the same transaction as the change they record, so an entry exists if and only if
the change does.

The chain proves the log was not edited by anyone who cannot also recompute every later hash and
the head. Against a database administrator who can, publish the head now and then
(`matthan cloud audit verify` prints it): an anchored head cannot be rewritten unnoticed.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from cloud.models import AuditHead, AuditLog

GENESIS = "0" * 64
HEAD_ID = 1


def normalise_detail(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the JSON column gives back: the form that is hashed (datetimes and the like as text)."""
    if not detail:
        return None
    out: dict[str, Any] = json.loads(json.dumps(detail, default=str))
    return out


def entry_hash(
    seq: int,
    at: datetime,
    who: str,
    action: str,
    target: str | None,
    detail: dict[str, Any] | None,
    prev: str,
) -> str:
    """SHA-256 of the entry's canonical JSON (sorted keys, no spaces, UTC microseconds), which
    names the previous entry's hash: the link of the chain."""
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "who": who,
        "action": action,
        "target": target,
        "detail": detail,
        "prev": prev,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


def append(
    session: Session, at: datetime, who: str, action: str, target: str | None, detail: dict[str, Any] | None
) -> AuditLog:
    """Chain one entry onto the log in the session's transaction (the caller commits)."""
    at = at.replace(microsecond=at.microsecond)  # the database keeps microseconds; so do we
    detail = normalise_detail(detail)
    # The change this entry records is written first, so every transaction takes its row locks
    # before the head's, in the same order: no deadlock between an audited change and the ingest.
    session.flush()
    row = session.execute(
        text("UPDATE audit_head SET seq = seq + 1 WHERE id = :id RETURNING seq, hash"), {"id": HEAD_ID}
    ).one()
    seq, prev = int(row[0]), str(row[1])
    digest = entry_hash(seq, at, who, action, target, detail, prev)
    entry = AuditLog(
        at=at, who=who, action=action, target=target, detail=detail, seq=seq, prev_hash=prev, hash=digest
    )
    session.add(entry)
    session.execute(text("UPDATE audit_head SET hash = :h WHERE id = :id"), {"h": digest, "id": HEAD_ID})
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_seq: int
    head_hash: str
    problem: str | None  # the first break, named; None when the chain holds

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the log in `seq` order and recompute every hash; stop at the first break."""
    head = session.get(AuditHead, HEAD_ID)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    unchained = session.exec(select(AuditLog.id).where(col(AuditLog.seq).is_(None)).limit(1)).first()
    if unchained is not None:
        return ChainReport(0, head_seq, head_hash, f"entry id {unchained} is outside the chain (no seq)")
    expected, prev, count = 1, GENESIS, 0
    after = 0
    while True:
        rows = session.exec(
            select(AuditLog).where(col(AuditLog.seq) > after).order_by(col(AuditLog.seq)).limit(batch)
        ).all()
        if not rows:
            break
        for r in rows:
            assert r.seq is not None
            if r.seq != expected:
                return _broken(
                    count,
                    head_seq,
                    head_hash,
                    f"entry #{expected} is missing (deleted); the next is #{r.seq}",
                )
            if r.prev_hash != prev:
                return _broken(
                    count, head_seq, head_hash,
                    f"entry #{r.seq - 1} was altered or replaced: entry #{r.seq} does not link to it",
                )  # fmt: skip
            want = entry_hash(r.seq, r.at, r.who, r.action, r.target, r.detail, prev)
            if r.hash != want:
                return _broken(
                    count, head_seq, head_hash,
                    f"entry #{r.seq} (id {r.id}, {r.action} by {r.who} at {r.at:%Y-%m-%d %H:%M:%S})"
                    " was altered: its content no longer matches its hash",
                )  # fmt: skip
            prev, expected, count, after = want, expected + 1, count + 1, r.seq
    if head_seq != count:
        return _broken(
            count, head_seq, head_hash, f"entries #{count + 1}..#{head_seq} are missing (the log was cut)"
        )
    if head_hash != prev:
        return _broken(
            count, head_seq, head_hash, f"the head does not match entry #{count}: the last entry was altered"
        )
    return ChainReport(count, head_seq, head_hash, None)


def _broken(count: int, head_seq: int, head_hash: str, problem: str) -> ChainReport:
    return ChainReport(count, head_seq, head_hash, problem)
