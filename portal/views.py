from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views import defaults
from django.views.decorators.cache import never_cache

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.views import money_format
from departments import selectors as department_selectors
from jobs import selectors as job_selectors
from jobs.models import JobState
from metering import charts
from metering import selectors as metering_selectors
from portal import roles


@login_required
def home(request):
    """The morning page: the user's departments with their namespaces, quotas and SLAs
    (every department for finance and IT), the GPU classes and the off-peak hours."""
    user = request.user
    departments = list(department_selectors.department_overviews_for_user(user=user))
    department_roles = department_selectors.department_roles_for_user(user=user)
    now = timezone.now()
    windows = list(department_selectors.off_peak_windows_for_user(user=user).filter(active=True))
    return render(
        request,
        "portal/home.html",
        {
            "departments": [(d, department_roles.get(d.pk)) for d in departments],
            "sees_all": roles.sees_all_departments(user),
            "gpu_classes": department_selectors.gpu_classes_for_user(user=user),
            "off_peak_windows": [(w, w.contains(now)) for w in windows],
            "now": now,
        },
    )


DEPARTMENT_STATEMENTS_SHOWN = 12


def department_spend(*, user, department, now) -> dict:
    """The department page's spend: this month's statement (refreshed from the ledger
    first) and the department's latest statements, as ``user`` may read them."""
    period = billing_services.period_refresh(month=billing_services.month_of(now))
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


@login_required
def department_detail(request, slug: str):
    """A department's namespaces, people, quotas and service levels and, for those who may
    read its usage (finance, IT, its managers), its GPU-hours per day, the month's
    budget burn-down and its spend (this month's statement and the latest ones). A
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
    last_30_days = charts.day_bounds(days[0], days[-1])
    this_month = metering_selectors.month_bounds(now)
    job_counts = dict(jobs.order_by().values_list("state").annotate(n=Count("pk")))
    return render(
        request,
        "portal/department_detail.html",
        {
            "department": department,
            "role": role,
            # Members see the rules they work under; the people list is for managers,
            # finance and IT.
            "show_people": role == "manager" or roles.sees_all_departments(user),
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
                )
                if reads_usage
                else None
            ),
            # Its money: for the same people as its usage.
            "spend": (
                department_spend(user=user, department=department, now=now) if reads_usage else None
            ),
            "job_counts": [
                (value, label, job_counts[value])
                for value, label in JobState.choices
                if job_counts.get(value)
            ],
            "latest_jobs": jobs.order_by("-submitted_at", "pk")[:10],
            "can_submit_jobs": job_selectors.submit_departments_for_user(user=user)
            .filter(pk=department.pk)
            .exists(),
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


def not_found(request, exception=None):
    """404: JSON under ``/api/`` (a client sent an address no endpoint answers, such as an
    id that is not a number), the site's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": f"Not found: no API endpoint answers {request.path}."}, status=404
        )
    return defaults.page_not_found(request, exception)
