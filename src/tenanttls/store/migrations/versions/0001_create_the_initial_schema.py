"""Create the initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('acme_accounts',
    sa.Column('directory_url', sa.String(length=512), nullable=False),
    sa.Column('key_ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('account_uri', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('directory_url', name=op.f('pk_acme_accounts'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_tenant_id_at', ['tenant_id', 'at'], unique=False)

    op.create_table('certificates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=True),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('chain_pem', sa.Text(), nullable=False),
    sa.Column('key_ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates'))
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificates_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_certificates_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('connector_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('connector_name', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('connector', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_snapshots'))
    )
    with op.batch_alter_table('connector_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connector_snapshots_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('dns_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('zone', sa.String(length=253), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('rtype', sa.String(length=8), nullable=False),
    sa.Column('ttl', sa.Integer(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dns_records')),
    sa.UniqueConstraint('zone', 'name', 'rtype', 'value', name=op.f('uq_dns_records_zone_name_rtype_value'))
    )
    op.create_table('identities',
    sa.Column('label', sa.String(length=63), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('label', name=op.f('pk_identities')),
    sa.UniqueConstraint('name', name=op.f('uq_identities_name')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_identities_tenant_id'))
    )
    op.create_table('tenants',
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('initial_domain', sa.String(length=253), nullable=False),
    sa.Column('display_name', sa.String(length=256), nullable=False),
    sa.Column('smart_host', sa.String(length=253), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('initial_domain', name=op.f('uq_tenants_initial_domain'))
    )
    op.create_table('relay_assignments',
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('certificate_name', sa.String(length=253), nullable=False),
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_relay_assignments_certificate_id_certificates')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_relay_assignments_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_relay_assignments'))
    )
    op.create_table('upgrades',
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('consent_method', sa.String(length=16), nullable=True),
    sa.Column('consented_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('grace_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('resume_state', sa.String(length=32), nullable=True),
    sa.Column('overrides', sa.JSON(), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('api_calls', sa.Integer(), nullable=False),
    sa.Column('state_entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_upgrades_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_upgrades'))
    )
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.create_index('ix_upgrades_state_next_attempt_at', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_index('ix_upgrades_state_next_attempt_at')

    op.drop_table('upgrades')
    op.drop_table('relay_assignments')
    op.drop_table('tenants')
    op.drop_table('identities')
    op.drop_table('dns_records')
    with op.batch_alter_table('connector_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connector_snapshots_tenant_id'))

    op.drop_table('connector_snapshots')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificates_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_certificates_name'))

    op.drop_table('certificates')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_tenant_id_at')

    op.drop_table('audit_events')
    op.drop_table('acme_accounts')
