"""Accounts: sign-in limits, session cookies, CSRF, token revocation, password storage, redirects after sign-in.

Each test signs in from addresses of its own (10.88.x.y) and locks only users it creates, so the rest of
the security tests keep working on the same world.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

import api.auth
from api.app import create_app
from api.auth import FAILURE_WINDOW, MAX_FAILURES_PER_IP, MAX_FAILURES_PER_USER
from gis_platform import models as m
from gis_platform.settings import Settings
from tests.api.conftest import PASSWORD
from tests.security.conftest import COUNTY

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PROBLEM = "application/problem+json"
WEST = [115.72, 36.02]


def address(n: int) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": f"10.88.{n // 250}.{n % 250 + 1}"}}


@functools.cache
def shared_hash() -> str:
    """Return a hash of the test password, made once (scrypt is slow on purpose)."""
    return generate_password_hash(PASSWORD)


def new_user(world, *, role: str = "patroller", password_hash: str | None = None, active: bool = True) -> str:
    """Add a user of the mini county (a fresh name, so that locking it out harms no other test)."""
    username = f"acct-{uuid.uuid4().hex[:10]}"
    with world.database.sessions() as session, session.begin():
        squad = session.scalar(select(m.Agency.id).where(m.Agency.county_code == COUNTY, m.Agency.kind == "squad"))
        session.add(m.User(county_code=COUNTY, username=username, display_name="测试", role=role, agency_id=squad,
                           password_hash=password_hash or shared_hash(), is_active=active))
    return username


def attempts(world, username: str) -> int:
    with world.database.sessions() as session:
        return session.scalar(select(func.count()).select_from(m.LoginAttempt).where(
            m.LoginAttempt.username == username))


def cases(world) -> int:
    with world.database.sessions() as session:
        return session.scalar(select(func.count()).select_from(m.Case))


def token_for(world, username: str, n: int, password: str = PASSWORD):
    return world.client().post("/api/v1/auth/tokens", json={"username": username, "password": password}, **address(n))


def csrf_token(client) -> str:
    """Return the CSRF token of a client's session, from the sign-in form."""
    match = CSRF_FIELD.search(client.get("/login").get_data(as_text=True))
    assert match, "the sign-in form has no CSRF field"
    return match.group(1)


def sign_in(client, username: str, n: int, next_path: str = "/command"):
    return client.post(f"/login?next={next_path}", data={"csrf_token": csrf_token(client), "username": username,
                                                          "password": PASSWORD}, **address(n))


def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


# -- sign-in limits ------------------------------------------------------------------------------------------
def test_five_failures_lock_the_account_for_fifteen_minutes_even_with_the_right_password(sec_world):
    username = new_user(sec_world)
    for n in range(MAX_FAILURES_PER_USER):  # from different addresses: the limit is per user too
        assert token_for(sec_world, username, 100 + n, password="wrong").status_code == 401
    locked = token_for(sec_world, username, 120)
    assert locked.status_code == 429 and locked.mimetype == PROBLEM
    assert locked.headers["Retry-After"] == str(int(FAILURE_WINDOW.total_seconds()))
    assert attempts(sec_world, username) == MAX_FAILURES_PER_USER  # a refused attempt is not even checked
    # The sign-in form says so too, with the same status.
    client = sec_world.client()
    form = client.post("/login", data={"csrf_token": csrf_token(client), "username": username, "password": PASSWORD},
                       **address(121))
    assert form.status_code == 429 and "too many failed sign-ins" in form.get_data(as_text=True)
    # Other accounts signing in from the same addresses are not affected.
    assert token_for(sec_world, new_user(sec_world), 100).status_code == 201


def test_twenty_failures_from_one_address_block_that_address_only(sec_world):
    ip = address(200)["environ_base"]["REMOTE_ADDR"]
    old = address(202)["environ_base"]["REMOTE_ADDR"]
    now = datetime.now(UTC)
    # Failures already recorded (a different unknown name each: the per-user limit never trips), the last one
    # through the API; from another address, as many but older than the window.
    with sec_world.database.sessions() as session, session.begin():
        session.add_all(m.LoginAttempt(county_code=COUNTY, username=f"nobody-{uuid.uuid4().hex[:8]}", ip=where,
                                       ok=False, at=at)
                        for where, at in [(ip, now)] * (MAX_FAILURES_PER_IP - 1)
                        + [(old, now - FAILURE_WINDOW - timedelta(minutes=1))] * MAX_FAILURES_PER_IP)
    assert token_for(sec_world, f"nobody-{uuid.uuid4().hex[:8]}", 200, password="guess").status_code == 401
    username = new_user(sec_world)
    blocked = token_for(sec_world, username, 200)
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    assert token_for(sec_world, username, 201).status_code == 201  # another address
    assert token_for(sec_world, username, 202).status_code == 201  # old failures have expired


