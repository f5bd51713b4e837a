"""Reading drift: the verdict of each department in each cluster, the open findings, and
where each cluster's Prometheus answers."""

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.utils import timezone

from cluster import manifests
from cluster.models import DriftCheck, DriftFinding, Verdict
from core import roles
from departments.models import Cluster, Department
from metering.models import MetricSource

NEVER_CHECKED = "No drift check has compared this cluster yet."
NOT_COMPARED = "The last drift check did not compare it (it had no objects there then)."


def clusters() -> list[tuple[str, Cluster | None]]:
    """Every cluster of the fleet by slug, with its row (none for a fleet of one cluster,
    ``CLUSTER_DEFAULT_SLUG``)."""
    rows = list(Cluster.objects.order_by("slug"))
    return [(c.slug, c) for c in rows] or [(settings.CLUSTER_DEFAULT_SLUG, None)]


def drift_source(*, cluster: Cluster | None) -> MetricSource:
    """Where the cluster's Prometheus answers, and the label filters that pick its series:
    those of the cluster's billing metric source, else of its first enabled source (the
    sources of no cluster stand for the one cluster of a fleet without ``Cluster`` rows).
    With none, ``PROMETHEUS_URL`` without filters (an unsaved source)."""
    sources = MetricSource.objects.filter(enabled=True, cluster=cluster).order_by(
        "-is_billing", "name"
    )
    return sources.first() or MetricSource(name="drift", prometheus_url="", label_filters={})


def it_admin_emails() -> list[str]:
    """Where drift is mailed: the active members of the it-admin group with an address."""
    return sorted(
        set(
            get_user_model()
            .objects.filter(is_active=True, groups__name=roles.IT_ADMIN)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


def open_drift_count() -> dict[str, int]:
    """Open findings per cluster slug: every cluster of the fleet (0 where none), and any
    other slug that still has open findings (a cluster since removed)."""
    counts = dict(
        DriftFinding.objects.filter(resolved_at__isnull=True)
        .order_by()
        .values("cluster")
        .annotate(n=Count("pk"))
        .values_list("cluster", "n")
    )
    return {**{slug: 0 for slug, _ in clusters()}, **counts}


@dataclass
class DriftVerdict:
    """A department's objects in one cluster against what the portal rendered."""

    cluster: str
    department: Department
    verdict: Verdict
    error: str = ""
    checked_at: dt.datetime | None = None  # the instant the last check compared
    findings: list[DriftFinding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _departments_in(cluster: Cluster | None, department: Department | None) -> list[Department]:
    """The active departments with namespaces in ``cluster`` (what the portal renders
    there)."""
    scope = Q(namespaces__cluster__isnull=True)
    if cluster is not None:
        scope |= Q(namespaces__cluster=cluster)
    departments = Department.objects.filter(scope, active=True).distinct().order_by("slug")
    if department is not None:
        departments = departments.filter(pk=department.pk)
    return list(departments)


def drift_verdicts(
    *, cluster: str | None = None, department: Department | None = None
) -> list[DriftVerdict]:
    """The verdict of each department (or of ``department``) in each cluster (or in
    ``cluster``), from the last check of the cluster and the open findings:

    - *unknown* when the cluster was never checked, when its last check failed (then
      with its error, and the findings still open from before, which nobody could see
      go away), or when the department was not compared by the last check;
    - *missing* when an object is absent; *drifted* when a field differs; *in sync*
      otherwise, only ever from a check that read the cluster."""
    verdicts = []
    for slug, row in clusters():
        if cluster is not None and slug != cluster:
            continue
        departments = _departments_in(row, department)
        if not departments:
            continue
        last = DriftCheck.objects.filter(cluster=slug).order_by("-started_at", "-pk").first()
        open_findings: dict[int, list[DriftFinding]] = {}
        for finding in DriftFinding.objects.filter(
            cluster=slug,
            resolved_at__isnull=True,
            department__in=[d.pk for d in departments],
        ).order_by("kind", "namespace", "name", "field"):
            open_findings.setdefault(finding.department_id, []).append(finding)
        for dept in departments:
            findings = open_findings.get(dept.pk, [])
            if last is None:
                verdict = DriftVerdict(slug, dept, Verdict.UNKNOWN, NEVER_CHECKED)
            elif last.status == DriftCheck.Status.FAILED:
                verdict = DriftVerdict(slug, dept, Verdict.UNKNOWN, last.error, last.at, findings)
            elif dept.slug not in last.departments:
                verdict = DriftVerdict(slug, dept, Verdict.UNKNOWN, NOT_COMPARED, last.at)
            else:
                state = (
                    Verdict.IN_SYNC
                    if not findings
                    else Verdict.MISSING
                    if any(f.is_missing for f in findings)
                    else Verdict.DRIFTED
                )
                verdict = DriftVerdict(slug, dept, state, "", last.at, findings)
            if last is not None:
                verdict.warnings = list(last.warnings)
            verdicts.append(verdict)
    return verdicts


@dataclass
class DepartmentClusterState:
    """What the department page shows IT about one cluster: the verdict, and whether the
    portal holds the department's queue there now, and why."""

    verdict: DriftVerdict
    cluster_name: str
    held: bool
    hold_reasons: list[str]
    has_queue: bool


@dataclass
class DepartmentClusters:
    states: list[DepartmentClusterState]
    render_errors: list[str]


def department_clusters(
    *, department: Department, at: dt.datetime | None = None
) -> DepartmentClusters:
    """The department's drift verdict in each cluster with its objects, and the holds the
    portal renders for its queue there now (``ClusterManifests.holds``)."""
    at = at or timezone.now()
    names = {slug: (row.name if row else "The fleet") for slug, row in clusters()}
    try:
        fleet = manifests.render(at=at)
        render_errors: list[str] = []
    except manifests.RenderError as exc:
        fleet, render_errors = manifests.Fleet([]), exc.errors
    rendered = {c.slug: c for c in fleet.clusters}
    states = []
    for verdict in drift_verdicts(department=department):
        here = rendered.get(verdict.cluster)
        reasons = here.holds.get(department.slug, []) if here else []
        queue = (
            next(
                (
                    m
                    for m in here.manifests
                    if m.kind == "ClusterQueue" and m.department == department.slug
                ),
                None,
            )
            if here
            else None
        )
        states.append(
            DepartmentClusterState(
                verdict=verdict,
                cluster_name=names.get(verdict.cluster, verdict.cluster),
                held=bool(queue and queue.body["spec"].get("stopPolicy") == "Hold"),
                hold_reasons=reasons,
                has_queue=queue is not None,
            )
        )
    return DepartmentClusters(states, render_errors)
