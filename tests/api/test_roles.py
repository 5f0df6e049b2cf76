"""The role × endpoint matrix, enforced on the server for every endpoint the app serves."""

import re

import pytest

from gis_platform import vocab

# Users of the mini county by role (tests/factories.make_county).
USER_OF_ROLE = {"admin": "ad", "supervisor": "sup1", "operator": "op", "patroller": "pw", "planner": "pl",
                "liaison": "li"}
# APIFlask's own views (the OpenAPI document, the docs page and its assets) are public by design.
FRAMEWORK_PUBLIC = {"openapi.spec", "openapi.docs", "docs_assets.asset", "static"}


def _endpoints(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _url(rule):
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "999999" if "int" in m.group(0) else "x", rule.rule)


def test_every_view_declares_who_may_call_it(api_world):
    missing = [rule.rule for rule, _ in _endpoints(api_world.app)
               if rule.endpoint not in FRAMEWORK_PUBLIC
               and not hasattr(api_world.app.view_functions[rule.endpoint], "_roles")]
    assert missing == []


def test_role_endpoint_matrix(api_world):
    w = api_world
    tokens = {role: w.token(user) for role, user in USER_OF_ROLE.items()}
    checked = 0
    for rule, method in _endpoints(w.app):
        view = w.app.view_functions[rule.endpoint]
        roles = getattr(view, "_roles", None)
        if rule.endpoint in FRAMEWORK_PUBLIC or rule.rule.startswith("/open311") or "stream" in rule.rule:
            continue
        url = _url(rule)
        send = getattr(w.client(), method.lower())
        kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        anonymous = send(url, **kwargs)
        if roles is None:
            assert anonymous.status_code != 401, (method, url)
        else:
            assert anonymous.status_code == 401, (method, url, anonymous.status_code)
            for role in vocab.ROLES:
                response = send(url, headers=tokens[role], **kwargs)
                if role in roles:
                    assert response.status_code not in (401, 403), (method, url, role, response.status_code)
                else:
                    assert response.status_code == 403, (method, url, role, response.status_code)
                checked += 1
        anonymous.close()
    assert checked >= 40


def test_statistics_and_the_briefing_are_for_analysts(api_world):
    """County-wide figures and the weekly briefing: planners, supervisors, operators and admins only."""
    views = {rule.rule: api_world.app.view_functions[rule.endpoint] for rule in api_world.app.url_map.iter_rules()}
    for path in ("/api/v1/stats/counts", "/api/v1/stats/summary", "/api/v1/indicators", "/api/v1/analytics/briefing"):
        assert set(views[path]._roles) == {"admin", "supervisor", "operator", "planner"}, path
