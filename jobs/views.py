"""Pages of jobs: the list, the submit form, one job (with its cancel button).

Every page reads through :mod:`jobs.selectors`, so a job the user may not see answers 404
exactly like one that does not exist, and changes go through :mod:`jobs.services`.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core import ratelimits
from core.sorting import Sorting
from departments import selectors as department_selectors
from departments.models import ServiceLevel, Tier
from jobs import argv as argv_rules
from jobs import costs, runner, selectors, services
from jobs.filters import JobFilter
from jobs.forms import JobChoiceForm, JobOptionsForm, JobParamsForm
from jobs.models import GenerationJob, JobState

JOBS_PER_PAGE = 25
# An open job's page reloads itself this often (seconds), so its state stays current.
REFRESH_OPEN_JOB_S = 5


# The jobs list's sortable columns (?sort=), each with the fields it orders by.
JOB_SORTS = {
    "kind": ("kind__name",),
    "department": ("department__name",),
    "tier": ("tier",),
    "gpu_class": ("gpu_class__name",),
    "state": ("state",),
    "submitted": ("submitted_at",),
    "gpu_seconds": ("gpu_seconds",),
}
JOB_FILTERS = (
    "state",
    "department",
    "kind",
    "tier",
    "submitter",
    "submitted_after",
    "submitted_before",
    "q",
)


@login_required
def job_list(request):
    """The jobs the user may see, filtered by state, department, kind, tier, submitter,
    submission date and search words (the API's filter, so the page and its CSV download
    answer the same), sorted by a column (newest first unless ``?sort=`` names another;
    a key that is no column is ignored with a message) and paged."""
    user = request.user
    visible = selectors.jobs_for_user(user=user)
    # The form sends every field, the empty ones too ("any"): they filter nothing (the
    # API's multiple-choice state filter would refuse an empty one).
    query = [(name, value) for name in JOB_FILTERS for value in request.GET.getlist(name) if value]
    data = QueryDict(mutable=True)
    for name, value in query:
        data.appendlist(name, value)
    filters = JobFilter(data, queryset=visible, request=request)
    jobs = filters.qs if filters.is_valid() else GenerationJob.objects.none()
    sorting = Sorting(
        request.GET.get("sort"),
        columns=JOB_SORTS,
        default="-submitted",
        tiebreak=("-submitted_at",),
        descending_first=("submitted", "gpu_seconds"),
    )
    page = Paginator(sorting.order(jobs), JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "jobs/job_list.html",
        {
            "page": page,
            "page_jobs": costs.with_costs(page.object_list),
            "filters": filters,
            "sorting": sorting,
            "sort": sorting.headers,
            "selected": {name: request.GET.get(name, "") for name in JOB_FILTERS},
            # The same jobs from the API, as CSV (the only table format it offers).
            "csv_url": f"{reverse('jobs-list')}?{urlencode([*query, ('format', 'csv')])}",
            "states": JobState.choices,
            "departments": department_selectors.departments_for_user(user=user).order_by("name"),
            "kinds": selectors.job_kinds_for_user(user=user),
            "tiers": Tier.choices,
            # The people whose jobs the user may see: themselves only, for a member.
            "submitters": visible.order_by("submitter__username")
            .values_list("submitter__username", flat=True)
            .distinct(),
            "can_submit": selectors.submit_departments_for_user(user=user).exists(),
        },
    )


def _schema_error(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


def _submitted_message(request, submission: services.Submission) -> None:
    job = submission.job
    name = f"Job {job.short_id} ({job.kind})"
    if not submission.created:
        messages.info(
            request,
            f"This form was already sent: {name} is the job it submitted. Open the form "
            "again to submit another.",
        )
    elif job.state == JobState.QUEUED:
        # Said once, when it was sent: the job may be running by the time the page shows.
        messages.success(request, f"{name} was admitted and queued on {job.gpu_class}.")
    elif job.state == JobState.WAITING:
        messages.warning(request, f"{name} is waiting: {job.reason}")
    elif job.state == JobState.REJECTED:
        messages.error(request, f"{name} was refused: {job.reason}")
    else:
        messages.info(request, f"{name} is {job.get_state_display().lower()}.")


@login_required
def job_submit(request):
    """Submit a job in two steps: pick department, kind and tier (a GET form), then fill
    in the kind's parameters and options (a POST form that also carries the step 1
    choice). Only members and managers of a department submit for it; a POST from someone
    who may submit for no department answers 403."""
    user = request.user
    has_departments = selectors.submit_departments_for_user(user=user).exists()
    if request.method == "POST":
        if not has_departments:
            raise PermissionDenied("Only members and managers of a department submit jobs.")
        choice = JobChoiceForm(request.POST, user=user)
    elif request.GET.get("change"):
        # Back to step 1 with the earlier choice selected.
        choice = JobChoiceForm(initial=request.GET.dict(), user=user)
    else:
        choice = JobChoiceForm(request.GET or None, user=user)
    now = timezone.now()
    context = {
        "choice": choice,
        "has_departments": has_departments,
        # Said before submitting: which department's batch work waits for the night, and
        # when a job submitted now would start.
        "held_service_levels": ServiceLevel.objects.filter(
            department__in=selectors.submit_departments_for_user(user=user),
            hold_for_off_peak=True,
        )
        .select_related("department")
        .order_by("department__name", "tier"),
        "off_peak_start": services.off_peak_start(now),
        "now": now,
    }
    if not choice.is_bound or not choice.is_valid():
        return render(request, "jobs/job_submit.html", context)

    department, kind, tier = (choice.cleaned_data[k] for k in ("department", "kind", "tier"))
    data = request.POST if request.method == "POST" else None
    params_form = JobParamsForm(data, schema=kind.params_schema)
    options = JobOptionsForm(data, service_level=choice.service_level)
    context.update(
        {
            "department": department,
            "kind": kind,
            "tier": tier,
            "params_form": params_form,
            "options": options,
            "change_url": f"{reverse('jobs:submit')}?"
            + urlencode(
                {"department": department.slug, "kind": kind.slug, "tier": tier, "change": 1}
            ),
        }
    )
    if data is None or not (params_form.is_valid() & options.is_valid()):
        return render(request, "jobs/job_submit.html", context)

    try:
        params = argv_rules.params_validate(kind.params_schema, params_form.params())
    except ValidationError as exc:
        params_form.add_schema_errors(exc)
        return render(request, "jobs/job_submit.html", context)
    wait_s = ratelimits.job_submission(request)
    if wait_s is not None:
        # The form comes back as it was sent (its idempotency key too), to send again later.
        messages.error(request, ratelimits.job_submission_refused(wait_s))
        response = render(request, "jobs/job_submit.html", context, status=429)
        response["Retry-After"] = str(wait_s)
        return response
    try:
        submission = services.job_submit(
            department=department,
            kind=kind,
            params=params,
            tier=tier,
            user=user,
            gpu_class=options.cleaned_data.get("gpu_class"),
            off_peak=options.cleaned_data.get("off_peak"),
            idempotency_key=options.cleaned_data["idempotency_key"],
        )
    except ValidationError as exc:
        for field, field_messages in _schema_error(exc).items():
            if field == "params":
                params_form.add_service_errors(field_messages)
            else:
                options.add_error(field if field in options.fields else None, field_messages)
        return render(request, "jobs/job_submit.html", context)
    _submitted_message(request, submission)
    return redirect("jobs:detail", pk=submission.job.pk)


def _files(job: GenerationJob) -> list[tuple[str, str]]:
    """``(name, download URL)`` of the job's outputs and, once it started, its log: the
    files the API's download endpoint serves."""
    names = list(job.result_files or [])
    if job.started_at and runner.LOG_NAME not in names:
        names.append(runner.LOG_NAME)
    return [(name, reverse("jobs-files", kwargs={"pk": job.pk, "name": name})) for name in names]


