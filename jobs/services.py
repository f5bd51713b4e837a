"""Operations on generation jobs: submission and admission, release of waiting jobs,
cancellation, requeueing, and the compare-and-set steps workers take.

Admission, release and cancellation lock the department row (``select_for_update``) for
the length of one transaction, so every quota check sees every admission made before it:
concurrent submissions can never admit more than a quota allows. Dispatch to the broker
happens after commit (:mod:`jobs.dispatch`); a job the broker did not take stays
``queued`` and the sweeper sends it again.
"""

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from departments import selectors as department_selectors
from departments.models import (
    Department,
    Enforcement,
    GpuClass,
    Membership,
    OffPeakWindow,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
)
from jobs import argv as argv_rules
from jobs import dispatch, gpu_time
from jobs.models import ACTIVE_STATES, GenerationJob, JobKind, JobState, QuotaAlert
from metering import selectors as metering_selectors
from metering.windows import floor_hour

logger = logging.getLogger(__name__)

SECONDS_PER_HOUR = Decimal(3600)
GPU_HOURS_PLACES = Decimal("0.000001")


# --- Quota use ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaCheck:
    """One quota against one job: its use before the job and what the job would add."""

    quota: Quota
    use: Decimal
    demand: Decimal

    @property
    def after(self) -> Decimal:
        return self.use + self.demand

    @property
    def exceeded(self) -> bool:
        return self.after > self.quota.limit

    @property
    def never_fits(self) -> bool:
        """The job alone needs more than the whole quota: waiting would never end."""
        return self.demand > self.quota.limit

    def describe(self) -> str:
        quota = self.quota
        scope = "" if not (quota.job_kind or quota.gpu_class) else f" ({quota.scope_display})"
        return (
            f"{quota.get_kind_display()}{scope}: limit {quota.limit_text}, "
            f"{_fmt(self.use)} in use, this job needs {_fmt(self.demand)}"
        )


def _fmt(value: Decimal) -> str:
    value = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    return f"{value.normalize():f}"


