"""login attempts

Sign-in attempts, so that rate limiting holds across gunicorn workers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:18:58.532541
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_attempt',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_login_attempt_county_code_digits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempt'))
    )
    op.create_index('ix_login_attempt_county_code', 'login_attempt', ['county_code'], unique=False)
    op.create_index(op.f('ix_login_attempt_ip'), 'login_attempt', ['ip'], unique=False)
    op.create_index('ix_login_attempt_recent', 'login_attempt', ['username', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_login_attempt_recent', table_name='login_attempt')
    op.drop_index(op.f('ix_login_attempt_ip'), table_name='login_attempt')
    op.drop_index('ix_login_attempt_county_code', table_name='login_attempt')
    op.drop_table('login_attempt')
