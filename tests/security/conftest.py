"""A world of its own for hostile-input tests: an app on a committed mini county in a separate database.

Fuzzing signs in with wrong passwords (which the per-address limit counts), revokes tokens and
creates cases, so it must not share the database of ``tests/api``. Tokens are issued once, before
any fuzzing, and kept for the whole run.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import generate_password_hash

from gis_platform import models as m
from gis_platform.cli import upgrade_database
from gis_platform.db import Database
from gis_platform.settings import Settings
from tests.api.conftest import PASSWORD, ApiWorld
from tests.factories import make_county

COUNTY = "379901"
OPEN311_KEY = "test-open311-key"
MAX_UPLOAD_MB = 2  # small, so that "larger than the limit" stays cheap to build


@dataclass
class SecurityWorld(ApiWorld):
    """The API world plus tokens issued once, their ids, and counters of what was written."""

    settings: Settings | None = None
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    token_ids: set[int] = field(default_factory=set)

    def auth(self, username: str) -> dict[str, str]:
        """Return the bearer header of a user, issued once per run."""
        if username not in self.headers:
            response = self.client().post("/api/v1/auth/tokens", json={"username": username, "password": PASSWORD},
                                          environ_base={"REMOTE_ADDR": "10.255.0.1"})
            assert response.status_code == 201, response.get_json()
            self.headers[username] = {"Authorization": f"Bearer {response.get_json()['token']}"}
            self.token_ids.add(response.get_json()["id"])
        return self.headers[username]

    def counts(self) -> dict[str, int]:
        """Return the row counts of every table a request could write to."""
        tables = {"cases": m.Case, "events": m.CaseEvent, "attachments": m.Attachment, "tokens": m.ApiToken,
                  "login_attempts": m.LoginAttempt, "requests": m.CoordinationRequest, "referrals": m.Referral}
        with self.database.sessions() as session:
            return {name: session.scalar(select(func.count()).select_from(model)) for name, model in tables.items()}

    def stored_files(self) -> int:
        """Return the number of attachment files on disk."""
        folder = self.settings.resolved_data_dir / "attachments"
        return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


@pytest.fixture(scope="session")
def sec_world(pg_server, tmp_path_factory) -> SecurityWorld:
    """Build the app once per run on its own database holding the mini county 379901."""
    from api.app import create_app

    url = pg_server.create(f"gis_test_security_{os.getpid()}")
    upgrade_database(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        county = make_county(session, COUNTY)
        session.execute(update(m.User).where(m.User.county_code == COUNTY)
                        .values(password_hash=generate_password_hash(PASSWORD)))
        session.add(m.ApiToken(county_code=COUNTY, kind="open311", name="test client",
                               token_hash=hashlib.sha256(OPEN311_KEY.encode()).hexdigest()))
    settings = Settings(_env_file=None, database_url=url, county_code=COUNTY, max_upload_mb=MAX_UPLOAD_MB,
                        data_dir=tmp_path_factory.mktemp("security-data"), secret_key="test-secret")
    database = Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
    world = SecurityWorld(app=create_app(settings, database=database), county=county, database=database,
                          settings=settings)
    for user in ("ad", "op", "pw", "pl", "li", "sup1"):
        world.auth(user)
    yield world
    engine.dispose()


@pytest.fixture(scope="session")
def sample_case(sec_world: SecurityWorld) -> int:
    """Return the id of a case reported through the API (west town, category TD02, version 1)."""
    response = sec_world.client().post("/api/v1/cases", headers=sec_world.auth("op"), json={
        "category": "TD02", "geometry": {"type": "Point", "coordinates": [115.72, 36.02]},
        "description": "the security tests' sample case"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]