def portal_day_bounds(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar day (portal time zone) that holds ``moment``, as UTC date-times."""
    zone = metering_selectors.portal_zone()
    local = moment.astimezone(zone).date()
    start = dt.datetime(local.year, local.month, local.day, tzinfo=zone)
    following = local + dt.timedelta(days=1)
    end = dt.datetime(following.year, following.month, following.day, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def quota_period(quota: Quota, moment: dt.datetime) -> str:
    """The key of the period ``moment`` falls in, for alerts: the month for budgets, the
    day otherwise (quotas on what runs at once alert at most once a day)."""
    local = moment.astimezone(metering_selectors.portal_zone())
    if quota.kind == QuotaKind.GPU_HOURS_MONTH:
        return local.strftime("%Y-%m")
    return local.strftime("%Y-%m-%d")


def _metered_until(at: dt.datetime) -> dt.datetime | None:
    """Up to when the metered figure already holds the month's finished jobs, or ``None``
    when it never does.

    Only a billing source that reads the workers' own counter
    (``portal_job_gpu_seconds_total``) sees portal jobs under their department: with
    ``allocation`` or ``device`` the shared GPU workers' pods count under the workers'
    namespace, so a finished job's GPU-seconds keep counting all month. With the counter,
    the month's first uninterrupted stretch of hours metering has covered holds the jobs
    that ended before it, less an hour (the counter rises when a job ends and is scraped a
    little later).
    """
    if not metering_selectors.billing_source_counts_jobs():
        return None
    start, _ = metering_selectors.month_bounds(at)
    covered = metering_selectors.billing_covered_intervals(start=start, end=floor_hour(at))
    if not covered or covered[0][0] > start:
        return None
    return covered[0][1] - dt.timedelta(hours=1)


def quota_uses(quotas: list[Quota], *, at: dt.datetime) -> dict[int, Decimal]:
    """What counts against each of ``quotas`` (all of one department) at ``at``, before
    any new job, by quota id; one query over the department's jobs, plus the metered
    figures for GPU-hours budgets.

    - ``jobs_day``: jobs of its scope admitted on the portal day of ``at``;
    - ``concurrent_jobs``: jobs queued or running;
    - ``gpus``: GPUs of jobs queued or running;
    - ``gpu_hours_month``: the month's metered GPU-hours (the billing source; none for a
      quota narrowed to a job kind, which metering cannot see), plus the GPU-hours
      reserved by jobs queued or running, plus the GPU-seconds of the month's finished
      jobs that the metered figure does not hold yet.
    """
    if not quotas:
        return {}
    day_start, day_end = portal_day_bounds(at)
    month_start, month_end = metering_selectors.month_bounds(at)
    active = Q(state__in=ACTIVE_STATES)
    budgets = [q for q in quotas if q.kind == QuotaKind.GPU_HOURS_MONTH]
    until = _metered_until(at) if any(not q.job_kind for q in budgets) else None
    aggregates: dict = {}
    for quota in quotas:
        scope = Q()
        if quota.job_kind:
            scope &= Q(kind__slug=quota.job_kind)
        if quota.gpu_class_id is not None:
            scope &= Q(gpu_class_id=quota.gpu_class_id)
        key = f"q{quota.pk}"
        if quota.kind == QuotaKind.JOBS_DAY:
            aggregates[key] = Count(
                "pk", filter=scope & Q(admitted_at__gte=day_start, admitted_at__lt=day_end)
            )
        elif quota.kind == QuotaKind.CONCURRENT_JOBS:
            aggregates[key] = Count("pk", filter=scope & active)
        elif quota.kind == QuotaKind.GPUS:
            aggregates[key] = Sum("gpus", filter=scope & active)
        else:
            unmetered_from = month_start
            if not quota.job_kind and until:
                unmetered_from = max(month_start, until)
            aggregates[key] = Sum("gpu_hours_reserved", filter=scope & active)
            aggregates[f"{key}_finished_s"] = Sum(
                "gpu_seconds",
                filter=scope
                & ~active
                & Q(finished_at__gte=unmetered_from, finished_at__lt=month_end),
            )
    # Only the rows any figure can count: open ones, today's admissions, this month's ends.
    relevant = (
        active | Q(admitted_at__gte=min(day_start, month_start)) | Q(finished_at__gte=month_start)
    )
    figures = (
        GenerationJob.objects.filter(department_id=quotas[0].department_id)
        .filter(relevant)
        .aggregate(**aggregates)
    )
    uses = {}
    for quota in quotas:
        value = Decimal(figures[f"q{quota.pk}"] or 0)
        if quota.kind == QuotaKind.GPU_HOURS_MONTH:
            finished = Decimal(figures[f"q{quota.pk}_finished_s"] or 0) / SECONDS_PER_HOUR
            metered = metering_selectors.quota_metered_gpu_hours(quota=quota, at=at)
            value = (metered + value + finished).quantize(GPU_HOURS_PLACES)
        uses[quota.pk] = value
    return uses


def quota_use(quota: Quota, *, at: dt.datetime) -> Decimal:
    """What counts against ``quota`` at ``at`` (see :func:`quota_uses`)."""
    return quota_uses([quota], at=at)[quota.pk]


def job_demand(quota: Quota, job: GenerationJob) -> Decimal:
    if quota.kind in (QuotaKind.JOBS_DAY, QuotaKind.CONCURRENT_JOBS):
        return Decimal(1)
    if quota.kind == QuotaKind.GPUS:
        return Decimal(job.gpus)
    return reservation_gpu_hours(gpus=job.gpus, max_runtime_s=job.max_runtime_s)


def reservation_gpu_hours(*, gpus: int, max_runtime_s: int) -> Decimal:
    return (Decimal(gpus) * Decimal(max_runtime_s) / SECONDS_PER_HOUR).quantize(
        GPU_HOURS_PLACES, rounding=ROUND_HALF_UP
    )


def quota_applies(quota: Quota, *, kind_slug: str, gpu_class_id: int) -> bool:
    return (not quota.job_kind or quota.job_kind == kind_slug) and (
        quota.gpu_class_id is None or quota.gpu_class_id == gpu_class_id
    )


def applicable_quotas(job: GenerationJob, quotas: Iterable[Quota]) -> list[Quota]:
    return [
        q
        for q in quotas
        if quota_applies(q, kind_slug=job.kind.slug, gpu_class_id=job.gpu_class_id)
    ]


def quota_checks(
    job: GenerationJob, quotas: Iterable[Quota], *, at: dt.datetime
) -> list[QuotaCheck]:
    applicable = applicable_quotas(job, quotas)
    uses = quota_uses(applicable, at=at)
    return [QuotaCheck(quota=q, use=uses[q.pk], demand=job_demand(q, job)) for q in applicable]


# --- Submission and admission ------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    job: GenerationJob
    created: bool  # False: the idempotency key named an earlier job, which is returned


def _lock_department(department_id: int) -> Department:
    """The department's row, locked until the transaction ends, with the namespace its
    jobs are counted under (the first by name) as ``job_namespace``."""
    return (
        Department.objects.select_for_update(of=("self",))
        .annotate(job_namespace=department_selectors.job_namespace())
        .get(pk=department_id)
    )


def off_peak_open(at: dt.datetime) -> bool:
    return any(w.contains(at) for w in OffPeakWindow.objects.filter(active=True))


@dataclass(frozen=True)
class OffPeakStart:
    """When work held for the off-peak hours at some moment is released, and by which
    window (``open_now``: one is open, so it is released at once)."""

    window: OffPeakWindow
    at: dt.datetime
    open_now: bool


def off_peak_start(at: dt.datetime) -> OffPeakStart | None:
    """When work held for the off-peak hours at ``at`` is released: ``at`` itself when an
    active window is open, else when the first active window next opens; ``None`` when
    no active window exists (such work is refused, see :func:`job_validate`)."""
    windows = list(OffPeakWindow.objects.filter(active=True))
    for window in windows:
        if window.contains(at):
            return OffPeakStart(window=window, at=at, open_now=True)
    openings = [(w.next_opening(at), w) for w in windows]
    openings = [(when, w) for when, w in openings if when is not None]
    if not openings:
        return None
    when, window = min(openings, key=lambda pair: (pair[0], pair[1].name))
    return OffPeakStart(window=window, at=when, open_now=False)


def _choose_gpu_class(service_level: ServiceLevel, gpu_class: GpuClass | None) -> GpuClass:
    allowed = sorted(service_level.gpu_classes.all(), key=lambda c: c.name)  # prefetched
    if not allowed:
        raise ValidationError(
            {"tier": [f"The {service_level.tier} service level allows no GPU class yet."]}
        )
    if gpu_class is not None:
        if gpu_class not in allowed:
            raise ValidationError(
                {
                    "gpu_class": [
                        f"The {service_level.tier} service level allows "
                        f"{', '.join(c.slug for c in allowed)}, not {gpu_class.slug}."
                    ]
                }
            )
        return gpu_class
    if len(allowed) == 1:
        return allowed[0]
    # Several allowed: the class with the most GPUs not reserved by queued or running jobs.
    reserved = dict(
        GenerationJob.objects.filter(state__in=ACTIVE_STATES, gpu_class__in=allowed)
        .values_list("gpu_class")
        .annotate(n=Sum("gpus"))
    )
    return max(allowed, key=lambda c: (c.capacity_gpus - reserved.get(c.pk, 0), -allowed.index(c)))


def job_validate(
    *,
    department: Department,
    kind: JobKind,
    params,
    tier: str,
    gpu_class: GpuClass | None = None,
    off_peak: bool | None = None,
    user=None,
) -> tuple[dict, ServiceLevel, GpuClass, bool]:
    """Everything about a submission that does not depend on quotas: the user may submit
    for the department, the kind is active and allows the tier, the department has a
    service level for it, the GPU class is one it allows, the parameters match the
    schema. Returns the validated parameters, the SLA, the GPU class and the off-peak flag.
    """
    member_of = department_selectors.department_roles_for_user(user=user) if user else {}
    if user is not None and department.pk not in member_of:
        raise PermissionDenied(f"Only members of {department} submit its jobs.")
    errors: dict[str, list[str]] = {}
    if not department.active:
        errors["department"] = [f"{department} is inactive and submits no new work."]
    if not kind.active:
        errors["kind"] = [f"{kind} is switched off; ask IT."]
    if tier not in Tier.values:
        errors["tier"] = [f"Pick one of {', '.join(Tier.values)}."]
    elif tier not in kind.allowed_tiers:
        errors["tier"] = [f"{kind} runs as {', '.join(kind.allowed_tiers)}, not {tier}."]
    if errors:
        raise ValidationError(errors)
    service_level = (
        ServiceLevel.objects.filter(department=department, tier=tier)
        .prefetch_related("gpu_classes")
        .first()
    )
    if service_level is None:
        raise ValidationError({"tier": [f"{department} has no service level for {tier} work."]})
    chosen = _choose_gpu_class(service_level, gpu_class)
    if service_level.hold_for_off_peak:
        # The department's SLA holds its batch work for the off-peak hours: not the
        # submitter's call.
        if off_peak is False:
            raise ValidationError(
                {
                    "off_peak": [
                        f"{department}'s batch service level holds batch work for the "
                        "off-peak hours."
                    ]
                }
            )
        off_peak = True
    if off_peak and not OffPeakWindow.objects.filter(active=True).exists():
        raise ValidationError(
            {
                "off_peak": [
                    "No off-peak window is set up, so work held for it would never run; "
                    "ask IT to add one, or run it now."
                ]
            }
        )
    if off_peak and tier != Tier.BATCH:
        raise ValidationError({"off_peak": ["Only batch work can wait for the off-peak hours."]})
    try:
        values = argv_rules.params_validate(kind.params_schema, params)
        argv_rules.render(
            kind.argv_template, values, builtins={name: name for name in argv_rules.BUILTINS}
        )
    except ValidationError as exc:
        raise ValidationError(
            {"params": [f"{k}: {m}" for k, v in exc.message_dict.items() for m in v]}
        ) from exc
    if user is not None:
        _check_job_references(kind.params_schema, values, department=department, user=user)
    return values, service_level, chosen, bool(off_peak)


def _check_job_references(schema: dict, values: dict, *, department, user) -> None:
    """A parameter marked ``"x-portal-job": true`` names an earlier job whose output the
    command reads (the speech a lip-sync renders): it must be a succeeded job of the same
    department that the submitter may see, or the kind would read another's output."""
    from jobs.selectors import jobs_for_user

    for name, spec in schema.get("properties", {}).items():
        if not (isinstance(spec, dict) and spec.get("x-portal-job")) or name not in values:
            continue
        try:
            found = (
                jobs_for_user(user=user)
                .filter(pk=values[name], department=department, state=JobState.SUCCEEDED)
                .exists()
            )
        except (ValueError, ValidationError):  # not a UUID at all
            found = False
        if not found:
            raise ValidationError(
                {"params": [f"{name}: no succeeded job {values[name]} of {department} of yours."]}
            )


