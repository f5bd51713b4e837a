"""Billing pages: the finance dashboard, the statements list, one statement (with its
finalize button).

Every figure comes from :mod:`billing.selectors` (the same reads as the API and the
exports), after :func:`billing.services.period_refresh` has brought the month's drafts up
to date. Who may read what: finance and IT every department, *Unallocated* and the fleet's
idle capacity; a manager the departments they manage; a member nothing (403 on the pages,
404 on a statement, exactly as on one that does not exist).
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import anomalies, charts, foresight, selectors, services
from billing.forms import StatementFilterForm, search_word_month
from billing.models import Statement, StatementLine, minor_unit
from core import calendar, roles
from core.sorting import Sorting
from departments.models import Department
from metering.quantities import gpu_hours_shown
from metering.selectors import usage_department_ids_for_user

STATEMENTS_PER_PAGE = 50
# The statements list's sortable columns (?sort=), each with the fields it orders by.
STATEMENT_SORTS = {
    "month": ("period__month",),
    "department": ("department__name",),
    "status": ("status",),
    "gpu_hours": ("gpu_seconds",),
    "total": ("total",),
    "finalized": ("finalized_at",),
}
FINALIZE_PERMISSION = "billing.finalize_statement"


def money_format(currency: str) -> str:
    """The ``floatformat`` argument that shows an amount of ``currency`` to its minor
    unit, with thousands separators: ``"2g"`` for EUR, ``"0g"`` for JPY."""
    return f"{-minor_unit(currency).as_tuple().exponent}g"


def plain(number: Decimal | None) -> str:
    """A quantity as people write it: 0.8, 1, 1.5, 10 (never 0.800 or 1E+1)."""
    return "" if number is None else f"{number.normalize():f}"


def _percent(fraction: Decimal | None) -> Decimal | None:
    return None if fraction is None else (fraction * 100).quantize(Decimal("0.1"))


def billing_department_ids(user) -> frozenset[int] | None:
    """The departments whose money ``user`` may read (``None``: all, and the fleet's
    figures). Members and people of no department may read none: 403."""
    ids = usage_department_ids_for_user(user=user)
    if ids is not None and not ids:
        names = list(
            Department.objects.filter(memberships__user=user)
            .order_by("name")
            .values_list("name", flat=True)
            .distinct()
        )
        where = (
            f"you are a member of {', '.join(names)}, and members see their own jobs"
            if names
            else "you belong to no department yet; ask IT to add you to yours"
        )
        raise PermissionDenied(
            f"Billing is for finance, IT and the managers of a department; {where}."
        )
    return ids


def may_read_billing(user) -> bool:
    ids = usage_department_ids_for_user(user=user)
    return ids is None or bool(ids)


# --- The dashboard --------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardRow:
    """A report row with the percentages the table shows."""

    report: selectors.ReportRow
    forecast: foresight.ForecastRow | None = None

    @property
    def budget_used_pct(self) -> Decimal | None:
        return _percent(self.report.budget_used)

    @property
    def efficiency_pct(self) -> Decimal | None:
        return _percent(self.report.efficiency)

    @property
    def sla_figures(self) -> list[tuple[str, selectors.SlaFigure]]:
        return [("queue wait", f) for f in self.report.queue_wait] + [
            ("latency", f) for f in self.report.latency
        ]


def _month_links(month: dt.date, current: dt.date) -> dict[str, str | None]:
    previous = (month - dt.timedelta(days=1)).replace(day=1)
    following = calendar.next_month(month)
    return {
        "previous": f"{previous:%Y-%m}" if previous.year >= 2000 else None,
        "next": f"{following:%Y-%m}" if following <= current else None,
    }


def _period_choices(current: dt.date) -> list[calendar.Period]:
    """The periods the picker offers besides months: this quarter and the one before, and
    the year to date."""
    quarter = calendar.Period.quarter(current.year, (current.month + 2) // 3)
    year_to_date = calendar.period_parse(f"{current.year}-YTD", current=current)
    return [quarter, quarter.previous(), year_to_date]


def _requested_period(query, *, current: dt.date) -> calendar.Period:
    """The period the page is asked for: ``period`` (any form of
    :func:`core.calendar.period_parse`), or the custom range ``from`` and ``to`` (two
    months); this month by default. ``ValueError`` with the reason otherwise."""
    first, last = query.get("from", "").strip(), query.get("to", "").strip()
    raw = query.get("period", "").strip()
    if first or last:
        if not (first and last):
            raise ValueError("Give both months of the range, from and to.")
        raw = f"{first}..{last}"
    if not raw:
        return calendar.Period.month(current)
    return calendar.period_parse(raw, current=current)


@login_required
def dashboard(request):
    """The period's chargeback (a month, a quarter, the year to date or a range of
    months): cost per department by GPU class, the 12-month trend, and per department
    spend, its change against the period before, GPU-hours, budget use, efficiency, SLA
    compliance and the statement; then *Unallocated*, idle capacity and (a month) the
    reconciliation, for finance and IT. A manager sees the same page for the departments
    they manage. Refreshes the drafts of the months read first."""
    user = request.user
    billing_department_ids(user)
    current = calendar.month_of(timezone.now())
    context = {
        "period_value": f"{current:%Y-%m}",
        "current_month": current,
        "choices": _period_choices(current),
    }
    try:
        span = _requested_period(request.GET, current=current)
    except ValueError as exc:
        context["error"] = str(exc)
        context["period_value"] = request.GET.get("period", "")
        return render(request, "billing/dashboard.html", context, status=400)

    periods = services.periods_for_reading(span=span)
    report = selectors.span_chargeback_report(
        user=user,
        span=span,
        periods=periods,
        previous=selectors.periods_as_they_stand(span=span.previous()),
    )
    period = report.period  # the month's, when the span is one month
    month = min(span.end_month, current)  # the last month read: the trend ends there
    months = charts.trend_months(month)
    trend = selectors.cost_trend(user=user, months=months, top=charts.TREND_SERIES - 1)
    fleet = roles.sees_all_departments(user)
    now = timezone.now()
    forecasts_shown = span.kind == "month" and month == current
    outlook = (
        {
            row.department.pk: row
            for row in foresight.forecasts(user=user, period=period, now=now, by_class=False)
            if row.department is not None and row.gpu_class is None
        }
        if forecasts_shown
        else {}
    )
    department_rows = [
        DashboardRow(row, forecast=outlook.get(row.department.pk))
        for row in report.rows
        if row.department is not None
    ]
    context.update(
        {
            "period_value": span.label if span.kind == "month" else "",
            "range_from": f"{span.start_month:%Y-%m}" if span.kind == "range" else "",
            "range_to": f"{span.end_month:%Y-%m}" if span.kind == "range" else "",
            "span": span,
            "period": period,
            "computed_at": max((p.computed_at for p in periods if p.pk), default=None),
            "opened": any(p.pk for p in periods),
            "month": month,
            "months": _month_links(month, current) if span.kind == "month" else {},
            "report": report,
            "rows": department_rows,
            "unallocated": next((r for r in report.rows if r.department is None), None),
            "departments_gpu_hours": gpu_hours_shown(
                sum((r.report.gpu_seconds for r in department_rows), Decimal(0))
            ),
            "fleet": fleet,
            "reconciliation": (
                selectors.reconciliation(period=period) if fleet and period else None
            ),
            "pools": selectors.pool_summaries(period=period) if fleet and period else [],
            "clusters": report.cluster_names if len(report.cluster_names) > 1 else [],
            "cluster_rows": [
                (row.name, [row.by_cluster.get(name) for name in report.cluster_names])
                for row in report.rows
            ],
            # Counted over the rows the user may read: a manager learns nothing of others.
            "drafts": sum(
                1
                for row in department_rows
                for statement in row.report.statements
                if not statement.is_finalized
            ),
            "by_class_chart": charts.cost_by_class_chart(report=report),
            "trend_chart": charts.cost_trend_chart(
                points=trend, months=months, currency=report.currency, running=current
            ),
            "trend_first": (charts.trend_months_charged(points=trend, months=months) or months)[0],
            "money": money_format(report.currency),
            "forecasts_shown": forecasts_shown,
            "anomalies": (
                foresight.spend_anomalies(user=user, days=_complete_days(month, now))
                if span.kind == "month"
                else []
            ),
            "anomaly_window": anomalies.WINDOW_DAYS,
        }
    )
    return render(request, "billing/dashboard.html", context)


def _complete_days(month: dt.date, now: dt.datetime) -> list[dt.date]:
    """The portal days of ``month`` that have ended by ``now``."""
    today = now.astimezone(calendar.portal_zone()).date()
    day, days = month, []
    while day.month == month.month and day < today:
        days.append(day)
        day += dt.timedelta(days=1)
    return days


# --- Statements -----------------------------------------------------------------------------


def _visible_departments(ids: frozenset[int] | None):
    departments = Department.objects.order_by("name")
    return departments if ids is None else departments.filter(pk__in=ids)


def _statement_search(word: str) -> Q:
    """Statements one search word finds: in the department's name, slug or cost centre, or
    a month it names (see :func:`billing.forms.search_word_month`)."""
    found = (
        Q(department__name__icontains=word)
        | Q(department__slug__icontains=word)
        | Q(department__cost_centre__icontains=word)
    )
    year, month = search_word_month(word) or (None, None)
    when = {}
    if year is not None:
        when["period__month__year"] = year
    if month is not None:
        when["period__month__month"] = month
    return found | Q(**when) if when else found


@login_required
def statement_list(request):
    """The statements the user may read, filtered by month, department, status and
    search words (department name, slug, cost centre, month), sorted by a column (newest
    month first unless ``?sort=`` names another; a key that is no column is ignored with a
    message) and paged. Drafts on the list are refreshed first, so their totals are
    current. A filter that makes no sense answers 400 with the reason."""
    user = request.user
    ids = billing_department_ids(user)
    current = calendar.month_of(timezone.now())
    form = StatementFilterForm(
        request.GET or None, departments=_visible_departments(ids), latest=current
    )
    statements = selectors.statements_for_user(user=user)
    status = 200
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            if data["period"]:
                statements = statements.filter(period__month=data["period"])
            if data["department"]:
                statements = statements.filter(department=data["department"])
            if data["status"]:
                statements = statements.filter(status=data["status"])
            for word in data["q"].split():
                statements = statements.filter(_statement_search(word))
        else:
            statements = statements.none()
            status = 400
    draft_months = sorted(
        set(
            statements.filter(status=Statement.Status.DRAFT)
            .order_by()
            .values_list("period__month", flat=True)
        )
    )
    for month in draft_months:
        services.period_refresh(month=month)
    sorting = Sorting(
        request.GET.get("sort"),
        columns=STATEMENT_SORTS,
        default="-month",
        tiebreak=("-period__month", "department__name"),
        descending_first=("month", "gpu_hours", "total", "finalized"),
    )
    page = Paginator(sorting.order(statements), STATEMENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "billing/statement_list.html",
        {
            "form": form,
            "page": page,
            "sorting": sorting,
            "sort": sorting.headers,
            "selected": {
                name: request.GET.get(name, "") for name in ("period", "department", "status", "q")
            },
            "departments": _visible_departments(ids),
            "statuses": Statement.Status.choices,
            "money": money_format(settings.BILLING_CURRENCY),
        },
        status=status,
    )


@login_required
def statement_line_jobs(request, pk: int, line_pk: int):
    """The portal jobs a line of a statement charges, each with its GPU time on that line,
    linked to their pages. A line the user may not read answers 404."""
    user = request.user
    statement = get_object_or_404(selectors.statements_for_user(user=user), pk=pk)
    # The line as it stands: a refresh would write a draft's lines anew, and the line the
    # statement page linked to would be gone.
    try:
        jobs = selectors.line_jobs(user=user, statement_pk=pk, line_pk=line_pk)
    except StatementLine.DoesNotExist as exc:
        raise Http404 from exc
    line = StatementLine.objects.select_related("gpu_class", "job_kind").get(pk=line_pk)
    page = Paginator(jobs, STATEMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/statement_line_jobs.html",
        {"statement": statement, "line": line, "page": page, "jobs": page.object_list},
    )


@login_required
def statement_detail(request, pk: int):
    """One statement: who and which month, its state, every line with how it was
    derived, the adjustments it carries and those made to it, its total, the downloads
    and (for finance, on a draft of a month that has ended) the finalize button. A draft
    is refreshed from the ledger first. A statement the user may not read answers 404."""
    user = request.user
    statement = get_object_or_404(selectors.statements_for_user(user=user), pk=pk)
    if not statement.is_finalized:
        services.period_refresh(month=statement.period.month)
    try:
        statement = selectors.statement_with_lines(user=user, pk=pk)
    except Statement.DoesNotExist as exc:
        raise Http404 from exc
    lines = list(statement.lines.all())
    for line in lines:  # how each figure reads on the page (the amounts: to the minor unit)
        line.display = {
            "gpu_hours": f"{line.gpu_hours:f}",
            "off_peak_multiplier": plain(line.off_peak_multiplier),
            "department_multiplier": plain(line.department_multiplier),
            "share": plain(line.share) if line.share is not None else None,
        }
    may_finalize = user.has_perm(FINALIZE_PERMISSION)
    month_ended = calendar.month_ended(statement.period.month)
    return render(
        request,
        "billing/statement_detail.html",
        {
            "statement": statement,
            "lines": lines,
            "adjustments_applied": list(statement.adjustments_applied.all()),
            "adjustments_made": list(
                statement.adjustments.select_related("applied_to__period", "created_by").order_by(
                    "created_at", "pk"
                )
            ),
            "can_finalize": may_finalize and not statement.is_finalized and month_ended,
            "finalize_later": may_finalize and not statement.is_finalized and not month_ended,
            "money": money_format(statement.currency),
            # A draft of the running month: where its total is heading.
            "projected": _projected(user=user, statement=statement),
        },
    )


def _projected(*, user, statement: Statement) -> foresight.ForecastRow | None:
    if statement.is_finalized or calendar.month_ended(statement.period.month):
        return None
    rows = foresight.forecasts(
        user=user, period=statement.period, department=statement.department, by_class=False
    )
    return next((row for row in rows if row.gpu_class is None), None)


@login_required
@require_POST
def statement_finalize(request, pk: int):
    """Finalize a statement from its page (finance). Others who can read the statement
    get 403, the rest 404. A refusal (a month not over, a statement already finalized)
    comes back as a message on the statement page."""
    user = request.user
    statement = get_object_or_404(
        selectors.statements_for_user(user=user).select_related("period", "department"), pk=pk
    )
    if not user.has_perm(FINALIZE_PERMISSION):
        raise PermissionDenied("Only finance finalizes statements.")
    try:
        services.statement_finalize(statement=statement, user=user)
    except services.BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"The statement of {statement.department} for {statement.period} is finalized; "
            "later usage and corrections go on the next open statement as adjustments.",
        )
    return redirect("billing:statement", pk=pk)
