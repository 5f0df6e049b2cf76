"""case followers and notifications

Reporters (and the reporters of merged duplicates) follow a case and are told of its changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:12:03.276194
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('case_follower',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('contact', sa.String(length=100), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_case_follower_county_code_digits')),
    sa.CheckConstraint('user_id IS NOT NULL OR contact IS NOT NULL', name=op.f('ck_case_follower_someone')),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_case_follower_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_case_follower_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_follower')),
    sa.UniqueConstraint('case_id', 'user_id', 'contact', name=op.f('uq_case_follower_case_id_user_id_contact'))
    )
    op.create_index(op.f('ix_case_follower_case_id'), 'case_follower', ['case_id'], unique=False)
    op.create_index('ix_case_follower_county_code', 'case_follower', ['county_code'], unique=False)
    op.create_table('notification',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('contact', sa.String(length=100), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_notification_county_code_digits')),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_notification_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_notification_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification'))
    )
    op.create_index(op.f('ix_notification_case_id'), 'notification', ['case_id'], unique=False)
    op.create_index('ix_notification_county_code', 'notification', ['county_code'], unique=False)
    op.create_index(op.f('ix_notification_user_id'), 'notification', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_notification_user_id'), table_name='notification')
    op.drop_index('ix_notification_county_code', table_name='notification')
    op.drop_index(op.f('ix_notification_case_id'), table_name='notification')
    op.drop_table('notification')
    op.drop_index('ix_case_follower_county_code', table_name='case_follower')
    op.drop_index(op.f('ix_case_follower_case_id'), table_name='case_follower')
    op.drop_table('case_follower')