def job_submit(
    *,
    department: Department,
    kind: JobKind,
    params,
    tier: str,
    user,
    gpu_class: GpuClass | None = None,
    idempotency_key: str = "",
    off_peak: bool | None = None,
    now: dt.datetime | None = None,
) -> Submission:
    """Submit a job and admit it at once: it is queued (and sent to its workers after
    commit), made to wait with the reason and the quota that holds it, or refused with
    the quota that refuses it. A refused job is kept, with its reason.

    Idempotent per ``(department, idempotency_key)``: a repeated key returns the first job
    and creates nothing. Raises ``ValidationError`` (field errors) for a submission that
    could never run, ``PermissionDenied`` for a user who is not a member of the department.
    """
    values, service_level, chosen, off_peak = job_validate(
        department=department,
        kind=kind,
        params=params,
        tier=tier,
        gpu_class=gpu_class,
        off_peak=off_peak,
        user=user,
    )
    with transaction.atomic():
        department = _lock_department(department.pk)
        if idempotency_key:
            earlier = GenerationJob.objects.filter(
                department=department, idempotency_key=idempotency_key
            ).first()
            if earlier is not None:
                if earlier.submitter_id != user.pk:
                    # Someone else's job is none of this user's business (a member sees
                    # only their own): the key is taken, nothing more.
                    raise ValidationError(
                        {
                            "idempotency_key": [
                                "This key was already used for another person's job in "
                                f"{department}; pick a key of your own."
                            ]
                        }
                    )
                return Submission(job=earlier, created=False)
        job = GenerationJob(
            department=department,
            submitter=user,
            kind=kind,
            params=values,
            tier=tier,
            gpu_class=chosen,
            namespace=department.job_namespace or "",
            gpus=kind.default_gpus,
            max_runtime_s=kind.max_runtime_s,
            priority=service_level.priority,
            off_peak=off_peak,
            idempotency_key=idempotency_key,
            state=JobState.SUBMITTED,
            submitted_at=timezone.now(),
        )
        # Decided before it is written: one INSERT with the outcome.
        _admit(
            job,
            quotas=list(department.quotas.select_related("gpu_class")),
            now=now or job.submitted_at,
        )
        return Submission(job=job, created=True)


