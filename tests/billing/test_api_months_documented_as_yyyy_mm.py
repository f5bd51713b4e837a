"""The API reads and writes months as ``YYYY-MM``, and its OpenAPI schema says so: every
``period`` parameter and every month in an answer is a string with that pattern and an
example, never a date (which clients would send as 2026-03-01, and be refused)."""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.conftest import client_as

MONTH = {"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-03"}
# Answers' fields that hold a month, by component.
MONTH_PROPERTIES = {
    "Statement": ["period"],
    "StatementDetail": ["period"],
    "Adjustment": ["period", "original_period"],
    "ChargebackReport": ["period"],
}


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _month_parameters(schema: dict) -> dict[tuple[str, str], dict]:
    return {
        (method, path): parameter
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "period"
    }


def test_every_period_parameter_is_a_yyyy_mm_string(schema):
    parameters = _month_parameters(schema)
    assert set(parameters) == {
        ("get", "/api/v1/statements/"),
        ("get", "/api/v1/adjustments/"),
        ("get", "/api/v1/reports/chargeback/"),
        ("get", "/api/v1/reports/pools/"),
        ("get", "/api/v1/forecast/"),
        ("get", "/api/v1/exports/focus/"),
    }
    for where, parameter in parameters.items():
        assert parameter["in"] == "query", where
        assert {k: parameter["schema"].get(k) for k in MONTH} == MONTH, where
        assert "format" not in parameter["schema"], where
        assert "YYYY-MM" in parameter["description"], where


def test_every_month_in_an_answer_is_a_yyyy_mm_string(schema):
    components = schema["components"]["schemas"]
    for component, names in MONTH_PROPERTIES.items():
        for name in names:
            found = components[component]["properties"][name]
            assert {k: found.get(k) for k in MONTH} == MONTH, (component, name)


def test_the_documented_example_is_a_month_the_api_accepts(world, api_client):
    assert re.fullmatch(MONTH["pattern"], MONTH["example"])
    finance = client_as(api_client, world, "finance")
    assert finance.get("/api/v1/statements/", {"period": MONTH["example"]}).status_code == 200
    assert finance.get("/api/v1/statements/", {"period": "2026-03-01"}).status_code == 400
