"""The OpenAPI docs page, served with the platform's own copy of Swagger UI (no CDN)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs_assets", __name__)

ASSETS = Path(swagger_ui_path)
PREFIX = "/api/v1/docs/assets"


@bp.get(f"{PREFIX}/<path:filename>")
def asset(filename: str):
    """Serve a Swagger UI file from the installed swagger-ui-bundle package."""
    return send_from_directory(ASSETS, filename, max_age=86400)


def configure_docs(app: Flask) -> None:
    """Point the docs page at local assets and register the route that serves them."""
    app.config.update(
        SWAGGER_UI_CSS=f"{PREFIX}/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS=f"{PREFIX}/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS=f"{PREFIX}/swagger-ui-standalone-preset.js",
        DOCS_FAVICON=f"{PREFIX}/favicon-32x32.png",
        SWAGGER_UI_CONFIG={"persistAuthorization": True},
    )
    app.register_blueprint(bp)
