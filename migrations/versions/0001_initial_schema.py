"""initial schema

Revision ID: 0001
Revises: 
Creates every table of the platform, the extensions it needs, and the trigger that keeps
case events append-only.

Create Date: 2026-11-26 10:35:16.289978
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION case_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_event is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    # The jurisdiction exclusion constraint mixes an integer equality with a range overlap.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_geospatial_table('admin_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('synthetic', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('grid_cell_size_m', sa.Double(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_admin_unit_county_code_digits')),
    sa.CheckConstraint("geom IS NULL OR GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')", name=op.f('ck_admin_unit_geom_type')),
    sa.CheckConstraint("level IN ('county', 'subdistrict', 'town', 'zone')", name=op.f('ck_admin_unit_level_allowed')),
    sa.CheckConstraint('geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)', name=op.f('ck_admin_unit_geom_lonlat_range')),
    sa.CheckConstraint('geom IS NULL OR NOT ST_IsEmpty(geom)', name=op.f('ck_admin_unit_geom_not_empty')),
    sa.CheckConstraint('geom IS NULL OR ST_IsValid(geom)', name=op.f('ck_admin_unit_geom_valid')),
    sa.ForeignKeyConstraint(['parent_id'], ['admin_unit.id'], name=op.f('fk_admin_unit_parent_id_admin_unit'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_unit')),
    sa.UniqueConstraint('county_code', 'code', name=op.f('uq_admin_unit_county_code_code'))
    )
    op.create_geospatial_index('idx_admin_unit_geom', 'admin_unit', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_admin_unit_county_code', 'admin_unit', ['county_code'], unique=False)
    op.create_table('dataset_info',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('licence', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_dataset_info_county_code_digits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_info')),
    sa.UniqueConstraint('county_code', 'name', name=op.f('uq_dataset_info_county_code_name'))
    )
    op.create_index('ix_dataset_info_county_code', 'dataset_info', ['county_code'], unique=False)
    op.create_table('agency',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=150), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('admin_unit_id', sa.Integer(), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('staff', sa.Integer(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_agency_county_code_digits')),
    sa.CheckConstraint("kind IN ('bureau', 'brigade', 'squad', 'dept_team', 'department', 'township_office')", name=op.f('ck_agency_kind_allowed')),
    sa.ForeignKeyConstraint(['admin_unit_id'], ['admin_unit.id'], name=op.f('fk_agency_admin_unit_id_admin_unit'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['parent_id'], ['agency.id'], name=op.f('fk_agency_parent_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agency')),
    sa.UniqueConstraint('county_code', 'code', name=op.f('uq_agency_county_code_code'))
    )
    op.create_index('ix_agency_county_code', 'agency', ['county_code'], unique=False)
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_app_user_county_code_digits')),
    sa.CheckConstraint("role IN ('admin', 'supervisor', 'operator', 'patroller', 'planner', 'liaison')", name=op.f('ck_app_user_role_allowed')),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_app_user_agency_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('county_code', 'username', name=op.f('uq_app_user_county_code_username'))
    )
    op.create_index('ix_app_user_county_code', 'app_user', ['county_code'], unique=False)
    op.create_geospatial_table('grid_cell',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('admin_unit_id', sa.Integer(), nullable=False),
    sa.Column('squad_id', sa.Integer(), nullable=True),
    sa.Column('community', sa.String(length=6), nullable=False),
    sa.Column('area_m2', sa.Double(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_grid_cell_county_code_digits')),
    sa.CheckConstraint("geom IS NULL OR GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')", name=op.f('ck_grid_cell_geom_type')),
    sa.CheckConstraint('area_m2 > 0', name=op.f('ck_grid_cell_area_positive')),
    sa.CheckConstraint('geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)', name=op.f('ck_grid_cell_geom_lonlat_range')),
    sa.CheckConstraint('geom IS NULL OR NOT ST_IsEmpty(geom)', name=op.f('ck_grid_cell_geom_not_empty')),
    sa.CheckConstraint('geom IS NULL OR ST_IsValid(geom)', name=op.f('ck_grid_cell_geom_valid')),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_grid_cell_validity_order')),
    sa.ForeignKeyConstraint(['admin_unit_id'], ['admin_unit.id'], name=op.f('fk_grid_cell_admin_unit_id_admin_unit'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['squad_id'], ['agency.id'], name=op.f('fk_grid_cell_squad_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grid_cell')),
    sa.UniqueConstraint('county_code', 'code', 'valid_from', name=op.f('uq_grid_cell_county_code_code_valid_from'))
    )
    op.create_geospatial_index('idx_grid_cell_geom', 'grid_cell', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_grid_cell_admin_unit_id'), 'grid_cell', ['admin_unit_id'], unique=False)
    op.create_index('ix_grid_cell_county_code', 'grid_cell', ['county_code'], unique=False)
    op.create_index(op.f('ix_grid_cell_squad_id'), 'grid_cell', ['squad_id'], unique=False)
    op.create_geospatial_table('jurisdiction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    postgresql.ExcludeConstraint((sa.column('agency_id'), '='), (sa.text('tstzrange(valid_from, valid_to)'), '&&'), using='gist', name='jurisdiction_no_overlapping_versions'),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_jurisdiction_county_code_digits')),
    sa.CheckConstraint("geom IS NULL OR GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')", name=op.f('ck_jurisdiction_geom_type')),
    sa.CheckConstraint('geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)', name=op.f('ck_jurisdiction_geom_lonlat_range')),
    sa.CheckConstraint('geom IS NULL OR NOT ST_IsEmpty(geom)', name=op.f('ck_jurisdiction_geom_not_empty')),
    sa.CheckConstraint('geom IS NULL OR ST_IsValid(geom)', name=op.f('ck_jurisdiction_geom_valid')),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_jurisdiction_validity_order')),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_jurisdiction_agency_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jurisdiction'))
    )
    op.create_geospatial_index('idx_jurisdiction_geom', 'jurisdiction', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_jurisdiction_agency_id'), 'jurisdiction', ['agency_id'], unique=False)
    op.create_index('ix_jurisdiction_county_code', 'jurisdiction', ['county_code'], unique=False)
    op.create_table('power',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=False),
    sa.Column('power_type', sa.String(length=16), nullable=False),
    sa.Column('exercised_by', sa.String(length=16), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('legal_basis', sa.Text(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_power_county_code_digits')),
    sa.CheckConstraint("exercised_by IN ('bureau', 'department')", name=op.f('ck_power_exercised_by_allowed')),
    sa.CheckConstraint("power_type IN ('penalty', 'coercion', 'inspection')", name=op.f('ck_power_power_type_allowed')),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_power_agency_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_power')),
    sa.UniqueConstraint('county_code', 'code', name=op.f('uq_power_county_code_code'))
    )
    op.create_index(op.f('ix_power_agency_id'), 'power', ['agency_id'], unique=False)
    op.create_index('ix_power_county_code', 'power', ['county_code'], unique=False)
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_api_token_county_code_digits')),
    sa.CheckConstraint("kind IN ('bearer', 'open311')", name=op.f('ck_api_token_kind_allowed')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_api_token_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    op.create_index('ix_api_token_county_code', 'api_token', ['county_code'], unique=False)
    op.create_index(op.f('ix_api_token_user_id'), 'api_token', ['user_id'], unique=False)
    op.create_table('category',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=150), nullable=False),
    sa.Column('event_class', sa.String(length=32), nullable=False),
    sa.Column('theme', sa.String(length=32), nullable=False),
    sa.Column('power_id', sa.Integer(), nullable=False),
    sa.Column('geometry_kind', sa.String(length=16), server_default=sa.text("'point'"), nullable=False),
    sa.Column('dup_radius_m', sa.Double(), server_default=sa.text('50'), nullable=False),
    sa.Column('dup_window_h', sa.Double(), server_default=sa.text('72'), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_category_county_code_digits')),
    sa.CheckConstraint("theme IN ('ten_disorders', 'illegal_operation', 'illegal_structures', 'fume_sites', 'promotion', 'market_supervision', 'municipal')", name=op.f('ck_category_theme_allowed')),
    sa.CheckConstraint('dup_radius_m > 0 AND dup_window_h > 0', name=op.f('ck_category_duplicate_window_positive')),
    sa.ForeignKeyConstraint(['power_id'], ['power.id'], name=op.f('fk_category_power_id_power'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_category')),
    sa.UniqueConstraint('county_code', 'code', name=op.f('uq_category_county_code_code'))
    )
    op.create_index('ix_category_county_code', 'category', ['county_code'], unique=False)
    op.create_index(op.f('ix_category_power_id'), 'category', ['power_id'], unique=False)
    op.create_geospatial_table('fume_site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('licence_no', sa.String(length=64), nullable=True),
    sa.Column('cooking_heads', sa.Integer(), nullable=False),
    sa.Column('size_class', sa.String(length=8), nullable=False),
    sa.Column('purifier_installed', sa.Boolean(), nullable=False),
    sa.Column('purifier_efficiency', sa.Double(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('admin_unit_id', sa.Integer(), nullable=True),
    sa.Column('grid_cell_id', sa.Integer(), nullable=True),
    sa.Column('squad_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_fume_site_county_code_digits')),
    sa.CheckConstraint("geom IS NULL OR GeometryType(geom) IN ('POINT')", name=op.f('ck_fume_site_geom_type')),
    sa.CheckConstraint("size_class IN ('small', 'medium', 'large')", name=op.f('ck_fume_site_size_class_allowed')),
    sa.CheckConstraint('cooking_heads >= 1', name=op.f('ck_fume_site_heads_positive')),
    sa.CheckConstraint('geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)', name=op.f('ck_fume_site_geom_lonlat_range')),
    sa.CheckConstraint('geom IS NULL OR NOT ST_IsEmpty(geom)', name=op.f('ck_fume_site_geom_not_empty')),
    sa.CheckConstraint('geom IS NULL OR ST_IsValid(geom)', name=op.f('ck_fume_site_geom_valid')),
    sa.CheckConstraint('purifier_efficiency IS NULL OR (purifier_efficiency >= 0 AND purifier_efficiency <= 100)', name=op.f('ck_fume_site_efficiency_percent')),
    sa.ForeignKeyConstraint(['admin_unit_id'], ['admin_unit.id'], name=op.f('fk_fume_site_admin_unit_id_admin_unit'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['grid_cell_id'], ['grid_cell.id'], name=op.f('fk_fume_site_grid_cell_id_grid_cell'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['squad_id'], ['agency.id'], name=op.f('fk_fume_site_squad_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fume_site'))
    )
    op.create_geospatial_index('idx_fume_site_geom', 'fume_site', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_fume_site_county_code', 'fume_site', ['county_code'], unique=False)
    op.create_table('grid_cell_patroller',
    sa.Column('grid_cell_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_grid_cell_patroller_county_code_digits')),
    sa.ForeignKeyConstraint(['grid_cell_id'], ['grid_cell.id'], name=op.f('fk_grid_cell_patroller_grid_cell_id_grid_cell'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_grid_cell_patroller_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('grid_cell_id', 'user_id', name=op.f('pk_grid_cell_patroller'))
    )
    op.create_index('ix_grid_cell_patroller_county_code', 'grid_cell_patroller', ['county_code'], unique=False)
    op.create_geospatial_table('case',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('case_no', sa.String(length=32), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default=sa.text("'reported'"), nullable=False),
    sa.Column('urgency', sa.String(length=16), server_default=sa.text("'normal'"), nullable=False),
    sa.Column('description', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('geom', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('coord_system', sa.String(length=16), server_default=sa.text("'wgs84'"), nullable=False),
    sa.Column('coord_original', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('reporter_name', sa.String(length=100), nullable=True),
    sa.Column('reporter_contact', sa.String(length=100), nullable=True),
    sa.Column('admin_unit_id', sa.Integer(), nullable=True),
    sa.Column('grid_cell_id', sa.Integer(), nullable=True),
    sa.Column('owner_agency_id', sa.Integer(), nullable=True),
    sa.Column('assigned_agency_id', sa.Integer(), nullable=True),
    sa.Column('near_boundary', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('fallback_township', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('routing', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('merged_into_id', sa.BigInteger(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('external_ref', sa.String(length=64), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('extended_hours', sa.Numeric(precision=8, scale=2), server_default=sa.text('0'), nullable=False),
    sa.Column('rework_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('evaluation', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("coord_system IN ('wgs84', 'gcj02', 'bd09', 'cgcs2000')", name=op.f('ck_case_coord_system_allowed')),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_case_county_code_digits')),
    sa.CheckConstraint("geom IS NULL OR GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON')", name=op.f('ck_case_geom_type')),
    sa.CheckConstraint("location IS NULL OR GeometryType(location) IN ('POINT')", name=op.f('ck_case_location_type')),
    sa.CheckConstraint("source IN ('patroller', 'citizen', 'hotline', 'video', 'referral')", name=op.f('ck_case_source_allowed')),
    sa.CheckConstraint("status IN ('reported', 'filed', 'cancelled', 'dispatched', 'accepted', 'returned', 'handled', 'closed', 'evaluated', 'deferred', 'merged')", name=op.f('ck_case_status_allowed')),
    sa.CheckConstraint("urgency IN ('normal', 'urgent', 'emergency')", name=op.f('ck_case_urgency_allowed')),
    sa.CheckConstraint('evaluation IS NULL OR evaluation BETWEEN 1 AND 5', name=op.f('ck_case_evaluation_range')),
    sa.CheckConstraint('geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)', name=op.f('ck_case_geom_lonlat_range')),
    sa.CheckConstraint('geom IS NULL OR NOT ST_IsEmpty(geom)', name=op.f('ck_case_geom_not_empty')),
    sa.CheckConstraint('geom IS NULL OR ST_IsValid(geom)', name=op.f('ck_case_geom_valid')),
    sa.CheckConstraint('location IS NULL OR (ST_XMin(location) >= -180 AND ST_XMax(location) <= 180 AND ST_YMin(location) >= -90 AND ST_YMax(location) <= 90)', name=op.f('ck_case_location_lonlat_range')),
    sa.CheckConstraint('location IS NULL OR NOT ST_IsEmpty(location)', name=op.f('ck_case_location_not_empty')),
    sa.CheckConstraint('location IS NULL OR ST_IsValid(location)', name=op.f('ck_case_location_valid')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_case_version_positive')),
    sa.ForeignKeyConstraint(['admin_unit_id'], ['admin_unit.id'], name=op.f('fk_case_admin_unit_id_admin_unit'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['assigned_agency_id'], ['agency.id'], name=op.f('fk_case_assigned_agency_id_agency'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['category_id'], ['category.id'], name=op.f('fk_case_category_id_category'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['grid_cell_id'], ['grid_cell.id'], name=op.f('fk_case_grid_cell_id_grid_cell'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['merged_into_id'], ['case.id'], name=op.f('fk_case_merged_into_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['owner_agency_id'], ['agency.id'], name=op.f('fk_case_owner_agency_id_agency'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['reporter_id'], ['app_user.id'], name=op.f('fk_case_reporter_id_app_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case')),
    sa.UniqueConstraint('county_code', 'case_no', name=op.f('uq_case_county_code_case_no'))
    )
    op.create_geospatial_index('idx_case_geom', 'case', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_index('idx_case_location', 'case', ['location'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_case_admin_unit_id'), 'case', ['admin_unit_id'], unique=False)
    op.create_index(op.f('ix_case_assigned_agency_id'), 'case', ['assigned_agency_id'], unique=False)
    op.create_index(op.f('ix_case_category_id'), 'case', ['category_id'], unique=False)
    op.create_index('ix_case_county_status', 'case', ['county_code', 'status'], unique=False)
    op.create_index(op.f('ix_case_grid_cell_id'), 'case', ['grid_cell_id'], unique=False)
    op.create_index('ix_case_reported_at', 'case', ['reported_at'], unique=False)
    op.create_index('uq_case_idempotency', 'case', ['county_code', 'idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.create_table('time_limit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('working_hours', sa.Numeric(precision=8, scale=2), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_time_limit_county_code_digits')),
    sa.CheckConstraint("urgency IN ('normal', 'urgent', 'emergency')", name=op.f('ck_time_limit_urgency_allowed')),
    sa.CheckConstraint('working_hours > 0', name=op.f('ck_time_limit_hours_positive')),
    sa.ForeignKeyConstraint(['category_id'], ['category.id'], name=op.f('fk_time_limit_category_id_category'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_time_limit')),
    sa.UniqueConstraint('category_id', 'urgency', name=op.f('uq_time_limit_category_id_urgency'))
    )
    op.create_index('ix_time_limit_county_code', 'time_limit', ['county_code'], unique=False)
    op.create_geospatial_table('case_event',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_role', sa.String(length=16), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('geom', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_case_event_county_code_digits')),
    sa.CheckConstraint("from_status IS NULL OR from_status IN ('reported', 'filed', 'cancelled', 'dispatched', 'accepted', 'returned', 'handled', 'closed', 'evaluated', 'deferred', 'merged')", name=op.f('ck_case_event_from_status_allowed')),
    sa.CheckConstraint("geom IS NULL OR GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON')", name=op.f('ck_case_event_geom_type')),
    sa.CheckConstraint("to_status IN ('reported', 'filed', 'cancelled', 'dispatched', 'accepted', 'returned', 'handled', 'closed', 'evaluated', 'deferred', 'merged')", name=op.f('ck_case_event_to_status_allowed')),
    sa.CheckConstraint('geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)', name=op.f('ck_case_event_geom_lonlat_range')),
    sa.CheckConstraint('geom IS NULL OR NOT ST_IsEmpty(geom)', name=op.f('ck_case_event_geom_not_empty')),
    sa.CheckConstraint('geom IS NULL OR ST_IsValid(geom)', name=op.f('ck_case_event_geom_valid')),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], name=op.f('fk_case_event_actor_id_app_user'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_case_event_case_id_case'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_event')),
    sa.UniqueConstraint('case_id', 'seq', name=op.f('uq_case_event_case_id_seq'))
    )
    op.create_geospatial_index('idx_case_event_geom', 'case_event', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_case_event_case_id'), 'case_event', ['case_id'], unique=False)
    op.create_index('ix_case_event_county_code', 'case_event', ['county_code'], unique=False)
    op.create_table('coordination_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('from_agency_id', sa.Integer(), nullable=False),
    sa.Column('to_agency_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('answered_by', sa.Integer(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_coordination_request_county_code_digits')),
    sa.CheckConstraint("kind IN ('determination', 'appraisal', 'advice', 'hazard_notice')", name=op.f('ck_coordination_request_kind_allowed')),
    sa.CheckConstraint("status IN ('sent', 'received', 'answered', 'closed')", name=op.f('ck_coordination_request_status_allowed')),
    sa.ForeignKeyConstraint(['answered_by'], ['app_user.id'], name=op.f('fk_coordination_request_answered_by_app_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_coordination_request_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['from_agency_id'], ['agency.id'], name=op.f('fk_coordination_request_from_agency_id_agency'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['to_agency_id'], ['agency.id'], name=op.f('fk_coordination_request_to_agency_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coordination_request'))
    )
    op.create_index('ix_coordination_request_county_code', 'coordination_request', ['county_code'], unique=False)
    op.create_index(op.f('ix_coordination_request_from_agency_id'), 'coordination_request', ['from_agency_id'], unique=False)
    op.create_index(op.f('ix_coordination_request_to_agency_id'), 'coordination_request', ['to_agency_id'], unique=False)
    op.create_table('fume_inspection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('inspected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('inspector_id', sa.Integer(), nullable=True),
    sa.Column('concentration_mg_m3', sa.Double(), nullable=False),
    sa.Column('limit_mg_m3', sa.Double(), nullable=False),
    sa.Column('purifier_efficiency_measured', sa.Double(), nullable=True),
    sa.Column('exceeded', sa.Boolean(), nullable=False),
    sa.Column('penalty_case_id', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_fume_inspection_county_code_digits')),
    sa.CheckConstraint('concentration_mg_m3 >= 0 AND limit_mg_m3 > 0', name=op.f('ck_fume_inspection_measurements_positive')),
    sa.ForeignKeyConstraint(['inspector_id'], ['app_user.id'], name=op.f('fk_fume_inspection_inspector_id_app_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['penalty_case_id'], ['case.id'], name=op.f('fk_fume_inspection_penalty_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['site_id'], ['fume_site.id'], name=op.f('fk_fume_inspection_site_id_fume_site'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fume_inspection'))
    )
    op.create_index('ix_fume_inspection_county_code', 'fume_inspection', ['county_code'], unique=False)
    op.create_index(op.f('ix_fume_inspection_site_id'), 'fume_inspection', ['site_id'], unique=False)
    op.create_geospatial_table('hotline_ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('external_no', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reply_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_hotline_ticket_county_code_digits')),
    sa.CheckConstraint("geom IS NULL OR GeometryType(geom) IN ('POINT')", name=op.f('ck_hotline_ticket_geom_type')),
    sa.CheckConstraint("status IN ('open', 'replied', 'closed')", name=op.f('ck_hotline_ticket_status_allowed')),
    sa.CheckConstraint('geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)', name=op.f('ck_hotline_ticket_geom_lonlat_range')),
    sa.CheckConstraint('geom IS NULL OR NOT ST_IsEmpty(geom)', name=op.f('ck_hotline_ticket_geom_not_empty')),
    sa.CheckConstraint('geom IS NULL OR ST_IsValid(geom)', name=op.f('ck_hotline_ticket_geom_valid')),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_hotline_ticket_case_id_case'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hotline_ticket')),
    sa.UniqueConstraint('county_code', 'external_no', name=op.f('uq_hotline_ticket_county_code_external_no'))
    )
    op.create_geospatial_index('idx_hotline_ticket_geom', 'hotline_ticket', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_hotline_ticket_case_id'), 'hotline_ticket', ['case_id'], unique=False)
    op.create_index('ix_hotline_ticket_county_code', 'hotline_ticket', ['county_code'], unique=False)
    op.create_geospatial_table('illegal_structure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('builder', sa.String(length=100), nullable=True),
    sa.Column('footprint', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('area_m2', sa.Double(), nullable=False),
    sa.Column('stage', sa.String(length=24), nullable=False),
    sa.Column('discovered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('order_served_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('demolished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('admin_unit_id', sa.Integer(), nullable=True),
    sa.Column('squad_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_illegal_structure_county_code_digits')),
    sa.CheckConstraint("footprint IS NULL OR GeometryType(footprint) IN ('POLYGON', 'MULTIPOLYGON')", name=op.f('ck_illegal_structure_footprint_type')),
    sa.CheckConstraint("stage IN ('discovered', 'filed', 'order_served', 'self_demolished', 'forced_demolished', 'closed')", name=op.f('ck_illegal_structure_stage_allowed')),
    sa.CheckConstraint('area_m2 > 0', name=op.f('ck_illegal_structure_area_positive')),
    sa.CheckConstraint('footprint IS NULL OR (ST_XMin(footprint) >= -180 AND ST_XMax(footprint) <= 180 AND ST_YMin(footprint) >= -90 AND ST_YMax(footprint) <= 90)', name=op.f('ck_illegal_structure_footprint_lonlat_range')),
    sa.CheckConstraint('footprint IS NULL OR NOT ST_IsEmpty(footprint)', name=op.f('ck_illegal_structure_footprint_not_empty')),
    sa.CheckConstraint('footprint IS NULL OR ST_IsValid(footprint)', name=op.f('ck_illegal_structure_footprint_valid')),
    sa.ForeignKeyConstraint(['admin_unit_id'], ['admin_unit.id'], name=op.f('fk_illegal_structure_admin_unit_id_admin_unit'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_illegal_structure_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['squad_id'], ['agency.id'], name=op.f('fk_illegal_structure_squad_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_illegal_structure'))
    )
    op.create_geospatial_index('idx_illegal_structure_footprint', 'illegal_structure', ['footprint'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_illegal_structure_case_id'), 'illegal_structure', ['case_id'], unique=False)
    op.create_index('ix_illegal_structure_county_code', 'illegal_structure', ['county_code'], unique=False)
    op.create_table('referral',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('from_agency_id', sa.Integer(), nullable=False),
    sa.Column('to_agency_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=True),
    sa.Column('clue', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('referred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enforced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fed_back_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('feedback', sa.Text(), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_referral_county_code_digits')),
    sa.CheckConstraint("status IN ('referred', 'accepted', 'enforced', 'fed_back', 'closed')", name=op.f('ck_referral_status_allowed')),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_referral_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['from_agency_id'], ['agency.id'], name=op.f('fk_referral_from_agency_id_agency'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['to_agency_id'], ['agency.id'], name=op.f('fk_referral_to_agency_id_agency'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral'))
    )
    op.create_index('ix_referral_county_code', 'referral', ['county_code'], unique=False)
    op.create_index(op.f('ix_referral_from_agency_id'), 'referral', ['from_agency_id'], unique=False)
    op.create_index(op.f('ix_referral_to_agency_id'), 'referral', ['to_agency_id'], unique=False)
    op.create_table('seized_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('seized_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_seized_item_county_code_digits')),
    sa.CheckConstraint("status IN ('held', 'returned', 'confiscated')", name=op.f('ck_seized_item_status_allowed')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_seized_item_qty_positive')),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_seized_item_case_id_case'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seized_item'))
    )
    op.create_index(op.f('ix_seized_item_case_id'), 'seized_item', ['case_id'], unique=False)
    op.create_index('ix_seized_item_county_code', 'seized_item', ['county_code'], unique=False)
    op.create_table('attachment',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=True),
    sa.Column('stage', sa.String(length=8), server_default=sa.text("'before'"), nullable=False),
    sa.Column('stored_name', sa.String(length=80), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=True),
    sa.Column('mime_type', sa.String(length=32), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("county_code ~ '^[0-9]{6}$'", name=op.f('ck_attachment_county_code_digits')),
    sa.CheckConstraint("mime_type IN ('image/jpeg', 'image/png', 'image/webp')", name=op.f('ck_attachment_mime_type_allowed')),
    sa.CheckConstraint("stage IN ('before', 'after', 'other')", name=op.f('ck_attachment_stage_allowed')),
    sa.CheckConstraint('size_bytes > 0', name=op.f('ck_attachment_size_positive')),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_attachment_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['event_id'], ['case_event.id'], name=op.f('fk_attachment_event_id_case_event'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['uploaded_by'], ['app_user.id'], name=op.f('fk_attachment_uploaded_by_app_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachment')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_attachment_stored_name'))
    )
    op.create_index(op.f('ix_attachment_case_id'), 'attachment', ['case_id'], unique=False)
    op.create_index('ix_attachment_county_code', 'attachment', ['county_code'], unique=False)
    op.execute(APPEND_ONLY_FUNCTION)
    # Events are history: the database itself refuses to rewrite or erase them.
    op.execute(
        "CREATE TRIGGER case_event_no_update_delete BEFORE UPDATE OR DELETE ON case_event "
        "FOR EACH ROW EXECUTE FUNCTION case_event_append_only()"
    )
    op.execute(
        "CREATE TRIGGER case_event_no_truncate BEFORE TRUNCATE ON case_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION case_event_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS case_event_no_truncate ON case_event")
    op.execute("DROP TRIGGER IF EXISTS case_event_no_update_delete ON case_event")
    op.drop_index('ix_attachment_county_code', table_name='attachment')
    op.drop_index(op.f('ix_attachment_case_id'), table_name='attachment')
    op.drop_table('attachment')
    op.drop_index('ix_seized_item_county_code', table_name='seized_item')
    op.drop_index(op.f('ix_seized_item_case_id'), table_name='seized_item')
    op.drop_table('seized_item')
    op.drop_index(op.f('ix_referral_to_agency_id'), table_name='referral')
    op.drop_index(op.f('ix_referral_from_agency_id'), table_name='referral')
    op.drop_index('ix_referral_county_code', table_name='referral')
    op.drop_table('referral')
    op.drop_index('ix_illegal_structure_county_code', table_name='illegal_structure')
    op.drop_index(op.f('ix_illegal_structure_case_id'), table_name='illegal_structure')
    op.drop_geospatial_index('idx_illegal_structure_footprint', table_name='illegal_structure', postgresql_using='gist', column_name='footprint')
    op.drop_geospatial_table('illegal_structure')
    op.drop_index('ix_hotline_ticket_county_code', table_name='hotline_ticket')
    op.drop_index(op.f('ix_hotline_ticket_case_id'), table_name='hotline_ticket')
    op.drop_geospatial_index('idx_hotline_ticket_geom', table_name='hotline_ticket', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('hotline_ticket')
    op.drop_index(op.f('ix_fume_inspection_site_id'), table_name='fume_inspection')
    op.drop_index('ix_fume_inspection_county_code', table_name='fume_inspection')
    op.drop_table('fume_inspection')
    op.drop_index(op.f('ix_coordination_request_to_agency_id'), table_name='coordination_request')
    op.drop_index(op.f('ix_coordination_request_from_agency_id'), table_name='coordination_request')
    op.drop_index('ix_coordination_request_county_code', table_name='coordination_request')
    op.drop_table('coordination_request')
    op.drop_index('ix_case_event_county_code', table_name='case_event')
    op.drop_index(op.f('ix_case_event_case_id'), table_name='case_event')
    op.drop_geospatial_index('idx_case_event_geom', table_name='case_event', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('case_event')
    op.drop_index('ix_time_limit_county_code', table_name='time_limit')
    op.drop_table('time_limit')
    op.drop_index('uq_case_idempotency', table_name='case', postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_index('ix_case_reported_at', table_name='case')
    op.drop_index(op.f('ix_case_grid_cell_id'), table_name='case')
    op.drop_index('ix_case_county_status', table_name='case')
    op.drop_index(op.f('ix_case_category_id'), table_name='case')
    op.drop_index(op.f('ix_case_assigned_agency_id'), table_name='case')
    op.drop_index(op.f('ix_case_admin_unit_id'), table_name='case')
    op.drop_geospatial_index('idx_case_location', table_name='case', postgresql_using='gist', column_name='location')
    op.drop_geospatial_index('idx_case_geom', table_name='case', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('case')
    op.drop_index('ix_grid_cell_patroller_county_code', table_name='grid_cell_patroller')
    op.drop_table('grid_cell_patroller')
    op.drop_index('ix_fume_site_county_code', table_name='fume_site')
    op.drop_geospatial_index('idx_fume_site_geom', table_name='fume_site', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('fume_site')
    op.drop_index(op.f('ix_category_power_id'), table_name='category')
    op.drop_index('ix_category_county_code', table_name='category')
    op.drop_table('category')
    op.drop_index(op.f('ix_api_token_user_id'), table_name='api_token')
    op.drop_index('ix_api_token_county_code', table_name='api_token')
    op.drop_table('api_token')
    op.drop_index('ix_power_county_code', table_name='power')
    op.drop_index(op.f('ix_power_agency_id'), table_name='power')
    op.drop_table('power')
    op.drop_index('ix_jurisdiction_county_code', table_name='jurisdiction')
    op.drop_index(op.f('ix_jurisdiction_agency_id'), table_name='jurisdiction')
    op.drop_geospatial_index('idx_jurisdiction_geom', table_name='jurisdiction', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('jurisdiction')
    op.drop_index(op.f('ix_grid_cell_squad_id'), table_name='grid_cell')
    op.drop_index('ix_grid_cell_county_code', table_name='grid_cell')
    op.drop_index(op.f('ix_grid_cell_admin_unit_id'), table_name='grid_cell')
    op.drop_geospatial_index('idx_grid_cell_geom', table_name='grid_cell', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('grid_cell')
    op.drop_index('ix_app_user_county_code', table_name='app_user')
    op.drop_table('app_user')
    op.drop_index('ix_agency_county_code', table_name='agency')
    op.drop_table('agency')
    op.drop_index('ix_dataset_info_county_code', table_name='dataset_info')
    op.drop_table('dataset_info')
    op.drop_index('ix_admin_unit_county_code', table_name='admin_unit')
    op.drop_geospatial_index('idx_admin_unit_geom', table_name='admin_unit', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('admin_unit')
    op.execute("DROP FUNCTION IF EXISTS case_event_append_only()")
