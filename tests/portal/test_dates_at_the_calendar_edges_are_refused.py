"""Dates the calendar can hardly hold, offsets PostgreSQL does not take, and strings that
are no date at all: every date, date-time and month query parameter answers 400 naming the
parameter, and the pages that read such parameters do not fail either.

Before: ``GET /api/v1/usage/?end=0001-01-01`` failed with ``OverflowError`` (a microsecond
before year 1), ``?start=9999-12-31`` with "year 10000 is out of range" (the month after
it), and ``?start=2026-03-01T00:00:00+16:00`` with PostgreSQL's "time zone displacement
out of range", each an HTML 500.
"""

from urllib.parse import urlencode

import pytest
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator

from core import filters
from tests.conftest import client_as
from tests.hostile_input import DATE_NAMES

# Every date, date-time or month query parameter of a list or report operation; the last
# test below fails when the schema gains one this table lacks.
MOMENT_PARAMETERS = [
    ("/api/v1/usage/", "start"),
    ("/api/v1/usage/", "end"),
    ("/api/v1/jobs/", "submitted_after"),
    ("/api/v1/jobs/", "submitted_before"),
    ("/api/v1/rate-cards/", "valid_at"),
]
MONTH_PARAMETERS = [
    ("/api/v1/statements/", "period"),
    ("/api/v1/adjustments/", "period"),
    ("/api/v1/reports/chargeback/", "period"),
    ("/api/v1/reports/pools/", "period"),
    ("/api/v1/forecast/", "period"),
    ("/api/v1/exports/focus/", "period"),
    ("/api/v1/usage/", "period"),
]

AT_THE_EDGES = [
    "0001-01-01",
    "0001-01-01T00:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-15:59",
    "0001-01-01T00:00:00+15:59",
    "9999-12-01",
    "9999-12-31",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999+15:59",
    "9999-12-31T23:59:59-15:59",
    # Just outside what the portal takes.
    "1899-12-31T23:59:59Z",
    "9999-01-01T00:00:00Z",
]
BEYOND_POSTGRES_OFFSETS = [
    "2026-03-01T00:00:00+16:00",
    "2026-03-01T00:00:00-16:00",
    "2026-03-01T00:00:00+23:59",
    "2026-03-01T00:00:00-23:59:59",
]
NOT_DATES = ["nan", "NaN", "inf", "-inf", "Infinity", "99999999999999999999", "1e309", "-0"]
ACCEPTED_MOMENTS = [
    "2026-03-01",
    "2026-03-01T00:00:00+15:59",
    "2026-03-01T00:00:00-15:59",
    "1900-01-01T00:00:00Z",
    "9998-12-31T23:59:59Z",
]
BAD_MONTHS = [
    "0001-01",
    "1999-12",
    "9999-01",
    "9999-12",
    "10000-01",
    "99999999999999999999-01",
    "2026-13",
    "2026-00",
    "nan",
    "inf",
    "-inf",
    "NaN",
]
ZONES = ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"]  # the portal's: UTC, +14:00, -12:00


def _get(client, path: str, query: dict):
    """The answer to GET ``path?query``, its writes undone after it, so that a request that
    breaks the transaction (a database error) does not break those after it."""
    savepoint = transaction.savepoint()
    try:
        return client.get(f"{path}?{urlencode(query)}")
    finally:
        transaction.savepoint_rollback(savepoint)


def _refusals(client, path: str, name: str, values: list[str]) -> list[str]:
    """What is wrong with the answers to ``path?name=value``: each must be a 400 whose
    errors name ``name`` and nothing else."""
    wrong = []
    for value in values:
        response = _get(client, path, {name: value})
        if response.status_code != 400:
            wrong.append(f"{value!r}: {response.status_code}")
        elif list(response.json()) != [name]:
            wrong.append(f"{value!r}: errors name {list(response.json())}")
    return wrong


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("path", "name"), MOMENT_PARAMETERS)
def test_a_date_time_at_the_calendars_edges_answers_400_naming_it(
    world, api_client, settings, path, name, zone
):
    settings.TIME_ZONE = zone
    client = client_as(api_client, world, "finance")
    client.raise_request_exception = False
    wrong = _refusals(client, path, name, AT_THE_EDGES + BEYOND_POSTGRES_OFFSETS + NOT_DATES)
    assert not wrong, wrong


@pytest.mark.parametrize(("path", "name"), MOMENT_PARAMETERS)
def test_the_error_says_what_the_portal_takes(world, api_client, path, name):
    client = client_as(api_client, world, "finance")
    far = client.get(f"{path}?{urlencode({name: '9999-12-31T23:59:59Z'})}").json()[name]
    assert far == [filters.OUT_OF_RANGE]
    offset = client.get(f"{path}?{urlencode({name: '2026-03-01T00:00+16:00'})}").json()[name]
    assert offset == [filters.OFFSET_OUT_OF_RANGE % {"offset": "+16:00"}]


@pytest.mark.parametrize(("path", "name"), MOMENT_PARAMETERS)
def test_date_times_within_the_range_are_still_read(world, api_client, path, name):
    client = client_as(api_client, world, "finance")
    for value in ACCEPTED_MOMENTS:
        response = _get(client, path, {name: value})
        assert response.status_code == 200, (value, response.json())


@pytest.mark.parametrize("role", ["anonymous", "member"])
def test_usage_at_the_calendars_edges_answers_no_server_error_to_anyone(world, api_client, role):
    client = client_as(api_client, world, role)
    client.raise_request_exception = False
    for name in ("start", "end"):
        for value in AT_THE_EDGES + BEYOND_POSTGRES_OFFSETS:
            response = _get(client, "/api/v1/usage/", {name: value})
            assert response.status_code == (401 if role == "anonymous" else 400), value


@pytest.mark.parametrize(("path", "name"), MONTH_PARAMETERS)
def test_a_month_at_the_calendars_edges_answers_400_naming_it(world, api_client, path, name):
    client = client_as(api_client, world, "finance")
    client.raise_request_exception = False
    wrong = _refusals(client, path, name, BAD_MONTHS)
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("path", "name", "values"),
    [
        ("/billing/", "period", BAD_MONTHS),
        ("/billing/statements/", "period", BAD_MONTHS),
        ("/jobs/", "submitted_after", AT_THE_EDGES + BEYOND_POSTGRES_OFFSETS + NOT_DATES),
        ("/jobs/", "submitted_before", AT_THE_EDGES + BEYOND_POSTGRES_OFFSETS + NOT_DATES),
    ],
)
def test_pages_refuse_such_dates_with_a_message(world, client, path, name, values):
    """The pages answer 400 with the reason, or (the jobs list) list nothing and say why."""
    client.force_login(world.user("finance"))
    client.raise_request_exception = False
    for value in values:
        response = _get(client, path, {name: value})
        assert response.status_code in (200, 400), (value, response.status_code)
        assert b'class="error"' in response.content, value


def test_every_date_parameter_of_the_api_is_in_the_tables():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = set()
    for path, operations in schema["paths"].items():
        if "{" in path:  # a detail's filters are not read (the object is named)
            continue
        for parameter in operations.get("get", {}).get("parameters", []):
            kind = parameter.get("schema", {}).get("format")
            if kind in ("date", "date-time") or parameter["name"] in DATE_NAMES:
                found.add((path, parameter["name"]))
    assert found == set(MOMENT_PARAMETERS + MONTH_PARAMETERS)
