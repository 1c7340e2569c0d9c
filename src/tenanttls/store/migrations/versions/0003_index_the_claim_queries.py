"""Index the upgrades that workers claim, and the leases they wait for

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.create_index(
            'ix_upgrades_requested_next_attempt_at', ['requested', 'next_attempt_at', 'tenant_id'], unique=False
        )
        batch_op.create_index('ix_upgrades_lease_expires_at', ['lease_expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_index('ix_upgrades_lease_expires_at')
        batch_op.drop_index('ix_upgrades_requested_next_attempt_at')
