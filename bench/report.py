"""How much slower is the month's chargeback report than the SQL that computes its figures?

A year of hourly ledger (``--departments`` 200, each with one namespace, x 3 GPU classes,
plus a few namespaces no department owns, every hour of ``--months`` 12 portal months:
about 5.4 million ``metering_usagerecord`` rows) is written into a throwaway PostgreSQL
database with ``COPY``, with one succeeded ``MeteringRun`` of the billing source
(``allocation``) per month. Prices that make the pricing engine work: one rate card per
GPU class with a price change in the middle of the year and another in the middle of the
measured month, a realtime card for one class (every 10th namespace runs realtime work),
an off-peak window (22:00 to 06:00 Europe/Berlin, x 0.6), department multipliers (every
7th department x 0.8 throughout, every 11th x 1.15 from the 10th of the measured month)
and GPU-hours budgets and service levels for every department.

The measured month is the last full portal month (``--month`` names another). Two
scenarios run in the same process: first with ``--months`` of history (every month's
statements refreshed, as a portal that has run for a year holds them), then with the
measured month only (the earlier months' ledger rows, runs and statements deleted). In each
the bench times, after one untimed warm-up, ``--repeat`` times in rotating order (medians
reported):

baseline
    One hand-written SQL statement over ``metering_usagerecord``: per department and GPU
    class, the month's GPU-hours and amount (GPU-hours x the card's price, the namespace's
    tier card first, x the off-peak multiplier x the department's multiplier, rounded
    half-up to the cent per pricing line as the statements round), executed on a raw cursor
    and fetched. Nothing can produce the figures from the ledger faster.
api
    ``GET /api/v1/reports/chargeback/?period=YYYY-MM`` through Django's test client as a
    finance user (token authentication). Until that route exists: what it will do,
    in-process: ``period_refresh(month)`` (a no-op when nothing changed) +
    ``chargeback_report(user, period)`` + the rows as JSON.
dashboard
    ``GET /billing/?period=YYYY-MM`` (session of the finance user). Until that route
    exists: the same selector calls and the rows rendered by a Django template.
refresh
    ``period_refresh(month, force=True)``: the drafts recomputed from the ledger, as after
    a pull that changed it (``--refresh-repeat`` times). Reported, in no ratio.

It prints the medians, each one's ratio to the baseline of its scenario (target <= 1.5),
the ratio of the report with 12 months of history to the report with 1 (target: no slower,
within ``--history-tolerance``), PASS or FAIL, and whether the report's per-department
spend, GPU-hours and split by class equal the baseline's to the cent (the differences when
they do not).

Loading: ``metering_usagerecord``'s secondary indexes and its unique constraint are dropped
and its triggers (the foreign-key checks) disabled during the ``COPY``, then the very same
definitions are created again (the rows are consistent by construction); then ``VACUUM
ANALYZE``. That takes a few minutes on 2 cores and is printed, in no ratio.

The database is ``bench_report`` on 127.0.0.1 (``postgres``, trust), created with
migrations and dropped at the end (``--keep-database`` keeps it; ``--database-url`` names
another; ``--reuse-database`` accepts one that exists and empties the tables the bench
writes). It runs with ``bench.settings`` and ``DEBUG=0``; the static files the pages need
are collected once into ``--static-root``. Run from the repository root::

    .venv/bin/python bench/report.py                          # 200 departments, 12 months
    .venv/bin/python bench/report.py --departments 20 --months 2 --repeat 3   # a quick look
    .venv/bin/python bench/report.py --json report.json       # the table, and JSON too

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from common import bench_database, log
from common import setup_django as django_setup

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_report"
TARGET_RATIO = 1.5
API_PATH = "/api/v1/reports/chargeback/"
DASHBOARD_PATH = "/billing/"
ZONE = "Europe/Berlin"  # the portal's and the off-peak window's time zone (DST included)
GPU_CLASSES = (  # name, slug, model label in the ledger, prices: start, mid-year, mid-month
    ("A100 80GB", "a100", "NVIDIA-A100-SXM4-80GB", ("2.5000", "2.7125", "2.9050")),
    ("H100 80GB", "h100", "NVIDIA-H100-80GB-HBM3", ("4.1000", "3.8875", "3.6125")),
    ("L4", "l4", "NVIDIA-L4", ("0.8000", "0.8450", "0.9125")),
)
REALTIME_CARD = ("a100", "3.4000")  # a card of its own for realtime namespaces
REALTIME_EVERY = 10  # every 10th department's namespace runs realtime work
OFF_PEAK = (dt.time(22), dt.time(6), Decimal("0.600"))
DISCOUNT_EVERY, DISCOUNT = 7, Decimal("0.800")  # throughout
SURCHARGE_EVERY, SURCHARGE = 11, Decimal("1.150")  # from the 10th of the measured month
UNOWNED_PER = 40  # one namespace no department owns per 40 departments (at least one)
QUANTITIES = 4001  # quantities are 0.000 to 4.000 GPU-hours per series and hour
# (kept in GPU-seconds, as the ledger keeps them: 0.0 to 14400.0, multiples of 3.6 s)


# --- the database and Django ------------------------------------------------------------------


def database(url: str, *, reuse: bool, keep: bool):
    return bench_database(
        url, reuse=reuse, keep=keep, reused_means="its departments, ledger and billing tables"
    )


def setup_django(database_url: str, scratch: Path, static_root: Path) -> dict[str, str]:
    """Django with ``bench.settings`` and DEBUG off; returns the fingerprints of the code
    measured."""
    os.environ.setdefault("TIME_ZONE", ZONE)
    return django_setup(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": database_url,
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-report-only"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "SECURE_SSL_REDIRECT": "0",
            "EMAIL_URL": "dummymail://",
            "CELERY_BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
            "PORTAL_VAR_DIR": str(scratch),
            "STATIC_ROOT": str(static_root),
        },
        [
            "billing.pricing",
            "billing.services",
            "billing.selectors",
            "billing.api",
            "billing.views",
        ],
    )


def collect_static(static_root: Path) -> None:
    """The pages need the static files' manifest when DEBUG is off; collected once."""
    from django.core.management import call_command

    if (static_root / "staticfiles.json").exists():
        return
    began = time.perf_counter()
    call_command("collectstatic", interactive=False, verbosity=0)
    log(f"collected static files into {static_root} in {time.perf_counter() - began:.0f} s")


