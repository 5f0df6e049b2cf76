from pathlib import Path

import pytest
from pydantic import ValidationError

from gis_platform.settings import ENV_VARS, Settings


def test_defaults(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.data_dir == Path("./var")
    assert s.county_code == "371521"
    assert s.metric_crs == "EPSG:4548" and s.metric_srid == 4548
    assert s.tile_url == ""
    assert s.uses_local_cluster


def test_reads_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/gis")
    monkeypatch.setenv("GIS_PORT", "9000")
    monkeypatch.setenv("GIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GIS_TILE_URL", "http://tiles.intranet/{z}/{x}/{y}.png")
    s = Settings(_env_file=None)
    # The libpq form that compose files use is accepted and given the driver.
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/gis"
    assert s.port == 9000 and s.data_dir == tmp_path
    assert not s.uses_local_cluster


def test_reads_dotenv_file(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text("GIS_COUNTY_CODE=371522\nGIS_SECRET_KEY=abc\n", encoding="utf-8")
    s = Settings(_env_file=env)
    assert s.county_code == "371522" and s.secret_key == "abc"


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("GIS_COUNTY_CODE", "37152", "county_code"),
        ("GIS_PORT", "70000", "port"),
        ("GIS_METRIC_CRS", "EPSG:4326", "metric_crs"),
        ("GIS_METRIC_CRS", "not-a-crs", "metric_crs"),
    ],
)
def test_bad_values_name_the_field(monkeypatch, name, value, field):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    assert field in str(err.value)


def test_env_var_list_matches_fields():
    fields = {("DATABASE_URL" if f == "database_url" else "GIS_" + f.upper()) for f in Settings.model_fields}
    assert fields == set(ENV_VARS)


def test_settings_are_immutable():
    s = Settings(_env_file=None)
    with pytest.raises(ValidationError):
        s.port = 1


def test_fume_efficiencies_from_a_comma_list(monkeypatch):
    monkeypatch.setenv("GIS_FUME_MIN_EFFICIENCY", "65, 80, 90")
    assert Settings(_env_file=None).fume_min_efficiency == (65.0, 80.0, 90.0)
    monkeypatch.setenv("GIS_FUME_MIN_EFFICIENCY", "65,80")
    with pytest.raises(ValidationError, match="three percentages"):
        Settings(_env_file=None)
