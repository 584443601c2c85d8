"""Health panel: gate config, panel results, reports, schedules, training-data screen

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('files') as batch:
        batch.add_column(sa.Column('junk_ratio', sa.Float(), nullable=True))
    with op.batch_alter_table('lineages') as batch:
        batch.add_column(sa.Column('health', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('versions') as batch:
        batch.add_column(sa.Column('report_id', sa.String(length=64), nullable=True))
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('junk_ratio', sa.Float(), nullable=True))
    with op.batch_alter_table('health_checks') as batch:
        batch.add_column(sa.Column('report_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('schedule_id', sa.String(length=64), nullable=True))
    op.create_table(
        'panel_results',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('lineage_pk', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('suite', sa.String(length=32), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['lineage_pk'], ['lineages.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('lineage_pk', 'version', 'suite'),
    )
    op.create_index('ix_panel_results_lineage_pk', 'panel_results', ['lineage_pk'])
    op.create_table(
        'reports',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('tenant_pk', sa.Integer(), nullable=False),
        sa.Column('lineage_pk', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('verdict', sa.String(length=8), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['lineage_pk'], ['lineages.pk']),
        sa.ForeignKeyConstraint(['tenant_pk'], ['tenants.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
    )
    op.create_index('ix_reports_tenant_pk', 'reports', ['tenant_pk'])
    op.create_index('ix_reports_lineage_pk', 'reports', ['lineage_pk'])
    op.create_table(
        'health_check_schedules',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('tenant_pk', sa.Integer(), nullable=False),
        sa.Column('lineage_pk', sa.Integer(), nullable=False),
        sa.Column('cron', sa.String(length=128), nullable=False),
        sa.Column('suites', sa.JSON(), nullable=False),
        sa.Column('next_run_at', sa.Float(), nullable=False),
        sa.Column('last_run_at', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['lineage_pk'], ['lineages.pk']),
        sa.ForeignKeyConstraint(['tenant_pk'], ['tenants.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
    )
    op.create_index('ix_health_check_schedules_tenant_pk', 'health_check_schedules', ['tenant_pk'])
    op.create_index('ix_health_check_schedules_lineage_pk', 'health_check_schedules', ['lineage_pk'])
    op.create_index('ix_health_check_schedules_next_run_at', 'health_check_schedules', ['next_run_at'])


def downgrade() -> None:
    op.drop_table('health_check_schedules')
    op.drop_table('reports')
    op.drop_table('panel_results')
    with op.batch_alter_table('health_checks') as batch:
        batch.drop_column('schedule_id')
        batch.drop_column('report_id')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('junk_ratio')
    with op.batch_alter_table('versions') as batch:
        batch.drop_column('report_id')
    with op.batch_alter_table('lineages') as batch:
        batch.drop_column('health')
    with op.batch_alter_table('files') as batch:
        batch.drop_column('junk_ratio')
