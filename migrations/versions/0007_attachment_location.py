"""attachment location

Photos are stored without their metadata (gis_platform.photos); where a photo was taken, read from its
GPS tags before they are removed, is kept in ``attachment.location`` (a WGS-84 point, NULL when the photo
said nothing), with the same checks and GiST index as every other geometry column.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKS = {
    'location_valid': 'location IS NULL OR ST_IsValid(location)',
    'location_not_empty': 'location IS NULL OR NOT ST_IsEmpty(location)',
    'location_type': "location IS NULL OR GeometryType(location) IN ('POINT')",
    'location_lonlat_range': 'location IS NULL OR (ST_XMin(location) >= -180 AND ST_XMax(location) <= 180 '
                             'AND ST_YMin(location) >= -90 AND ST_YMax(location) <= 90)',
}


def upgrade() -> None:
    op.add_column('attachment', sa.Column('location', Geometry(
        geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT',
        name='geometry'), nullable=True))
    for name, condition in CHECKS.items():
        op.create_check_constraint(op.f(f'ck_attachment_{name}'), 'attachment', condition)
    op.create_geospatial_index('idx_attachment_location', 'attachment', ['location'], unique=False,
                               postgresql_using='gist', postgresql_ops={})


def downgrade() -> None:
    op.drop_geospatial_index('idx_attachment_location', table_name='attachment', postgresql_using='gist',
                             column_name='location')
    for name in CHECKS:
        op.drop_constraint(op.f(f'ck_attachment_{name}'), 'attachment', type_='check')
    op.drop_column('attachment', 'location')
