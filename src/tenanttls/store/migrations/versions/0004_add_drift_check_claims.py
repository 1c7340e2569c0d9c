"""Add the drift check's claim time to upgrades, so workers share the drift check

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drift_checked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_upgrades_state_drift_checked_at', ['state', 'drift_checked_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_index('ix_upgrades_state_drift_checked_at')
        batch_op.drop_column('drift_checked_at')
