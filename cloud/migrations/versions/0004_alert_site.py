"""the place on every alert: the camera's address, the alert's site and display names

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("site_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_alert_site_name"), ["site_name"], unique=False)
        batch_op.add_column(
            sa.Column("zone_title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column("rule_title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_column("rule_title")
        batch_op.drop_column("zone_title")
        batch_op.drop_index(batch_op.f("ix_alert_site_name"))
        batch_op.drop_column("site_name")
        batch_op.drop_column("site")
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.drop_column("address")
