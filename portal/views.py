from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views import defaults
from django.views.decorators.cache import never_cache

from accounts import selectors as account_selectors
from accounts import views as account_views
from billing import foresight
from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.forms import month_field_clean
from billing.notifications_views import alert_departments_for_user
from billing.views import DashboardRow, may_read_billing, money_format
from cluster import selectors as cluster_selectors
from core import calendar, roles
from core.sorting import Sorting
from departments import selectors as department_selectors
from departments.models import Department, Membership, Quota
from jobs import costs as job_costs
from jobs import selectors as job_selectors
from jobs.models import ACTIVE_STATES, OPEN_STATES, JobState
from metering import charts
from metering import selectors as metering_selectors

# --- Home -----------------------------------------------------------------------------------

TOP_SPENDERS_SHOWN = 5
SEARCH_MAX_CHARS = 200
HOME_JOBS_SHOWN = 10


@dataclass
class DepartmentGlance:
    """What the home page opens with for one of the user's departments: for its managers
    its spend to date against its budget and its open jobs; for everyone in it the use of
    its quotas."""

    department: Department
    role: str
    quota_uses: list[tuple[Quota, Decimal]]
    spend: DashboardRow | None = None  # managers; None: nothing charged yet this month
    waiting: int = 0
    active: int = 0  # queued or running
    open_jobs: list = field(default_factory=list)


def _month_report(*, user, now) -> billing_selectors.ChargebackReport | None:
    """The month to date as the billing dashboard reads it, for those who may read money."""
    if not may_read_billing(user):
        return None
    period = billing_services.period_for_reading(month=calendar.month_of(now))
    return billing_selectors.chargeback_report(user=user, period=period)


def _fleet_glance(*, user, report) -> dict:
    """Finance and IT: the month's spend, budget use, waiting jobs, idle share, top spenders."""
    rows = [DashboardRow(row) for row in report.rows if row.department is not None]
    budgeted = [row for row in rows if row.report.budget_used is not None]
    idle_share = report.period.idle_share
    return {
        "spend": report.departments_total,
        "top_spenders": rows[:TOP_SPENDERS_SHOWN],
        "with_budget": len(budgeted),
        "over_budget": sum(1 for row in budgeted if row.report.budget_used > 1),
        "idle_pct": None if idle_share is None else idle_share * 100,
        "waiting": job_selectors.jobs_for_user(user=user).filter(state=JobState.WAITING).count(),
    }


def _department_glances(*, user, departments, department_roles, report, now) -> list:
    spend = {row.department.pk: row for row in (report.rows if report else []) if row.department}
    jobs = job_selectors.jobs_for_user(user=user)
    glances = []
    for department in departments:
        role = department_roles.get(department.pk)
        quotas = list(department.quotas.all())
        uses = job_selectors.quota_uses(quotas, at=now)
        glance = DepartmentGlance(
            department=department,
            role=role,
            quota_uses=[(quota, uses[quota.pk]) for quota in quotas],
        )
        if role == Membership.Role.MANAGER:
            open_jobs = jobs.filter(department=department, state__in=OPEN_STATES)
            counts = dict(open_jobs.order_by().values_list("state").annotate(n=Count("pk")))
            row = spend.get(department.pk)
            glance.spend = DashboardRow(row) if row else None
            glance.waiting = counts.get(JobState.WAITING, 0)
            glance.active = sum(counts.get(state, 0) for state in ACTIVE_STATES)
            glance.open_jobs = list(open_jobs.order_by("-submitted_at", "pk")[:HOME_JOBS_SHOWN])
        glances.append(glance)
    return glances