def _waiting_ahead(job: GenerationJob, quotas: list[Quota]) -> tuple[int, Quota | None]:
    """Waiting jobs of the department that come before ``job`` (higher priority, or the
    same and older) and are held by a quota that also applies to ``job``: a new job never
    overtakes them. Returns how many, and the quota that holds the first of them."""
    ahead = list(
        GenerationJob.objects.filter(
            department_id=job.department_id,
            state=JobState.WAITING,
            blocking_quota__in=[q.pk for q in quotas],
        )
        .ahead_of(job)
        .in_line()
        .values_list("blocking_quota", flat=True)
    )
    if not ahead:
        return 0, None
    return len(ahead), next(q for q in quotas if q.pk == ahead[0])


def _admit(
    job: GenerationJob,
    *,
    quotas: list[Quota],
    now: dt.datetime | None,
    blocked: set[int] | None = None,
) -> None:
    """Decide a submitted or waiting job; the caller holds the department lock."""
    now = now or timezone.now()
    applicable = applicable_quotas(job, quotas)
    if blocked is not None and any(q.pk in blocked for q in applicable):
        return  # an earlier waiting job holds a quota this one needs: keep the order
    checks = quota_checks(job, applicable, at=now)
    refusing = next(
        (
            c
            for c in checks
            if c.exceeded
            and (
                c.quota.enforcement == Enforcement.HARD_REJECT
                or (c.quota.enforcement == Enforcement.HARD_QUEUE and c.never_fits)
            )
        ),
        None,
    )
    if refusing is not None:
        never = refusing.quota.enforcement == Enforcement.HARD_QUEUE
        _set_state(
            job,
            JobState.REJECTED,
            reason=f"Refused by the quota {refusing.describe()}"
            + (" (more than the whole quota, so it would wait forever)." if never else "."),
            quota=refusing.quota,
            use=refusing.use,
            finished_at=now,
        )
        return
    holding = next(
        (c for c in checks if c.exceeded and c.quota.enforcement == Enforcement.HARD_QUEUE), None
    )
    if holding is not None:
        if blocked is not None:
            blocked.add(holding.quota.pk)
        period = holding.quota.period
        when = {
            "day": "tomorrow",
            "month": "next month, or when the budget is raised",
        }.get(period, "when running jobs end")
        _set_state(
            job,
            JobState.WAITING,
            reason=f"Waiting for the quota {holding.describe()}. It is released {when}.",
            quota=holding.quota,
            use=holding.use,
        )
        return
    if blocked is None:
        ahead, quota = _waiting_ahead(job, applicable)
        if ahead:
            _set_state(
                job,
                JobState.WAITING,
                reason=f"Waiting behind {ahead} earlier job{'s' if ahead > 1 else ''} held by "
                f"the quota {quota.get_kind_display()} ({quota.scope_display}).",
                quota=quota,
                use=None,
            )
            return
    if job.off_peak and not off_peak_open(now):
        _set_state(
            job,
            JobState.WAITING,
            reason="Held for the off-peak hours; it is released when an off-peak window opens.",
            quota=None,
            use=None,
        )
        return
    job.gpu_hours_reserved = reservation_gpu_hours(gpus=job.gpus, max_runtime_s=job.max_runtime_s)
    _set_state(
        job, JobState.QUEUED, reason="", quota=None, use=None, admitted_at=now, queued_at=now
    )
    _alert(job, checks, now=now)
    transaction.on_commit(
        lambda: dispatch.job_dispatch(job_id=job.pk, queue=job.queue, priority=job.priority)
    )


