"""Jobs: the version a job asked to train from, and why its parent was chosen

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("requested_parent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("parent_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("parent_reason")
        batch.drop_column("requested_parent")
