"""Schemathesis against the platform's own OpenAPI document, through the WSGI app (no network).

Shared by the bounded run in the test suite (``test_fuzz_api.py`` and the hypothesis tests beside
it) and the full run (``python -m tests.security.fuzz_full``). The budget comes from the environment
so that one code path serves both: ``GIS_FUZZ_SCALE`` multiplies every test's number of examples
(1 in the suite); ``GIS_FUZZ_RANDOM=1`` draws new examples each run (the bounded run is
derandomized: the same examples every time).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SPEC_PATH = "/api/v1/openapi.json"
API_EXAMPLES = 4  # per operation, generation mode and identity
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# The live event stream never ends when the caller is signed in: it is fuzzed anonymously only (401),
# and its signed-in behaviour is tested over a real server in tests/api/test_events.py.
STREAMING = {("GET", "/api/v1/events")}
# Identities: anonymous, and the two staff roles that may call (nearly) every operation.
IDENTITIES = ("anonymous", "op", "ad")


def budget(default: int = API_EXAMPLES) -> int:
    """Return a test's number of examples: its default times GIS_FUZZ_SCALE."""
    return max(1, round(default * float(os.environ.get("GIS_FUZZ_SCALE", "1"))))


def hypothesis_settings(default: int, **kwargs) -> settings:
    """Return hypothesis settings for a bounded, reproducible run (scaled and drawn anew by the full run)."""
    return settings(max_examples=budget(default), deadline=None, database=None, derandomize=derandomized(),
                    suppress_health_check=list(HealthCheck), print_blob=True, **kwargs)


def derandomized() -> bool:
    """Return whether the examples are the same every run (the default) or drawn anew."""
    return os.environ.get("GIS_FUZZ_RANDOM", "") not in ("1", "true", "yes")


def load_schema(app) -> schemathesis.BaseSchema:
    """Load the OpenAPI document the app serves."""
    return schemathesis.openapi.from_wsgi(SPEC_PATH, app)


def operations(schema) -> dict[str, object]:
    """Return every operation of the document by label."""
    out = {}
    for result in schema.get_all_operations():
        op = result.ok()
        out[f"{op.method.upper()} {op.path}"] = op
    return out


def fuzz(operation, *, headers: dict[str, str], mode: GenerationMode, examples: int = API_EXAMPLES,
         guard: Callable[[object], bool] = lambda case: True) -> int:
    """Send ``examples`` generated requests to one operation and validate every response; return how many."""
    sent = 0
    strategy = operation.as_strategy(generation_mode=mode)

    @hypothesis_settings(examples, phases=[Phase.explicit, Phase.generate])
    @given(case=strategy)
    def run(case) -> None:
        nonlocal sent
        if not guard(case):
            return
        response = case.call(headers=headers)
        sent += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:
        # Negative data needs something to negate: an operation without parameters or body has none.
        if mode is not GenerationMode.NEGATIVE or operation_inputs(operation):
            raise
    return sent


def operation_inputs(operation) -> int:
    """Return how many inputs (parameters and bodies) an operation declares."""
    definition = operation.definition.raw
    return len(definition.get("parameters", [])) + bool(definition.get("requestBody"))
