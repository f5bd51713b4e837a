"""The jobs list as it grows: sorted by a column (``?sort=``, clickable headers), searched
(``?q=``), filtered by submitter and by the day it was submitted (from / before), paged.
A sort key or date that makes no sense is answered with a message, never a 500; the CSV
export carries the same filters."""

import datetime as dt
import html
import re
from decimal import Decimal

import pytest

from departments.models import Tier
from jobs.models import GenerationJob
from tests.conftest import client_as
from tests.factories import GenerationJobFactory, JobKindFactory

DAY = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)


def _job_ids(page: str) -> list[str]:
    return re.findall(r'<a href="/jobs/[0-9a-f-]{36}/"><code>([0-9a-f]{8})</code></a>', page)


def _get(client, url, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.content.decode()[:2000]
    return response.content.decode()


@pytest.fixture
def jobs(world):
    """Three jobs on three days, with different departments, kinds, states, GPU time and
    submitters (the world's own jobs are removed, so the order is unambiguous)."""
    GenerationJob.objects.filter(pk__in=[world.manager_job.pk, world.member_job.pk]).delete()
    speech = JobKindFactory(slug="speech", name="Speech synthesis")
    early = GenerationJobFactory(
        department=world.training,
        submitter=world.user("other_manager"),
        kind=speech,
        gpu_class=world.a100,
        tier=Tier.INTERACTIVE,
        state="failed",
        reason="The model ran out of GPU memory.",
        gpu_seconds=Decimal("300"),
        submitted_at=DAY - dt.timedelta(days=2),
    )
    middle = GenerationJobFactory(
        department=world.marketing,
        submitter=world.user("manager"),
        kind=world.lipsync,
        gpu_class=world.t4,
        state="running",
        gpu_seconds=Decimal("20"),
        submitted_at=DAY,
    )
    late = GenerationJobFactory(
        department=world.marketing,
        submitter=world.user("member"),
        kind=speech,
        gpu_class=world.t4,
        state="succeeded",
        gpu_seconds=Decimal("5000"),
        submitted_at=DAY + dt.timedelta(days=2),
    )
    return {"early": early, "middle": middle, "late": late}


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("", ["late", "middle", "early"]),  # newest first, as before
        ("submitted", ["early", "middle", "late"]),
        ("-gpu_seconds", ["late", "early", "middle"]),
        ("gpu_seconds", ["middle", "early", "late"]),
        ("kind", ["middle", "late", "early"]),  # Lip-sync, then Speech newest first
        ("department", ["late", "middle", "early"]),  # Marketing newest first, Training
        ("-department", ["early", "late", "middle"]),
        ("state", ["early", "middle", "late"]),  # failed, running, succeeded
    ],
)
def test_the_list_sorts_by_the_column_asked_for(world, client, jobs, sort, expected):
    page = _get(client_as(client, world, "finance"), f"/jobs/?sort={sort}")
    assert _job_ids(page) == [jobs[name].short_id for name in expected]


def test_the_column_headers_link_to_their_sort_and_the_sorted_one_links_to_its_reverse(
    world, client, jobs
):
    page = _get(client_as(client, world, "finance"), "/jobs/?state=succeeded&sort=kind&page=1")
    # Every sortable column links to its sort, keeping the filters, back to page 1.
    assert 'href="?state=succeeded&amp;sort=department"' in page
    assert 'href="?state=succeeded&amp;sort=-submitted"' in page
    # The column sorted by links to the reverse order and says how it is sorted.
    header = re.search(r'<th[^>]*aria-sort="ascending"[^>]*>(.*?)</th>', page, re.S)
    assert header is not None
    assert 'href="?state=succeeded&amp;sort=-kind"' in header.group(1)
    assert "Kind" in header.group(1)


def test_a_sort_key_that_is_no_column_is_ignored_with_a_message(world, client, jobs):
    page = _get(client_as(client, world, "finance"), "/jobs/?sort=password")
    assert "“password” is not a column to sort by" in html.unescape(page)
    # The default order, newest first.
    assert _job_ids(page)[0] == jobs["late"].short_id


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("speech", ["late", "early"]),  # the kind's name
        ("TRAINING", ["early"]),  # the department, any case
        ("out of gpu memory", ["early"]),  # the reason
        ("mila", ["late"]),  # the submitter
        ("nothing-like-this", []),
    ],
)
def test_the_search_box_finds_jobs_by_kind_department_reason_submitter(
    world, client, jobs, q, expected
):
    page = _get(client_as(client, world, "finance"), f"/jobs/?q={q}")
    assert sorted(_job_ids(page)) == sorted(jobs[n].short_id for n in expected)
    assert f'name="q" value="{html.escape(q)}"' in page


