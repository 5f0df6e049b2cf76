"""docker-compose.yml cannot be run here (no Docker engine); check what can be checked."""

from pathlib import Path

import yaml

from gis_platform.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_parses_and_has_the_three_services():
    services = _compose()["services"]
    assert set(services) == {"db", "migrate", "app"}
    assert services["db"]["image"].startswith("postgis/postgis")
    assert "healthcheck" in services["db"] and "healthcheck" in services["app"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "pgdata" in _compose()["volumes"]
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])


def test_app_variables_are_the_ones_settings_read(monkeypatch):
    services = _compose()["services"]
    for name in ("migrate", "app"):
        env = services[name]["environment"]
        assert set(env) <= set(ENV_VARS), set(env) - set(ENV_VARS)
        assert "DATABASE_URL" in env
    # Feed the compose values (defaults substituted) to the settings object: all must validate.
    for key, value in services["app"]["environment"].items():
        value = str(value)
        if value.startswith("${"):
            value = value.split(":-", 1)[1].rstrip("}") if ":-" in value else ""
        value = value.replace("${GIS_DB_PASSWORD:-gis-change-me}", "gis-change-me")
        monkeypatch.setenv(key, value)
    s = Settings(_env_file=None)
    assert s.database_url == "postgresql+psycopg://gis:gis-change-me@db:5432/gis"
    assert s.host == "0.0.0.0" and s.port == 8000 and s.workers == 4


def test_dockerfile_installs_the_package_and_runs_serve():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install" in text and '"serve"' in text
    # The map pages' assets are fetched from npm at build time and served by the platform itself.
    assert "npm ci" in text and "webmap.assets build" in text
    for package in ("gis_platform", "grids", "layers", "api", "webmap", "migrations"):
        assert f"COPY {package} {package}" in text


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ENV_VARS:
        assert f"`{name}`" in readme, name