@login_required
def home(request):
    """The morning page. It opens with what the user's role needs first: for finance and
    IT the month's spend to date, budget use, waiting jobs, idle share and top spenders;
    for a department's managers its spend against its budget, its open jobs and its
    quota use; for members their own jobs and the department's quotas. Then the user's
    departments with their namespaces, quotas and SLAs (every department for finance and
    IT), the GPU classes and the off-peak hours."""
    user = request.user
    if not account_selectors.has_any_role(user):
        return account_views.no_access(request)
    sees_all = roles.sees_all_departments(user)
    overviews = department_selectors.department_overviews_for_user(user=user)
    # Finance and IT see every department in one table, which grows: sorted and searched.
    sorting = Sorting(
        request.GET.get("sort"),
        columns={"name": ["name"], "cost_centre": ["cost_centre"], "status": ["active"]},
        default="name",
    )
    search = request.GET.get("q", "").strip()[:SEARCH_MAX_CHARS]
    if sees_all:
        for word in search.split():
            overviews = overviews.filter(
                Q(name__icontains=word)
                | Q(slug__icontains=word)
                | Q(cost_centre__icontains=word)
                | Q(namespaces__name__icontains=word)
            ).distinct()
        overviews = sorting.order(overviews)
    departments = list(overviews)
    department_roles = department_selectors.department_roles_for_user(user=user)
    now = timezone.now()
    windows = list(department_selectors.off_peak_windows_for_user(user=user).filter(active=True))
    report = _month_report(user=user, now=now)
    is_member = Membership.Role.MEMBER in department_roles.values()
    return render(
        request,
        "portal/home.html",
        {
            "departments": [(d, department_roles.get(d.pk)) for d in departments],
            "sees_all": sees_all,
            "sorting": sorting,
            "sort": sorting.headers,
            "search": search,
            "report": report,
            "money": money_format(report.currency) if report else None,
            "fleet": _fleet_glance(user=user, report=report) if sees_all and report else None,
            "glances": []
            if sees_all
            else _department_glances(
                user=user,
                departments=departments,
                department_roles=department_roles,
                report=report,
                now=now,
            ),
            # Members see their own jobs first (managers see their departments' above).
            "own_jobs": list(
                job_selectors.jobs_for_user(user=user)
                .filter(submitter=user)
                .order_by("-submitted_at", "pk")[:HOME_JOBS_SHOWN]
            )
            if is_member and not sees_all
            else None,
            "gpu_classes": department_selectors.gpu_classes_for_user(user=user),
            "off_peak_windows": [(w, w.contains(now)) for w in windows],
            "now": now,
        },
    )


DEPARTMENT_STATEMENTS_SHOWN = 12


def department_spend(*, user, department, now) -> dict:
    """The department page's spend: this month's statement (refreshed from the ledger
    first) and the department's latest statements, as ``user`` may read them."""
    period = billing_services.period_refresh(month=calendar.month_of(now))
    statements = list(
        billing_selectors.statements_for_user(user=user)
        .filter(department=department)
        .order_by("-period__month")[:DEPARTMENT_STATEMENTS_SHOWN]
    )
    return {
        "period": period,
        "current": next((s for s in statements if s.period_id == period.pk), None),
        "statements": statements,
        "money": money_format(period.currency),
    }


def department_forecast(*, user, department, period, now) -> dict | None:
    """The department's month-end forecast (its row of :func:`billing.foresight.forecasts`)
    and the projection the burn-down draws."""
    rows = foresight.forecasts(
        user=user, period=period, now=now, department=department, by_class=False
    )
    row = next((r for r in rows if r.gpu_class is None), None)
    if row is None:
        return None
    projection = None
    if row.projection.enough_data and row.projection.path:
        today = now.astimezone(calendar.portal_zone()).date()
        later = [step for step in row.projection.path if step[0] > today]
        projection = charts.Projection(
            start=today,
            used=row.projection.used,
            days=[step[0] for step in later],
            expected=[step[1] for step in later],
            low=[step[2] for step in later],
            high=[step[3] for step in later],
        )
    return {"row": row, "projection": projection}


def department_job_costs(*, user, department, raw: str, now, current=None):
    """The department's portal jobs of a month (``?costs=YYYY-MM``, this month by default)
    by kind and by submitter, with their cost; a month that is no month gives the reason.
    ``current``: this month's period, when the page has refreshed it already."""
    this_month = calendar.month_of(now)
    raw = raw.strip()
    try:
        month = month_field_clean(raw, latest=this_month) if raw else this_month
    except ValidationError as exc:
        return None, " ".join(exc.messages)
    if current is not None and current.month == month:
        period = current
    else:
        period = billing_services.period_for_reading(month=month)
    return foresight.job_cost_breakdown(user=user, department=department, period=period), None


