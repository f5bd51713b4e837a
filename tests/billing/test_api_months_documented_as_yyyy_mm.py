"""The API reads and writes months as ``YYYY-MM``, and its OpenAPI schema says so: every
``period`` parameter and every month in an answer is a string with that pattern and an
example, never a date (which clients would send as 2026-03-01, and be refused). The
chargeback report reads a period: a month or a quarter (``YYYY-Qn``), a year to date
(``YYYY-YTD``) or a range of months (``YYYY-MM..YYYY-MM``), and its schema says that."""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.conftest import client_as

MONTH = {"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-03"}
PERIOD = {
    "type": "string",
    "pattern": r"^\d{4}-(\d{2}|Q[1-4]|YTD)$|^\d{4}-\d{2}\.\.\d{4}-\d{2}$",
    "example": "2026-Q3",
}
# Answers' fields that hold a month, by component.
MONTH_PROPERTIES = {
    "Statement": ["period"],
    "StatementDetail": ["period"],
    "Adjustment": ["period", "original_period"],
    "ChargebackReport": ["start_month", "end_month"],
}
# Parameters and answers' fields that hold a period of months.
PERIOD_PARAMETERS = {("get", "/api/v1/reports/chargeback/"), ("get", "/api/v1/usage/")}
PERIOD_PROPERTIES = {"ChargebackReport": ["period", "previous_period"]}


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


def test_every_period_parameter_is_a_yyyy_mm_string_or_a_period_of_months(schema):
    parameters = _month_parameters(schema)
    assert set(parameters) == {
        ("get", "/api/v1/statements/"),
        ("get", "/api/v1/adjustments/"),
        ("get", "/api/v1/reports/chargeback/"),
        ("get", "/api/v1/reports/pools/"),
        ("get", "/api/v1/forecast/"),
        ("get", "/api/v1/exports/focus/"),
        ("get", "/api/v1/usage/"),
    }
    for where, parameter in parameters.items():
        assert parameter["in"] == "query", where
        assert "format" not in parameter["schema"], where
        assert "YYYY-MM" in parameter["description"], where
        if where in PERIOD_PARAMETERS:
            assert {k: parameter["schema"].get(k) for k in PERIOD} == PERIOD, where
            for form in ("YYYY-Qn", "YYYY-YTD", "YYYY-MM..YYYY-MM"):
                assert form in parameter["description"], (where, form)
            continue
        assert {k: parameter["schema"].get(k) for k in MONTH} == MONTH, where


def test_every_month_in_an_answer_is_a_yyyy_mm_string(schema):
    components = schema["components"]["schemas"]
    for component, names in MONTH_PROPERTIES.items():
        for name in names:
            found = components[component]["properties"][name]
            assert {k: found.get(k) for k in MONTH} == MONTH, (component, name)
    for component, names in PERIOD_PROPERTIES.items():
        for name in names:
            found = components[component]["properties"][name]
            assert {k: found.get(k) for k in PERIOD} == PERIOD, (component, name)


def test_the_documented_example_is_a_month_the_api_accepts(world, api_client):
    assert re.fullmatch(MONTH["pattern"], MONTH["example"])
    finance = client_as(api_client, world, "finance")
    assert finance.get("/api/v1/statements/", {"period": MONTH["example"]}).status_code == 200
    assert finance.get("/api/v1/statements/", {"period": "2026-03-01"}).status_code == 400


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("2026-03", True),
        ("2026-Q3", True),
        ("2026-YTD", True),
        ("2026-01..2026-06", True),
        ("2026-Q5", False),  # the pattern says Q1 to Q4, as the parser does
        ("2026-03-01", False),
        ("Q3", False),
        ("2026-01..", False),
    ],
)
def test_the_documented_period_pattern_matches_the_forms_the_parser_reads(value, accepted):
    assert bool(re.fullmatch(PERIOD["pattern"], value)) is accepted
    assert re.fullmatch(PERIOD["pattern"], PERIOD["example"])