def _set_state(job, state, *, reason, quota, use, **fields) -> None:
    """Set the job's outcome and write it; a waiting job whose outcome did not change (the
    release task looks at every waiting job every half minute) is not written again."""
    # Stored with the field's 3 places, so the answer reads the same before and after a reload.
    use = None if use is None else use.quantize(Decimal("0.001"))
    quota_id = quota.pk if quota is not None else None
    unchanged = (
        not job._state.adding
        and not fields
        and (job.state, job.reason, job.blocking_quota_id, job.blocking_use)
        == (state, reason, quota_id, use)
    )
    job.state = state
    job.reason = reason
    job.blocking_quota = quota
    job.blocking_use = use
    for name, value in fields.items():
        setattr(job, name, value)
    if not unchanged:
        job.save()


def _alert(job: GenerationJob, checks: list[QuotaCheck], *, now: dt.datetime) -> None:
    """Record each alert threshold the admission reached (once per quota and period) and
    mail the department's managers after commit."""
    for check in checks:
        quota = check.quota
        thresholds = set(quota.alert_thresholds_pct or [])
        if quota.enforcement == Enforcement.SOFT and check.exceeded:
            thresholds.add(100)
        pct = check.after * 100 / quota.limit
        reached = sorted(t for t in thresholds if pct >= t)
        if not reached:
            continue
        period = quota_period(quota, now)
        # The department is locked: nobody else writes this quota's alerts meanwhile.
        sent = set(
            QuotaAlert.objects.filter(quota=quota, period=period).values_list(
                "threshold_pct", flat=True
            )
        )
        created = [t for t in reached if t not in sent]
        if not created:
            continue
        recipients = sorted(
            Membership.objects.filter(
                department_id=quota.department_id, role=Membership.Role.MANAGER
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
        QuotaAlert.objects.bulk_create(
            [
                QuotaAlert(
                    quota=quota,
                    period=period,
                    threshold_pct=threshold,
                    use=check.after,
                    limit=quota.limit,
                    job=job,
                    recipients=recipients,
                )
                for threshold in created
            ]
        )
        top = created[-1]
        subject = (
            f"[GPU portal] {quota.department}: {quota.get_kind_display()} at {pct:.0f} % "
            f"({_fmt(check.after)} of {quota.limit_text})"
        )
        body = (
            f"The quota {quota} of {quota.department} reached {top} % in {period}: "
            f"{_fmt(check.after)} of {quota.limit_text}, after admitting "
            f"{job.kind} job {job.short_id} submitted by {job.submitter}.\n"
            f"Enforcement: {quota.get_enforcement_display()}.\n"
        )
        if recipients:
            transaction.on_commit(lambda s=subject, b=body, r=recipients: _send_alert(s, b, r))


def _send_alert(subject: str, body: str, recipients: list[str]) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:  # mail is a courtesy; the alert row is the record
        logger.exception("Could not mail the quota alert %r", subject)


def jobs_release(*, department_id: int, now: dt.datetime | None = None) -> list[GenerationJob]:
    """Admit the department's waiting jobs that now have room, by priority then age.

    A job still held by a quota keeps every later job that needs the same quota waiting,
    so the order is kept. Returns the jobs that changed state."""
    now = now or timezone.now()
    changed = []
    with transaction.atomic():
        department = _lock_department(department_id)
        quotas = list(department.quotas.select_related("gpu_class"))
        blocked: set[int] = set()
        waiting = (
            GenerationJob.objects.filter(department=department, state=JobState.WAITING)
            .select_related("kind", "gpu_class")
            .in_line()
        )
        for job in waiting:
            before = (job.state, job.reason)
            _admit(job, quotas=quotas, now=now, blocked=blocked)
            if job.state != before[0]:
                changed.append(job)
    return changed


def jobs_release_all(*, now: dt.datetime | None = None) -> int:
    """Every department with waiting jobs: :func:`jobs_release`. Returns how many jobs
    left the waiting state."""
    ids = (
        GenerationJob.objects.filter(state=JobState.WAITING)
        .values_list("department_id", flat=True)
        .distinct()
    )
    return sum(len(jobs_release(department_id=pk, now=now)) for pk in list(ids))


def waiting_position(job: GenerationJob) -> int | None:
    """1 for the department's next waiting job to be released, and so on."""
    if job.state != JobState.WAITING:
        return None
    return (
        GenerationJob.objects.filter(department_id=job.department_id, state=JobState.WAITING)
        .ahead_of(job)
        .count()
        + 1
    )


# --- Cancellation and requeueing ---------------------------------------------------------------


def user_can_cancel(*, user, job: GenerationJob) -> bool:
    from portal import roles

    if roles.is_it_admin(user):
        return True
    if job.submitter_id == user.pk:
        return True
    return Membership.objects.filter(
        user=user, department_id=job.department_id, role=Membership.Role.MANAGER
    ).exists()


def job_cancel(*, job: GenerationJob, user) -> GenerationJob:
    """Cancel a job. One that waits or is queued ends at once; a running one is marked,
    and its worker stops the command within a heartbeat and records it cancelled.
    Raises ``ValidationError`` for a job that has already ended."""
    if not user_can_cancel(user=user, job=job):
        raise PermissionDenied("Only the submitter, the department's managers and IT cancel jobs.")
    with transaction.atomic():
        _lock_department(job.department_id)
        job = GenerationJob.objects.select_for_update().get(pk=job.pk)
        now = timezone.now()
        if job.state in (JobState.SUBMITTED, JobState.WAITING, JobState.QUEUED):
            _set_state(
                job,
                JobState.CANCELLED,
                reason=f"Cancelled by {user} before it started.",
                quota=None,
                use=None,
                finished_at=now,
                cancel_requested_at=now,
                cancelled_by=user,
            )
        elif job.state == JobState.RUNNING:
            if job.cancel_requested_at is None:
                job.cancel_requested_at = now
                job.cancelled_by = user
                job.reason = f"Cancel requested by {user}; its worker is stopping it."
                job.save(update_fields=["cancel_requested_at", "cancelled_by", "reason"])
        else:
            raise ValidationError(f"The job has already ended ({job.get_state_display().lower()}).")
        transaction.on_commit(lambda: _release_later(job.department_id))
    return job


def job_requeue(*, job: GenerationJob, user) -> GenerationJob:
    """Run a job again: a failed or cancelled job goes back through admission (its quotas
    apply again); a queued job is sent to the broker again; a running job whose worker
    stopped answering is queued again. Raises ``ValidationError`` otherwise."""
    stale = timezone.now() - dt.timedelta(seconds=settings.JOBS_HEARTBEAT_STALE_S)
    with transaction.atomic():
        department = _lock_department(job.department_id)
        job = (
            GenerationJob.objects.select_for_update()
            .select_related("kind", "gpu_class")
            .get(pk=job.pk)
        )
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            # Admitted afresh (today's count and the reservation apply again); the
            # GPU-seconds of earlier attempts stay, and the next attempt's are added.
            job.finished_at = job.cancel_requested_at = job.cancelled_by = None
            job.admitted_at = job.queued_at = job.dispatched_at = None
            job.error = ""
            job.exit_code = None
            _set_state(job, JobState.SUBMITTED, reason=f"Requeued by {user}.", quota=None, use=None)
            _admit(job, quotas=list(department.quotas.select_related("gpu_class")), now=None)
        elif job.state == JobState.QUEUED:
            transaction.on_commit(lambda: dispatch.job_dispatch(job_id=job.pk))
        elif job.state == JobState.RUNNING and (
            job.heartbeat_at is None or job.heartbeat_at < stale
        ):
            _stale_job_settle(job, now=timezone.now())
        else:
            raise ValidationError(
                f"A {job.get_state_display().lower()} job cannot be requeued; cancel it or "
                "wait for it to end."
            )
    return job


def _stale_job_settle(job: GenerationJob, *, now: dt.datetime) -> str:
    """A running job whose worker stopped answering (the caller holds the department
    lock): it ends cancelled when a cancel was asked for, fails once it has had
    ``JOBS_MAX_ATTEMPTS`` attempts (a job that kills its worker must not do so forever), and
    is queued again otherwise. Returns what was done."""
    if job.cancel_requested_at is not None:
        outcome, state = "cancelled", JobState.CANCELLED
        reason = f"Cancelled; its worker {job.worker} stopped answering."
    elif job.attempts >= settings.JOBS_MAX_ATTEMPTS:
        outcome, state = "failed", JobState.FAILED
        reason = (
            f"Its worker stopped answering during each of its {job.attempts} attempts; "
            "it is not tried again."
        )
    else:
        reason = f"Its worker {job.worker} stopped answering; queued again."
        job.worker = ""
        _set_state(
            job,
            JobState.QUEUED,
            reason=reason,
            quota=None,
            use=None,
        )
        transaction.on_commit(lambda: dispatch.job_dispatch(job_id=job.pk))
        return "requeued"
    _set_state(job, state, reason=reason, quota=None, use=None, finished_at=now)
    if state == JobState.FAILED:
        job.error = reason
        job.save(update_fields=["error"])
    transaction.on_commit(lambda: _release_later(job.department_id))
    return outcome


def _release_later(department_id: int) -> None:
    try:
        jobs_release(department_id=department_id)
    except Exception:  # the periodic release will try again
        logger.exception("Releasing waiting jobs of department %s failed", department_id)


# --- The worker's compare-and-set steps --------------------------------------------------------


def job_start(*, job_id, worker: str, now: dt.datetime | None = None) -> GenerationJob | None:
    """Take the job for ``worker``: a compare-and-set from ``queued`` (or from ``running``
    when its worker has stopped sending heartbeats) to ``running``. Returns the job, or
    ``None`` when another worker has it or it has ended: a redelivered message never runs
    a job twice at once. The attempt's GPU time starts counting at ``now``, in this
    worker's pool (:func:`jobs.gpu_time.worker_pool`)."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.JOBS_HEARTBEAT_STALE_S)
    pool_namespace, cluster_id = gpu_time.worker_pool()
    taken = GenerationJob.objects.filter(
        Q(state=JobState.QUEUED)
        | Q(
            state=JobState.RUNNING,
            heartbeat_at__lt=stale,
            attempts__lt=settings.JOBS_MAX_ATTEMPTS,
        ),
        pk=job_id,
        cancel_requested_at__isnull=True,
    ).update(
        state=JobState.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        gpu_time_until=now,
        pool_namespace=pool_namespace,
        cluster_id=cluster_id,
        attempts=F("attempts") + 1,
        reason="",
    )
    if not taken:
        return None
    return GenerationJob.objects.select_related("kind", "gpu_class", "department").get(pk=job_id)


@dataclass(frozen=True)
class Heartbeat:
    ours: bool  # False: another worker took the job over, or it ended; stop at once
    cancel_requested: bool
    gpu_seconds_added: Decimal = Decimal(0)  # GPU time recorded by this beat


def _held_attempt(*, job_id, worker: str, attempt: int) -> GenerationJob | None:
    """The job, row-locked, if ``worker`` still holds its ``attempt``."""
    return (
        GenerationJob.objects.select_for_update()
        .filter(pk=job_id, state=JobState.RUNNING, worker=worker, attempts=attempt)
        .first()
    )


def job_heartbeat(
    *, job_id, worker: str, attempt: int, now: dt.datetime | None = None
) -> Heartbeat:
    """The worker still runs the attempt: note the beat and record its GPU time up to
    ``now``. Says whether the attempt is still the worker's and whether a cancel was
    asked for."""
    now = now or timezone.now()
    with transaction.atomic():
        job = _held_attempt(job_id=job_id, worker=worker, attempt=attempt)
        if job is None:
            return Heartbeat(ours=False, cancel_requested=False)
        GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=now)
        added = gpu_time.attempt_gpu_time_record(job, until=now)
    return Heartbeat(
        ours=True,
        cancel_requested=job.cancel_requested_at is not None,
        gpu_seconds_added=added,
    )


@dataclass(frozen=True)
class Finished:
    """What :func:`job_finish` did: truthy when the end was recorded."""

    recorded: bool
    gpu_seconds_added: Decimal = Decimal(0)  # GPU time recorded since the last heartbeat

    def __bool__(self) -> bool:
        return self.recorded


def job_finish(
    *,
    job_id,
    worker: str,
    attempt: int,
    state: str,
    exit_code: int | None = None,
    reason: str = "",
    error: str = "",
    log_tail: str = "",
    result_files: list[str] | None = None,
    now: dt.datetime | None = None,
) -> Finished:
    """Record the end of the worker's attempt at ``now``: its GPU time up to then, and its
    state. A compare-and-set that only the worker holding the job can make, so its GPU
    time is counted once; then the department's waiting jobs are released."""
    if state not in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        raise ValueError(f"{state} is not a final state")
    now = now or timezone.now()
    with transaction.atomic():
        job = _held_attempt(job_id=job_id, worker=worker, attempt=attempt)
        if job is None:
            return Finished(recorded=False)
        added = gpu_time.attempt_gpu_time_record(job, until=now)
        GenerationJob.objects.filter(pk=job.pk).update(
            state=state,
            finished_at=now,
            exit_code=exit_code,
            reason=reason,
            error=error,
            log_tail=log_tail,
            result_files=result_files or [],
        )
        department_id = job.department_id
        transaction.on_commit(lambda: _release_later(department_id))
    return Finished(recorded=True, gpu_seconds_added=added)


def jobs_sweep(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The safety net of dispatch: queued jobs no broker took (or took too long ago) are
    sent again; running jobs whose worker stopped answering are settled by
    :func:`_stale_job_settle` (queued again, cancelled, or failed after too many
    attempts). Harmless to run any time: the start
    compare-and-set makes a duplicate delivery a no-op."""
    now = now or timezone.now()
    resend_before = now - dt.timedelta(seconds=settings.JOBS_REDISPATCH_AFTER_S)
    stale = now - dt.timedelta(seconds=settings.JOBS_HEARTBEAT_STALE_S)
    counts = {"dispatched": 0, "requeued": 0, "cancelled": 0, "failed": 0}
    for job_id in list(
        GenerationJob.objects.filter(state=JobState.QUEUED)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=resend_before))
        .in_line()
        .values_list("pk", flat=True)
    ):
        counts["dispatched"] += bool(dispatch.job_dispatch(job_id=job_id))
    for job in GenerationJob.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=stale):
        with transaction.atomic():
            _lock_department(job.department_id)
            job = GenerationJob.objects.select_for_update().get(pk=job.pk)
            if job.state != JobState.RUNNING or (job.heartbeat_at and job.heartbeat_at >= stale):
                continue
            counts[_stale_job_settle(job, now=now)] += 1
    return counts
