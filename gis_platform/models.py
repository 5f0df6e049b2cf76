"""Typed SQLAlchemy 2 models; every geometry is EPSG:4326 and every row carries its county code.

The county code on each row lets one deployment serve several counties and lets the store be
partitioned or distributed by county later without a schema redesign.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gis_platform import vocab

SRID = 4326

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


def _in(column: str, values: tuple[str, ...], name: str | None = None, nullable: bool = False) -> CheckConstraint:
    """Return a CHECK constraint limiting a text column to a vocabulary."""
    listed = ", ".join(f"'{v}'" for v in values)  # values are code constants, never user input
    expr = f"{column} IN ({listed})"
    if nullable:
        expr = f"{column} IS NULL OR {expr}"
    return CheckConstraint(expr, name=name or f"{column}_allowed")


def _geom_checks(column: str, types: tuple[str, ...]) -> tuple[CheckConstraint, ...]:
    """Return CHECKs that keep invalid, empty, mistyped and out-of-range geometry out."""
    listed = ", ".join(f"'{t}'" for t in types)
    null_ok = f"{column} IS NULL OR "
    return (
        CheckConstraint(f"{null_ok}ST_IsValid({column})", name=f"{column}_valid"),
        CheckConstraint(f"{null_ok}NOT ST_IsEmpty({column})", name=f"{column}_not_empty"),
        CheckConstraint(f"{null_ok}GeometryType({column}) IN ({listed})", name=f"{column}_type"),
        CheckConstraint(
            f"{null_ok}(ST_XMin({column}) >= -180 AND ST_XMax({column}) <= 180 "
            f"AND ST_YMin({column}) >= -90 AND ST_YMax({column}) <= 90)",
            name=f"{column}_lonlat_range",
        ),
    )


def _county() -> Mapped[str]:
    return mapped_column(String(6))


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


POLY = ("POLYGON", "MULTIPOLYGON")
POINT = ("POINT",)


class AdminUnit(Base):
    """County, subdistrict (街道), town (乡镇) or development zone, with a GB/T 2260-style code."""

    __tablename__ = "admin_unit"
    __table_args__ = (
        UniqueConstraint("county_code", "code"),
        _in("level", vocab.ADMIN_LEVELS),
        *_geom_checks("geom", POLY),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    code: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("admin_unit.id", ondelete="RESTRICT"))
    synthetic: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    source: Mapped[str | None] = mapped_column(Text)
    grid_cell_size_m: Mapped[float | None]
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID))

    parent: Mapped[AdminUnit | None] = relationship(remote_side="AdminUnit.id")


class Agency(Base):
    """An enforcement body: the bureau, its brigade and squads, departmental teams and departments."""

    __tablename__ = "agency"
    __table_args__ = (UniqueConstraint("county_code", "code"), _in("kind", vocab.AGENCY_KINDS))

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(150))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"))
    # A township office belongs to its township; a squad may serve several.
    admin_unit_id: Mapped[int | None] = mapped_column(ForeignKey("admin_unit.id", ondelete="RESTRICT"))
    phone: Mapped[str | None] = mapped_column(String(32))
    staff: Mapped[int | None]

    parent: Mapped[Agency | None] = relationship(remote_side="Agency.id")


class Jurisdiction(Base):
    """The area an agency's unit holds, valid over [valid_from, valid_to)."""

    __tablename__ = "jurisdiction"
    __table_args__ = (
        *_geom_checks("geom", POLY),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity_order"),
        # Versions of one agency's jurisdiction never overlap in time (needs btree_gist).
        ExcludeConstraint(
            ("agency_id", "="),
            (func.tstzrange(text("valid_from"), text("valid_to")), "&&"),
            name="jurisdiction_no_overlapping_versions",
            using="gist",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"), index=True)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID))

    agency: Mapped[Agency] = relationship()


class GridCell(Base):
    """A unit grid cell (万米单元网格) with its code, unit, squad and validity period."""

    __tablename__ = "grid_cell"
    __table_args__ = (
        UniqueConstraint("county_code", "code", "valid_from"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity_order"),
        CheckConstraint("area_m2 > 0", name="area_positive"),
        *_geom_checks("geom", POLY),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    code: Mapped[str] = mapped_column(String(20))
    admin_unit_id: Mapped[int] = mapped_column(ForeignKey("admin_unit.id", ondelete="RESTRICT"), index=True)
    squad_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"), index=True)
    community: Mapped[str] = mapped_column(String(6))
    area_m2: Mapped[float]
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID))

    admin_unit: Mapped[AdminUnit] = relationship()
    squad: Mapped[Agency | None] = relationship()
    patrollers: Mapped[list[User]] = relationship(secondary="grid_cell_patroller")


class Power(Base):
    """One entry of the enforcement power list (权限清单) and the agency that exercises it."""

    __tablename__ = "power"
    __table_args__ = (
        UniqueConstraint("county_code", "code"),
        _in("power_type", vocab.POWER_TYPES),
        _in("exercised_by", vocab.POWER_HOLDERS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text)
    domain: Mapped[str] = mapped_column(String(64))
    power_type: Mapped[str] = mapped_column(String(16))
    exercised_by: Mapped[str] = mapped_column(String(16))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"), index=True)
    legal_basis: Mapped[str | None] = mapped_column(Text)

    agency: Mapped[Agency] = relationship()


class Category(Base):
    """A reportable matter: names, event class, theme, and the power that decides its owner."""

    __tablename__ = "category"
    __table_args__ = (
        UniqueConstraint("county_code", "code"),
        _in("theme", vocab.THEMES),
        CheckConstraint("dup_radius_m > 0 AND dup_window_h > 0", name="duplicate_window_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(150))
    event_class: Mapped[str] = mapped_column(String(32))
    theme: Mapped[str] = mapped_column(String(32))
    power_id: Mapped[int] = mapped_column(ForeignKey("power.id", ondelete="RESTRICT"), index=True)
    geometry_kind: Mapped[str] = mapped_column(String(16), server_default=text("'point'"))
    dup_radius_m: Mapped[float] = mapped_column(server_default=text("50"))
    dup_window_h: Mapped[float] = mapped_column(server_default=text("72"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    power: Mapped[Power] = relationship()
    time_limits: Mapped[list[TimeLimit]] = relationship(back_populates="category", cascade="all, delete-orphan")


class TimeLimit(Base):
    """Working-hours limit for handling a case of one category at one urgency."""

    __tablename__ = "time_limit"
    __table_args__ = (
        UniqueConstraint("category_id", "urgency"),
        _in("urgency", vocab.URGENCIES),
        CheckConstraint("working_hours > 0", name="hours_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id", ondelete="CASCADE"))
    urgency: Mapped[str] = mapped_column(String(16))
    working_hours: Mapped[Decimal] = mapped_column(Numeric(8, 2))

    category: Mapped[Category] = relationship(back_populates="time_limits")


class User(Base):
    """A person who signs in, with one role and, for squads and departments, their agency."""

    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("county_code", "username"), _in("role", vocab.ROLES))

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()

    agency: Mapped[Agency | None] = relationship()


class GridCellPatroller(Base):
    """Which patrollers are responsible for which grid cells."""

    __tablename__ = "grid_cell_patroller"

    grid_cell_id: Mapped[int] = mapped_column(ForeignKey("grid_cell.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    county_code: Mapped[str] = _county()


class ApiToken(Base):
    """A bearer token for the API and phones, or an Open311 API key; only its hash is stored."""

    __tablename__ = "api_token"
    __table_args__ = (_in("kind", vocab.TOKEN_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Case(Base):
    """A case file (案卷): where and what, its routing, its place in the closed loop and its clock."""

    __tablename__ = "case"
    __table_args__ = (
        UniqueConstraint("county_code", "case_no"),
        _in("status", vocab.CASE_STATUSES),
        _in("source", vocab.CASE_SOURCES),
        _in("urgency", vocab.URGENCIES),
        _in("coord_system", vocab.COORD_SYSTEMS),
        *_geom_checks("geom", ("POINT", "POLYGON", "MULTIPOLYGON")),
        *_geom_checks("location", POINT),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("evaluation IS NULL OR evaluation BETWEEN 1 AND 5", name="evaluation_range"),
        Index("uq_case_idempotency", "county_code", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_case_county_status", "county_code", "status"),
        Index("ix_case_reported_at", "reported_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    county_code: Mapped[str] = _county()
    case_no: Mapped[str] = mapped_column(String(32))
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id", ondelete="RESTRICT"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'reported'"))
    urgency: Mapped[str] = mapped_column(String(16), server_default=text("'normal'"))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    address: Mapped[str | None] = mapped_column(Text)
    # The reported shape (a point, or a footprint) and one point on it used for routing and maps.
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=SRID))
    location: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID))
    coord_system: Mapped[str] = mapped_column(String(16), server_default=text("'wgs84'"))
    coord_original: Mapped[dict[str, Any] | None]
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    reporter_name: Mapped[str | None] = mapped_column(String(100))
    reporter_contact: Mapped[str | None] = mapped_column(String(100))
    # Routing: where (unit, grid) and who (owner from the power list, assigned unit of that owner).
    admin_unit_id: Mapped[int | None] = mapped_column(ForeignKey("admin_unit.id", ondelete="RESTRICT"), index=True)
    grid_cell_id: Mapped[int | None] = mapped_column(ForeignKey("grid_cell.id", ondelete="RESTRICT"), index=True)
    owner_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"))
    assigned_agency_id: Mapped[int | None] = mapped_column(
        ForeignKey("agency.id", ondelete="RESTRICT"), index=True
    )
    near_boundary: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    fallback_township: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    routing: Mapped[dict[str, Any] | None]
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    external_ref: Mapped[str | None] = mapped_column(String(64))
    reported_at: Mapped[datetime]
    filed_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    handled_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    extended_hours: Mapped[Decimal] = mapped_column(Numeric(8, 2), server_default=text("0"))
    rework_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    evaluation: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    category: Mapped[Category] = relationship()
    admin_unit: Mapped[AdminUnit | None] = relationship()
    grid_cell: Mapped[GridCell | None] = relationship()
    owner_agency: Mapped[Agency | None] = relationship(foreign_keys=[owner_agency_id])
    assigned_agency: Mapped[Agency | None] = relationship(foreign_keys=[assigned_agency_id])

    __mapper_args__ = {"version_id_col": version}


class CaseEvent(Base):
    """One step in a case's history; the database refuses UPDATE and DELETE on this table."""

    __tablename__ = "case_event"
    __table_args__ = (
        UniqueConstraint("case_id", "seq"),
        _in("from_status", vocab.CASE_STATUSES, nullable=True, name="from_status_allowed"),
        _in("to_status", vocab.CASE_STATUSES, name="to_status_allowed"),
        *_geom_checks("geom", ("POINT", "POLYGON", "MULTIPOLYGON")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    county_code: Mapped[str] = _county()
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int]
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="RESTRICT"))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    # Set when the step moved the case: the new shape (the old one is in the previous event or the report).
    geom: Mapped[Any | None] = mapped_column(Geometry("GEOMETRY", srid=SRID))
    data: Mapped[dict[str, Any] | None]


class Attachment(Base):
    """A photo stored under the data directory with a random name; content type checked from bytes.

    The stored file has no metadata (gis_platform.photos); where the photo was taken, from its GPS tags,
    is kept here in ``location``.
    """

    __tablename__ = "attachment"
    __table_args__ = (
        _in("mime_type", ("image/jpeg", "image/png", "image/webp")),
        CheckConstraint("size_bytes > 0", name="size_positive"),
        _in("stage", ("before", "after", "other")),
        *_geom_checks("location", POINT),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    county_code: Mapped[str] = _county()
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("case_event.id", ondelete="RESTRICT"))
    stage: Mapped[str] = mapped_column(String(8), server_default=text("'before'"))
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    original_name: Mapped[str | None] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()
    location: Mapped[Any | None] = mapped_column(Geometry("POINT", srid=SRID))


class IllegalStructure(Base):
    """An illegal structure (违法建设): footprint, area measured in the metric CRS, and its stage."""

    __tablename__ = "illegal_structure"
    __table_args__ = (
        _in("stage", vocab.STRUCTURE_STAGES),
        CheckConstraint("area_m2 > 0", name="area_positive"),
        *_geom_checks("footprint", POLY),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    builder: Mapped[str | None] = mapped_column(String(100))
    footprint: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID))
    area_m2: Mapped[float]
    stage: Mapped[str] = mapped_column(String(24))
    discovered_at: Mapped[datetime]
    order_served_at: Mapped[datetime | None]
    demolished_at: Mapped[datetime | None]
    admin_unit_id: Mapped[int | None] = mapped_column(ForeignKey("admin_unit.id", ondelete="RESTRICT"))
    squad_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"))


class FumeSite(Base):
    """A restaurant premises regulated for cooking fume (餐饮油烟, GB 18483-2001)."""

    __tablename__ = "fume_site"
    __table_args__ = (
        _in("size_class", vocab.FUME_SIZE_CLASSES),
        CheckConstraint("cooking_heads >= 1", name="heads_positive"),
        CheckConstraint(
            "purifier_efficiency IS NULL OR (purifier_efficiency >= 0 AND purifier_efficiency <= 100)",
            name="efficiency_percent",
        ),
        *_geom_checks("geom", POINT),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    licence_no: Mapped[str | None] = mapped_column(String(64))
    cooking_heads: Mapped[int]
    size_class: Mapped[str] = mapped_column(String(8))
    purifier_installed: Mapped[bool] = mapped_column(Boolean)
    purifier_efficiency: Mapped[float | None]
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID))
    admin_unit_id: Mapped[int | None] = mapped_column(ForeignKey("admin_unit.id", ondelete="RESTRICT"))
    grid_cell_id: Mapped[int | None] = mapped_column(ForeignKey("grid_cell.id", ondelete="RESTRICT"))
    squad_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"))


class FumeInspection(Base):
    """One inspection of a fume site: measured concentration against the limit in force."""

    __tablename__ = "fume_inspection"
    __table_args__ = (
        CheckConstraint("concentration_mg_m3 >= 0 AND limit_mg_m3 > 0", name="measurements_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    site_id: Mapped[int] = mapped_column(ForeignKey("fume_site.id", ondelete="RESTRICT"), index=True)
    inspected_at: Mapped[datetime]
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    concentration_mg_m3: Mapped[float]
    limit_mg_m3: Mapped[float]
    purifier_efficiency_measured: Mapped[float | None]
    exceeded: Mapped[bool] = mapped_column(Boolean)
    penalty_case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    note: Mapped[str | None] = mapped_column(Text)


class SeizedItem(Base):
    """A tool or good temporarily seized (暂扣) under a case; later returned or confiscated."""

    __tablename__ = "seized_item"
    __table_args__ = (_in("status", vocab.SEIZED_STATUSES), CheckConstraint("quantity > 0", name="qty_positive"))

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    seized_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    resolved_at: Mapped[datetime | None]


class HotlineTicket(Base):
    """A ticket from a government hotline (12345, 12319 ...), tracked to its reply and closure."""

    __tablename__ = "hotline_ticket"
    __table_args__ = (
        UniqueConstraint("county_code", "external_no"),
        _in("status", vocab.HOTLINE_STATUSES),
        *_geom_checks("geom", POINT),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    external_no: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)
    geom: Mapped[Any | None] = mapped_column(Geometry("POINT", srid=SRID))
    received_at: Mapped[datetime]
    reply_due_at: Mapped[datetime]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    replied_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    reply: Mapped[str | None] = mapped_column(Text)


class CoordinationRequest(Base):
    """A township's enforcement-coordination document (执法协作文书) or hazard notice to a department."""

    __tablename__ = "coordination_request"
    __table_args__ = (_in("kind", vocab.COORDINATION_KINDS), _in("status", vocab.COORDINATION_STATUSES))

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    kind: Mapped[str] = mapped_column(String(16))
    from_agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"), index=True)
    to_agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))


class Referral(Base):
    """The clue-referral loop: a department refers a clue, the bureau enforces and feeds back."""

    __tablename__ = "referral"
    __table_args__ = (_in("status", vocab.REFERRAL_STATUSES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    from_agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"), index=True)
    to_agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    clue: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    referred_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    enforced_at: Mapped[datetime | None]
    fed_back_at: Mapped[datetime | None]
    feedback: Mapped[str | None] = mapped_column(Text)


class DatasetInfo(Base):
    """Provenance of a loaded dataset (the demo county, an import): source, licence, checksum."""

    __tablename__ = "dataset_info"
    __table_args__ = (UniqueConstraint("county_code", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = _county()
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    licence: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    loaded_at: Mapped[datetime] = _now()
    details: Mapped[dict[str, Any] | None]


class RouteLookup(Base):
    """Routing polygons pre-split with ST_Subdivide, so a point test touches only a small piece.

    Rebuilt from admin units, grid cells and jurisdictions by ``grids.pg_engine.rebuild_lookup``;
    pieces narrow the search, and the final ``covers`` test runs on the original polygon so that a
    point on a shared border gets exactly the same answer as the in-process engine.
    """

    __tablename__ = "route_lookup"
    __table_args__ = (
        _in("layer", ("admin_unit", "grid_cell", "jurisdiction")),
        Index("ix_route_lookup_layer_ref", "layer", "ref_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    layer: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int]
    agency_id: Mapped[int | None]
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=SRID))



class CaseFollower(Base):
    """Someone kept informed about a case: its reporter, and the reporters of merged duplicates."""

    __tablename__ = "case_follower"
    __table_args__ = (
        CheckConstraint("user_id IS NOT NULL OR contact IS NOT NULL", name="someone"),
        UniqueConstraint("case_id", "user_id", "contact"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    county_code: Mapped[str] = _county()
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    contact: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()


class Notification(Base):
    """A message to a follower about a change of a case (shown in the app, sent by SMS in production)."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    county_code: Mapped[str] = _county()
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    contact: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    read_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """One sign-in attempt, kept for rate limiting across all worker processes."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_recent", "username", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    county_code: Mapped[str] = _county()
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = _now()


class CatalogueChange(Base):
    """One row per committed transaction that changed a table the routing catalogue is read from.

    Written by statement triggers (migration 0006) and never updated or deleted, so the number of rows
    a snapshot sees is the catalogue's revision: a worker caches the catalogue under it.
    """

    __tablename__ = "catalogue_change"

    txid: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    changed_at: Mapped[datetime] = _now()


# Every table carries a six-digit county code; the CHECK is attached here once rather than per class.
for _table in Base.metadata.tables.values():
    if "county_code" in _table.c:
        _table.append_constraint(CheckConstraint("county_code ~ '^[0-9]{6}$'", name="county_code_digits"))
        if not any(ix.columns.keys()[:1] == ["county_code"] for ix in _table.indexes):
            Index(f"ix_{_table.name}_county_code", _table.c.county_code)