@login_required
def department_detail(request, slug: str):
    """A department's namespaces, people, quotas and service levels and, for those who may
    read its usage (finance, IT, its managers), its GPU-hours per day, the month's
    budget burn-down and its spend (this month's statement and the latest ones); for IT,
    its objects in each cluster (drift, and whether its queue is held and why). A
    department the user may not see answers 404, exactly like one that does not exist."""
    user = request.user
    department = get_object_or_404(
        department_selectors.department_overviews_for_user(user=user), slug=slug
    )
    role = department_selectors.department_roles_for_user(user=user).get(department.pk)
    visible = department_selectors.department_ids_for_user(user=user)
    usage_ids = metering_selectors.usage_department_ids_for_user(user=user)
    reads_usage = usage_ids is None or department.pk in usage_ids
    now = timezone.now()
    # The department's jobs the user may see: all of them for its managers, finance and
    # IT, their own for a member.
    jobs = job_selectors.jobs_for_user(user=user).filter(department=department)
    days = charts.last_days(now=now)
    last_30_days = calendar.day_bounds(days[0], days[-1])
    this_month = calendar.month_bounds(now)
    job_counts = dict(jobs.order_by().values_list("state").annotate(n=Count("pk")))
    spend = department_spend(user=user, department=department, now=now) if reads_usage else None
    outlook = (
        department_forecast(user=user, department=department, period=spend["period"], now=now)
        if spend
        else None
    )
    costs, costs_error = department_job_costs(
        user=user,
        department=department,
        raw=request.GET.get("costs", ""),
        now=now,
        current=spend["period"] if spend else None,
    )
    return render(
        request,
        "portal/department_detail.html",
        {
            "department": department,
            "role": role,
            # Members see the rules they work under; the people list is for managers,
            # finance and IT.
            "show_people": role == "manager" or roles.sees_all_departments(user),
            # Its alert channels: its managers and IT change them, finance reads them.
            "reads_alerts": alert_departments_for_user(user=user).filter(pk=department.pk).exists(),
            "parent_visible": department.parent_id is not None
            and (visible is None or department.parent_id in visible),
            "children": [
                c for c in department.children.all() if visible is None or c.pk in visible
            ],
            "off_peak_windows": department_selectors.off_peak_windows_for_user(user=user).filter(
                active=True
            ),
            # Members see their own jobs, not the department's usage.
            "usage": (
                charts.department_usage(
                    department=department,
                    now=now,
                    # What its bill counts: its namespaces, and its portal jobs in pools.
                    rows=billing_selectors.billed_daily_rows_reader(
                        department=department,
                        start=min(last_30_days[0], this_month[0]),
                        end=max(last_30_days[1], this_month[1]),
                    ),
                    projection=outlook["projection"] if outlook else None,
                )
                if reads_usage
                else None
            ),
            # Its money: for the same people as its usage.
            "spend": spend,
            "forecast": outlook,
            "costs": costs,
            "costs_error": costs_error,
            "costs_value": request.GET.get("costs", "").strip()
            or f"{calendar.month_of(now):%Y-%m}",
            "current_month": calendar.month_of(now),
            "job_counts": [
                (value, label, job_counts[value])
                for value, label in JobState.choices
                if job_counts.get(value)
            ],
            "latest_jobs": job_costs.with_costs(jobs.order_by("-submitted_at", "pk")[:10]),
            "can_submit_jobs": job_selectors.submit_departments_for_user(user=user)
            .filter(pk=department.pk)
            .exists(),
            # What the clusters hold of it: IT's to see (and to fix).
            "cluster": (
                cluster_selectors.department_clusters(department=department, at=now)
                if roles.is_it_admin(user)
                else None
            ),
            "now": now,
        },
    )


@never_cache
def healthz(request):
    """Liveness and readiness for the load balancer: the process answers and the
    database is reachable. Says nothing else."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


# --- Error pages ------------------------------------------------------------------------------
# Django renders templates/400.html, 403.html, 404.html and 500.html (the site's layout) when
# DEBUG is off; under /api/ a client reads JSON, never a page. DRF answers its own views'
# errors; these catch what happens outside them (an unknown address, a view that fails).


def _api(request) -> bool:
    return request is not None and request.path.startswith("/api/")


def bad_request(request, exception=None):
    """400: the request made no sense (a suspicious header, a broken upload). A host no
    ``ALLOWED_HOSTS`` names is refused before sign-in is read: the page then shows the
    signed-out navigation rather than failing on a request without a user."""
    if not hasattr(request, "user"):
        request.user = AnonymousUser()
    if _api(request):
        return JsonResponse({"detail": "Bad request: the portal cannot read it."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    """403 with the reason the view gave (``PermissionDenied("...")``)."""
    if _api(request):
        reason = str(exception or "") or "You do not have permission to perform this action."
        return JsonResponse({"detail": reason}, status=403)
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    """404: JSON under ``/api/`` (a client sent an address no endpoint answers, such as an
    id that is not a number), the site's page elsewhere."""
    if _api(request):
        return JsonResponse(
            {"detail": f"Not found: no API endpoint answers {request.path}."}, status=404
        )
    return defaults.page_not_found(request, exception)


def server_error(request=None):
    """500: a static page (no request context, no database: either may be what failed),
    JSON under ``/api/``."""
    if _api(request):
        return JsonResponse(
            {
                "detail": "The portal failed to answer this request; it has been logged. Try "
                "again later, or tell IT what you were doing."
            },
            status=500,
        )
    return defaults.server_error(request)