def test_unknown_and_disabled_users_cost_a_real_password_check(sec_world, monkeypatch):
    checks: list[str] = []

    def counted(stored: str, password: str) -> bool:
        checks.append(stored.split("$", 1)[0])
        return check_password_hash(stored, password)

    monkeypatch.setattr(api.auth, "check_password_hash", counted)
    disabled = new_user(sec_world, active=False)
    for n, username in enumerate((f"nobody-{uuid.uuid4().hex[:8]}", disabled, new_user(sec_world))):
        token_for(sec_world, username, 300 + n, password="wrong")
    # The same algorithm and cost whether the account exists, is disabled or not: timing tells nothing.
    assert len(checks) == 3 and len(set(checks)) == 1 and checks[0].startswith("scrypt:")


# -- sessions and CSRF ---------------------------------------------------------------------------------------
def test_the_session_cookie_is_secure_httponly_and_samesite(sec_world):
    client = sec_world.client()
    signed_in = sign_in(client, "op", 400)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/command"
    cookie = session_cookie(signed_in)
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
    assert client.get("/api/v1/auth/me").get_json()["username"] == "op"

    plain = Settings(_env_file=None, database_url=sec_world.settings.database_url, county_code=COUNTY,
                     data_dir=sec_world.settings.data_dir, secret_key="test-secret", secure_cookies=False)
    trial = create_app(plain, database=sec_world.database).test_client()
    cookie = session_cookie(sign_in(trial, "op", 401))
    # GIS_SECURE_COOKIES=false (a plain-HTTP trial): not Secure, still HttpOnly and SameSite.
    assert "; Secure" not in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie


def test_the_login_form_refuses_a_missing_or_foreign_csrf_token(sec_world):
    username = new_user(sec_world)
    other = sec_world.client()
    foreign = csrf_token(other)  # valid, but for another browser's session
    client = sec_world.client()
    csrf_token(client)  # this browser has a session of its own
    for token in (None, "forged", foreign):
        data = {"username": username, "password": PASSWORD, **({"csrf_token": token} if token else {})}
        response = client.post("/login", data=data, **address(500))
        assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert attempts(sec_world, username) == 0  # refused before the password was even looked at
    assert client.get("/api/v1/auth/me").status_code == 401


def test_cookie_authenticated_writes_need_the_csrf_token(sec_world):
    client = sec_world.client()
    assert sign_in(client, "op", 600).status_code == 302
    assert client.get("/api/v1/auth/me").status_code == 200  # reading needs no token
    report = {"category": "TD02", "geometry": {"type": "Point", "coordinates": WEST}, "description": "CSRF 测试"}
    before = cases(sec_world)
    for headers in ({}, {"X-CSRFToken": "forged"}):
        refused = client.post("/api/v1/cases", json=report, headers=headers)
        assert refused.status_code == 400 and refused.mimetype == PROBLEM
        assert refused.get_json()["type"] == "/problems/csrf"
    assert client.delete("/api/v1/auth/tokens/1").status_code == 400
    assert cases(sec_world) == before
    accepted = client.post("/api/v1/cases", json=report, headers={"X-CSRFToken": csrf_token(client)})
    assert accepted.status_code == 201 and cases(sec_world) == before + 1


def test_signing_out_needs_the_csrf_token(sec_world):
    client = sec_world.client()
    assert sign_in(client, "op", 700).status_code == 302
    assert client.post("/logout").status_code == 400
    assert client.get("/api/v1/auth/me").status_code == 200  # a forged sign-out did nothing
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).status_code == 302
    assert client.get("/api/v1/auth/me").status_code == 401


@pytest.mark.parametrize(("target", "local"), [
    ("/command", True),
    ("/command?lang=en", True),
    ("//evil.example/", False),
    ("/\\evil.example/", False),  # browsers read /\evil.example as //evil.example
    ("/\t/evil.example/", False),  # ... and drop the tab from /<TAB>/evil.example
    ("/\n/evil.example/", False),
    ("https://evil.example/", False),
    ("javascript:alert(1)", False),
])
def test_only_local_paths_are_followed_after_sign_in(target, local):
    assert api.auth.is_local_path(target) is local


