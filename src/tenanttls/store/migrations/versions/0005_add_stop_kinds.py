"""Add the kind of stop to upgrades, so the portal stops reading it from the message

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_upgrades = sa.table(
    'upgrades',
    sa.column('tenant_id', sa.String),
    sa.column('state', sa.String),
    sa.column('last_error', sa.Text),
    sa.column('resume_state', sa.String),
    sa.column('stop_kind', sa.String),
)

# The override flags that the portal's phrase rules looked for before --allow-disabled-connector.
_EARLIER_FLAGS = ('--force-backup-overwrite', '--allow-foreign-connector', '--adopt-connector', '--legacy-connector')


def _stop_kind(last_error: str | None, resume_state: str | None) -> str:
    """Return the kind that the portal's phrase rules of this revision give the engine's message.

    The rules are copied rather than imported, so that later changes to the portal leave
    this migration as it ran.
    """
    text = last_error or ''
    if text.startswith('consent is missing'):
        return 'consent'
    names_disabled_flag = '--allow-disabled-connector' in text and not any(flag in text for flag in _EARLIER_FLAGS)
    if names_disabled_flag or (resume_state == 'connector' and 'disabled' in text):
        return 'connector_disabled'
    if 'safety gate' in text:
        return 'safety'
    if 'gave up after' in text:
        return 'gave_up'
    return 'other'


def upgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_kind', sa.String(length=32), nullable=True))

    connection = op.get_bind()
    stopped = connection.execute(
        sa.select(_upgrades.c.tenant_id, _upgrades.c.last_error, _upgrades.c.resume_state)
        .where(_upgrades.c.state == 'needs_attention')
    ).all()
    for row in stopped:
        connection.execute(
            sa.update(_upgrades)
            .where(_upgrades.c.tenant_id == row.tenant_id)
            .values(stop_kind=_stop_kind(row.last_error, row.resume_state))
        )


def downgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_column('stop_kind')