@login_required
def job_detail(request, pk):
    """One job: what it runs, where it stands and why, its times, outputs and log. While
    it is open the page reloads itself every few seconds."""
    job = get_object_or_404(selectors.jobs_for_user(user=request.user), pk=pk)
    now = timezone.now()
    held_for_off_peak = (
        job.state == JobState.WAITING and job.off_peak and job.blocking_quota_id is None
    )
    response = render(
        request,
        "jobs/job_detail.html",
        {
            "job": job,
            "cost": costs.job_costs([job]).get(job.pk),
            # When the off-peak window releases it (a job a quota holds has no such time).
            "off_peak_start": services.off_peak_start(now) if held_for_off_peak else None,
            "now": now,
            "waiting_position": selectors.waiting_position(job),
            "can_cancel": job.is_open and selectors.user_can_cancel(user=request.user, job=job),
            "files": _files(job),
            "params": sorted(job.params.items()) if isinstance(job.params, dict) else [],
            "refresh_s": REFRESH_OPEN_JOB_S if job.is_open else None,
        },
    )
    if job.is_open:
        # The HTTP form of <meta http-equiv="refresh">; browsers honour both.
        response["Refresh"] = str(REFRESH_OPEN_JOB_S)
    return response


@login_required
@require_POST
def job_cancel(request, pk):
    """Cancel a job from its page: the submitter, the department's managers and IT may;
    others who can see the job get 403, the rest 404."""
    job = get_object_or_404(selectors.jobs_for_user(user=request.user), pk=pk)
    if not selectors.user_can_cancel(user=request.user, job=job):
        raise PermissionDenied("Only the submitter, the department's managers and IT cancel jobs.")
    try:
        job = services.job_cancel(job=job, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if job.state == JobState.CANCELLED:
            messages.success(request, f"Job {job.short_id} is cancelled.")
        else:
            messages.info(request, f"Job {job.short_id} is running; its worker is stopping it now.")
    return redirect("jobs:detail", pk=job.pk)