def test_the_search_box_finds_a_job_by_the_start_of_its_id(world, client, jobs):
    page = _get(client_as(client, world, "finance"), f"/jobs/?q={jobs['middle'].short_id}")
    assert _job_ids(page) == [jobs["middle"].short_id]


def test_the_search_never_shows_a_job_the_user_may_not_see(world, client, jobs):
    page = _get(client_as(client, world, "manager"), "/jobs/?q=speech")
    # The training job (speech) is not the marketing manager's to see.
    assert _job_ids(page) == [jobs["late"].short_id]


def test_the_list_filters_by_submitter(world, client, jobs):
    page = _get(client_as(client, world, "finance"), "/jobs/?submitter=tara")
    assert _job_ids(page) == [jobs["early"].short_id]
    # The submitters offered are those of the jobs the user may see.
    manager_page = _get(client_as(client, world, "manager"), "/jobs/")
    options = re.search(r'<select name="submitter".*?</select>', manager_page, re.S).group(0)
    assert 'value="mara"' in options and 'value="mila"' in options
    assert 'value="tara"' not in options


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("submitted_after=2026-03-08", ["early", "middle", "late"]),
        ("submitted_after=2026-03-09", ["middle", "late"]),
        ("submitted_before=2026-03-10", ["early"]),
        ("submitted_after=2026-03-08&submitted_before=2026-03-11", ["early", "middle"]),
        ("submitted_after=2026-03-10T14:00:00%2B01:00", ["late"]),
    ],
)
def test_the_list_filters_by_the_day_submitted(world, client, jobs, query, expected):
    page = _get(client_as(client, world, "finance"), f"/jobs/?{query}")
    assert sorted(_job_ids(page)) == sorted(jobs[n].short_id for n in expected)


@pytest.mark.parametrize(
    "query",
    [
        "submitted_after=0001-01-01",
        "submitted_after=0001-01-01T00:00:00%2B05:00",
        "submitted_before=9999-12-31",
        "submitted_before=9999-12-31T23:59:59-05:00",
        "submitted_after=2026-03-01T00:00:00%2B23:00",
        "submitted_after=2026-02-30",
        "submitted_after=yesterday",
    ],
)
def test_a_date_the_calendar_cannot_hold_is_a_message_not_a_500(world, client, jobs, query):
    page = _get(client_as(client, world, "finance"), f"/jobs/?{query}")
    assert re.search(r'<p class="error"[^>]*>Submitted (after|before): ', page), page
    assert _job_ids(page) == []


def test_the_csv_export_carries_the_filters_and_the_search(world, client, jobs):
    client = client_as(client, world, "finance")
    page = _get(client, "/jobs/?department=marketing&q=speech&sort=kind&page=1")
    link = re.search(r'<a[^>]*href="([^"]*)"[^>]*>CSV</a>', page)
    assert link is not None
    href = html.unescape(link.group(1))
    assert href.startswith("/api/v1/jobs/?")
    assert "format=csv" in href and "department=marketing" in href and "q=speech" in href
    assert "page=" not in href and "sort=" not in href
    export = client.get(href)
    assert export.status_code == 200
    assert export["Content-Type"].startswith("text/csv")
    rows = export.content.decode().splitlines()[1:]
    assert len(rows) == 1 and str(jobs["late"].pk) in rows[0]


def test_the_forms_empty_fields_filter_nothing(world, client, jobs):
    # What the filter form sends when every field is left at "any".
    empty = "state=&department=&kind=&tier=&submitter=&submitted_after=&submitted_before=&q="
    client = client_as(client, world, "finance")
    page = _get(client, f"/jobs/?{empty}")
    assert '<p class="error"' not in page
    assert len(_job_ids(page)) == 3
    href = html.unescape(re.search(r'<a[^>]*href="([^"]*)"[^>]*>CSV</a>', page).group(1))
    assert href == "/api/v1/jobs/?format=csv"
    assert client.get(href).status_code == 200
