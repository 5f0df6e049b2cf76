"""The map pages over the app (no browser): who may open them, what they reference, the photo list."""

from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

import pytest
from PIL import Image

from webmap import assets, pages
from webmap.maps import STATIC_URL

# Every page built on a Folium map: each must reference no other host and only files that exist.
FOLIUM_PAGES = ("/command",)
EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>)\\]+""")
REFERENCE = re.compile(r"""(?:src|href)=["']([^"'#]+)["']""")
HTML = {"Accept": "text/html,application/xhtml+xml"}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("path", FOLIUM_PAGES)
def test_a_browser_that_is_not_signed_in_is_sent_to_the_login_page(map_world, path):
    response = map_world.api().get(path, headers=HTML)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={path}"
    with_query = map_world.api().get(path + "?lang=en", headers=HTML)
    assert urlsplit(with_query.headers["Location"]).query == "next=/command?lang%3Den"


@pytest.mark.parametrize("path", FOLIUM_PAGES)
def test_other_clients_get_401_and_other_roles_403(map_world, path):
    assert map_world.api().get(path).status_code == 401
    for user in ("pw", "pl", "li"):
        response = map_world.api().get(path, headers={**HTML, **map_world.token(user)})
        assert response.status_code == 403, user
        assert "无权访问" in response.get_data(as_text=True)
    for user in ("op", "sup1", "ad"):
        assert map_world.api().get(path, headers=map_world.token(user)).status_code == 200, user


@pytest.mark.parametrize("path", FOLIUM_PAGES)
def test_pages_reference_no_other_host_and_only_files_the_platform_serves(map_world, path):
    client = map_world.api()
    html = client.get(path, headers=map_world.token("op")).get_data(as_text=True)
    assert EXTERNAL.findall(html) == []  # no tile URL is configured here
    refs = sorted({r for r in REFERENCE.findall(html) if r.startswith("/static/")})
    assert len(refs) >= 12
    for url in refs:
        response = client.get(url)
        assert response.status_code == 200, url
        if url.endswith(".css"):
            # What the style sheet names (fonts, images) is served too.
            for ref in assets.css_references(response.get_data(as_text=True)):
                target = re.sub(r"[^/]+$", "", url) + ref
                while "/../" in target:
                    target = re.sub(r"/[^/]+/\.\./", "/", target, count=1)
                served = client.get(target)
                assert served.status_code == 200, f"{url} -> {ref}"
                served.close()
        response.close()


def test_the_command_page_is_chinese_first_and_carries_both_languages(map_world):
    client = map_world.api()
    html = client.get("/command", headers=map_world.token("op")).get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and "阳谷县数字城管指挥中心" in html
    assert "待办队列" in html and '"queue.title": "Queue"' in html
    assert 'name="csrf-token"' in html
    english = client.get("/command?lang=en", headers=map_world.token("op")).get_data(as_text=True)
    assert '<html lang="en">' in english and "Queue" in english


def test_the_basemap_of_a_shifted_datum_is_refused_on_the_page(map_world, monkeypatch):
    settings = map_world.app.extensions["gis_platform.settings"]
    shifted = settings.model_copy(update={"tile_url": "https://webrd01.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}"})
    monkeypatch.setitem(map_world.app.extensions, "gis_platform.settings", shifted)
    html = map_world.api().get("/command", headers=map_world.token("op")).get_data(as_text=True)
    assert "GCJ-02" in html and 'role="alert"' in html
    assert "autonavi.com/appmaptile" not in html


def test_the_page_says_how_to_build_missing_front_end_files(map_world, monkeypatch):
    monkeypatch.setattr(pages.assets, "is_built", lambda *args: False)
    response = map_world.api().get("/command", headers={**HTML, **map_world.token("op")})
    assert response.status_code == 503
    assert "make assets" in response.get_data(as_text=True)


def test_static_files_are_served_without_escaping_their_folder(map_world):
    client = map_world.api()
    response = client.get(f"{STATIC_URL}/gismap.js")
    assert response.status_code == 200 and response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()
    assert client.get(f"{STATIC_URL}/../pages.py").status_code == 404
    assert client.get(f"{STATIC_URL}/%2e%2e/pages.py").status_code == 404
    assert client.get(f"{STATIC_URL}/vendor/nothing.js").status_code == 404


def test_the_details_panel_lists_a_cases_photos(map_world):
    case = map_world.report(description="带照片的案件")
    client = map_world.api()
    upload = client.post(f"/api/v1/cases/{case['id']}/attachments", headers=map_world.token("op"),
                         data={"file": (io.BytesIO(_png()), "site.png"), "stage": "before"})
    assert upload.status_code == 201, upload.get_json()
    listed = client.get(f"/command/cases/{case['id']}/photos", headers=map_world.token("op"))
    assert listed.status_code == 200
    photos = listed.get_json()["photos"]
    assert [(p["id"], p["stage"], p["url"]) for p in photos] == [
        (upload.get_json()["id"], "before", f"/api/v1/attachments/{upload.get_json()['id']}")]
    assert client.get(f"/command/cases/{case['id']}/photos", headers=map_world.token("pw")).status_code == 403
    assert client.get("/command/cases/999999/photos", headers=map_world.token("op")).status_code == 404
    assert client.get(f"/command/cases/{case['id']}/photos").status_code == 401