def test_the_sign_in_form_follows_next_only_to_this_site(sec_world):
    assert sign_in(sec_world.client(), "op", 800, next_path="/command%3Flang%3Den").headers["Location"] == (
        "/command?lang=en")
    refused = sign_in(sec_world.client(), "op", 801, next_path="/%5Cevil.example/")
    assert refused.status_code == 302 and refused.headers["Location"] == "/"


# -- tokens --------------------------------------------------------------------------------------------------
def test_a_revoked_token_is_refused_at_once(sec_world):
    username = new_user(sec_world)
    first, second = token_for(sec_world, username, 900).get_json(), token_for(sec_world, username, 900).get_json()
    bearer = {"Authorization": f"Bearer {first['token']}"}
    other = {"Authorization": f"Bearer {second['token']}"}
    assert sec_world.client().get("/api/v1/auth/me", headers=bearer).status_code == 200
    assert sec_world.client().delete(f"/api/v1/auth/tokens/{first['id']}", headers=bearer).status_code == 204
    refused = sec_world.client().get("/api/v1/auth/me", headers=bearer)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    before = cases(sec_world)
    write = sec_world.client().post("/api/v1/cases", headers=bearer, json={
        "category": "TD02", "geometry": {"type": "Point", "coordinates": WEST}, "description": "撤销后"})
    assert write.status_code == 401 and cases(sec_world) == before
    assert sec_world.client().get("/api/v1/auth/me", headers=other).status_code == 200  # only that one
    # Another user may not revoke it (it does not exist for them); an administrator may.
    assert sec_world.client().delete(f"/api/v1/auth/tokens/{second['id']}",
                                     headers=sec_world.auth("pw")).status_code == 404
    assert sec_world.client().delete(f"/api/v1/auth/tokens/{second['id']}",
                                     headers=sec_world.auth("ad")).status_code == 204
    assert sec_world.client().get("/api/v1/auth/me", headers=other).status_code == 401
    with sec_world.database.sessions() as session:
        stored = session.get(m.ApiToken, first["id"])
        assert stored.revoked_at is not None
        assert stored.token_hash == hashlib.sha256(first["token"].encode()).hexdigest()  # only its hash is kept


# -- passwords -----------------------------------------------------------------------------------------------
def test_passwords_are_stored_as_salted_scrypt_hashes():
    from layers import demo  # the one place the platform sets passwords (the demo accounts)

    stored = demo.generate_password_hash("Yanggu@2021")
    method, salt, digest = stored.split("$")
    name, cost, block, parallel = method.split(":")
    assert name == "scrypt" and int(cost) >= 2**15 and int(block) >= 8 and int(parallel) >= 1
    assert len(salt) >= 16 and len(digest) == 128 and "Yanggu" not in stored
    assert demo.generate_password_hash("Yanggu@2021") != stored  # salted: the same password hashes differently


def test_a_password_stored_in_clear_or_by_an_outdated_method_never_signs_in(sec_world):
    legacy = "md5$" + hashlib.md5(PASSWORD.encode()).hexdigest()  # noqa: S324 - the outdated method under test
    for n, stored in enumerate((PASSWORD, f"{legacy}$x", f"sha1${hashlib.sha1(PASSWORD.encode()).hexdigest()}$y")):
        username = new_user(sec_world, password_hash=stored)
        response = token_for(sec_world, username, 1000 + n)
        assert response.status_code == 401, (stored, response.status_code)
    with sec_world.database.sessions() as session:
        hashes = session.scalars(select(m.User.password_hash).where(m.User.county_code == COUNTY,
                                                                    m.User.username.in_(("op", "pw", "ad"))))
        assert all(h.startswith("scrypt:") and PASSWORD not in h for h in hashes)


def test_changing_the_password_signs_every_session_out(sec_world):
    username = new_user(sec_world)
    client = sec_world.client()
    assert sign_in(client, username, 1100).status_code == 302
    assert client.get("/api/v1/auth/me").status_code == 200
    with sec_world.database.sessions() as session, session.begin():
        session.execute(update(m.User).where(m.User.county_code == COUNTY, m.User.username == username)
                        .values(password_hash=generate_password_hash("New@2026")))
    assert client.get("/api/v1/auth/me").status_code == 401
