"""Security headers on every response, and the per-request nonce that lets the pages' own inline code run.

Every script, style sheet, font and icon is served by the platform itself, so the Content-Security-Policy
allows the platform's own origin and nothing else: the one exception is the basemap's tile server
(``GIS_TILE_URL``), whose origin is added to ``img-src``. Inline ``<script>`` and ``<style>`` elements run
only when they carry this request's nonce (``{{ csp_nonce }}`` in templates); inline event handlers
(``onclick=…``), ``javascript:`` URLs, ``eval`` and ``style="…"`` attributes never do.

The headers are added after every view and every error handler, so pages, API answers, problem+json,
404s and static files all carry them. A view that sets a header itself (the photo download sends a
stricter, sandboxing policy) keeps its own value.
"""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, g
from werkzeug.local import LocalProxy

from api.deps import SETTINGS_KEY
from gis_platform.settings import Settings

log = logging.getLogger(__name__)

NONCE_BYTES = 18  # 144 bits, base64url: well past the 128 bits CSP asks of a nonce
NONCE = "'nonce-{nonce}'"
HSTS_MAX_AGE_S = 365 * 24 * 3600

# Host names a CSP source can carry; a tile URL whose host is anything else is left out (and logged),
# so that a mistyped GIS_TILE_URL cannot smuggle other directives into the policy.
_HOST = re.compile(r"^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$")


def csp_nonce() -> str:
    """Return this request's nonce for inline ``<script>``/``<style>`` elements, made on first use."""
    nonce = g.get("_csp_nonce")
    if nonce is None:
        nonce = g._csp_nonce = secrets.token_urlsafe(NONCE_BYTES)
    return nonce


def tile_source(tile_url: str) -> str | None:
    """Return the CSP source of a basemap tile URL template: its origin, ``{s}``-style labels as ``*``.

    ``https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png`` gives ``https://*.tile.openstreetmap.org``;
    ``https://t{s}.tianditu.gov.cn/…`` gives ``https://*.tianditu.gov.cn``. A relative URL is the platform's
    own origin (None: ``'self'`` covers it); so is an empty one.
    """
    url = tile_url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        return None  # a path on this server
    if parts.scheme not in ("http", "https") or not parts.netloc:
        log.warning("GIS_TILE_URL %r is not an http(s) URL: its tiles are not allowed by the CSP", url)
        return None
    host, _, port = parts.netloc.rpartition("@")[2].partition(":")
    labels = host.lower().split(".")
    templated = [i for i, label in enumerate(labels) if "{" in label or "}" in label]
    if templated:
        # CSP wildcards replace whole leftmost labels only: everything up to the last templated label.
        labels = ["*", *labels[templated[-1] + 1:]]
    host = ".".join(labels)
    if not _HOST.match(host) or host == "*" or (port and not port.isdigit()):
        log.warning("GIS_TILE_URL %r has a host the CSP cannot name: its tiles are not allowed", url)
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def policy_directives(settings: Settings) -> dict[str, list[str]]:
    """Return the Content-Security-Policy as directives and sources, with ``{nonce}`` still to fill in."""
    images = ["'self'", "data:", "blob:"]
    tiles = tile_source(settings.tile_url)
    if tiles:
        images.append(tiles)
    return {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", NONCE],
        "img-src": images,
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }


def security_headers(settings: Settings) -> dict[str, str]:
    """Return the headers every response carries besides the CSP."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        # The patrol page locates the patroller and takes photos; nothing else may ask for either.
        "Permissions-Policy": "geolocation=(self), camera=(self), microphone=(), payment=(), usb=()",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if settings.secure_cookies:
        # Only a deployment served over HTTPS turns secure cookies on; browsers ignore HSTS over plain HTTP.
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_S}"
    return headers


def init_app(app: Flask) -> None:
    """Add the security headers to every response and expose ``csp_nonce`` to every template."""
    settings: Settings = app.extensions[SETTINGS_KEY]
    policy = "; ".join(f"{name} {' '.join(sources)}" for name, sources in policy_directives(settings).items())
    headers = security_headers(settings)

    def add_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy.format(nonce=csp_nonce()))
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    app.after_request(add_headers)
    # A global (for macros imported without context) that the context processor shadows with the string.
    app.jinja_env.globals["csp_nonce"] = LocalProxy(csp_nonce)
    app.context_processor(lambda: {"csp_nonce": csp_nonce()})
