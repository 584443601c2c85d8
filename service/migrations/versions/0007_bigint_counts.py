"""64-bit job token counts and file sizes on Postgres (SQLite integers already are)

A job past 2**31 trained tokens, or a file past 2 GiB, overflowed Postgres's 32-bit INTEGER
when its row was written.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 12:15:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (("jobs", "trained_tokens", True), ("files", "bytes", False))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite stores any INTEGER in up to 8 bytes
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=nullable
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=nullable
        )
