"""Evaluation: lineage evaluation config, job probes, retention scores, health checks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lineages') as batch:
        batch.add_column(sa.Column('evaluation', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('probes', sa.JSON(), nullable=True))
    op.create_table(
        'retention_scores',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('lineage_pk', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.String(length=64), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['lineage_pk'], ['lineages.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('lineage_pk', 'version', 'job_id'),
    )
    op.create_index('ix_retention_scores_lineage_pk', 'retention_scores', ['lineage_pk'])
    op.create_table(
        'health_checks',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('tenant_pk', sa.Integer(), nullable=False),
        sa.Column('lineage_pk', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('suites', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('started_at', sa.Integer(), nullable=True),
        sa.Column('finished_at', sa.Integer(), nullable=True),
        sa.Column('error', sa.JSON(), nullable=True),
        sa.Column('owner', sa.String(length=128), nullable=True),
        sa.Column('lease_token', sa.String(length=64), nullable=True),
        sa.Column('lease_expires_at', sa.Float(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['lineage_pk'], ['lineages.pk']),
        sa.ForeignKeyConstraint(['tenant_pk'], ['tenants.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
    )
    op.create_index('ix_health_checks_status', 'health_checks', ['status'])
    op.create_index('ix_health_checks_tenant_pk', 'health_checks', ['tenant_pk'])
    op.create_index('ix_health_checks_lineage_pk', 'health_checks', ['lineage_pk'])


def downgrade() -> None:
    op.drop_table('health_checks')
    op.drop_table('retention_scores')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('probes')
    with op.batch_alter_table('lineages') as batch:
        batch.drop_column('evaluation')
