"""The ledger in the admin, where finance and IT read it as it grows: newest hours first,
searched by namespace, model or department, filtered, drilled down by date; a date the
calendar cannot hold in the drill-down is a message, never a 500."""

import datetime as dt
import re

import pytest

from metering.admin import UsageRecordAdmin
from tests.factories import MetricSourceFactory, UsageRecordFactory

LEDGER = "/admin/metering/usagerecord/"
RUNS = "/admin/metering/meteringrun/"


@pytest.fixture
def rows(world):
    source = MetricSourceFactory(name="allocation", is_billing=True)
    at = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    return {
        "old": UsageRecordFactory(
            source=source,
            namespace="dept-marketing",
            department=world.marketing,
            gpu_class=world.t4,
            hour_start=at - dt.timedelta(days=40),
        ),
        "new": UsageRecordFactory(
            source=source,
            namespace="dept-training",
            department=world.training,
            gpu_class=world.a100,
            hour_start=at,
        ),
    }


def _record_ids(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', page)] or [
        int(pk) for pk in re.findall(r'href="/admin/metering/usagerecord/(\d+)/change/', page)
    ]


def test_the_ledger_admin_declares_its_lists_tools():
    assert UsageRecordAdmin.ordering[0] == "-hour_start"
    assert UsageRecordAdmin.date_hierarchy == "hour_start"
    assert "department__name" in UsageRecordAdmin.search_fields
    assert UsageRecordAdmin.list_filter


@pytest.mark.parametrize("role", ["finance", "it_admin"])
def test_the_ledger_lists_newest_hours_first_and_searches_by_department(world, client, rows, role):
    client.force_login(world.user(role))
    page = client.get(LEDGER).content.decode()
    assert _record_ids(page) == [rows["new"].pk, rows["old"].pk]
    found = client.get(LEDGER, {"q": "Training"})
    assert found.status_code == 200
    assert _record_ids(found.content.decode()) == [rows["new"].pk]


def test_the_date_drill_down_narrows_the_ledger(world, client, rows):
    client.force_login(world.user("finance"))
    page = client.get(LEDGER, {"hour_start__year": "2026", "hour_start__month": "1"})
    assert page.status_code == 200
    assert _record_ids(page.content.decode()) == [rows["old"].pk]


# Every admin list with a date drill-down, and its field.
DRILL_DOWNS = {
    LEDGER: "hour_start",
    RUNS: "started_at",
    "/admin/jobs/generationjob/": "submitted_at",
    "/admin/billing/ratecard/": "valid_from",
    "/admin/billing/billingperiod/": "month",
}


@pytest.mark.parametrize("url", list(DRILL_DOWNS))
@pytest.mark.parametrize(
    "query",
    [
        "year=9999",
        "year=9999&{f}__month=12",
        "year=9999&{f}__month=12&{f}__day=31",
        "year=1",
        "year=0",
        "year=twenty",
        "year=2026&{f}__month=13",
    ],
)
def test_a_drill_down_date_the_calendar_cannot_hold_is_a_message_not_a_500(
    world, client, rows, url, query
):
    client.force_login(world.user("finance"))
    field = DRILL_DOWNS[url]
    answer = client.get(f"{url}?{field}__{query.format(f=field)}", follow=True)
    assert answer.status_code == 200
    assert answer.redirect_chain, "the bad date should be dropped from the address"
    page = answer.content.decode()
    assert "cannot be shown" in page
    assert "__year" not in answer.redirect_chain[-1][0]
