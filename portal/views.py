from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from departments import selectors as department_selectors
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
