"""Submission and admission: a job is validated, then decided in one transaction that
locks the department row (``select_for_update``), so every quota check sees every admission
made before it and concurrent submissions can never admit more than a quota allows; waiting
jobs are released by priority then age. Dispatch to the broker happens after commit
(:mod:`jobs.dispatch`).
"""

import datetime as dt
import functools
import logging
import operator
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from departments import selectors as department_selectors
from departments.models import (
    Department,
    Enforcement,
    GpuClass,
    OffPeakWindow,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
)
from jobs import argv as argv_rules
from jobs import dispatch, signals
from jobs.models import ACTIVE_STATES, GenerationJob, JobKind, JobState, QuotaAlert
from jobs.selectors import (
    AdmissionFigures,
    QuotaCheck,
    admission_figures,
    applicable_quotas,
    fmt_quantity,
    jobs_for_user,
    quota_period,
    quota_uses,
    reservation_gpu_hours,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    job: GenerationJob
    created: bool  # False: the idempotency key named an earlier job, which is returned
    # 1 for the department's next waiting job, as admission saw the line; None when the
    # job does not wait or admission did not read the line.
    waiting_position: int | None = None


def _lock_department(department_id: int) -> Department:
    """The department's row, locked until the transaction ends, with the namespace its
    jobs are counted under (the first by name) as ``job_namespace``."""
    return (
        Department.objects.select_for_update(of=("self",))
        .annotate(job_namespace=department_selectors.job_namespace())
        .get(pk=department_id)
    )


def _lock_department_with_quotas(department_id: int) -> tuple[Department, list[Quota]]:
    """:func:`_lock_department` and the department's quotas (with their GPU classes), in
    one query where it has quotas."""
    quotas = list(
        Quota.objects.filter(department_id=department_id)
        .select_related("department", "gpu_class")
        .select_for_update(of=("department",))
        .annotate(department_job_namespace=department_selectors.job_namespace("department"))
    )
    if not quotas:
        return _lock_department(department_id), []
    department = quotas[0].department
    department.job_namespace = quotas[0].department_job_namespace
    for quota in quotas:
        quota.department = department
    return department, quotas


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


def _choose_gpu_class(
    service_level: ServiceLevel, allowed: list[GpuClass], gpu_class: GpuClass | None
) -> GpuClass:
    """``allowed``: the service level's GPU classes, by name."""
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
    # The service level with its GPU classes in one query, through the table that links
    # them; a service level that allows no class yet is read on its own.
    links = list(
        ServiceLevel.gpu_classes.through.objects.filter(
            servicelevel__department=department, servicelevel__tier=tier
        ).select_related("servicelevel", "gpuclass")
    )
    if links:
        service_level = links[0].servicelevel
    else:
        service_level = ServiceLevel.objects.filter(department=department, tier=tier).first()
    if service_level is None:
        raise ValidationError({"tier": [f"{department} has no service level for {tier} work."]})
    allowed = sorted((link.gpuclass for link in links), key=lambda c: c.name)
    chosen = _choose_gpu_class(service_level, allowed, gpu_class)
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
        department, quotas = _lock_department_with_quotas(department.pk)
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
        now = now or job.submitted_at
        # Read after the lock, in one query: every admission before this one is counted.
        figures = admission_figures(job, quotas, at=now, idempotency_key=idempotency_key)
        if figures.key_taken:
            earlier = (
                GenerationJob.objects.filter(department=department, idempotency_key=idempotency_key)
                .select_related("kind", "gpu_class", "blocking_quota__gpu_class")
                .first()
            )
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
                earlier.department = department  # what the answer shows, in hand
                earlier.submitter = user
                return Submission(job=earlier, created=False)
        # Decided before it is written: one INSERT with the outcome.
        _admit(job, quotas=quotas, now=now, figures=figures)
        position = None
        if job.state == JobState.WAITING and figures.line_ahead is not None:
            position = figures.line_ahead + 1
        return Submission(job=job, created=True, waiting_position=position)


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
    figures: AdmissionFigures | None = None,
) -> None:
    """Decide a submitted or waiting job; the caller holds the department lock and may
    pass the :func:`~jobs.selectors.admission_figures` it read under it."""
    now = now or timezone.now()
    applicable = applicable_quotas(job, quotas)
    if blocked is not None and any(q.pk in blocked for q in applicable):
        return  # an earlier waiting job holds a quota this one needs: keep the order
    if figures is None:
        figures = admission_figures(job, applicable, at=now, waiting_line=blocked is None)
    checks = figures.checks
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
        # No waiting job held by its quotas, none ahead of it: not read again.
        ahead, quota = (0, None) if figures.held == 0 else _waiting_ahead(job, applicable)
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


