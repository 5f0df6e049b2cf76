"""Who is asking: bearer tokens for the API and phones, session cookies for the web pages.

Every view states the roles allowed with ``require``; the check runs on the server for every request.
Cookie-authenticated writes must carry the CSRF token (pages send it as ``X-CSRFToken``); bearer
requests cannot be forged cross-site and need none. Passwords are hashed with scrypt; tokens are
stored only as SHA-256 hashes, shown once, and can be revoked.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Integer, String
from apiflask.validators import Length
from flask import Flask, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from api.deps import get_session, get_settings
from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import FieldError, Forbidden, NotFound, PlatformError, Unauthorized, ValidationError
from layers.cases import Actor

bp = APIBlueprint("auth", __name__, url_prefix="/api/v1/auth", tag="认证 Auth")
pages = APIBlueprint("login_pages", __name__, enable_openapi=False)
csrf = CSRFProtect()

ALL_ROLES = vocab.ROLES
STAFF = ("admin", "supervisor", "operator", "patroller", "planner", "liaison")
SECURITY = [{"BearerAuth": []}, {"CookieAuth": []}]
TOKEN_PREFIX = "ygt_"
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 20
FAILURE_WINDOW = timedelta(minutes=15)
MAX_TOKEN_ID = 2**31 - 1


class TooManyAttempts(PlatformError):
    status = 429
    title = "Too many attempts"
    type_slug = "rate-limited"


def hash_token(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db, user: m.User, name: str) -> tuple[m.ApiToken, str]:
    """Create a bearer token for a user; the clear token is returned once and never stored."""
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = m.ApiToken(county_code=user.county_code, kind="bearer", name=name, token_hash=hash_token(clear),
                       user_id=user.id)
    db.add(token)
    db.flush()
    return token, clear


def _user_from_request() -> tuple[m.User | None, str | None]:
    """Return the signed-in user and how they proved it ("bearer" or "cookie")."""
    db = get_session()
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("use 'Authorization: Bearer <token>'")
        # The token and its account in one read: this runs on every API request.
        found = db.execute(select(m.ApiToken, m.User).outerjoin(m.User, m.User.id == m.ApiToken.user_id).where(
            m.ApiToken.token_hash == hash_token(value.strip()), m.ApiToken.kind == "bearer")).first()
        token, user = found if found is not None else (None, None)
        if token is None or token.revoked_at is not None or token.user_id is None:
            raise Unauthorized("the token is unknown or revoked")
        if user is None or not user.is_active:
            raise Unauthorized("the token's account is disabled")
        now = datetime.now(UTC)
        # One write a minute is enough to know a token is in use; not one per request.
        if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
            token.last_used_at = now
        return user, "bearer"
    uid = session.get("uid")
    if uid is not None:
        user = db.get(m.User, uid)
        if user is not None and user.is_active and session.get("auth_epoch") == _epoch(user):
            return user, "cookie"
        session.clear()
    return None, None


def _epoch(user: m.User) -> str:
    # Changing the password hash signs every existing session out.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def current_user() -> m.User | None:
    """Return the user of this request, resolving it on first use."""
    if "auth_user" not in g:
        g.auth_user, g.auth_via = _user_from_request()
        if g.auth_via == "cookie" and request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()
    return g.auth_user


def current_actor() -> Actor | None:
    """Return the case-service actor of this request."""
    user = current_user()
    return Actor.of(user) if user is not None else None


def require(*roles: str) -> Callable:
    """Allow a view to signed-in users of the given roles only (401 if not signed in, 403 if the role is wrong)."""
    unknown = set(roles) - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                raise Unauthorized("sign in, or send a bearer token")
            if user.role not in roles:
                raise Forbidden(f"the {user.role} role may not do this; allowed: {', '.join(roles)}")
            return view(*args, **kwargs)

        wrapper._roles = tuple(roles)  # type: ignore[attr-defined]  # read by the role × endpoint test
        return wrapper

    return decorate


def public(view: Callable) -> Callable:
    """Mark a view as open to everyone (read by the role × endpoint test)."""
    view._roles = None  # type: ignore[attr-defined]
    return view


@functools.cache
def _unknown_user_hash() -> str:
    """Return a hash no password matches, made like real ones (same algorithm and cost)."""
    return generate_password_hash(secrets.token_urlsafe(32))


def check_login(db, username: str, password: str, ip: str | None) -> m.User:
    """Return the user for a username and password, limiting failed attempts per user and per address."""
    settings = get_settings()
    since = datetime.now(UTC) - FAILURE_WINDOW
    by_user = db.scalar(select(func.count()).select_from(m.LoginAttempt).where(
        m.LoginAttempt.username == username, ~m.LoginAttempt.ok, m.LoginAttempt.at >= since))
    by_ip = db.scalar(select(func.count()).select_from(m.LoginAttempt).where(
        m.LoginAttempt.ip == ip, ~m.LoginAttempt.ok, m.LoginAttempt.at >= since)) if ip else 0
    if by_user >= MAX_FAILURES_PER_USER or by_ip >= MAX_FAILURES_PER_IP:
        raise TooManyAttempts("too many failed sign-ins; wait 15 minutes", retry_after=int(FAILURE_WINDOW.seconds))
    user = db.scalar(select(m.User).where(m.User.county_code == settings.county_code, m.User.username == username))
    if user is not None and user.is_active:
        try:
            ok = check_password_hash(user.password_hash, password)
        except ValueError:  # a hash by a method werkzeug refuses (md5, sha1 from an older system): no match
            ok = False
    else:
        # As slow as a real check, so the answer's timing does not tell which usernames exist.
        check_password_hash(_unknown_user_hash(), password)
        ok = False
    db.add(m.LoginAttempt(county_code=settings.county_code, username=username[:64], ip=ip, ok=ok))
    db.commit()
    if not ok:
        raise Unauthorized("wrong username or password")
    return user


class LoginIn(Schema):
    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 256))
    name = String(load_default="api", validate=Length(1, 100), metadata={"description": "a label for the token"})


class TokenOut(Schema):
    id = Integer()
    token = String(metadata={"description": "shown once: store it on the device"})
    role = String()
    username = String()


class MeOut(Schema):
    id = Integer()
    username = String()
    display_name = String()
    role = String()
    role_zh = String()
    agency_id = Integer(allow_none=True)


@bp.post("/tokens")
@public
@bp.input(LoginIn, arg_name="body")
@bp.output(TokenOut, status_code=201)
@bp.doc(summary="Sign in and get a bearer token", responses={401: "wrong credentials", 429: "rate limited"})
def create_token(body: dict) -> dict:
    db = get_session()
    user = check_login(db, body["username"], body["password"], request.remote_addr)
    token, clear = issue_token(db, user, body["name"])
    db.commit()
    return {"id": token.id, "token": clear, "role": user.role, "username": user.username}


@bp.delete("/tokens/<int:token_id>")
@require(*STAFF)
@bp.output({}, status_code=204)
@bp.doc(summary="Revoke a token (your own; admins any)", security=SECURITY)
def revoke_token(token_id: int) -> tuple[str, int]:
    db = get_session()
    user = current_user()
    # Token ids are PostgreSQL integers: a larger number names nothing (and would fail as a query).
    token = db.get(m.ApiToken, token_id) if token_id <= MAX_TOKEN_ID else None
    if token is None or token.county_code != user.county_code or (token.user_id != user.id and user.role != "admin"):
        raise NotFound(f"token {token_id} does not exist")
    token.revoked_at = token.revoked_at or datetime.now(UTC)
    db.commit()
    return "", 204


@bp.get("/me")
@require(*STAFF)
@bp.output(MeOut)
@bp.doc(summary="Who am I", security=SECURITY)
def me() -> dict:
    user = current_user()
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
            "role_zh": vocab.ROLE_LABELS[user.role], "agency_id": user.agency_id}


def is_local_path(target: str) -> bool:
    """Return whether a redirect target is a path on this site, never another site after sign-in.

    Browsers read a backslash as a slash and drop tabs and newlines from URLs, so a backslash or a
    control character after the first slash leads off-site as surely as ``//evil.example`` does.
    """
    return (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and target.isprintable())


@pages.route("/login", methods=["GET", "POST"])
@public
def login_page():
    """Show the sign-in form and start a session (CSRF-protected)."""
    error, status = None, 200
    if request.method == "POST":
        csrf.protect()
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        try:
            if not username or not password:
                raise ValidationError(FieldError("username", "enter a username and password"))
            user = check_login(get_session(), username, password, request.remote_addr)
        except (Unauthorized, ValidationError, TooManyAttempts) as exc:
            error, status = exc.detail, exc.status
        else:
            session.clear()
            session.update(uid=user.id, auth_epoch=_epoch(user))
            session.permanent = True
            target = request.args.get("next") or "/"
            return redirect(target if is_local_path(target) else "/")
    return render_template("login.html", error=error, csrf_token=generate_csrf()), status


@pages.post("/logout")
@public
def logout():
    """End the session."""
    csrf.protect()
    session.clear()
    return redirect(url_for("login_pages.login_page"))


def init_app(app: Flask) -> None:
    """Install CSRF protection, the security schemes of the OpenAPI document, and the blueprints."""
    csrf.init_app(app)
    app.security_schemes = {
        "BearerAuth": {"type": "http", "scheme": "bearer"},
        "CookieAuth": {"type": "apiKey", "in": "cookie", "name": "session"},
    }
    app.register_blueprint(pages)

    @app.errorhandler(CSRFError)
    def _csrf_failed(error: CSRFError):
        from api.errors import render_error
        from gis_platform.errors import Problem

        return render_error(Problem(status=400, title="CSRF check failed", detail=error.description,
                                    type="/problems/csrf"))
