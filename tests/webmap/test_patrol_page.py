"""The patrol page over the app (no browser): who may open it, what it references and carries, its photo list."""

from __future__ import annotations

import io
import json
import re
from urllib.parse import urlsplit

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from gis_platform import models as m

from tests.webmap.conftest import EAST_POINT, WEST_POINT
from webmap import assets, i18n, patrol

HTML = {"Accept": "text/html,application/xhtml+xml"}
EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>)\\]+""")
REFERENCE = re.compile(r"""(?:src|href)=["']([^"'#]+)["']""")
JSON_BLOCK = re.compile(r'<script type="application/json" id="(gis-[a-z]+)">(.*?)</script>', re.S)
STATIC = assets.HERE / "static"


def _png(colour=(40, 160, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _page(map_world, user: str, query: str = "") -> str:
    response = map_world.api().get("/patrol" + query, headers=map_world.token(user))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def _blocks(html: str) -> dict:
    return {name: json.loads(body) for name, body in JSON_BLOCK.findall(html)}


def test_a_browser_that_is_not_signed_in_is_sent_to_the_login_page(map_world):
    response = map_world.api().get("/patrol", headers=HTML)
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/patrol"


def test_patrollers_and_admins_may_open_it_and_no_one_else(map_world):
    client = map_world.api()
    assert client.get("/patrol").status_code == 401
    for user in ("op", "sup1", "pl", "li"):
        response = client.get("/patrol", headers={**HTML, **map_world.token(user)})
        assert response.status_code == 403, user
        assert "无权访问" in response.get_data(as_text=True)
    for user in ("pw", "pe", "ad"):
        assert client.get("/patrol", headers=map_world.token(user)).status_code == 200, user


def test_the_page_references_no_other_host_and_only_files_the_platform_serves(map_world):
    client = map_world.api()
    html = _page(map_world, "pw")
    assert EXTERNAL.findall(html) == []
    refs = sorted({r for r in REFERENCE.findall(html) if r.startswith("/static/")})
    for needed in ("/static/webmap/patrol.js", "/static/webmap/patrol.css",
                   "/static/webmap/vendor/idb-keyval/idb-keyval.umd.js",
                   "/static/webmap/vendor/leaflet.locatecontrol/L.Control.Locate.min.js"):
        assert needed in refs
    for url in refs:
        response = client.get(url)
        assert response.status_code == 200, url
        response.close()


def test_the_page_is_chinese_first_and_carries_both_languages_and_the_grouped_categories(map_world):
    html = _page(map_world, "pw")
    assert '<html lang="zh-CN">' in html and "巡查上报" in html and "我的任务" in html
    assert 'capture="environment"' in html and 'accept="image/*"' in html
    blocks = _blocks(html)
    messages, config = blocks["gis-messages"], blocks["gis-config"]
    assert messages == i18n.messages() and messages["en"]["tab.tasks"] == "My tasks"
    assert config["unit"]["value"] == "SQ-west" and config["unit"]["zh"] == "west中队"
    assert config["taskStatuses"] == ["dispatched", "accepted"]
    # Grouped by event class (Chinese, with the English of the catalogue), every active category once.
    groups = {g["zh"]: g for g in config["categoryGroups"]}
    assert groups["街面秩序"]["en"] == "Street order"
    codes = [o["value"] for g in config["categoryGroups"] for o in g["options"]]
    assert "TD02" in codes and "MS03" in codes and len(codes) == len(set(codes))
    # The grid lookup routes with a category the bureau holds (the first by code), so it names the squad.
    with Session(map_world.engine) as session:
        bureau = sorted(session.scalars(
            select(m.Category.code).join(m.Power, m.Power.id == m.Category.power_id)
            .where(m.Category.county_code == map_world.county.code, m.Power.exercised_by == "bureau")))
    assert "MS03" not in bureau and config["locateCategory"] == bureau[0]
    english = _page(map_world, "pw", "?lang=en")
    assert '<html lang="en">' in english and "My tasks" in english


def test_inline_script_carries_the_csp_nonce_and_nothing_is_an_inline_handler(map_world):
    html = _page(map_world, "ad")
    inline = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    map_scripts = [attrs for attrs, body in inline if "L.map(" in body]
    assert len(map_scripts) == 1 and "nonce=" in map_scripts[0]
    assert re.findall(r"""<[^>]+\son[a-z]+\s*=""", html) == []
    source = (STATIC / "patrol.js").read_text(encoding="utf-8")
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert risky not in source, risky


def test_the_photo_list_shows_a_visible_cases_photos_with_their_digest(map_world):
    client = map_world.api()
    created = client.post("/api/v1/cases", headers=map_world.token("pw"), json={
        "category": "TD02", "geometry": {"type": "Point", "coordinates": WEST_POINT}, "description": "巡查照片"})
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    data = _png()
    upload = client.post(f"/api/v1/cases/{case['id']}/attachments", headers=map_world.token("pw"),
                         data={"file": (io.BytesIO(data), "site.png"), "stage": "before"})
    assert upload.status_code == 201, upload.get_json()
    url = f"/patrol/cases/{case['id']}/photos"
    mine = client.get(url, headers=map_world.token("pw")).get_json()["photos"]
    assert [(p["id"], p["stage"], p["mine"], p["url"]) for p in mine] == [
        (upload.get_json()["id"], "before", True, f"/api/v1/attachments/{upload.get_json()['id']}")]
    assert mine[0]["sha256"] == upload.get_json()["sha256"]
    assert len(mine[0]["sha256"]) == 64 and mine[0]["size_bytes"] > 0
    assert client.get(url, headers=map_world.token("ad")).get_json()["photos"][0]["mine"] is False
    # The east squad's patroller cannot see the west squad's case; other roles use the command centre's list.
    assert client.get(url, headers=map_world.token("pe")).status_code == 404
    assert client.get(url, headers=map_world.token("op")).status_code == 403
    assert client.get(url).status_code == 401
    assert client.get("/patrol/cases/99999999/photos", headers=map_world.token("pw")).status_code == 404


def test_a_patroller_lists_only_their_squads_tasks(map_world):
    west = map_world.step(map_world.step(map_world.report(point=WEST_POINT), "file", "sup1"), "dispatch", "op")
    east = map_world.step(map_world.step(map_world.report(point=EAST_POINT), "file", "sup1"), "dispatch", "op")
    query = "/api/v1/cases?status=" + ",".join(patrol.TASK_STATUSES) + f"&limit={patrol.TASK_LIMIT}"
    listed = {c["id"] for c in map_world.api().get(query, headers=map_world.token("pw")).get_json()["cases"]}
    assert west["id"] in listed and east["id"] not in listed


def test_the_landing_page_links_the_patrol_page(map_world):
    html = map_world.api().get("/").get_data(as_text=True)
    assert any(urlsplit(href).path == "/patrol" for href in REFERENCE.findall(html))
