"""a claim token can be revoked before it is used

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import cloud.dbtypes

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claim_token") as batch:
        batch.add_column(sa.Column("revoked_at", cloud.dbtypes.UtcTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("claim_token") as batch:
        batch.drop_column("revoked_by")
        batch.drop_column("revoked_at")