def _alert(
    job: GenerationJob | None, checks: list[QuotaCheck], *, now: dt.datetime
) -> list[QuotaAlert]:
    """Record each alert threshold the admission (or, with no ``job``, the periodic budget
    check) reached, once per quota and period, and mail the department's managers after
    commit. Reads nothing when no threshold is reached, and the alerts already sent in one
    query when some are. Returns the alerts recorded."""
    candidates = []
    for check in checks:
        quota = check.quota
        thresholds = set(quota.alert_thresholds_pct or [])
        if quota.enforcement == Enforcement.SOFT and check.exceeded:
            thresholds.add(100)
        pct = check.after * 100 / quota.limit
        reached = sorted(t for t in thresholds if pct >= t)
        if reached:
            candidates.append((check, pct, reached, quota_period(quota, now)))
    if not candidates:
        return []
    # The department is locked: nobody else writes its quotas' alerts meanwhile.
    sent = set(
        QuotaAlert.objects.filter(
            functools.reduce(
                operator.or_,
                (Q(quota=check.quota, period=period) for check, _, _, period in candidates),
            )
        ).values_list("quota_id", "period", "threshold_pct")
    )
    recipients = None
    alerts = []
    announcements = []
    for check, pct, reached, period in candidates:
        quota = check.quota
        created = [t for t in reached if (quota.pk, period, t) not in sent]
        if not created:
            continue
        if recipients is None:  # the quotas are all the department's
            recipients = department_selectors.manager_emails(quota.department_id)
        recorded = [
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
        alerts += recorded
        top = created[-1]
        subject = (
            f"[GPU portal] {quota.department}: {quota.get_kind_display()} at {pct:.0f} % "
            f"({fmt_quantity(check.after)} of {quota.limit_text})"
        )
        cause = (
            f"after admitting {job.kind} job {job.short_id} submitted by {job.submitter}"
            if job is not None
            else "by the GPU-hours metered so far this month and the running jobs' reservations"
        )
        body = (
            f"The quota {quota} of {quota.department} reached {top} % in {period}: "
            f"{fmt_quantity(check.after)} of {quota.limit_text}, {cause}.\n"
            f"Enforcement: {quota.get_enforcement_display()}.\n"
        )
        if (
            quota.kind == QuotaKind.GPU_HOURS_MONTH
            and not quota.job_kind
            and quota.enforcement != Enforcement.SOFT
            and check.after >= quota.limit
        ):
            where = f"the {quota.gpu_class} flavor of " if quota.gpu_class_id else ""
            body += (
                f"The budget is spent: {where}the department's Kueue ClusterQueue is held "
                "in the cluster (running work finishes, nothing new is admitted) until the "
                "next month or until the budget grows.\n"
            )
        if recipients:
            transaction.on_commit(lambda s=subject, b=body, r=recipients: _send_alert(s, b, r))
        announcements.append((recorded, subject, body))
    if alerts:
        QuotaAlert.objects.bulk_create(alerts)
    for recorded, subject, body in announcements:
        transaction.on_commit(lambda a=recorded, s=subject, b=body: _announce(a, s, b))
    return alerts


def _announce(alerts: list[QuotaAlert], subject: str, text: str) -> None:
    """Tell the apps above (billing delivers to the department's channels) after commit;
    a receiver's failure never undoes the admission, it is logged."""
    for receiver, result in signals.quota_alerts_recorded.send_robust(
        sender=QuotaAlert, alerts=alerts, subject=subject, text=text
    ):
        if isinstance(result, Exception):
            logger.error(
                "Announcing the quota alert %r to %r failed", subject, receiver, exc_info=result
            )


def budgets_alert(*, now: dt.datetime | None = None) -> list[QuotaAlert]:
    """Alert on monthly GPU-hour budgets reached by use itself, not by a submission: the
    department's own workloads in its namespaces, metered from Prometheus, count against
    its budgets as much as portal jobs do. Each threshold once per quota and month, as
    admission does (the same records); a soft budget alerts at 100 % when exceeded and never
    holds anything. Each department under its lock, so admission and this never both send
    one threshold."""
    now = now or timezone.now()
    department_ids = (
        Quota.objects.filter(kind=QuotaKind.GPU_HOURS_MONTH, job_kind="", department__active=True)
        .values_list("department_id", flat=True)
        .distinct()
        .order_by("department_id")
    )
    sent = []
    for department_id in department_ids:
        with transaction.atomic():
            _, quotas = _lock_department_with_quotas(department_id)
            budgets = [q for q in quotas if q.kind == QuotaKind.GPU_HOURS_MONTH and not q.job_kind]
            uses = quota_uses(budgets, at=now)
            checks = [QuotaCheck(quota=q, use=uses[q.pk], demand=Decimal(0)) for q in budgets]
            sent += _alert(None, checks, now=now)
    return sent


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
        department, quotas = _lock_department_with_quotas(department_id)
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
