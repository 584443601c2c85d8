"""Jobs: a validation file and result files

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("validation_file", sa.String(64), nullable=True))
        batch.add_column(sa.Column("result_files", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result_files")
        batch.drop_column("validation_file")
