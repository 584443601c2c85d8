"""Security: key scopes and names, webhook endpoints, the webhook outbox and its deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys made before scopes existed work inside their tenant; `neuroplast keys create --scope admin`
    # makes an admin key on the service's machine.
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('scope', sa.String(length=16), nullable=False, server_default='member'))
        batch.add_column(sa.Column('name', sa.String(length=64), nullable=True))
    op.create_table(
        'webhook_endpoints',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('tenant_pk', sa.Integer(), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('event_types', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('deleted_at', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['tenant_pk'], ['tenants.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
    )
    op.create_index('ix_webhook_endpoints_tenant_pk', 'webhook_endpoints', ['tenant_pk'])
    op.create_table(
        'webhook_events',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('tenant_pk', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_pk'], ['tenants.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
    )
    op.create_index('ix_webhook_events_tenant_pk', 'webhook_events', ['tenant_pk'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('event_pk', sa.Integer(), nullable=False),
        sa.Column('endpoint_pk', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.Float(), nullable=False),
        sa.Column('last_attempt_at', sa.Integer(), nullable=True),
        sa.Column('response_status', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['event_pk'], ['webhook_events.pk']),
        sa.ForeignKeyConstraint(['endpoint_pk'], ['webhook_endpoints.pk']),
        sa.PrimaryKeyConstraint('pk'),
        sa.UniqueConstraint('id'),
    )
    op.create_index('ix_webhook_deliveries_event_pk', 'webhook_deliveries', ['event_pk'])
    op.create_index('ix_webhook_deliveries_endpoint_pk', 'webhook_deliveries', ['endpoint_pk'])
    op.create_index('ix_webhook_deliveries_status', 'webhook_deliveries', ['status'])
    op.create_index('ix_webhook_deliveries_next_attempt_at', 'webhook_deliveries', ['next_attempt_at'])


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_events')
    op.drop_table('webhook_endpoints')
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('name')
        batch.drop_column('scope')
