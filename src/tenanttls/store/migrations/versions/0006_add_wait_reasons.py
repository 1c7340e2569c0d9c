"""Add the reason of the last wait to upgrades, so status shows why a tenant waits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows stay NULL: the reason of a wait before this revision is only in the worker's log,
    # and the next step of a waiting tenant records it again.
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wait_reason', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_column('wait_reason')
