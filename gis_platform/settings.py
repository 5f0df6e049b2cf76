"""Typed settings read from environment variables and an optional ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the platform can be configured with; built once per process by the caller."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # An existing PostGIS to use instead of the self-managed local cluster.
    database_url: Annotated[
        str | None, Field(validation_alias=AliasChoices("DATABASE_URL", "GIS_DATABASE_URL"))
    ] = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("./var")
    secret_key: str | None = None
    # Leaflet tile URL template; empty means "no basemap" (common on an intranet).
    tile_url: str = ""
    tile_attribution: str = ""
    county_code: str = Field("371521", pattern=r"^\d{6}$")
    metric_crs: str = "EPSG:4548"
    # Directory with initdb/pg_ctl/postgres; found automatically when unset.
    pg_bin: Path | None = None
    # Install PostgreSQL/PostGIS with apt when running as root on Debian/Ubuntu and they are missing.
    pg_auto_install: bool = True
    workers: int = Field(2, ge=1, le=64)
    # Mark session cookies Secure (HTTPS only); turn off only for plain-HTTP trials on localhost.
    secure_cookies: bool = True
    max_upload_mb: float = Field(10.0, gt=0)
    log_level: str = "INFO"
    # GB 18483-2001: cooking-fume emission limit and minimum purifier efficiency (%) for small /
    # medium / large premises; provinces may set stricter values.
    fume_limit_mg_m3: float = Field(2.0, gt=0)
    fume_min_efficiency: Annotated[tuple[float, float, float], NoDecode] = (60.0, 75.0, 85.0)
    # Official holidays and make-up working days for years chinese-calendar does not know yet (JSON).
    calendar_file: Path | None = None
    # Distance to a jurisdiction boundary under which a routed report is flagged for confirmation.
    near_boundary_m: float = Field(30.0, ge=0)

    @field_validator("metric_crs")
    @classmethod
    def _crs_must_be_projected(cls, value: str) -> str:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            crs = CRS.from_user_input(value)
        except CRSError as exc:
            raise ValueError(f"GIS_METRIC_CRS: unknown coordinate reference system {value!r}") from exc
        if not crs.is_projected:
            raise ValueError(f"GIS_METRIC_CRS: {value!r} is not a projected (metric) CRS")
        return value

    @field_validator("fume_min_efficiency", mode="before")
    @classmethod
    def _parse_efficiencies(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if len(parts) != 3:
                raise ValueError("GIS_FUME_MIN_EFFICIENCY: give three percentages, small,medium,large (e.g. 60,75,85)")
            return tuple(float(p) for p in parts)
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        # Accept the plain libpq form that docker-compose and most tools use.
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix):]
        return value

    @property
    def uses_local_cluster(self) -> bool:
        """Return True when the platform must manage its own PostgreSQL cluster."""
        return self.database_url is None

    @property
    def resolved_data_dir(self) -> Path:
        """Return the data directory as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def metric_srid(self) -> int:
        """Return the EPSG code of the metric CRS."""
        from pyproj import CRS

        epsg = CRS.from_user_input(self.metric_crs).to_epsg()
        if epsg is None:
            raise ValueError(f"GIS_METRIC_CRS {self.metric_crs!r} has no EPSG code")
        return epsg


#: Environment variables the settings object reads, for documentation and the compose-file test.
ENV_VARS: tuple[str, ...] = (
    "DATABASE_URL",
    "GIS_HOST",
    "GIS_PORT",
    "GIS_DATA_DIR",
    "GIS_SECRET_KEY",
    "GIS_TILE_URL",
    "GIS_TILE_ATTRIBUTION",
    "GIS_COUNTY_CODE",
    "GIS_METRIC_CRS",
    "GIS_PG_BIN",
    "GIS_PG_AUTO_INSTALL",
    "GIS_WORKERS",
    "GIS_SECURE_COOKIES",
    "GIS_MAX_UPLOAD_MB",
    "GIS_LOG_LEVEL",
    "GIS_FUME_LIMIT_MG_M3",
    "GIS_FUME_MIN_EFFICIENCY",
    "GIS_NEAR_BOUNDARY_M",
    "GIS_CALENDAR_FILE",
)
