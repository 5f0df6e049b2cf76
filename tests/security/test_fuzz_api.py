"""Schemathesis on every operation of /api/v1/openapi.json: no 5xx, and every response as documented.

Each operation is called anonymously and with operator and admin bearer tokens, with data that fits
the schema (positive) and data that does not (negative). The run is bounded and deterministic; the
full run is ``python -m tests.security.fuzz_full`` (or ``make fuzz``).
"""

from __future__ import annotations

import pytest
from schemathesis import GenerationMode

from tests.security import fuzzing

SCHEMA_CACHE: dict[int, object] = {}


def _schema(world):
    key = id(world.app)
    if key not in SCHEMA_CACHE:
        SCHEMA_CACHE[key] = fuzzing.load_schema(world.app)
    return SCHEMA_CACHE[key]


def test_the_document_lists_every_api_route(sec_world) -> None:
    labels = set(fuzzing.operations(_schema(sec_world)))
    routes = {f"{method} {rule.rule.replace('<', '{').replace('>', '}')}"
              for rule in sec_world.app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
              and not rule.rule.startswith(("/api/v1/docs", "/api/v1/openapi"))
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    routes = {r.replace("{int:", "{") for r in routes}
    assert routes <= labels, routes - labels
    assert len(labels) >= 29


def test_every_error_is_documented_as_problem_json(sec_world) -> None:
    spec = sec_world.client().get(fuzzing.SPEC_PATH).get_json()
    assert "Problem" in spec["components"]["schemas"]
    assert not {"HTTPError", "ValidationError"} & set(spec["components"]["schemas"])
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            assert "503" in operation["responses"], (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
            if operation.get("requestBody"):
                assert {"400", "413", "415"} <= set(operation["responses"]), (method, path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"]["type"] == "integer":
                    assert parameter["schema"]["maximum"] == 2**63 - 1


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("identity", fuzzing.IDENTITIES)
def test_fuzz_every_operation(sec_world, identity: str, mode: GenerationMode) -> None:
    schema = _schema(sec_world)
    headers = {} if identity == "anonymous" else sec_world.auth(identity)
    protected = set(sec_world.token_ids)

    def guard(case) -> bool:
        # Revoking the run's own tokens would turn every later request into a 401.
        return case.path_parameters.get("token_id") not in protected if case.path_parameters else True

    failures, sent = [], 0
    for label, op in fuzzing.operations(schema).items():
        method, path = label.split(" ", 1)
        if headers and (method, path) in fuzzing.STREAMING:
            continue
        try:
            sent += fuzzing.fuzz(op, headers=headers, mode=mode, guard=guard)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failures, then report them all
            failures.append(f"{label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert sent > 0
