"""Jobs: the training objective (OpenAI's job `method`: supervised or dpo)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 12:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("objective", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("objective")
