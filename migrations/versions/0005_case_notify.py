"""case notify

Announce every inserted or changed case on the ``case_events`` channel, for the live map (api.events).
NOTIFY is delivered at COMMIT, so only committed changes are announced, in commit order; a rolled-back
change is never seen. The payload is a small JSON object (well under PostgreSQL's 8,000-byte limit):
id, case_no, status, county_code, version, op, lon, lat, assigned_agency_id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 11:30:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CASE_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION case_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('case_events', json_build_object(
        'id', NEW.id, 'case_no', NEW.case_no, 'status', NEW.status, 'county_code', NEW.county_code,
        'version', NEW.version, 'op', TG_OP, 'lon', ST_X(NEW.location), 'lat', ST_Y(NEW.location),
        'assigned_agency_id', NEW.assigned_agency_id)::text);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(CASE_NOTIFY_FUNCTION)
    op.execute('CREATE TRIGGER case_notify AFTER INSERT OR UPDATE ON "case" '
               'FOR EACH ROW EXECUTE FUNCTION case_notify()')


def downgrade() -> None:
    op.execute('DROP TRIGGER IF EXISTS case_notify ON "case"')
    op.execute('DROP FUNCTION IF EXISTS case_notify()')
