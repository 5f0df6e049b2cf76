"""catalogue changes

A worker keeps the routing catalogue (units, agencies, powers, categories, time limits, jurisdictions,
grid cells) in memory and must notice, on the very next report, when another process has changed it.
Statement triggers on those tables add one row per changing transaction to ``catalogue_change``, which
is never updated or deleted: the number of rows a snapshot sees therefore grows with every committed
change and is the catalogue's revision, read with one small count per report. Inserting a row keyed by
the transaction id takes no lock another transaction waits for, so concurrent imports do not queue
behind each other. The trigger also marks the transaction (``gis.catalogue_dirty``): a transaction that
changed the catalogue itself reads it fresh instead of from the shared copy.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables grids.routing.load_catalogue reads.
WATCHED = ("admin_unit", "agency", "power", "category", "time_limit", "jurisdiction", "grid_cell")

MARK_FUNCTION = """
CREATE OR REPLACE FUNCTION catalogue_change_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalogue_change (txid) VALUES (txid_current()) ON CONFLICT (txid) DO NOTHING;
    PERFORM set_config('gis.catalogue_dirty', 'on', true);
    RETURN NULL;
END
$$
"""

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION catalogue_change_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'catalogue_change is append-only: its row count is the catalogue revision';
END
$$
"""


def upgrade() -> None:
    op.create_table('catalogue_change',
    sa.Column('txid', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('txid', name=op.f('pk_catalogue_change'))
    )
    op.execute(MARK_FUNCTION)
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute("CREATE TRIGGER catalogue_change_append_only BEFORE UPDATE OR DELETE ON catalogue_change "
               "FOR EACH ROW EXECUTE FUNCTION catalogue_change_append_only()")
    for table in WATCHED:
        op.execute(f"CREATE TRIGGER catalogue_change_mark AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                   f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION catalogue_change_mark()")


def downgrade() -> None:
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS catalogue_change_mark ON {table}")
    op.execute("DROP FUNCTION IF EXISTS catalogue_change_mark()")
    op.drop_table('catalogue_change')
    op.execute("DROP FUNCTION IF EXISTS catalogue_change_append_only()")
