"""Schemathesis generates requests from the OpenAPI schema (valid and invalid ones) and sends them to a
real server: none may get a 5xx, and every answer must match what the schema documents.

Operations are walked by hand rather than with `schemathesis.pytest.from_fixture`, whose lazy loader
reads a private pytest attribute that pytest 9 no longer has.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.api.conftest import running_server

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(small_predictor):
    from api import create_app
    from api.settings import Settings

    with running_server(create_app(Settings(max_pixels=4_000_000), predictor=small_predictor)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_schema_lists_every_route(api_schema):
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == {
        "POST /v1/predict",
        "POST /v1/predict/batch",
        "GET /v1/model",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    }


ROUTES = ["POST /v1/predict", "POST /v1/predict/batch", "GET /v1/model", "GET /healthz", "GET /readyz", "GET /metrics"]


def _run_generated_cases(api_schema, label: str, mode: GenerationMode, examples: int = 50) -> list[int]:
    """Send `examples` generated requests for one operation, check each answer, return the statuses."""
    operation = next(r.ok() for r in api_schema.get_all_operations() if r.ok().label == label)
    statuses = []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        statuses.append(case.call_and_validate(checks=CHECKS).status_code)

    check()
    return statuses


@pytest.mark.parametrize("label", ROUTES)
def test_no_server_errors_and_answers_match_the_schema(api_schema, label):
    statuses = _run_generated_cases(api_schema, label, GenerationMode.POSITIVE)
    assert statuses and max(statuses) < 500


@pytest.mark.parametrize("label", ["POST /v1/predict", "POST /v1/predict/batch"])
def test_schema_violating_requests_never_cause_a_server_error(api_schema, label):
    # Mostly 4xx; a few are accepted where parsing is lenient (detect=yes reads as true).
    statuses = _run_generated_cases(api_schema, label, GenerationMode.NEGATIVE)
    assert statuses and max(statuses) < 500 and sum(400 <= s < 500 for s in statuses) > len(statuses) / 2
