"""route lookup

A table of routing polygons pre-split with ST_Subdivide, GiST-indexed, for the PostGIS engine.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:02:43.315366
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_geospatial_table('route_lookup',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('layer', sa.String(length=16), nullable=False),
    sa.Column('ref_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('geom', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_route_lookup_county_code_digits')),
    sa.CheckConstraint("layer IN ('admin_unit', 'grid_cell', 'jurisdiction')", name=op.f('ck_route_lookup_layer_allowed')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_lookup'))
    )
    op.create_geospatial_index('idx_route_lookup_geom', 'route_lookup', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_route_lookup_county_code', 'route_lookup', ['county_code'], unique=False)
    op.create_index('ix_route_lookup_layer_ref', 'route_lookup', ['layer', 'ref_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_route_lookup_layer_ref', table_name='route_lookup')
    op.drop_index('ix_route_lookup_county_code', table_name='route_lookup')
    op.drop_geospatial_index('idx_route_lookup_geom', table_name='route_lookup', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('route_lookup')