# --- the data ---------------------------------------------------------------------------------


@dataclass
class World:
    month: dt.date  # the measured month
    months: list[dt.date]  # every month of history, oldest first; the last is ``month``
    source_id: int
    finance: object
    token: str
    departments: dict[int, str] = field(default_factory=dict)  # pk -> slug
    classes: dict[int, str] = field(default_factory=dict)  # pk -> name
    runs: dict[dt.date, int] = field(default_factory=dict)  # month -> MeteringRun pk
    rows: dict[dt.date, int] = field(default_factory=dict)  # month -> ledger rows


def shift_month(month: dt.date, by: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + by
    return dt.date(index // 12, index % 12 + 1, 1)


def local(month: dt.date, day: int) -> dt.datetime:
    from core.calendar import portal_zone

    return dt.datetime(month.year, month.month, day, tzinfo=portal_zone()).astimezone(dt.UTC)


def empty_tables() -> None:
    """What a reused database holds of an earlier run, gone."""
    from django.db import connection

    tables = [
        "billing_statementline",
        "billing_adjustment",
        "billing_statement",
        "billing_billingperiod",
        "billing_departmentmultiplier",
        "billing_ratecard",
        "metering_usagerecord",
        "metering_meteringrun",
        "departments_offpeakwindow",
        "departments_quota",
        "departments_servicelevel_gpu_classes",
        "departments_servicelevel",
        "departments_namespace",
        "departments_membership",
        "jobs_quotaalert",
        "jobs_generationjob",
        "departments_department",
        "departments_gpuclass",
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")  # names from this list


def prepare(departments: int, months: int, month: dt.date) -> World:
    """Migrate; GPU classes, departments with a namespace, budget and service level, rate
    cards, multipliers, the off-peak window, a finance user with a token."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from billing.models import DepartmentMultiplier, RateCard
    from core.roles import FINANCE
    from departments.models import (
        Department,
        GpuClass,
        Namespace,
        OffPeakWindow,
        Quota,
        ServiceLevel,
    )
    from metering.models import MetricSource

    call_command("migrate", verbosity=0)
    history = [shift_month(month, by) for by in range(1 - months, 1)]
    unowned = max(1, departments // UNOWNED_PER)
    series_per_class = departments + unowned
    classes = []
    for name, slug, model, _ in GPU_CLASSES:
        classes.append(
            GpuClass.objects.create(
                name=name,
                slug=slug,
                model_regex=model,
                capacity_gpus=4 * series_per_class + 16,  # usage always fits
            )
        )
    depts = Department.objects.bulk_create(
        Department(name=f"Department {i:03d}", slug=f"dept-{i:03d}", cost_centre=f"CC{i:04d}")
        for i in range(departments)
    )
    Namespace.objects.bulk_create(
        Namespace(
            name=f"dept-{i:03d}",
            department=d,
            tier="realtime" if i % REALTIME_EVERY == 0 else "",
        )
        for i, d in enumerate(depts)
    )
    Quota.objects.bulk_create(
        Quota(
            department=d,
            kind=Quota.Kind.GPU_HOURS_MONTH,
            limit=Decimal(6000 + 37 * i),
            enforcement=Quota.Enforcement.SOFT,
        )
        for i, d in enumerate(depts)
    )
    ServiceLevel.objects.bulk_create(
        ServiceLevel(department=d, tier="batch", priority=2, max_queue_wait_s=3600) for d in depts
    )
    since = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    mid_year = local(history[len(history) // 2], 1) if months > 1 else None
    mid_month = local(month, 15)
    cards = []
    for gpu_class, (_, _, _, prices) in zip(classes, GPU_CLASSES, strict=True):
        steps = [since, *([mid_year] if mid_year else []), mid_month]
        used = [prices[0], *([prices[1]] if mid_year else []), prices[2]]
        for k, (start, price) in enumerate(zip(steps, used, strict=True)):
            end = steps[k + 1] if k + 1 < len(steps) else None
            cards.append(
                RateCard(
                    gpu_class=gpu_class,
                    price_per_gpu_hour=Decimal(price),
                    valid_from=start,
                    valid_to=end,
                    note="bench",
                )
            )
    realtime_class = next(c for c in classes if c.slug == REALTIME_CARD[0])
    cards.append(
        RateCard(
            gpu_class=realtime_class,
            tier="realtime",
            price_per_gpu_hour=Decimal(REALTIME_CARD[1]),
            valid_from=since,
            note="bench",
        )
    )
    for card in cards:
        card.full_clean()
    RateCard.objects.bulk_create(cards)
    multipliers = []
    for i, d in enumerate(depts):
        if i % DISCOUNT_EVERY == 0:
            multipliers.append(
                DepartmentMultiplier(
                    department=d, multiplier=DISCOUNT, valid_from=since, reason="bench discount"
                )
            )
        elif i % SURCHARGE_EVERY == 0:
            multipliers.append(
                DepartmentMultiplier(
                    department=d,
                    multiplier=SURCHARGE,
                    valid_from=local(month, 10),
                    reason="bench surcharge",
                )
            )
    DepartmentMultiplier.objects.bulk_create(multipliers)
    OffPeakWindow.objects.create(
        name="Nights",
        start_time=OFF_PEAK[0],
        end_time=OFF_PEAK[1],
        time_zone=ZONE,
        price_multiplier=OFF_PEAK[2],
    )
    source = MetricSource.objects.get(is_billing=True)
    User = get_user_model()
    finance = User.objects.create(username="bench-finance", email="finance@example.com")
    finance.groups.add(Group.objects.get(name=FINANCE))
    token = Token.objects.create(user=finance)
    return World(
        month=month,
        months=history,
        source_id=source.pk,
        finance=finance,
        token=token.key,
        departments={d.pk: d.slug for d in depts},
        classes={c.pk: c.name for c in classes},
    )


@dataclass(frozen=True)
class Series:
    namespace: str
    gpu_model: str
    department_id: int | None
    gpu_class_id: int
    seed: int


def all_series(world: World) -> list[Series]:
    from departments.models import GpuClass

    classes = {c.slug: c.pk for c in GpuClass.objects.all()}
    owners = [(slug, pk) for pk, slug in sorted(world.departments.items())]
    unowned = max(1, len(owners) // UNOWNED_PER)
    owners += [(f"unowned-{k:02d}", None) for k in range(unowned)]
    series = []
    for namespace, department_id in owners:
        for _, slug, model, _ in GPU_CLASSES:
            seed = (len(series) * 7919 + 104729) % QUANTITIES
            series.append(Series(namespace, model, department_id, classes[slug], seed))
    return series


def month_lines(world: World, series: list[Series], month: dt.date, run_id: int) -> Iterator[str]:
    """The month's ledger rows as COPY text: every series, every hour."""
    from core.calendar import month_hours

    hours = month_hours(month)
    first = int(hours[0].timestamp()) // 3600
    stamps = [f"{hour:%Y-%m-%d %H:%M:%S}+00" for hour in hours]
    quantities = [f"{q * 36 // 10}.{q * 36 % 10}" for q in range(QUANTITIES)]  # GPU-seconds
    for s in series:
        head = f"{world.source_id}\t{s.namespace}\t{s.gpu_model}\t"
        department = str(s.department_id) if s.department_id else "\\N"  # NULL in COPY
        tail = f"\t{department}\t{s.gpu_class_id}\t"
        end = f"\t{run_id}\n"
        for k, stamp in enumerate(stamps):
            yield head + stamp + tail + quantities[(s.seed + (first + k) * 613) % QUANTITIES] + end


TABLE = "metering_usagerecord"
COLUMNS = (
    "source_id, namespace, gpu_model, hour_start, department_id, gpu_class_id, quantity, run_id"
)


def _secondary_indexes(cursor) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(unique constraints, other non-primary indexes) of the ledger table, as definitions."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'u'",
        [TABLE],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
        [TABLE],
    )
    return constraints, cursor.fetchall()


@contextlib.contextmanager
def bulk_load() -> Iterator[None]:
    """The ledger table without its secondary indexes and foreign-key triggers while rows
    stream in; the same definitions restored afterwards."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints, indexes = _secondary_indexes(cursor)
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE {TABLE} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL")
    try:
        yield
    finally:
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER ALL")
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for _, definition in indexes:
                cursor.execute(definition)
            for name, definition in constraints:
                cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
            cursor.execute("RESET maintenance_work_mem")
        log(
            f"created {len(indexes)} indexes and {len(constraints)} unique constraint again "
            f"in {time.perf_counter() - began:.0f} s"
        )


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (TABLE, "metering_meteringrun", "billing_statement", "billing_statementline"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def load_ledger(world: World) -> dict[str, float]:
    """Every month of history into the ledger, one succeeded run each."""
    from django.db import connection
    from django.utils import timezone

    from core.calendar import month_bounds
    from metering.models import MeteringRun

    times: dict[str, float] = {}
    series = all_series(world)
    now = timezone.now()
    for month in world.months:
        start, end = month_bounds(month)
        run = MeteringRun.objects.create(
            source_id=world.source_id,
            window_start=start,
            window_end=end,
            trigger=MeteringRun.Trigger.MANUAL,
            status=MeteringRun.Status.SUCCEEDED,
            started_at=now,
            finished_at=now,
            series=len(series),
        )
        world.runs[month] = run.pk
    began = time.perf_counter()
    with bulk_load():
        for month in world.months:
            t0 = time.perf_counter()
            text = "".join(month_lines(world, series, month, world.runs[month])).encode()
            with connection.cursor() as cursor:
                cursor.cursor.copy_expert(
                    f"COPY {TABLE} ({COLUMNS}) FROM STDIN", io.BytesIO(text), size=1 << 20
                )
                world.rows[month] = cursor.rowcount
            MeteringRun.objects.filter(pk=world.runs[month]).update(
                rows_written=world.rows[month], queries=1
            )
            log(
                f"copied {month:%Y-%m}: {world.rows[month]:,} rows in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        times["copy_s"] = time.perf_counter() - began
    times["indexes_s"] = time.perf_counter() - began - times["copy_s"]
    t0 = time.perf_counter()
    vacuum()
    times["vacuum_s"] = time.perf_counter() - t0
    return times


def trim_history(world: World) -> float:
    """Only the measured month is left: the earlier months' ledger rows, runs, statements
    and periods deleted."""
    from django.db import connection, transaction

    from billing.models import BillingPeriod, Statement, StatementLine
    from core.calendar import month_bounds
    from metering.models import MeteringRun

    began = time.perf_counter()
    start, _ = month_bounds(world.month)
    earlier = [m for m in world.months if m < world.month]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE keep ON COMMIT DROP AS SELECT * FROM metering_usagerecord "
            "WHERE hour_start >= %s",
            [start],
        )
        cursor.execute(f"TRUNCATE {TABLE}")
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL")
        cursor.execute("INSERT INTO metering_usagerecord SELECT * FROM keep")
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER ALL")
        StatementLine.objects.filter(period__month__in=earlier).delete()
        Statement.objects.filter(period__month__in=earlier).delete()
        BillingPeriod.objects.filter(month__in=earlier).delete()
        MeteringRun.objects.filter(pk__in=[world.runs[m] for m in earlier]).delete()
    for m in earlier:
        world.rows.pop(m, None)
    vacuum()
    return time.perf_counter() - began


# --- what is measured -------------------------------------------------------------------------

BASELINE_SQL = """
WITH lines AS (
    SELECT r.department_id,
           r.gpu_class_id,
           CASE WHEN r.department_id IS NULL THEN r.namespace ELSE '' END AS namespace,
           COALESCE(tier_card.price_per_gpu_hour, class_card.price_per_gpu_hour) AS price,
           CASE WHEN (r.hour_start AT TIME ZONE %(zone)s)::time >= %(off_peak_start)s
                  OR (r.hour_start AT TIME ZONE %(zone)s)::time < %(off_peak_end)s
                THEN %(off_peak)s ELSE 1 END AS off_peak,
           CASE WHEN r.department_id IS NULL THEN 1
                ELSE COALESCE(m.multiplier, 1) END AS multiplier,
           SUM(r.quantity) AS gpu_seconds
      FROM metering_usagerecord r
      LEFT JOIN departments_namespace n ON n.name = r.namespace
      LEFT JOIN billing_ratecard tier_card
             ON tier_card.gpu_class_id = r.gpu_class_id AND n.tier <> ''
            AND tier_card.tier = n.tier AND tier_card.valid_from <= r.hour_start
            AND (tier_card.valid_to IS NULL OR r.hour_start < tier_card.valid_to)
      LEFT JOIN billing_ratecard class_card
             ON class_card.gpu_class_id = r.gpu_class_id AND class_card.tier = ''
            AND class_card.valid_from <= r.hour_start
            AND (class_card.valid_to IS NULL OR r.hour_start < class_card.valid_to)
      LEFT JOIN billing_departmentmultiplier m
             ON m.department_id = r.department_id AND m.valid_from <= r.hour_start
            AND (m.valid_to IS NULL OR r.hour_start < m.valid_to)
     WHERE r.source_id = %(source)s AND r.hour_start >= %(start)s AND r.hour_start < %(end)s
     GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT department_id, gpu_class_id, SUM(gpu_seconds),
       SUM(ROUND(gpu_seconds * price * off_peak * multiplier / 3600, 2))
  FROM lines
 GROUP BY department_id, gpu_class_id
 ORDER BY department_id, gpu_class_id
"""


def baseline(world: World) -> list[tuple]:
    """The month's figures per department (None: Unallocated) and GPU class, straight from
    the ledger: GPU-seconds, and the amount rounded per pricing line as statements round."""
    from django.db import connection

    from core.calendar import month_bounds

    start, end = month_bounds(world.month)
    params = {
        "zone": ZONE,
        "off_peak_start": OFF_PEAK[0],
        "off_peak_end": OFF_PEAK[1],
        "off_peak": OFF_PEAK[2],
        "source": world.source_id,
        "start": start,
        "end": end,
    }
    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, params)
        return cursor.fetchall()


def report_in_process(world: World):
    from billing.selectors import chargeback_report
    from billing.services import period_refresh

    period = period_refresh(month=world.month)
    return chargeback_report(user=world.finance, period=period)


def _money(value) -> str | None:
    return None if value is None else f"{value:f}"


def api_in_process(world: World) -> bytes:
    """What the chargeback endpoint will do, without the route: refresh, report, JSON."""
    report = report_in_process(world)
    payload = {
        "period": report.period.label,
        "currency": report.currency,
        "capacity_amount": _money(report.capacity_amount),
        "idle_amount": _money(report.idle_amount),
        "idle_absorbed": _money(report.idle_absorbed),
        "rows": [
            {
                "department": row.department.slug if row.department else None,
                "name": row.name,
                "statement": row.statement.pk if row.statement else None,
                "status": row.statement.status if row.statement else None,
                "spend": _money(row.spend),
                "gpu_hours": _money(row.gpu_hours),
                "by_class": {k: _money(v) for k, v in row.by_class.items()},
                "budget_gpu_hours": _money(row.budget_gpu_hours),
                "budget_used": _money(row.budget_used),
                "efficiency": _money(row.efficiency),
                "sla_met": row.sla_met,
            }
            for row in report.rows
        ],
    }
    return json.dumps(payload).encode()


DASHBOARD_TEMPLATE = """\
<h1>{{ report.period }}</h1>
<table>
<thead><tr><th>Department</th><th>Spend</th><th>GPU-hours</th>
{% for name in report.class_names %}<th>{{ name }}</th>{% endfor %}
<th>Budget</th><th>Efficiency</th><th>SLA</th></tr></thead>
<tbody>
{% for row in report.rows %}<tr><td>{{ row.name }}</td>
<td>{{ row.spend|floatformat:2 }} {{ report.currency }}</td>
<td>{{ row.gpu_hours|floatformat:1 }}</td>
{% for name, amount in row.by_class.items %}<td>{{ amount|floatformat:2 }}</td>{% endfor %}
<td>{% if row.budget_used is not None %}{% widthratio row.budget_used 1 100 %} %{% endif %}</td>
<td>{{ row.efficiency|default_if_none:"" }}</td><td>{{ row.sla_met|yesno:"met,missed,-" }}</td>
</tr>{% endfor %}
</tbody></table>
<p>Idle {{ report.idle_amount|floatformat:2 }},
capacity {{ report.capacity_amount|floatformat:2 }}</p>
"""


def dashboard_in_process(world: World) -> str:
    """What the dashboard will do, without the route: refresh, report, the rows rendered."""
    from django.template import engines

    report = report_in_process(world)
    template = engines["django"].from_string(DASHBOARD_TEMPLATE)
    return template.render({"report": report})


@dataclass
class Target:
    """One thing to time: over HTTP when its route exists and answers 200, else the
    in-process stand-in."""

    name: str
    path: str
    fallback: Callable[[World], object]
    client: object = None
    how: str = ""
    note: str = ""

    def setup(self, world: World) -> None:
        from django.test import Client
        from django.urls import Resolver404, resolve

        try:
            resolve(self.path)
        except Resolver404:
            self.how, self.note = "in-process", f"{self.path} has no route yet"
            return
        if self.name == "api":
            self.client = Client(HTTP_AUTHORIZATION=f"Token {world.token}")
        else:
            self.client = Client()
            self.client.force_login(world.finance)
        response = self.client.get(self.path, {"period": f"{world.month:%Y-%m}"})
        if response.status_code != 200:
            self.how = "in-process"
            self.note = f"GET {self.path} answered {response.status_code}; not measured over HTTP"
            self.client = None
            return
        self.how = "HTTP (test client)"

    def __call__(self, world: World) -> object:
        if self.client is None:
            return self.fallback(world)
        response = self.client.get(self.path, {"period": f"{world.month:%Y-%m}"})
        if response.status_code != 200:
            raise RuntimeError(f"GET {self.path} answered {response.status_code}")
        return response.content


def refresh(world: World) -> None:
    from billing.services import period_refresh

    period_refresh(month=world.month, force=True)


def count_queries(function: Callable[[], object]) -> tuple[int, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured), sum(float(q["time"]) for q in captured.captured_queries) * 1000


@dataclass
class Scenario:
    name: str
    history: int  # months of ledger
    rows: int  # ledger rows
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    queries: dict[str, tuple[int, float]] = field(default_factory=dict)
    check: dict = field(default_factory=dict)
    load: float = 0.0  # the 1-minute load average after the timed rounds

    def median_ms(self, what: str) -> float:
        return statistics.median(self.times[what]) * 1000

    def summary(self) -> dict:
        return {
            "history_months": self.history,
            "ledger_rows": self.rows,
            "median_ms": {k: round(self.median_ms(k), 2) for k in self.times},
            "times_ms": {k: [round(t * 1000, 2) for t in v] for k, v in self.times.items()},
            "ratio_to_baseline": {
                k: round(self.median_ms(k) / self.median_ms("baseline"), 3)
                for k in ("api", "dashboard")
            },
            "queries": {
                k: {"count": n, "sql_ms": round(ms, 2)} for k, (n, ms) in self.queries.items()
            },
            "check": self.check,
            "load_average": self.load,
        }


def measure(
    world: World, scenario: Scenario, targets: dict[str, Callable], repeat: int, refreshes: int
) -> None:
    """Warm-up, then ``repeat`` rounds in rotating order; then the forced refreshes."""
    from billing.services import period_refresh

    period_refresh(month=world.month)  # brings the drafts up to date once, untimed
    for name, target in targets.items():
        scenario.queries[name] = count_queries(lambda t=target: t(world))
    order = list(targets)
    for number in range(repeat):
        shift = number % len(order)
        for name in order[shift:] + order[:shift]:
            began = time.perf_counter()
            targets[name](world)
            scenario.times[name].append(time.perf_counter() - began)
    scenario.load = os.getloadavg()[0]
    log(
        f"{scenario.name}: "
        + ", ".join(f"{name} {scenario.median_ms(name):.1f} ms" for name in order)
        + f" (load average {scenario.load:.1f})"
    )
    for _ in range(refreshes):
        began = time.perf_counter()
        refresh(world)
        scenario.times["refresh"].append(time.perf_counter() - began)
    scenario.queries["refresh"] = count_queries(lambda: refresh(world))
    log(f"{scenario.name}: forced refresh {scenario.median_ms('refresh'):.0f} ms")


def check_figures(world: World) -> dict:
    """The report's per-department spend, GPU-hours and split by GPU class against the
    baseline's figures (rounded per line, added up per department), to the cent."""
    cent = Decimal("0.01")
    expected: dict[int | None, dict] = defaultdict(
        lambda: {"spend": Decimal(0), "gpu_seconds": Decimal(0), "by_class": {}}
    )
    for department_id, class_id, seconds, amount in baseline(world):
        figures = expected[department_id]
        amount = (amount or Decimal(0)).quantize(cent, rounding=ROUND_HALF_UP)
        figures["spend"] += amount
        figures["gpu_seconds"] += seconds
        figures["by_class"][world.classes[class_id]] = amount
    report = report_in_process(world)
    differences = []
    compared = 0
    for row in report.rows:
        key = row.department.pk if row.department else None
        want = expected.pop(key, None)
        who = row.department.slug if row.department else row.name
        if want is None:
            if row.spend or row.gpu_hours:
                differences.append(f"{who}: in the report only ({row.spend} for {row.gpu_hours} h)")
            continue
        compared += 1
        got_classes = {k: v.quantize(cent) for k, v in row.by_class.items() if v}
        want_classes = {k: v for k, v in want["by_class"].items() if v}
        if row.department is None:
            got_classes = want_classes  # Unallocated's split is by namespace line, not checked
        if row.spend.quantize(cent) != want["spend"]:
            differences.append(f"{who}: spend {row.spend} in the report, {want['spend']} in SQL")
        if row.gpu_seconds != want["gpu_seconds"]:
            differences.append(
                f"{who}: {row.gpu_seconds} GPU-seconds in the report, {want['gpu_seconds']} in SQL"
            )
        if got_classes != want_classes:
            differences.append(
                f"{who}: by class {got_classes} in the report, {want_classes} in SQL"
            )
    for key, want in expected.items():
        differences.append(f"{world.departments.get(key, key)}: in SQL only ({want['spend']})")
    total = sum((r.spend for r in report.rows if r.department is not None), Decimal(0))
    return {
        "rows_compared": compared,
        "departments_total": f"{total:f}",
        "matched": not differences,
        "differences": differences[:50],
        "more_differences": max(0, len(differences) - 50),
    }


# --- the report -------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(results: dict) -> str:
    lines = [
        f"report of {results['month']} on PostgreSQL {results['postgres']}, "
        f"{results['departments']} departments x {len(GPU_CLASSES)} GPU classes "
        f"(+ {results['unowned']} unowned namespaces), DEBUG={results['debug']}, "
        f"{results['cpus']} CPUs, {results['repeat']} repeats (median)",
        "code: " + ", ".join(f"{k} {v}" for k, v in results["code_sha256"].items()),
        "",
    ]
    for name, how in results["how"].items():
        lines.append(f"{name}: {how}")
    lines += [
        "",
        f"{'scenario':<12}{'ledger rows':>13}  {'what':<12}{'median ms':>11}{'ratio':>8}"
        f"{'queries':>9}{'SQL ms':>9}",
        "-" * 74,
    ]
    for s in results["scenarios"]:
        for what in ("baseline", "api", "dashboard", "refresh"):
            if what not in s["median_ms"]:
                continue
            ratio = s["ratio_to_baseline"].get(what)
            q = s["queries"].get(what)
            sql_ms = f"{q['sql_ms']:.1f}" if q else ""
            lines.append(
                f"{s['name']:<12}{s['ledger_rows']:>13,}  {what:<12}{s['median_ms'][what]:>11.1f}"
                f"{(f'{ratio:.2f}' if ratio is not None else ''):>8}"
                f"{(q['count'] if q else ''):>9}{sql_ms:>9}"
            )
    lines.append("")
    lines.append(
        f"targets: api and dashboard <= {TARGET_RATIO} x the baseline of the same scenario; "
        f"the month with {results['months']} months of history no slower than with 1 "
        f"(within {results['history_tolerance']:.0%})"
    )
    for line in results["verdicts"]:
        lines.append(f"  {line}")
    lines.append("")
    for s in results["scenarios"]:
        c = s["check"]
        state = "match to the cent" if c["matched"] else "DIFFER"
        lines.append(
            f"figures, {s['name']}: {c['rows_compared']} rows (departments and Unallocated) "
            f"compared with the baseline SQL: {state}; departments total {c['departments_total']}"
        )
        for difference in c["differences"]:
            lines.append(f"    {difference}")
        if c["more_differences"]:
            lines.append(f"    ... and {c['more_differences']} more")
    g = results["generation"]
    lines.append(
        "load average after the timed rounds: "
        + ", ".join(f"{s['name']} {s['load_average']:.1f}" for s in results["scenarios"])
    )
    lines.append("")
    lines.append(
        "generation (in no ratio): "
        + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in g.items())
    )
    return "\n".join(lines)


def verdicts(scenarios: list[Scenario], tolerance: float) -> tuple[list[str], bool]:
    out, ok = [], True
    for s in scenarios:
        for what in ("api", "dashboard"):
            ratio = s.median_ms(what) / s.median_ms("baseline")
            good = ratio <= TARGET_RATIO
            ok &= good
            out.append(
                f"{s.name + ',':<20}{what:<10} / baseline {ratio:5.2f} <= {TARGET_RATIO:.2f}: "
                f"{verdict(good)}"
            )
    if len(scenarios) == 2:
        long, short = scenarios
        label = f"{long.name} / {short.name},"
        for what in ("api", "dashboard", "baseline"):
            ratio = long.median_ms(what) / short.median_ms(what)
            if what == "baseline":
                out.append(f"{label:<20}{what:<10}            {ratio:5.2f} (for comparison)")
                continue
            good = ratio <= 1 + tolerance
            ok &= good
            out.append(
                f"{label:<20}{what:<10}            {ratio:5.2f} <= {1 + tolerance:.2f}: "
                f"{verdict(good)}"
            )
    return out, ok


# --- main -------------------------------------------------------------------------------------


def last_full_month() -> dt.date:
    from django.utils import timezone

    from core.calendar import month_of

    return shift_month(month_of(timezone.now()), -1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The month's chargeback report (API and dashboard) against the raw SQL "
        "aggregate of the same figures, with 12 months of ledger and with 1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--departments", type=int, default=200, help="departments (namespaces)")
    parser.add_argument("--months", type=int, default=12, help="months of hourly ledger")
    parser.add_argument("--month", help="the measured month, YYYY-MM (default: the last full one)")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per scenario")
    parser.add_argument("--refresh-repeat", type=int, default=3, help="forced refreshes timed")
    parser.add_argument(
        "--history-tolerance",
        type=float,
        default=0.10,
        help="how much slower the report may be with the long history (noise)",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--reuse-database", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--static-root",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench-report-static",
        help="collected static files (kept, reused)",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="results as JSON: on stdout instead of the table, or into PATH as well",
    )
    args = parser.parse_args(argv)
    if args.departments < 1 or args.months < 1 or args.repeat < 1 or args.refresh_repeat < 1:
        parser.error("--departments, --months, --repeat and --refresh-repeat must be positive")
    return args


def _stop(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds the with blocks: the database is dropped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    with (
        tempfile.TemporaryDirectory(prefix="bench-report-") as scratch,
        database(args.database_url, reuse=args.reuse_database, keep=args.keep_database) as url,
    ):
        code = setup_django(url, Path(scratch), args.static_root)
        return run(args, code)


def run(args: argparse.Namespace, code: dict[str, str]) -> int:
    from django.conf import settings
    from django.db import connection

    from billing.services import period_refresh
    from core.calendar import month_parse

    if settings.DEBUG:
        log("warning: DEBUG is on, so Django keeps every query in memory; set DEBUG=0")
    collect_static(args.static_root)
    month = month_parse(args.month) if args.month else last_full_month()
    began = time.perf_counter()
    if args.reuse_database:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        empty_tables()
    world = prepare(args.departments, args.months, month)
    generation = {"setup_s": time.perf_counter() - began}
    log(
        f"{args.departments} departments, {args.months} months up to {month:%Y-%m}, "
        f"in {generation['setup_s']:.1f} s"
    )
    generation.update(load_ledger(world))
    t0 = time.perf_counter()
    first_refresh = {}
    for m in world.months:
        t1 = time.perf_counter()
        period_refresh(month=m)
        first_refresh[m] = time.perf_counter() - t1
    generation["refresh_all_months_s"] = time.perf_counter() - t0
    log(
        f"ledger: {sum(world.rows.values()):,} rows; every month's drafts refreshed in "
        f"{generation['refresh_all_months_s']:.0f} s (the measured month's first: "
        f"{first_refresh[month]:.1f} s)"
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]

    targets: dict[str, Callable] = {"baseline": baseline}
    how = {"baseline": "one SQL statement on a raw cursor, fetched"}
    for target in (
        Target("api", API_PATH, api_in_process),
        Target("dashboard", DASHBOARD_PATH, dashboard_in_process),
    ):
        target.setup(world)
        targets[target.name] = target
        how[target.name] = f"GET {target.path}?period={month:%Y-%m}: {target.how}" + (
            f" ({target.note})" if target.note else ""
        )
    how["refresh"] = "period_refresh(month, force=True), in no ratio"

    scenarios = []
    long = Scenario(f"{args.months} months", args.months, sum(world.rows.values()))
    measure(world, long, targets, args.repeat, args.refresh_repeat)
    long.check = check_figures(world)
    scenarios.append(long)
    if args.months > 1:
        generation["trim_s"] = trim_history(world)
        log(f"deleted the earlier months in {generation['trim_s']:.0f} s")
        short = Scenario("1 month", 1, sum(world.rows.values()))
        measure(world, short, targets, args.repeat, args.refresh_repeat)
        short.check = check_figures(world)
        scenarios.append(short)

    lines, ok = verdicts(scenarios, args.history_tolerance)
    results = {
        "month": f"{month:%Y-%m}",
        "departments": args.departments,
        "unowned": max(1, args.departments // UNOWNED_PER),
        "months": args.months,
        "repeat": args.repeat,
        "refresh_repeat": args.refresh_repeat,
        "history_tolerance": args.history_tolerance,
        "cpus": os.cpu_count(),
        "debug": settings.DEBUG,
        "time_zone": settings.TIME_ZONE,
        "postgres": postgres,
        "code_sha256": code,
        "how": how,
        "generation": {k: round(v, 1) for k, v in generation.items()},
        "first_refresh_s": {f"{m:%Y-%m}": round(t, 2) for m, t in first_refresh.items()},
        "scenarios": [{"name": s.name, **s.summary()} for s in scenarios],
        "verdicts": lines,
        "targets_met": ok,
        "figures_match": all(s.check["matched"] for s in scenarios),
    }
    text = json.dumps(results, indent=2, default=str)
    if args.json and args.json != "-":
        Path(args.json).write_text(text + "\n")
    print(text if args.json == "-" else render(results))
    return 0 if results["figures_match"] else 1


if __name__ == "__main__":
    sys.exit(main())
