"""versions.promoted_at: when each version last went live, so rollback knows the previous one

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('versions') as batch:
        batch.add_column(sa.Column('promoted_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('versions') as batch:
        batch.drop_column('promoted_at')
