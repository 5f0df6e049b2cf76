"""An API client on a small committed county of its own (API calls commit, so it gets its own database)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import generate_password_hash

from gis_platform import models as m
from gis_platform.cli import upgrade_database
from gis_platform.db import Database
from gis_platform.settings import Settings
from tests.factories import MiniCounty, make_county

PASSWORD = "Test@2026"


@dataclass
class ApiWorld:
    """An app on a committed mini county, with a way to sign in as any of its users."""

    app: object
    county: MiniCounty
    database: Database

    def client(self):
        return self.app.test_client()

    def token(self, username: str) -> dict[str, str]:
        """Return an Authorization header for a user of the mini county."""
        response = self.client().post("/api/v1/auth/tokens", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['token']}"}


@pytest.fixture(scope="session")
def api_world(pg_server, tmp_path_factory):
    """Build the app once per run on a database holding the mini county 379901."""
    from api.app import create_app

    url = pg_server.create(f"gis_test_api_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, "379901")
        session.execute(update(m.User).where(m.User.county_code == "379901")
                        .values(password_hash=generate_password_hash(PASSWORD)))
        session.add(m.ApiToken(county_code="379901", kind="open311", name="test client",
                               token_hash=__import__("hashlib").sha256(b"test-open311-key").hexdigest()))
    settings = Settings(_env_file=None, database_url=url, county_code="379901",
                        data_dir=tmp_path_factory.mktemp("api-data"), secret_key="test-secret")
    database = Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
    app = create_app(settings, database=database)
    yield ApiWorld(app=app, county=county, database=database)
    engine.dispose()
